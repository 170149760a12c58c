#!/usr/bin/env bash
# test_build_tables.sh -- `sglc build --model`: embedded constraint token tables.
#
# On stories260K, tests/e2e/programs/constraints.sgl (regex, choices, typed
# int and bool, JSON schema) is built with --model: `sglc build` reports the
# embedded tables on stderr; the binary's output (plain and --json) equals
# `sglc run` at temperature 0, and --json --stats shows it computed no mask
# (mask_computations 0, masks served from the tables) where `sglc run`
# computed them. Then the failure paths: a model with another tokenizer is
# refused with a clear message; a binary whose embedded tables were damaged
# (one byte flipped in place) is refused with a message naming the
# constraint's location, not a crash; tables over --max-table-kib are left
# out (said on stderr) and the binary still gives the same output, computing
# those masks at run time. Needs $SGLC, $SGL_SOURCE_ROOT, $SGL_SHARED_DIR
# (skip 77 without the model).
set -u
fail() { echo "FAIL: $*"; exit 1; }

model="${SGL_SHARED_DIR:-/nonexistent}/models/stories260K-hf"
if [ ! -f "$model/model.safetensors" ]; then
    echo "skipped: no stories260K model at $model"
    exit 77
fi
: "${SGLC:?}" "${SGL_SOURCE_ROOT:?}"
command -v python3 >/dev/null || fail "python3 is needed to read JSON"
tmp=$(mktemp -d /tmp/sglc-test-tables-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
unset SGL_MODEL
rel=tests/e2e/programs/constraints.sgl
opts=(--temperature 0 --max-tokens-cap 40)
cd "$SGL_SOURCE_ROOT" || fail "no source root"

# field NAME of "engine" in a --json --stats line; and text/vars/return only
engine() { python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["engine"][sys.argv[1]])' "$1"; }
result() { python3 -c 'import json,sys; o=json.loads(sys.stdin.readline()); print(json.dumps({k: o.get(k) for k in ("text","vars","return")}, sort_keys=True))'; }

"$SGLC" build "$rel" -o "$tmp/cons" --model "$model" 2>"$tmp/build.err" || { cat "$tmp/build.err"; fail "sglc build --model"; }
line=$(grep '^embedded token tables: ' "$tmp/build.err") || { cat "$tmp/build.err"; fail "no table report on stderr"; }
echo "$line"
n_con=$(echo "$line" | sed -n 's/^embedded token tables: \([0-9]*\) constraint.*/\1/p')
[ "${n_con:-0}" -ge 3 ] || fail "expected tables for at least 3 constraints (regex, int, bool, json): $line"

"$SGLC" run "$rel" --model "$model" "${opts[@]}" >"$tmp/run.txt" || fail "sglc run"
"$tmp/cons" "${opts[@]}" >"$tmp/bin.txt" || fail "binary (plain)"
cmp -s "$tmp/run.txt" "$tmp/bin.txt" || { diff "$tmp/run.txt" "$tmp/bin.txt"; fail "plain output differs"; }
"$SGLC" run "$rel" --model "$model" "${opts[@]}" --json --stats >"$tmp/run.json" || fail "sglc run --json"
"$tmp/cons" "${opts[@]}" --json --stats >"$tmp/bin.json" || fail "binary --json"
[ "$(result <"$tmp/run.json")" = "$(result <"$tmp/bin.json")" ] || fail "--json results differ"
run_walks=$(engine mask_computations <"$tmp/run.json")
bin_walks=$(engine mask_computations <"$tmp/bin.json")
bin_hits=$(engine mask_cache_hits <"$tmp/bin.json")
echo "masks computed: sglc run $run_walks, binary $bin_walks (served from tables: $bin_hits)"
[ "$run_walks" -gt 0 ] || fail "sglc run computed no masks: the counter does not count"
[ "$bin_walks" = 0 ] || fail "the binary computed $bin_walks masks at run time"
[ "$bin_hits" -gt 0 ] || fail "the binary used no mask"

# another tokenizer (two tokens' ids swapped): refused at start
other="$tmp/other-model"
mkdir "$other"
ln -s "$model/config.json" "$model/model.safetensors" "$model/tokenizer_config.json" "$other/"
python3 - "$model/tokenizer.json" "$other/tokenizer.json" <<'EOF' || fail "cannot write the changed tokenizer"
import json, sys
t = json.load(open(sys.argv[1]))
v = t["model"]["vocab"]
a, b = [k for k in v if len(k) > 2 and k.isalpha()][:2]
v[a], v[b] = v[b], v[a]
json.dump(t, open(sys.argv[2], "w"))
EOF
"$tmp/cons" --model "$other" "${opts[@]}" >/dev/null 2>"$tmp/e"; rc=$?
[ $rc = 1 ] || { cat "$tmp/e"; fail "other tokenizer: exit $rc"; }
grep -q "different tokenizer than the one this program was built for" "$tmp/e" || { cat "$tmp/e"; fail "other tokenizer: message"; }
grep -q "$other" "$tmp/e" || fail "other tokenizer: the message does not name the model"

# damaged tables: flip one byte inside the last embedded table of the binary
cp "$tmp/cons" "$tmp/damaged"
python3 - "$tmp/damaged" <<'EOF' || fail "no embedded table found in the binary"
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
at = b.rfind(b"SGLTOKT\0\1\0\0\0\x40\0\0\0")   # magic, version 1, header 64
if at < 0:
    sys.exit(1)
b[at + 70] ^= 0x5a        # a body byte: the checksum must catch it
open(p, "wb").write(b)
EOF
"$tmp/damaged" "${opts[@]}" >/dev/null 2>"$tmp/e"; rc=$?
[ $rc = 1 ] || { cat "$tmp/e"; fail "damaged tables: exit $rc (1 expected, never a crash)"; }
grep -Eq "constraints.sgl:[0-9]+:[0-9]+: the embedded token tables of this constraint are damaged: .*checksum" "$tmp/e" ||
    { cat "$tmp/e"; fail "damaged tables: message"; }

# the cap: a schema whose tables exceed 1 KiB is left out (said on stderr)
# and its masks are computed at run time; the small regex's tables stay
cat >"$tmp/big.sgl" <<'EOF'
fn main() {
    "Pet: "
    gen pet(json_schema: r"""{"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}, "age": {"type": "integer"}, "tags": {"type": "array", "items": {"enum": ["a", "bc"]}, "maxItems": 3}}, "required": ["name", "age"]}""", max_tokens: 30, temperature: 0)
    "\nYes? "
    gen yes(regex: r"(yes|no)", temperature: 0)
}
EOF
"$SGLC" build "$tmp/big.sgl" -o "$tmp/capped" --model "$model" --max-table-kib 1 2>"$tmp/build.err" || fail "build with a cap"
grep -q "big.sgl:3:.*note: no token tables embedded for this constraint (token tables exceed the cap of 1024 bytes" "$tmp/build.err" ||
    { cat "$tmp/build.err"; fail "cap: no note"; }
grep -q "^embedded token tables: 1 constraint, .* (1 left out: computed at run time)" "$tmp/build.err" ||
    { cat "$tmp/build.err"; fail "cap: no summary"; }
"$SGLC" run "$tmp/big.sgl" --model "$model" "${opts[@]}" --json --stats >"$tmp/big.json" || fail "sglc run big.sgl"
"$tmp/capped" "${opts[@]}" --json --stats >"$tmp/cap.json" || fail "capped binary"
[ "$(result <"$tmp/big.json")" = "$(result <"$tmp/cap.json")" ] || fail "capped binary: results differ"
run_walks=$(engine mask_computations <"$tmp/big.json")
cap_walks=$(engine mask_computations <"$tmp/cap.json")
[ "$cap_walks" -gt 0 ] && [ "$cap_walks" -lt "$run_walks" ] ||
    fail "capped binary: $cap_walks masks computed (expected some, fewer than sglc run's $run_walks)"
echo "capped binary: $cap_walks masks computed at run time"
echo "ok: embedded token tables"
