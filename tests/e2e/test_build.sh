#!/usr/bin/env bash
# test_build.sh -- `sglc build` end to end on stories260K.
#
# For every examples/*.sgl and tests/e2e/programs/*.sgl: build a binary, then run it and `sglc run` with
# the same arguments at temperature 0, plain and --json; stdout (text, vars,
# return value) and exit status must be identical, as must a runtime error
# line. main's arguments are made from the parameter list that `PROG --help`
# prints (so the help listing is exercised too). Then the failure cases
# (usage, compile errors, no C compiler, no libraries, a model with another
# tokenizer) and a start-up measurement: process start to the first engine
# step (--stats: startup_to_first_step_ms) and wall time, binary vs sglc run.
# Needs $SGLC, $SGL_SOURCE_ROOT, $SGL_SHARED_DIR (skip 77 without the model).
set -u
fail() { echo "FAIL: $*"; exit 1; }

model="${SGL_SHARED_DIR:-/nonexistent}/models/stories260K-hf"
if [ ! -f "$model/model.safetensors" ]; then
    echo "skipped: no stories260K model at $model"
    exit 77
fi
: "${SGLC:?}" "${SGL_SOURCE_ROOT:?}"
command -v python3 >/dev/null || fail "python3 is needed to compare JSON"
tmp=$(mktemp -d /tmp/sglc-test-build-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
unset SGL_MODEL
opts=(--model "$model" --temperature 0 --max-tokens-cap 40)

# A value for each parameter type that --help lists.
arg_value() {
    case "$1" in
        str) echo "Tom had a dog." ;;
        int) echo 200 ;;
        float) echo 0.5 ;;
        bool) echo true ;;
        'list[str]') echo '["and ran home.", "and the sky was blue."]' ;;
        'list[int]') echo '[1, 2]' ;;
        *) return 1 ;;
    esac
}

# JSON results without meta (timings); with "shape", values are replaced by
# their types and list lengths (for programs that sample at temperature > 0
# themselves: the engine's sampling order then depends on batching).
strip_json() {
    python3 -c '
import json, sys
def shape(v):
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(x) for x in v]
    return type(v).__name__
for line in sys.stdin:
    o = json.loads(line)
    o = {k: o.get(k) for k in ("text", "vars", "return", "error")}
    print(json.dumps(shape(o) if sys.argv[1] == "shape" else o, sort_keys=True))
' "$1"
}

