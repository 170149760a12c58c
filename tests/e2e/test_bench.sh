#!/usr/bin/env bash
# test_bench.sh -- `sglc bench offline` and `sglc bench one-batch` end to end
# on stories260K (CPU).
#
# offline: a random workload (exact token totals, TTFT/TPOT order, engine
# counters that add up), the shared-prefix workload with the radix cache
# (hit rate within 0.05 of the optimum, which must equal the closed form
# (G*M - G)*S / (G*M*(S+Q)) up to chance collisions of the random questions)
# and with --disable-radix-cache (no hit at all), each --json file parsed by
# python3; usage errors and a prompt longer than the model's context give a
# clear message and exit 2 / 1.
# one-batch: --json-schema and --regex runs whose --dump outputs are checked
# against the constraint, an unconstrained --dump (every output O tokens), a
# batch of 256, and its usage errors.
# Needs $SGLC and $SGL_SHARED_DIR (skip 77 without the model).
set -u
fail() { echo "FAIL: $*"; exit 1; }

model="${SGL_SHARED_DIR:-/nonexistent}/models/stories260K-hf"
if [ ! -f "$model/model.safetensors" ]; then
    echo "skipped: no stories260K model at $model"
    exit 77
fi
: "${SGLC:?}"
command -v python3 >/dev/null || fail "python3 is needed to check JSON results"
tmp=$(mktemp -d /tmp/sglc-test-bench-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# run NAME ARGS...: sglc ARGS, must exit 0; output in $tmp/NAME.out/.err
run() {
    local name=$1
    shift
    "$SGLC" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" ||
        { cat "$tmp/$name.out" "$tmp/$name.err"; fail "sglc $* exited $?"; }
}

# usage CODE PATTERN ARGS...: sglc ARGS must exit CODE with PATTERN on stderr
usage() {
    local code=$1 pat=$2
    shift 2
    "$SGLC" "$@" >"$tmp/u.out" 2>"$tmp/u.err"
    local rc=$?
    [ "$rc" -eq "$code" ] || { cat "$tmp/u.err"; fail "sglc $* exited $rc, expected $code"; }
    grep -q -- "$pat" "$tmp/u.err" || { cat "$tmp/u.err"; fail "sglc $*: no '$pat' in the message"; }
}

# ---- offline, random ------------------------------------------------------
run rand bench offline --model "$model" --dataset random --num-prompts 24 --random-input-len 64 \
    --random-output-len 16 --warmup-requests 4 --json "$tmp/rand.json"
grep -q "Output token throughput (tok/s):" "$tmp/rand.out" || fail "offline: no throughput line"
python3 - "$tmp/rand.json" <<'PY' || fail "offline random: bad JSON result"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["num_requests"] == 24, r["num_requests"]
assert r["total_input_tokens"] == 24 * 64, r["total_input_tokens"]
assert r["total_output_tokens"] == 24 * 16, r["total_output_tokens"]
e = r["engine"]
assert e["generated_tokens"] == 24 * 16, e
assert e["prefill_tokens"] + e["decode_tokens"] == e["forward_tokens"], e
assert e["prefill_tokens"] >= 24 * 64 - r["cached_tokens"], e
assert r["duration_s"] > 0 and r["output_throughput"] > 0
assert abs(r["output_throughput"] * r["duration_s"] - 24 * 16) < 1e-6 * 24 * 16
for k in ("ttft_ms", "tpot_ms"):
    d = r[k]
    assert 0 < d["p50"] <= d["p99"], (k, d)
assert r["tpot_ms"]["n"] == 24
# random prompts share (almost) nothing
assert r["optimal_cache_hit_rate"] < 0.05, r["optimal_cache_hit_rate"]
assert r["workload"]["dataset"] == "random"
PY
echo "ok: offline random"

# lengths drawn in [R*len, len]
run rand2 bench offline --model "$model" --dataset random --num-prompts 16 --random-input-len 40 \
    --random-output-len 12 --random-range-ratio 0.5 --warmup-requests 0 --json "$tmp/rand2.json"
python3 - "$tmp/rand2.json" <<'PY' || fail "offline random, range ratio 0.5: bad totals"
import json, sys
r = json.load(open(sys.argv[1]))
assert 16 * 20 <= r["total_input_tokens"] <= 16 * 40 and r["total_input_tokens"] != 16 * 40, r
assert 16 * 6 <= r["total_output_tokens"] <= 16 * 12 and r["total_output_tokens"] != 16 * 12, r
PY
echo "ok: offline random, range ratio"

# ---- offline, shared prefix -----------------------------------------------
G=4 M=8 S=128 Q=16 O=8
sp=(bench offline --model "$model" --dataset shared-prefix --num-groups $G --prompts-per-group $M
    --system-prompt-len $S --question-len $Q --output-len $O --warmup-requests 4)
run sp "${sp[@]}" --json "$tmp/sp.json"
run sp_nc "${sp[@]}" --disable-radix-cache --json "$tmp/sp_nc.json"
run sp_ord "${sp[@]}" --no-shuffle --json "$tmp/sp_ord.json"
python3 - "$tmp" $G $M $S $Q $O <<'PY' || fail "offline shared-prefix: cache hit rates"
import json, sys
tmp, G, M, S, Q, O = sys.argv[1], *map(int, sys.argv[2:])
closed = (G * M - G) * S / (G * M * (S + Q))
for name in ("sp", "sp_nc", "sp_ord"):
    r = json.load(open("%s/%s.json" % (tmp, name)))
    assert r["num_requests"] == G * M and r["total_input_tokens"] == G * M * (S + Q), r
    assert r["total_output_tokens"] == G * M * O, r
    opt = r["optimal_cache_hit_rate"]
    # random questions may share a first token or two by chance
    assert closed <= opt < closed + 0.01, (name, opt, closed)
    hit = r["cache_hit_rate"]
    if name == "sp_nc":
        assert r["disable_radix_cache"] and r["cached_tokens"] == 0 and hit == 0.0, (name, r)
        assert r["engine"]["prefill_tokens"] >= G * M * (S + Q), r["engine"]
    else:
        assert opt - 0.05 <= hit <= opt + 1e-9, (name, hit, opt)
        assert r["engine"]["prefill_tokens"] < G * M * (S + Q) - r["cached_tokens"] + G * M, r["engine"]
    print("%s: hit rate %.4f, optimum %.4f (closed form %.4f)" % (name, hit, opt, closed))
PY
echo "ok: offline shared-prefix (cache, --disable-radix-cache, --no-shuffle)"

# pages of 16 tokens: only whole pages of the 100-token system prompt can hit (96)
run sp_pg bench offline --model "$model" --dataset shared-prefix --num-groups 3 --prompts-per-group 5 \
    --system-prompt-len 100 --question-len 12 --output-len 4 --page-size 16 --warmup-requests 0 \
    --json "$tmp/sp_pg.json"
python3 - "$tmp/sp_pg.json" <<'PY' || fail "offline shared-prefix, --page-size 16: optimum not page-aligned"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["optimal_cached_tokens"] == (15 - 3) * 96, r["optimal_cached_tokens"]
assert r["cached_tokens"] % 16 == 0 and r["cache_hit_rate"] >= r["optimal_cache_hit_rate"] - 0.05, r
PY
echo "ok: offline shared-prefix, page size 16"

# ---- offline, usage and input errors --------------------------------------
usage 2 "--dataset random|shared-prefix is required" bench offline --model "$model"
usage 2 "--dataset must be random or shared-prefix, got 'sharegpt'" bench offline --model "$model" --dataset sharegpt
usage 2 "--model DIR is required" bench offline --dataset random
usage 2 "apply to --dataset shared-prefix only" bench offline --model "$model" --dataset random --num-groups 3
usage 2 "apply to --dataset random only" bench offline --model "$model" --dataset shared-prefix --num-prompts 3
usage 2 "out of range" bench offline --model "$model" --dataset random --random-range-ratio 2
usage 2 "is not an integer" bench offline --model "$model" --dataset random --num-prompts ten
usage 2 "unknown policy 'best'" bench offline --model "$model" --dataset random --schedule-policy best
usage 2 "unknown option '--bogus'" bench offline --model "$model" --dataset random --bogus
usage 2 "needs a value" bench offline --model "$model" --dataset random --json
usage 1 "max_position_embeddings" bench offline --model "$model" --dataset random --num-prompts 2 \
    --random-input-len 500 --random-output-len 64 --warmup-requests 0
usage 1 "cannot write" bench offline --model "$model" --dataset random --num-prompts 2 \
    --random-input-len 8 --random-output-len 2 --json "$tmp/no/such/dir/r.json"
usage 1 "config.json" bench offline --model "$tmp" --dataset random --num-prompts 2
"$SGLC" bench offline --help | grep -q -- "--system-prompt-len" || fail "bench offline --help"
echo "ok: offline usage errors"

# ---- one-batch, constrained -----------------------------------------------
schema='{"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
  "ok": {"type": "boolean"}}, "required": ["name", "ok"]}'
