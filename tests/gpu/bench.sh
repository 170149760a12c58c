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
# Two more parts, only when named (BENCH_PARTS=offline,constrained: ~5-6 min):
#   offline      `sglc bench offline` (JSON in OUT_DIR/offline_*.json):
#                1000 x random 1024 in / 1024 out; 64 groups x 16 prompts of a
#                2048-token system prompt + 128-token question, 128 out, with
#                and without --disable-radix-cache
#   constrained  `sglc bench one-batch` with and without a JSON schema at
#                batch 1 (prompt 512, 128 new) and batch 64 (1024, 64 new), and
#                batch 256 at short context (128, 64 new; CUDA graphs up to 256)
#                (JSON in OUT_DIR/ob_*.json). With a SmolLM2 tokenizer at hand
#                (BUILD_DIR/shared or ../shared: smollm2-135m-tokenizer, 49k
#                tokens) the schema runs use it (OUT_DIR/llama3-8b-tok49k), so
#                the masks cover a real vocabulary, not stories260K's 512.
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

offline() { # NAME LIMIT_S ARGS...: one `sglc bench offline`, JSON in OUT_DIR/offline_NAME.json
    local name=$1 limit=$2
    shift 2
    echo "== sglc bench offline --device cuda --load-format dummy $*" | tee "$out/offline_$name.log"
    timeout "$limit" "$build/sglc" bench offline --device cuda --model "$model" --load-format dummy \
        --json "$out/offline_$name.json" "$@" >> "$out/offline_$name.log" 2>&1
    echo "exit $?" >> "$out/offline_$name.log"
    grep -E "duration|throughput|TTFT|TPOT|hit rate|Retractions|error|exit" "$out/offline_$name.log"
}
if [[ $parts == *offline* ]]; then
t1=$SECONDS
offline random 270 --dataset random --num-prompts 1000 --random-input-len 1024 --random-output-len 1024
offline shared 90 --dataset shared-prefix --num-groups 64 --prompts-per-group 16 \
    --system-prompt-len 2048 --question-len 128 --output-len 128
offline shared_nocache 150 --dataset shared-prefix --num-groups 64 --prompts-per-group 16 \
    --system-prompt-len 2048 --question-len 128 --output-len 128 --disable-radix-cache
echo "--- offline: $((SECONDS - t1)) s"
fi

obatch() { # NAME MODEL ARGS...: one `sglc bench one-batch`, JSON in OUT_DIR/ob_NAME.json
    local name=$1 dir=$2
    shift 2
    echo "== sglc bench one-batch --device cuda --load-format dummy --model $dir $*" | tee "$out/ob_$name.log"
    timeout 120 "$build/sglc" bench one-batch --device cuda --model "$dir" --load-format dummy \
        --json "$out/ob_$name.json" "$@" >> "$out/ob_$name.log" 2>&1
    echo "exit $?" >> "$out/ob_$name.log"
    grep -E "Prefill|Decode\.|Steps|Constrained|Total|error|exit" "$out/ob_$name.log"
}
if [[ $parts == *constrained* ]]; then
t1=$SECONDS
cmodel=$model
for d in "$build/shared/models/smollm2-135m-tokenizer" "$PWD/../shared/models/smollm2-135m-tokenizer"; do
    if [ -f "$d/tokenizer.json" ]; then
        cmodel=$out/llama3-8b-tok49k
        mkdir -p "$cmodel"
        cp "$model/config.json" "$d/tokenizer.json" "$cmodel/"
        break
    fi
done
echo "constrained runs: model $cmodel"
schema='{"type": "object", "properties": {"story": {"type": "string", "minLength": 400}}, "required": ["story"]}'
obatch b1 "$cmodel" --batch-size 1 --input-len 512 --output-len 128 --runs 2
obatch b1_schema "$cmodel" --batch-size 1 --input-len 512 --output-len 128 --runs 2 --json-schema "$schema"
obatch b64 "$cmodel" --batch-size 64 --input-len 1024 --output-len 64 --runs 2
obatch b64_schema "$cmodel" --batch-size 64 --input-len 1024 --output-len 64 --runs 2 --json-schema "$schema"
obatch b256 "$model" --batch-size 256 --input-len 128 --output-len 64 --runs 2 --cuda-graph-max-bs 256
echo "--- constrained: $((SECONDS - t1)) s"
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

# offline / constrained parts: a second table from their JSON files (if any)
python3 - "$out" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
def load(name):
    try:
        return json.load(open(os.path.join(out, name)))
    except (OSError, ValueError):
        return None
rows = [("random 1000 x 1024 in / 1024 out", "offline_random.json"),
        ("shared prefix 64 x 16 (2048 + 128, 128 out)", "offline_shared.json"),
        ("  same, --disable-radix-cache", "offline_shared_nocache.json")]
if any(load(f) for _, f in rows):
    print("\n%-44s %8s %10s %10s %9s %9s %8s %8s %7s" % ("offline workload", "s", "out tok/s", "tot tok/s",
          "TTFT p50", "TPOT p50", "hit", "optimum", "retract"))
    for name, f in rows:
        r = load(f)
        if r is None:
            print("%-44s n/a" % name)
            continue
        print("%-44s %8.1f %10.0f %10.0f %9.1f %9.2f %8.4f %8.4f %7d" % (name, r["duration_s"],
              r["output_throughput"], r["total_throughput"], r["ttft_ms"]["p50"], r["tpot_ms"]["p50"],
              r["cache_hit_rate"], r["optimal_cache_hit_rate"], r["engine"]["retractions"]))
def step_ms(name):
    r = load("ob_%s.json" % name)
    if not r or not r["runs"]:
        return None, None
    best = min(x["step_median_s"] for x in r["runs"] if x["full_batch_steps"] > 0) if any(
        x["full_batch_steps"] > 0 for x in r["runs"]) else None
    return (1e3 * best if best else None), r
if any(load("ob_%s.json" % n) for n in ("b1", "b1_schema", "b64", "b64_schema", "b256")):
    print("\n%-44s %12s %12s %9s" % ("one-batch decode step (full batch), ms", "plain", "JSON schema", "overhead"))
    for b in ("b1", "b64"):
        p, _ = step_ms(b)
        s, rs = step_ms(b + "_schema")
        f = lambda v: "%.3f" % v if v is not None else "n/a"
        ov = "%+.1f%%" % (100 * (s / p - 1)) if p and s else "n/a"
        print("%-44s %12s %12s %9s" % ("batch %s" % b[1:], f(p), f(s), ov))
    p, r = step_ms("b256")
    if p:
        print("%-44s %12.3f (%.0f tok/s)" % ("batch 256, prompt 128", p, 256 / p * 1e3))
PY