n=0
for src in "$SGL_SOURCE_ROOT"/examples/*.sgl "$SGL_SOURCE_ROOT"/tests/e2e/programs/*.sgl; do
    rel=${src#"$SGL_SOURCE_ROOT"/}
    name=$(basename "$src" .sgl)
    prog="$tmp/$name"
    # built from the same relative path as `sglc run` below: locations name the file as given
    (cd "$SGL_SOURCE_ROOT" && "$SGLC" build "$rel" -o "$prog") >"$tmp/build.out" 2>&1 ||
        { cat "$tmp/build.out"; fail "$name: sglc build failed"; }
    [ -x "$prog" ] || fail "$name: no executable"
    "$prog" --help >"$tmp/help.txt" || fail "$name: --help exit status"
    grep -q "^usage: $name " "$tmp/help.txt" || fail "$name: --help has no usage line"
    # parameters: lines after "parameters of main" up to the blank line
    args=()
    while read -r pname ptype; do
        [ "$pname" = "(none)" ] && continue
        v=$(arg_value "$ptype") || fail "$name: no test value for a parameter of type $ptype"
        args+=(--arg "$pname=$v")
    done < <(sed -n '/^parameters of main/,/^$/p' "$tmp/help.txt" | sed '1d;/^$/d')
    # A program that samples at a nonzero temperature of its own (directly or
    # in a std module) gives different text from run to run, with or without
    # a binary: when two `sglc run`s disagree, only the result's shape is compared.
    how=exact
    srcs=("$src")
    for m in $(sed -n 's/^import "\(std\/[A-Za-z0-9_]*\)".*/\1/p' "$src"); do
        srcs+=("$SGL_SOURCE_ROOT/stdlib/$m.sgl")
    done
    # (a temperature given by a variable counts as sampling too)
    grep -Eqs 'temperature: *([A-Za-z_]|0*[1-9]|0*\.0*[1-9])' "${srcs[@]}" && how=shape
    for mode in json plain; do
        [ $how = shape ] && [ $mode = plain ] && continue
        extra=()
        [ $mode = json ] && extra=(--json)
        (cd "$SGL_SOURCE_ROOT" && "$SGLC" run "$rel" "${opts[@]}" "${args[@]}" "${extra[@]}") \
            >"$tmp/run.out" 2>"$tmp/run.err"
        rc_run=$?
        if [ $mode = json ] && [ $rc_run = 0 ]; then
            (cd "$SGL_SOURCE_ROOT" && "$SGLC" run "$rel" "${opts[@]}" "${args[@]}" "${extra[@]}") \
                >"$tmp/run2.out" 2>/dev/null
            strip_json exact <"$tmp/run.out" >"$tmp/run.cmp"
            strip_json exact <"$tmp/run2.out" >"$tmp/run2.cmp"
            cmp -s "$tmp/run.cmp" "$tmp/run2.cmp" || how=shape
        fi
        (cd "$SGL_SOURCE_ROOT" && "$prog" "${opts[@]}" "${args[@]}" "${extra[@]}") >"$tmp/bin.out" 2>"$tmp/bin.err"
        rc_bin=$?
        [ $rc_run = $rc_bin ] || { cat "$tmp/run.err" "$tmp/bin.err"; fail "$name ($mode): exit $rc_run (sglc run) vs $rc_bin (binary)"; }
        if [ $mode = json ] && [ $rc_run = 0 ]; then
            strip_json $how <"$tmp/run.out" >"$tmp/run.cmp"
            strip_json $how <"$tmp/bin.out" >"$tmp/bin.cmp"
        else
            cp "$tmp/run.out" "$tmp/run.cmp"
            cp "$tmp/bin.out" "$tmp/bin.cmp"
        fi
        cmp -s "$tmp/run.cmp" "$tmp/bin.cmp" || { diff "$tmp/run.cmp" "$tmp/bin.cmp" | head -20; fail "$name ($mode): outputs differ"; }
        grep -E 'runtime error|: error: ' "$tmp/run.err" >"$tmp/run.rte"
        grep -E 'runtime error|: error: ' "$tmp/bin.err" >"$tmp/bin.rte"
        cmp -s "$tmp/run.rte" "$tmp/bin.rte" || { diff "$tmp/run.rte" "$tmp/bin.rte"; fail "$name ($mode): errors differ"; }
    done
    echo "ok: $name (exit $rc_run, $(wc -c <"$tmp/bin.out") bytes of output, $how)"
    n=$((n + 1))
done
[ $n -ge 7 ] || fail "too few programs found ($n)"

