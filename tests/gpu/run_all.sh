#!/usr/bin/env bash
# run_all.sh -- every GPU check in one command, for the GPU test machine.
#
#   bash tests/gpu/run_all.sh BUILD_DIR OUT_DIR [--quick]
#
# Run from the repository root with BUILD_DIR configured -Dcuda=enabled and
# built on the build machine (it needs no meson, re2c, bison or CMocka here).
# Runs, each under a time limit, writing logs under OUT_DIR:
#   1. every kernel test (BUILD_DIR/tests/kernels/test_k_*): CUDA vs C reference
#   2. stories260K on the CUDA runner vs ../shared/goldens (check_goldens.py)
#   3. random-weight Llama / Qwen2 models built with transformers vs sglc's
#      CUDA runner (check_transformers.py; logits, greedy tokens)
#   4. the kernel tests with --bench (kernel timings; not with --quick)
#   5. timing of a Llama-3-8B-shaped dummy model (prefill 512, decode with
#      CUDA graphs on/off x gemv/cuBLAS; not with --quick)
#   6. Nsight Compute per-kernel times of decode steps (when ncu is there)
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

# The whole run stays inside BUDGET seconds (the GPU machine allows 10 minutes
# per command): every step's timeout is cut to what is left.
BUDGET=${SGL_GPU_BUDGET_S:-450}
start=$SECONDS
# limit N: prints min(N, seconds left), at least 1
limit() {
    local left=$((BUDGET - (SECONDS - start)))
    [ "$left" -lt 1 ] && left=1
    [ "$1" -lt "$left" ] && echo "$1" || echo "$left"
}

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
    timeout "$(limit 120)" "$t" > "$out/kernels/$name.log" 2>&1
    rc=$?
    tail -n 1 "$out/kernels/$name.log"
    record "$name" "$rc"
done

