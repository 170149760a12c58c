#!/usr/bin/env bash
# test_examples_paper.sh -- the SGLang paper's workloads (examples/) and the
# std/ modules (stdlib/std) end to end on stories260K, plus `sglc bench program`.
#
# Each example runs over its batch input examples/data/<name>.jsonl at
# temperature 0 with a small --max-tokens-cap; check.py then checks the
# structure and the constraints of every result (fork list lengths, nested
# gathers, select answers among the choices, regex/JSON fields, typed values,
# cache hits of the hoisted few-shot prefix), not the story text. The std/
# helpers without generation are compared with exact expected values; the
# generating ones by shape. `sglc bench program` is checked for its result
# fields, the ablations' effects (no radix cache -> 0 cached tokens, same
# greedy output in every configuration, jump-forwards only with
# jump-forward on) and its usage errors.
# Needs $SGLC, $SGL_SOURCE_ROOT, $SGL_SHARED_DIR (skip 77 without the model).
set -u
fail() { echo "FAIL: $*"; exit 1; }

model="${SGL_SHARED_DIR:-/nonexistent}/models/stories260K-hf"
if [ ! -f "$model/model.safetensors" ]; then
    echo "skipped: no stories260K model at $model"
    exit 77
fi
: "${SGLC:?}" "${SGL_SOURCE_ROOT:?}"
command -v python3 >/dev/null || fail "python3 is needed to check JSON results"
tmp=$(mktemp -d /tmp/sglc-test-paper-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
unset SGL_MODEL SGL_STDLIB
cd "$SGL_SOURCE_ROOT" || fail "no source root"
check="$SGL_SOURCE_ROOT/tests/e2e/check_examples_paper.py"

# run_batch NAME CAP: examples/NAME.sgl over examples/data/NAME.jsonl
run_batch() {
    "$SGLC" run "examples/$1.sgl" --model "$model" --batch "examples/data/$1.jsonl" \
        --temperature 0 --max-tokens-cap "$2" --parallel 4 >"$tmp/$1.out" 2>"$tmp/$1.err" ||
        { cat "$tmp/$1.err"; fail "sglc run examples/$1.sgl --batch exited non-zero"; }
    python3 "$check" example "$1" "examples/data/$1.jsonl" "$tmp/$1.out" ||
        fail "examples/$1.sgl: results do not have the expected structure"
    echo "ok: examples/$1.sgl ($(wc -l <"examples/data/$1.jsonl") inputs)"
}

run_batch gsm8k_few_shot 24
run_batch hellaswag_select 16
run_batch mmlu_answer 4
run_batch multi_chain_reasoning 16
run_batch tree_of_thought 12
run_batch llm_judge 12
run_batch react_agent 12
run_batch json_regex_fields 32
run_batch json_typed 128
run_batch nested_calls 12
run_batch multi_turn_chat 12
run_batch generative_agents 16
# the remaining examples' batch inputs must at least run
run_batch few_shot_qa 8
run_batch parallel_judge 8
run_batch extern_capture 16

# --no-parallel gives the same results at temperature 0 (fork 6; forks nested in forks)
for prog in "examples/llm_judge.sgl --arg article=Tom_had_a_dog." tests/e2e/programs/nested_fork_gather.sgl; do
    # shellcheck disable=SC2086
    "$SGLC" run $prog --model "$model" --json --temperature 0 --max-tokens-cap 12 >"$tmp/par.json" ||
        fail "$prog"
    # shellcheck disable=SC2086
    "$SGLC" run $prog --model "$model" --json --temperature 0 --max-tokens-cap 12 --no-parallel \
        >"$tmp/seq.json" || fail "$prog --no-parallel"
    python3 "$check" same-vars "$tmp/par.json" "$tmp/seq.json" || fail "$prog: --no-parallel changed the variables"
    echo "ok: ${prog%% *} --no-parallel == parallel"
done

# nested fork gathers, three levels deep
"$SGLC" run tests/e2e/programs/nested_fork_gather.sgl --model "$model" --json >"$tmp/nest.json" ||
    fail "nested_fork_gather run"
python3 "$check" nested "$tmp/nest.json" || fail "nested_fork_gather: wrong gathered lists"
echo "ok: nested fork gathers"

# std/ helpers
"$SGLC" run tests/e2e/programs/stdlib_pure.sgl --model "$model" --json >"$tmp/pure.json" ||
    fail "stdlib_pure run"
python3 "$check" stdlib-pure "$tmp/pure.json" || fail "std/ helpers returned wrong values"
"$SGLC" run tests/e2e/programs/stdlib_gen.sgl --model "$model" --json --max-tokens-cap 12 \
    >"$tmp/gen.json" || fail "stdlib_gen run"
python3 "$check" stdlib-gen "$tmp/gen.json" || fail "std/ generating helpers: wrong shapes"
echo "ok: std/ modules"
# the stdlib is found through $SGL_STDLIB too, and a missing module is a diagnostic
SGL_STDLIB="$SGL_SOURCE_ROOT/stdlib/std" "$SGLC" check examples/react_agent.sgl ||
    fail "SGL_STDLIB=stdlib/std: react_agent does not check"
printf 'import "std/nonexistent"\nfn main() { "x" }\n' >"$tmp/missing.sgl"
"$SGLC" check "$tmp/missing.sgl" 2>"$tmp/missing.err" && fail "a missing std module checked clean"
grep -q 'cannot import `std/nonexistent`' "$tmp/missing.err" || { cat "$tmp/missing.err"; fail "missing std module: no diagnostic"; }
echo "ok: stdlib lookup"

# sglc bench program: every ablation, JSON lines
"$SGLC" bench program examples/gsm8k_few_shot.sgl --batch examples/data/gsm8k_few_shot.jsonl \
    --model "$model" --max-tokens-cap 8 --ablations --json --parallel 4 >"$tmp/bench.jsonl" ||
    fail "sglc bench program --ablations"
python3 "$check" bench "$tmp/bench.jsonl" 8 7 || fail "bench program (gsm8k_few_shot)"
"$SGLC" bench program examples/json_typed.sgl --batch examples/data/json_typed.jsonl \
    --model "$model" --max-tokens-cap 128 --json --num-programs 3 >"$tmp/jf.jsonl" ||
    fail "sglc bench program json_typed"
"$SGLC" bench program examples/json_typed.sgl --batch examples/data/json_typed.jsonl \
    --model "$model" --max-tokens-cap 128 --json --num-programs 3 --no-jump-forward >>"$tmp/jf.jsonl" ||
    fail "sglc bench program json_typed --no-jump-forward"
python3 "$check" jump-forward "$tmp/jf.jsonl" || fail "bench program: jump-forward ablation"
"$SGLC" bench program examples/mmlu_answer.sgl --batch examples/data/mmlu_answer.jsonl \
    --model "$model" --max-tokens-cap 4 >"$tmp/text.out" || fail "sglc bench program (text)"
for f in 'Latency: ' 'Throughput: ' 'programs/s' 'Output throughput: ' 'Cache hit rate: ' \
    'Requests: 8,' 'Prompt tokens: ' 'Completion tokens: ' 'Cached tokens: ' 'Errors: 0'; do
    grep -q "$f" "$tmp/text.out" || { cat "$tmp/text.out"; fail "bench program: no '$f' in the result line"; }
done
echo "ok: sglc bench program"

# usage errors: exit 2 with a message
usage() {
    "$SGLC" bench program "$@" >"$tmp/u.out" 2>"$tmp/u.err"
    [ $? -eq 2 ] || fail "bench program $*: expected exit 2"
    grep -q "sglc bench program: " "$tmp/u.err" || { cat "$tmp/u.err"; fail "bench program $*: no message"; }
}
usage examples/mmlu_answer.sgl --model "$model"
usage --batch examples/data/mmlu_answer.jsonl --model "$model"
usage examples/mmlu_answer.sgl --batch examples/data/mmlu_answer.jsonl --model "$model" --schedule-policy nope
usage examples/mmlu_answer.sgl --batch examples/data/mmlu_answer.jsonl --model "$model" --ablations --no-parallel
usage examples/mmlu_answer.sgl --batch examples/data/mmlu_answer.jsonl --model "$model" --frobnicate
printf '{"question": "x", "options": ["a"]}\nnot json\n' >"$tmp/bad.jsonl"
"$SGLC" bench program examples/mmlu_answer.sgl --batch "$tmp/bad.jsonl" --model "$model" 2>"$tmp/b.err" &&
    fail "bench program: a bad JSON line was accepted"
grep -q "bad.jsonl:2:" "$tmp/b.err" || { cat "$tmp/b.err"; fail "bench program: bad line not located"; }
printf '{"question": "x"}\n' >"$tmp/miss.jsonl"
"$SGLC" bench program examples/mmlu_answer.sgl --batch "$tmp/miss.jsonl" --model "$model" 2>"$tmp/m.err" &&
    fail "bench program: a missing parameter was accepted"
grep -q "missing parameter 'options'" "$tmp/m.err" || { cat "$tmp/m.err"; fail "bench program: missing parameter not named"; }
echo "ok: bench program usage errors"
echo "all paper examples, std/ modules and bench program checks passed"
