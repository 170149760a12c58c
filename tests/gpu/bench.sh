#!/usr/bin/env bash
# bench.sh -- the standard GPU benchmark set, ours and transformers' in one run.
#
#   bash tests/gpu/bench.sh BUILD_DIR OUT_DIR
#
# Run on the GPU machine from the repository root (BUILD_DIR built with
# -Dcuda=enabled). Writes a Llama-3-8B-shaped config.json (bf16, llama3 rope
# scaling; random weights, --load-format dummy) plus a small tokenizer (from
# BUILD_DIR/shared or ../shared: the engine needs one; the benchmarks feed
# token ids) into OUT_DIR/llama3-8b, then runs through the full engine
# (`sglc bench one-batch --device cuda`):
#   1. batch 1: prompt 512, 128 new tokens (decode ms/token)
#   2. batch 64 at 1k context: prompt 1024, 16 new (decode step)
#   3. prefill 8 x 2048 (prefill tok/s)
#   4. 64 requests = 1024-token shared prefix + 32 unique, 16 new each
#      (total latency): cold (cache flushed after the warmup: the first
#      request computes the prefix) and warm (--keep-cache: prefix cached)
#   5. batch 64 again with SGL_HOST_SAMPLING=1 (logits to the host, CPU
#      sampler) to show what device sampling saves
# BENCH_PARTS=sglc or BENCH_PARTS=hf runs one half (a machine session's
# 10-minute command limit); the summary reads whatever logs OUT_DIR holds.
# then the same workloads through transformers eager bf16 (bench_hf.py), and
# prints the roofline figures. Logs: OUT_DIR/bench_*.log; summary last.
set -u
build=${1:?usage: bench.sh BUILD_DIR OUT_DIR}
out=${2:?usage: bench.sh BUILD_DIR OUT_DIR}
case "$build" in /*) ;; *) build=$PWD/$build ;; esac
# shared libraries the GPU machine lacks (libmicrohttpd) may ride in BUILD_DIR/lib
[ -d "$build/lib" ] && export LD_LIBRARY_PATH="$build/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
mkdir -p "$out/llama3-8b"
model=$out/llama3-8b
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
tok=""
for d in "$build/shared/models/stories260K-hf" "$PWD/../shared/models/stories260K-hf"; do
    [ -f "$d/tokenizer.json" ] && tok=$d && break
done
[ -n "$tok" ] || { echo "bench.sh: no tokenizer found (stories260K-hf)"; exit 1; }
cp "$tok"/tokenizer.json "$tok"/tokenizer_config.json "$model/"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader \
    > "$out/gpu.txt" 2>&1
cat "$out/gpu.txt"

sglc() { # NAME ARGS...: one engine benchmark, log in OUT_DIR/bench_NAME.log
    local name=$1
    shift
    echo "== sglc bench one-batch --device cuda --load-format dummy $*" | tee "$out/bench_$name.log"
    timeout 240 "$build/sglc" bench one-batch --device cuda --model "$model" --load-format dummy \
        "$@" >> "$out/bench_$name.log" 2>&1
    echo "exit $?" >> "$out/bench_$name.log"
    grep -E "Prefill|Decode\.|Total|Engine|error|exit" "$out/bench_$name.log"
}
parts=${BENCH_PARTS:-sglc,hf}
t0=$SECONDS
if [[ $parts == *sglc* ]]; then
sglc b1 --batch-size 1 --input-len 512 --output-len 128
sglc b64 --batch-size 64 --input-len 1024 --output-len 16
sglc prefill --batch-size 8 --input-len 2048 --output-len 2
sglc shared --batch-size 64 --input-len 1056 --shared-prefix-len 1024 --output-len 16
sglc shared_warm --batch-size 64 --input-len 1056 --shared-prefix-len 1024 --output-len 16 --keep-cache
export SGL_HOST_SAMPLING=1
sglc b64_host --batch-size 64 --input-len 1024 --output-len 16
unset SGL_HOST_SAMPLING
echo "--- sglc: $((SECONDS - t0)) s"
fi
[[ $parts == *hf* ]] &&
    timeout 300 python3 tests/gpu/bench_hf.py "$model" "$out/bench_hf.json" 2>&1 | tee "$out/bench_hf.log"

python3 - "$out" <<'PY'
import json, os, re, sys
out = sys.argv[1]
def grab(name, pat):
    try:
        m = re.search(pat, open(os.path.join(out, "bench_%s.log" % name)).read())
        return float(m.group(1)) if m else None
    except OSError:
        return None
hf = {}
try:
    hf = json.load(open(os.path.join(out, "bench_hf.json")))
except (OSError, ValueError):
    pass
# roofline (H100: 3.0 TB/s measured copy, ~790 TFLOP/s bf16 GEMM); 8.03e9 params
W, BW, FL = 16.06e9, 3.0e12, 790e12
kv_tok = 2 * 32 * 8 * 128 * 2  # bytes of K+V per token, all layers
pf_flops = 2 * 8.03e9 * 16384 + 8 * 32 * 4 * 32 * 128 * 2048 * 2049 / 2
rows = [
    ("batch-1 decode, ms/token", grab("b1", r"Decode\.\s+median latency:\s+([\d.]+)"), 1e3,
     hf.get("decode_b1_ms"), 1e3 * W / BW, "6.16-7.37"),
    ("batch-64 decode at 1k ctx, ms/step", grab("b64", r"Decode\.\s+median latency:\s+([\d.]+)"), 1e3,
     hf.get("decode_b64_ms"), 1e3 * (W + 64 * 1040 * kv_tok) / BW, "-"),
    ("prefill 8 x 2048, tok/s", grab("prefill", r"Prefill\. latency:.*throughput:\s+([\d.]+)"), 1,
     hf.get("prefill_8x2048_tok_s"), 16384 / (pf_flops / FL), "~27.7k (8k prompts)"),
    ("64 x (1024 shared + 32), 16 new: total s", grab("shared", r"Total\. latency:\s+([\d.]+)"), 1,
     hf.get("shared_prefix_s"), None, "-"),
    ("  same, warm (prefix cached)", grab("shared_warm", r"Total\. latency:\s+([\d.]+)"), 1,
     hf.get("shared_prefix_s"), None, "-"),
    ("batch-64 step, host sampling, ms", grab("b64_host", r"Decode\.\s+median latency:\s+([\d.]+)"), 1e3,
     hf.get("decode_b64_ms"), None, "-"),
]
print("\n%-44s %12s %14s %12s %s" % ("workload (Llama-3-8B shape, bf16)", "sglc", "transformers",
                                     "roofline", "SGLang (published)"))
for name, ours, k, theirs, roof, pub in rows:
    f = lambda v, s=1: "%.2f" % (v * s) if v is not None else "n/a"
    print("%-44s %12s %14s %12s %s" % (name, f(ours, k), f(theirs), f(roof), pub))
PY