# ---- failure cases
ex="$SGL_SOURCE_ROOT/examples/few_shot_qa.sgl"
"$SGLC" build "$ex" >/dev/null 2>"$tmp/e"; [ $? = 2 ] && grep -q "missing -o PROG" "$tmp/e" || fail "build without -o"
printf 'fn main() {\n  gen x(max_tokens 3)\n}\n' >"$tmp/bad.sgl"
"$SGLC" build "$tmp/bad.sgl" -o "$tmp/bad" 2>"$tmp/e"; [ $? = 1 ] || fail "syntax error: exit status"
grep -q "bad.sgl:2:.*error" "$tmp/e" || fail "syntax error: no located diagnostic"
[ ! -e "$tmp/bad" ] || fail "syntax error: a binary was written"
printf 'fn helper() -> str {\n  return "x"\n}\n' >"$tmp/nomain.sgl"
"$SGLC" build "$tmp/nomain.sgl" -o "$tmp/nomain" 2>"$tmp/e"; [ $? = 1 ] || fail "no main: exit status"
grep -q "nomain.sgl: error: the program has no \`main\` function to build" "$tmp/e" || { cat "$tmp/e"; fail "no main: message"; }
CC=/nonexistent/cc "$SGLC" build "$ex" -o "$tmp/x" 2>"$tmp/e"; [ $? = 1 ] || fail "no compiler: exit status"
grep -q "cannot run the C compiler '/nonexistent/cc'" "$tmp/e" || { cat "$tmp/e"; fail "no compiler: message"; }
SGLC_LIB_DIR=/nonexistent "$SGLC" build "$ex" -o "$tmp/x" 2>"$tmp/e"; [ $? = 1 ] || fail "no libraries: exit status"
grep -q "sglc library not found: /nonexistent/backend/" "$tmp/e" || { cat "$tmp/e"; fail "no libraries: message"; }
ls "$tmp"/x.sglc-* >/dev/null 2>&1 && fail "the temporary C file was left behind"
"$tmp/few_shot_qa" "$ex" 2>"$tmp/e"; [ $? = 2 ] && grep -q "unexpected argument" "$tmp/e" || fail "binary given a FILE"
"$tmp/few_shot_qa" --model "$model" 2>"$tmp/e"; [ $? = 2 ] && grep -q "missing --arg question=VALUE" "$tmp/e" || fail "binary: missing --arg"

# --model: the vocabulary is checked at start
"$SGLC" build "$ex" -o "$tmp/fsq_m" --model "$model" || fail "build --model"
"$tmp/fsq_m" --arg question=Hi --temperature 0 --max-tokens 4 >"$tmp/m.out" || fail "built-in model default"
"$SGLC" run "$ex" --model "$model" --arg question=Hi --temperature 0 --max-tokens 4 >"$tmp/r.out" || fail "run"
cmp -s "$tmp/m.out" "$tmp/r.out" || fail "build --model output differs from sglc run"
other="$tmp/other-model"
mkdir "$other"
ln -s "$model/config.json" "$model/model.safetensors" "$model/tokenizer_config.json" "$other/"
python3 - "$model/tokenizer.json" "$other/tokenizer.json" <<'EOF' || fail "cannot write the changed tokenizer"
import json, sys
t = json.load(open(sys.argv[1]))
v = t["model"]["vocab"]
a, b = [k for k in v if len(k) > 2 and k.isalpha()][:2]   # swap two tokens' ids
v[a], v[b] = v[b], v[a]
json.dump(t, open(sys.argv[2], "w"))
EOF
"$tmp/fsq_m" --model "$other" --arg question=Hi 2>"$tmp/e"; [ $? = 1 ] || fail "other tokenizer: exit status"
grep -q "different tokenizer than the one this program was built for" "$tmp/e" || { cat "$tmp/e"; fail "other tokenizer: message"; }

# ---- start-up: sgl_run_main's start -> first engine step (and the part of
# it spent compiling or loading the program), and process wall time (reported)
startup() {
    python3 -c 'import json,sys; e = json.loads(sys.stdin.readline())["engine"]; print("%.1f ms (program %.2f ms)" % (e["startup_to_first_step_ms"], e["program_load_ms"]))'
}
wall() {
    local t0 t1
    t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000))
}
q=(--model "$model" --arg question=Hi --temperature 0 --max-tokens 1)
for i in 1 2 3; do
    a=$("$SGLC" run "$ex" "${q[@]}" --json --stats | startup) || fail "startup (run)"
    b=$("$tmp/few_shot_qa" "${q[@]}" --json --stats | startup) || fail "startup (binary)"
    echo "startup to first engine step: sglc run ${a}, binary ${b}" \
         "(wall: sglc run $(wall "$SGLC" run "$ex" "${q[@]}") ms, binary $(wall "$tmp/few_shot_qa" "${q[@]}") ms)"
done
echo "all $n programs: binary == sglc run"
