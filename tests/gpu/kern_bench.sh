#!/usr/bin/env bash
# kern_bench.sh -- the decode-path kernel work checked and timed in one command
# on the GPU machine, optionally against an earlier build timed the same way.
#
#   bash tests/gpu/kern_bench.sh BUILD OUT [BASE]
#
# BUILD holds sglc, tests/gpu/{gpu_forward,gpu_decode_bench},
# tests/kernels/test_k_*, lib/ and shared/ (as run_all.sh expects); BASE (an
# earlier build, same layout, optional) is timed alongside. Steps, each under
# a time limit, logs under OUT:
#   1. the kernel tests KB_TESTS (default: the decode-path ones; CUDA vs C
#      reference), then --bench of KB_BENCH (BASE's too)
#   2. runner alone (gpu_decode_bench), Llama-3-8B-shaped dummy model: batch 1
#      at 512 context with default, SGL_PDL=0, SGL_FUSED=0, both off, and
#      BASE (KB_B1_VARIANTS=0: default only); batch 64 at 1k context, BASE,
#      and each KB_B64_ENV setting (KB_BASE_DECODE=0: BASE in step 3 only)
#   3. through the engine: sglc bench one-batch batch 1 (512 in, 128 out) and
#      batch 64 (1024 in, 16 out), and BASE
#   4. correctness of the runner: stories260K goldens, transformers models
# Prints a summary table last.
set -u
build=${1:?usage: kern_bench.sh BUILD OUT [BASE]}
out=${2:?usage: kern_bench.sh BUILD OUT [BASE]}
base=${3:-}
case "$build" in /*) ;; *) build=$PWD/$build ;; esac
[ -n "$base" ] && case "$base" in /*) ;; *) base=$PWD/$base ;; esac
[ -d "$build/lib" ] && export LD_LIBRARY_PATH="$build/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# the NCCL the runner links may live in the Python environment's wheels
if ldd "$build/sglc" | grep -q 'libnccl.*not found'; then
    nccl=$(find /opt /usr/local /usr/lib -name 'libnccl.so.2' 2>/dev/null | head -n 1)
    [ -n "$nccl" ] && export LD_LIBRARY_PATH="$(dirname "$nccl"):$LD_LIBRARY_PATH"
fi
mkdir -p "$out"
start=$SECONDS
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"

echo "== 1. kernel tests"
for k in ${KB_TESTS:-norm_gemv rope_kv_store attn_decode gemv}; do
    timeout 60 "$build/tests/kernels/test_k_$k" > "$out/test_k_$k.log" 2>&1
    echo "test_k_$k exit $? : $(tail -n 1 "$out/test_k_$k.log")"
    grep -A3 '^FAIL' "$out/test_k_$k.log" | head -n 12
done | tee "$out/kernel_tests.txt"
for k in ${KB_BENCH:-}; do
    timeout 60 "$build/tests/kernels/test_k_$k" --bench 2>&1 | grep '^bench' > "$out/bench_$k.txt"
    if [ -n "$base" ] && [ -x "$base/tests/kernels/test_k_$k" ]; then
        timeout 60 "$base/tests/kernels/test_k_$k" --bench 2>&1 | grep '^bench' > "$out/bench_${k}_base.txt"
    fi
done
echo "--- $((SECONDS - start)) s"

model=$out/llama3-8b
mkdir -p "$model"
cat > "$model/config.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
 "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
 "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256,
 "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
 "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
 "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2,
 "torch_dtype": "bfloat16"}
JSON
tok=$build/shared/models/stories260K-hf
cp "$tok"/tokenizer.json "$tok"/tokenizer_config.json "$model/"

echo "== 2. runner alone (gpu_decode_bench, median ms/step): batch 1 at 512 context, batch 64 at 1k"
dec() { # NAME BIN BATCH CTX [ENV...]
    local name=$1 bin=$2 b=$3 c=$4
    shift 4
    echo "$name b$b: $(env "$@" timeout 60 "$bin" --model "$model" --dummy --batch "$b" --ctx "$c" --steps 32 2>&1 | tail -n 1)"
}
{
dec new "$build/tests/gpu/gpu_decode_bench" 1 512
if [ "${KB_B1_VARIANTS:-1}" = 1 ]; then
    dec nopdl "$build/tests/gpu/gpu_decode_bench" 1 512 SGL_PDL=0
    dec nofuse "$build/tests/gpu/gpu_decode_bench" 1 512 SGL_FUSED=0
    dec neither "$build/tests/gpu/gpu_decode_bench" 1 512 SGL_PDL=0 SGL_FUSED=0
    [ -n "$base" ] && dec base "$base/tests/gpu/gpu_decode_bench" 1 512
    dec new "$build/tests/gpu/gpu_decode_bench" 1 512
fi
dec new "$build/tests/gpu/gpu_decode_bench" 64 1024
[ -n "$base" ] && [ "${KB_BASE_DECODE:-1}" = 1 ] && dec base "$base/tests/gpu/gpu_decode_bench" 64 1024
for v in ${KB_B64_ENV:-}; do dec "$v" "$build/tests/gpu/gpu_decode_bench" 64 1024 "$v"; done
} | tee "$out/decode.txt"
echo "--- $((SECONDS - start)) s"

echo "== 3. engine (sglc bench one-batch)"
eng() { # NAME BIN ARGS...
    local name=$1 bin=$2
    shift 2
    timeout 90 "$bin" bench one-batch --device cuda --model "$model" --load-format dummy "$@" > "$out/eng_$name.log" 2>&1
    echo "$name exit $?: $(grep -E 'Decode\.|Prefill\.' "$out/eng_$name.log" | tr '\n' ' ')"
}
{
eng b1_new "$build/sglc" --batch-size 1 --input-len 512 --output-len 128
[ -n "$base" ] && eng b1_base "$base/sglc" --batch-size 1 --input-len 512 --output-len 128
eng b64_new "$build/sglc" --batch-size 64 --input-len 1024 --output-len 16
[ -n "$base" ] && eng b64_base "$base/sglc" --batch-size 64 --input-len 1024 --output-len 16
} | tee "$out/engine.txt"
echo "--- $((SECONDS - start)) s"

echo "== 4. correctness"
export SGL_SOURCE_ROOT=$PWD SGL_SHARED_DIR=$build/shared
timeout 60 python3 tests/gpu/check_goldens.py "$build/tests/gpu/gpu_forward" --out "$out/goldens.json" \
    > "$out/goldens.log" 2>&1
echo "goldens exit $?"
left=$((280 - (SECONDS - start)))
[ "$left" -gt 150 ] && left=150
if [ "$left" -gt 20 ]; then
    timeout "$left" python3 tests/gpu/check_transformers.py "$build/tests/gpu/gpu_forward" "$out/transformers" \
        > "$out/transformers.log" 2>&1
    echo "transformers exit $?"
    rm -rf "$out/transformers/models"
    tail -n 8 "$out/transformers.log"
fi
echo "--- $((SECONDS - start)) s"
grep -h "^bench" "$out"/bench_*.txt | head -60