printf '%s\n' "$schema" >"$tmp/schema.json"
run ob_schema bench one-batch --model "$model" --batch-size 6 --input-len 16 --output-len 64 \
    --json-schema "$tmp/schema.json" --dump "$tmp/schema.jsonl" --json "$tmp/ob_schema.json"
grep -q "^Constrained. outputs:" "$tmp/ob_schema.out" || fail "one-batch --json-schema: no summary"
grep -q "^Steps\. " "$tmp/ob_schema.out" || fail "one-batch --json-schema: no step line"
python3 - "$tmp/schema.jsonl" "$tmp/ob_schema.json" <<'PY' || fail "one-batch --json-schema: outputs do not satisfy the schema"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
res = json.load(open(sys.argv[2]))
assert res["constraint"] == "json-schema" and res["jump_forward"] and len(res["runs"]) == 1, res
assert res["runs"][0]["output_tokens"] == sum(r["completion_tokens"] for r in rows), (res, rows)
assert "decode_median_s" not in res["runs"][0], res
assert [r["index"] for r in rows] == list(range(6)), rows
for r in rows:
    assert r["finish"] == "stop", r
    v = json.loads(r["text"])
    assert set(v) == {"name", "ok"}, v
    assert isinstance(v["name"], str) and len(v["name"]) <= 12 and isinstance(v["ok"], bool), v
