#!/usr/bin/env bash
# run_all.sh -- every GPU check in one command, for the GPU test machine.
#
#   bash tests/gpu/run_all.sh BUILD_DIR OUT_DIR [--quick]
#
# Run from the repository root with BUILD_DIR configured -Dcuda=enabled and
# built on the build machine (it needs no meson, re2c, bison or CMocka here).
# Runs, each under a time limit, writing logs under OUT_DIR:
#   1. every kernel test (BUILD_DIR/tests/kernels/test_k_*): CUDA vs C reference
#   2. the same tests with --bench (kernel timings; skipped with --quick)
#   3. stories260K on the CUDA runner vs ../shared/goldens (check_goldens.py)
#   4. random-weight Llama / Qwen2 models built with transformers vs sglc's
#      CUDA runner (check_transformers.py; logits, greedy tokens)
# OUT_DIR/summary.txt gets one PASS/FAIL/SKIP line per step. Exit 0 when no
# step failed (skips allowed), 1 otherwise.
set -u
build=${1:?usage: run_all.sh BUILD_DIR OUT_DIR [--quick]}
out=${2:?usage: run_all.sh BUILD_DIR OUT_DIR [--quick]}
quick=${3:-}
mkdir -p "$out/kernels" "$out/bench"
summary="$out/summary.txt"
: > "$summary"
failed=0

# record NAME RC: one summary line (77 = skipped)
record() {
    local what
    case "$2" in
        0) what=PASS ;;
        77) what=SKIP ;;
        124) what="FAIL (timeout)"; failed=1 ;;
        *) what="FAIL (exit $2)"; failed=1 ;;
    esac
    printf '%-28s %s\n' "$1" "$what" | tee -a "$summary"
}

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || true
    git rev-parse HEAD 2>/dev/null || true
} > "$out/machine.txt"
cat "$out/machine.txt"

for t in "$build"/tests/kernels/test_k_*; do
    [ -x "$t" ] && [ -f "$t" ] || continue
    name=$(basename "$t")
    timeout 300 "$t" > "$out/kernels/$name.log" 2>&1
    rc=$?
    tail -n 1 "$out/kernels/$name.log"
    record "$name" "$rc"
done

if [ "$quick" != "--quick" ]; then
    for t in "$build"/tests/kernels/test_k_*; do
        [ -x "$t" ] && [ -f "$t" ] || continue
        name=$(basename "$t")
        timeout 120 "$t" --bench > "$out/bench/$name.log" 2>&1
        grep '^bench' "$out/bench/$name.log"
    done
fi

export SGL_SOURCE_ROOT=${SGL_SOURCE_ROOT:-$PWD}
export SGL_SHARED_DIR=${SGL_SHARED_DIR:-$PWD/../shared}
timeout 300 python3 tests/gpu/check_goldens.py "$build/tests/gpu/gpu_forward" \
    --out "$out/goldens.json" > "$out/goldens.log" 2>&1
rc=$?
cat "$out/goldens.log"
record "stories260K goldens" "$rc"

timeout 400 python3 tests/gpu/check_transformers.py "$build/tests/gpu/gpu_forward" \
    "$out/transformers" > "$out/transformers.log" 2>&1
rc=$?
cat "$out/transformers.log"
record "transformers comparison" "$rc"
# the saved random models are big and reproducible from the seeds: keep only results
rm -rf "$out/transformers/models"

echo "---"
cat "$summary"
exit $failed