export SGL_SOURCE_ROOT=${SGL_SOURCE_ROOT:-$PWD}
# ../shared does not travel to the GPU machine: a copy of the bits the goldens
# check needs (models/stories260K-hf, goldens/) can ride along in BUILD_DIR/shared
if [ -z "${SGL_SHARED_DIR:-}" ]; then
    if [ -d "$PWD/../shared/models/stories260K-hf" ]; then
        SGL_SHARED_DIR=$PWD/../shared
    else
        case "$build" in
            /*) SGL_SHARED_DIR=$build/shared ;;
            *) SGL_SHARED_DIR=$PWD/$build/shared ;;
        esac
    fi
fi
export SGL_SHARED_DIR
timeout "$(limit 180)" python3 tests/gpu/check_goldens.py "$build/tests/gpu/gpu_forward" \
    --out "$out/goldens.json" > "$out/goldens.log" 2>&1
rc=$?
cat "$out/goldens.log"
record "stories260K goldens" "$rc"

timeout "$(limit 300)" python3 tests/gpu/check_transformers.py "$build/tests/gpu/gpu_forward" \
    "$out/transformers" > "$out/transformers.log" 2>&1
rc=$?
cat "$out/transformers.log"
record "transformers comparison" "$rc"
# the saved random models are big and reproducible from the seeds: keep only results
rm -rf "$out/transformers/models"

if [ "$quick" != "--quick" ]; then
    for t in "$build"/tests/kernels/test_k_*; do
        [ -x "$t" ] && [ -f "$t" ] || continue
        name=$(basename "$t")
        timeout "$(limit 60)" "$t" --bench > "$out/bench/$name.log" 2>&1
        grep '^bench' "$out/bench/$name.log"
    done
fi

# timing only: a Llama-3-8B-shaped model with random weights (16 GB bf16),
#    prefill 512 tokens + 32 greedy decode steps at batch 1 on the CUDA runner
mkdir -p "$out/llama3-8b-dummy"
cat > "$out/llama3-8b-dummy/config.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
 "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
 "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256,
 "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
 "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
 "tie_word_embeddings": false, "bos_token_id": 128000, "eos_token_id": 128001,
 "torch_dtype": "bfloat16"}
JSON
if [ "$quick" != "--quick" ]; then
    timeout "$(limit 180)" "$build/tests/gpu/gpu_forward" --dummy --model "$out/llama3-8b-dummy" \
        --prompt-ids "$(seq -s, 1000 1511)" --steps 32 --batch 1 --no-logits --variants \
        > "$out/perf_llama3_8b.json" 2> "$out/perf_llama3_8b.log"
    rc=$?
    echo "llama3-8b dummy (batch 1, prompt 512, 32 steps):"
    [ "$rc" -eq 0 ] && python3 - "$out/perf_llama3_8b.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("  init %.1f s, prefill 512 tokens %.1f ms (%.0f tok/s), decode %.3f ms/token"
      % (r["init_ms"] / 1e3, r["prefill_ms"], 512e3 / r["prefill_ms"], r["decode_ms"]))
print("  decode ms/token: graph+gemv %.3f, graph+cuBLAS %.3f, launches+gemv %.3f, launches+cuBLAS %.3f"
      % (r["decode_ms_graph_gemv"], r["decode_ms_graph_cublas"], r["decode_ms_nograph_gemv"],
         r["decode_ms_nograph_cublas"]))
PY
    keep=$failed
    record "llama3-8b dummy timing" "$rc"
    failed=$keep # timing only: reported, never fails the run
fi

# 6. per-kernel device times of batch-1 decode steps (Nsight Compute) on a
#    2-layer model with the Llama-3-8B layer and vocabulary shapes: the same
#    kernels as the 32-layer model, without its 16 GB dummy init
ncu_bin=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)
if [ "$quick" != "--quick" ] && [ -n "$ncu_bin" ]; then
    mkdir -p "$out/l2-8b"
    sed 's/"num_hidden_layers": 32/"num_hidden_layers": 2/' "$out/llama3-8b-dummy/config.json" \
        > "$out/l2-8b/config.json"
    # launches: prefill of 512 tokens (~25), then decode steps of ~25 each
    timeout "$(limit 150)" "$ncu_bin" --csv --print-units base --clock-control none --metrics gpu__time_duration.sum,dram__bytes_read.sum \
        --launch-skip 60 --launch-count 50 "$build/tests/gpu/gpu_forward" --dummy --no-graph \
        --model "$out/l2-8b" --prompt-ids "$(seq -s, 1000 1511)" --steps 6 --batch 1 --no-logits \
        > "$out/ncu_decode.csv" 2> "$out/ncu_decode.log"
    echo "ncu exit $?"
    python3 - "$out/ncu_decode.csv" <<'PY' | tee "$out/ncu_summary.txt"
import csv, sys, collections
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
if not rows:
    sys.exit("no ncu rows")
h = rows[0]
ki, mi, vi = h.index("Kernel Name"), h.index("Metric Name"), h.index("Metric Value")
t, b, n = collections.defaultdict(float), collections.defaultdict(float), collections.Counter()
for r in rows[1:]:
    name = r[ki].split("(")[0][:60]
    v = float(r[vi].replace(",", ""))
    if r[mi] == "gpu__time_duration.sum":
        t[name] += v
        n[name] += 1
    else:
        b[name] += v
tot = sum(t.values())
print("kernel (2-layer 8B shape, batch-1 decode, no graph)  calls  total us  us/call  GB/s")
for k in sorted(t, key=lambda k: -t[k]):
    us = t[k] / 1e3  # ns -> us
    print("%-52s %5d %9.1f %8.2f %6.0f" % (k, n[k], us, us / n[k], b[k] / (t[k] or 1)))
print("total %.1f us over %d kernels" % (tot / 1e3, sum(n.values())))
PY
fi

echo "--- $((SECONDS - start)) s"
cat "$summary"
exit $failed
