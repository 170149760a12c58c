#!/usr/bin/env bash
# ncu_prefill.sh -- where a prefill forward's device time goes (Nsight
# Compute): attention vs matrix products vs the rest, for the prefill row of
# docs/performance.md.
#
#   bash tests/gpu/ncu_prefill.sh BUILD OUT [PROMPT_LEN]
#
# A 2-layer model with the Llama-3-8B layer and vocabulary shapes (dummy
# weights generated on the GPU) prefills one PROMPT_LEN-token prompt (default
# 2048) without graphs; only the kernels of that first forward are profiled
# (the fill kernels that make the weights come first and are skipped by
# name). Prints kernel, calls, us/call and its share of the forward; ncu
# serializes kernels and flushes caches between them, so these are isolated
# times.
set -u
build=${1:?usage: ncu_prefill.sh BUILD OUT [PROMPT_LEN]}
out=${2:?usage: ncu_prefill.sh BUILD OUT [PROMPT_LEN]}
plen=${3:-2048}
mkdir -p "$out/l2-8b"
cat > "$out/l2-8b/config.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
 "intermediate_size": 14336, "num_hidden_layers": 2, "num_attention_heads": 32,
 "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256,
 "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
 "tie_word_embeddings": false, "torch_dtype": "bfloat16"}
JSON
ncu_bin=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -n 1)
[ -n "$ncu_bin" ] || { echo "ncu_prefill.sh: no ncu"; exit 77; }
# one forward of 2 layers is ~25 kernels after the weight fills: profile the first 80 launches
timeout 200 "$ncu_bin" --csv --print-units base --clock-control none \
    --metrics gpu__time_duration.sum --launch-count 80 \
    "$build/tests/gpu/gpu_forward" --dummy --no-graph --model "$out/l2-8b" \
    --prompt-ids "$(seq -s, 1000 $((999 + plen)))" --steps 0 --batch 1 --no-logits \
    > "$out/ncu_prefill.csv" 2> "$out/ncu_prefill.log"
echo "ncu exit $?"
python3 - "$out/ncu_prefill.csv" <<'PY' | tee "$out/ncu_prefill_summary.txt"
import csv, sys, collections
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
if not rows:
    sys.exit("no ncu rows")
h = rows[0]
ki, mi, vi, ii = h.index("Kernel Name"), h.index("Metric Name"), h.index("Metric Value"), h.index("ID")
seq = []  # (id, name, ns) in launch order, fills skipped
for r in rows[1:]:
    if r[mi] != "gpu__time_duration.sum" or r[ki].startswith("fill_"):  # the weight fills, not attn_prefill
        continue
    seq.append((int(r[ii]), r[ki].split("(")[0][:48], float(r[vi].replace(",", ""))))
seq.sort()
# the first forward: from the first embedding kernel up to (not including) the second one
start = next(i for i, s in enumerate(seq) if "embed" in s[1])
end = next((i for i in range(start + 1, len(seq)) if "embed" in seq[i][1]), len(seq))
fw = seq[start:end]
t, n = collections.defaultdict(float), collections.Counter()
for _, name, ns in fw:
    t[name] += ns
    n[name] += 1
tot = sum(t.values())
print("%-48s %5s %10s %6s" % ("kernel (one prefill forward, 2 layers)", "calls", "us/call", "share"))
for k in sorted(t, key=lambda k: -t[k]):
    print("%-48s %5d %10.1f %5.1f%%" % (k, n[k], t[k] / 1e3 / n[k], 100 * t[k] / tot))
print("total %.1f us over %d kernels" % (tot / 1e3, len(fw)))
PY