PY
echo "ok: one-batch --json-schema"

run ob_regex bench one-batch --model "$model" --batch-size 3 --input-len 12 --output-len 48 \
    --regex '(yes|no), [a-z]{2,6}\.' --dump "$tmp/regex.jsonl" --no-jump-forward
python3 - "$tmp/regex.jsonl" <<'PY' || fail "one-batch --regex: outputs do not match"
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 3
for r in rows:
    assert r["finish"] == "stop" and re.fullmatch(r"(yes|no), [a-z]{2,6}\.", r["text"]), r
PY
echo "ok: one-batch --regex"

run ob_plain bench one-batch --model "$model" --batch-size 4 --input-len 16 --output-len 10 --runs 2 \
    --dump "$tmp/plain.jsonl" --json "$tmp/ob_plain.json"
grep -q "^Decode\.  median latency:" "$tmp/ob_plain.out" || fail "one-batch: no decode line"
[ "$(grep -c '^Steps\.   full-batch decode steps: [1-9]' "$tmp/ob_plain.out")" -eq 2 ] ||
    { cat "$tmp/ob_plain.out"; fail "one-batch: no full-batch step figures"; }
python3 - "$tmp/plain.jsonl" "$tmp/ob_plain.json" <<'PY' || fail "one-batch --dump/--json: unexpected results"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 4 and all(r["finish"] == "length" and r["completion_tokens"] == 10 for r in rows), rows
res = json.load(open(sys.argv[2]))
assert res["constraint"] is None and res["batch_size"] == 4 and len(res["runs"]) == 2, res
for r in res["runs"]:
    # the first token comes from the prefill step: 9 steps decode all 4 sequences
    assert r["full_batch_steps"] == 9 and r["output_tokens"] == 40, r
    assert 0 < r["decode_median_s"] and 0 < r["step_median_s"] and 0 < r["prefill_latency_s"] <= r["total_latency_s"], r
PY
run ob_256 bench one-batch --model "$model" --batch-size 256 --input-len 8 --output-len 4
grep -q "Batch size: 256" "$tmp/ob_256.out" || fail "one-batch --batch-size 256"
echo "ok: one-batch unconstrained --dump, batch 256"

usage 2 "give only one of --regex, --json-schema" bench one-batch --model "$model" --regex a --json-schema '{}'
usage 1 "--json-schema: $tmp/none.json: cannot read the file" bench one-batch --model "$model" \
    --json-schema "$tmp/none.json"
usage 1 "--json-schema:" bench one-batch --model "$model" --json-schema '{"type": "object", "minProperties": "x"}'
usage 1 "--regex:" bench one-batch --model "$model" --regex '(ab'
usage 1 "--dump: cannot write" bench one-batch --model "$model" --batch-size 1 --input-len 4 --output-len 2 \
    --dump "$tmp/no/such/dir/d.jsonl"
usage 2 "unknown benchmark 'offlin'" bench offlin
echo "ok: one-batch usage errors"
echo "PASS"
