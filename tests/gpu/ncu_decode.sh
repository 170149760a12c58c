#!/usr/bin/env bash
# ncu_decode.sh -- per-kernel device time and DRAM bytes of batch-1 decode
# steps (Nsight Compute), for the kernel table in docs/performance.md.
#
#   bash tests/gpu/ncu_decode.sh BUILD OUT
#
# A 2-layer model with the Llama-3-8B layer and vocabulary shapes (the same
# kernels as the 32-layer model; dummy weights generated on the GPU) runs a
# 64-token prompt and 8 greedy steps at batch 1 without graphs (ncu
# serializes kernels anyway, so PDL overlap does not show: these are
# isolated times). ncu flushes caches between kernels (its default), so
# small kernels read high. Prints kernel, calls, us/call, GB/s (DRAM read +
# write over the kernel's duration).
set -u
build=${1:?usage: ncu_decode.sh BUILD OUT}
out=${2:?usage: ncu_decode.sh BUILD OUT}
mkdir -p "$out/l2-8b"
cat > "$out/l2-8b/config.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
 "intermediate_size": 14336, "num_hidden_layers": 2, "num_attention_heads": 32,
 "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256,
 "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
 "tie_word_embeddings": false, "torch_dtype": "bfloat16"}
JSON
ncu_bin=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -n 1)
[ -n "$ncu_bin" ] || { echo "ncu_decode.sh: no ncu"; exit 77; }
timeout 200 "$ncu_bin" --csv --print-units base --clock-control none \
    --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum --launch-count 120 \
    "$build/tests/gpu/gpu_forward" --dummy --no-graph --model "$out/l2-8b" --prompt-ids "$(seq -s, 1000 1063)" \
    --steps 8 --batch 1 --no-logits > "$out/ncu.csv" 2> "$out/ncu.log"
echo "ncu exit $?"
python3 - "$out/ncu.csv" <<'PY' | tee "$out/ncu_summary.txt"
import csv, sys, collections
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
if not rows:
    sys.exit("no ncu rows")
h = rows[0]
ki, mi, vi, ii = h.index("Kernel Name"), h.index("Metric Name"), h.index("Metric Value"), h.index("ID")
t, b, ids = collections.defaultdict(float), collections.defaultdict(float), collections.defaultdict(set)
for r in rows[1:]:
    name = r[ki].split("(")[0][:48]
    v = float(r[vi].replace(",", ""))
    if r[mi] == "gpu__time_duration.sum":
        t[name] += v
        ids[name].add(r[ii])
    else:
        b[name] += v
print("%-48s %5s %9s %7s" % ("kernel (first 120 launches: prefill 64 + decode)", "calls", "us/call", "GB/s"))
for k in sorted(t, key=lambda k: -t[k]):
    n = len(ids[k])
    print("%-48s %5d %9.2f %7.0f" % (k, n, t[k] / 1e3 / n, b[k] / (t[k] or 1)))
PY
