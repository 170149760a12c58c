#!/usr/bin/env bash
# tp.sh -- tensor parallelism over NCCL on a 2-GPU machine, in one command.
#
#   bash tests/gpu/tp.sh BUILD_DIR OUT_DIR
#
# Run from the repository root on the GPU machine, BUILD_DIR configured
# -Dcuda=enabled and built elsewhere (no meson needed here). Steps, each
# under a time limit inside a budget of SGL_GPU_BUDGET_S seconds (default 405):
#   1. the machine: GPUs, NVLink topology (nvidia-smi topo -m)
#   2. kernel test test_k_embedding_range (the vocab-parallel embedding) and
#      test_comm_nccl (a one-rank NCCL group on a stream)
#   3. check_tp.py: random-weight Llama (GQA) and Qwen2 (biases) checkpoints
#      from transformers, tp=2 (two threads; two processes joined by
#      --nnodes/--node-rank/--dist-init-addr) equals tp=1; dummy weights too;
#      the same through `sglc generate --tp` (stories260K tokenizer from
#      BUILD_DIR/shared or ../shared)
#   4. Llama-3-70B-shaped dummy model (hidden 8192, intermediate 28672, 80
#      layers, 64 heads, 8 KV heads, vocab 128256) at tp=2: batch-1 decode and
#      batch-64 step (1k context) against the roofline: the bytes each step
#      must read (weights but the embedding, plus the KV of the batch) over
#      2 x the copy bandwidth measured in the same run
#   5. Llama-3-8B-shaped dummy model: decode steps at batch 1 and 64 (1k
#      context) and a prefill of 8 x 1024 tokens at tp=1 and tp=2
#      (tp_forward --bench), HBM copy bandwidth
#   6. when sglc has --tp: the same 8B model through the engine
#      (`sglc bench one-batch --device cuda --load-format dummy --tp 1|2`)
#   7. only when TP_PARTS names engine70: the 70B model through the engine at
#      --tp 2 (batch 1: 512 in, 32 out; batch 64: 1024 in, 8 out)
# TP_PARTS (default check,bench,engine) picks steps 2-3, 4-5, 6 and 7.
# OUT_DIR gets summary.txt (PASS/FAIL/SKIP per step and the figures),
# tp_results.json, and tp.tgz with every log and JSON. Exit 0 when no step
# failed (timings never fail the run).
set -u
build=${1:?usage: tp.sh BUILD_DIR OUT_DIR}
out=${2:?usage: tp.sh BUILD_DIR OUT_DIR}
case "$build" in /*) ;; *) build=$PWD/$build ;; esac
mkdir -p "$out/logs"
[ -d "$build/lib" ] && export LD_LIBRARY_PATH="$build/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1
summary=$out/summary.txt
: > "$summary"
failed=0
BUDGET=${SGL_GPU_BUDGET_S:-405}
start=$SECONDS
limit() { local left=$((BUDGET - (SECONDS - start))); [ "$left" -lt 1 ] && left=1; [ "$1" -lt "$left" ] && echo "$1" || echo "$left"; }
record() { # NAME RC [timing]: one summary line (77 = skipped); timings never fail the run
    local what
    case "$2" in
        0) what=PASS ;;
        77) what=SKIP ;;
        124) what="FAIL (timeout)" ;;
        *) what="FAIL (exit $2)" ;;
    esac
    [ "$2" != 0 ] && [ "$2" != 77 ] && [ "${3:-}" != timing ] && failed=1
    printf '%-34s %s\n' "$1" "$what" | tee -a "$summary"
}

{
    date -u
    nvidia-smi --query-gpu=index,name,driver_version,memory.total,pci.bus_id --format=csv,noheader 2>&1
    nvidia-smi topo -m 2>&1
    git rev-parse HEAD 2>/dev/null
} > "$out/logs/machine.txt"
cat "$out/logs/machine.txt"

parts=${TP_PARTS:-check,bench,engine}
if [[ $parts == *check* ]]; then
t=$build/tests/kernels/test_k_embedding_range
timeout "$(limit 60)" "$t" > "$out/logs/test_k_embedding_range.log" 2>&1
rc=$?
tail -n 2 "$out/logs/test_k_embedding_range.log"
record test_k_embedding_range "$rc"
if [ -x "$build/tests/test_comm_nccl" ]; then # CMocka (libcmocka may ride in BUILD_DIR/lib)
    timeout "$(limit 60)" "$build/tests/test_comm_nccl" > "$out/logs/test_comm_nccl.log" 2>&1
    rc=$?
    tail -n 2 "$out/logs/test_comm_nccl.log"
    record test_comm_nccl "$rc"
fi

# a tokenizer for the engine runs (they feed token ids): stories260K's
tok=""
for d in "$build/shared/models/stories260K-hf" "$PWD/../shared/models/stories260K-hf"; do
    [ -f "$d/tokenizer.json" ] && tok=$d && break
done
timeout "$(limit 170)" python3 tests/gpu/check_tp.py "$build/tests/gpu/tp_forward" "$out/check" \
    ${tok:+--sglc "$build/sglc" --tokenizer "$tok"} > "$out/logs/check_tp.log" 2>&1
rc=$?
cat "$out/logs/check_tp.log"
record "check_tp (tp2 == tp1)" "$rc"
rm -rf "$out/check/models"
fi

cfg8=$out/llama3-8b
cfg70=$out/llama3-70b
mkdir -p "$cfg8" "$cfg70"
cat > "$cfg8/config.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
 "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
 "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256,
 "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
 "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
 "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16"}
JSON
sed 's/"hidden_size": 4096/"hidden_size": 8192/; s/"intermediate_size": 14336/"intermediate_size": 28672/;
     s/"num_hidden_layers": 32/"num_hidden_layers": 80/; s/"num_attention_heads": 32/"num_attention_heads": 64/' \
    "$cfg8/config.json" > "$cfg70/config.json"

bench() { # NAME TP MODEL: tp_forward --bench, JSON in OUT_DIR/bench_NAME.json
    timeout "$(limit "$4")" "$build/tests/gpu/tp_forward" --bench --membw --dummy --model "$3" --tp "$2" \
        --batches 1,64 --ctx 1024 --bench-steps 20 --prefill 8x1024 > "$out/bench_$1.json" 2> "$out/logs/bench_$1.log"
    local rc=$?
    echo "$1: $(cat "$out/bench_$1.json")"
    tail -n 3 "$out/logs/bench_$1.log"
    record "bench $1" "$rc" timing
}
if [[ $parts == *bench* ]]; then
bench 70b_tp2 2 "$cfg70" 100
bench 8b_tp1 1 "$cfg8" 60
bench 8b_tp2 2 "$cfg8" 60
fi

# the engine end to end, when the CLI has --tp (the stories260K tokenizer
# stands in: the benchmark feeds token ids)
engine() { # NAME MODEL TP BATCH IN OUT LIMIT: sglc bench one-batch, JSON in OUT_DIR/NAME.json
    echo "== sglc bench one-batch --tp $3 --batch-size $4 --input-len $5 --output-len $6" > "$out/logs/$1.log"
    timeout "$(limit "$7")" "$build/sglc" bench one-batch --device cuda --model "$2" \
        --load-format dummy --tp "$3" --batch-size "$4" --input-len "$5" --output-len "$6" \
        --json "$out/$1.json" >> "$out/logs/$1.log" 2>&1
    local rc=$?
    grep -E "Prefill|Decode\.|Total|error" "$out/logs/$1.log"
    record "$1" "$rc" timing
}
if [ -n "$tok" ] && "$build/sglc" bench one-batch --help 2>&1 | grep -q -- '--tp'; then
    cp "$tok"/tokenizer.json "$tok"/tokenizer_config.json "$cfg8/"
    cp "$tok"/tokenizer.json "$tok"/tokenizer_config.json "$cfg70/"
    if [[ $parts == *engine* ]] && [[ $parts != *engine70* || $parts == *engine,* || $parts == *,engine ]]; then
        for tp in 1 2; do
            engine engine_8b_tp${tp}_b1 "$cfg8" "$tp" 1 512 64 45
            engine engine_8b_tp${tp}_b64 "$cfg8" "$tp" 64 1024 16 45
        done
    fi
    if [[ $parts == *engine70* ]]; then
        engine engine_70b_tp2_b1 "$cfg70" 2 1 512 32 90
        engine engine_70b_tp2_b64 "$cfg70" 2 64 1024 8 120
    fi
else
    record "engine --tp (sglc has no --tp yet)" 77
fi

python3 - "$out" <<'PY' | tee -a "$summary"
import glob, json, os, sys
out = sys.argv[1]
res = {}
for f in sorted(glob.glob(os.path.join(out, "bench_*.json")) + glob.glob(os.path.join(out, "engine_*.json"))):
    try:
        res[os.path.basename(f)[:-5]] = json.load(open(f))
    except Exception as e:
        res[os.path.basename(f)[:-5]] = {"error": str(e)}
try:
    res["check_tp"] = json.load(open(os.path.join(out, "check", "check_tp.json")))
except Exception as e:
    res["check_tp"] = {"error": str(e)}

def step_bytes(c, tp, batch, ctx):
    """Bytes one decode step reads on each rank: weights but the embedding
    (only the batch's rows of it are gathered), plus the batch's KV."""
    H, I, L, V = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    hd, nh, nkv = c["head_dim"], c["num_attention_heads"], c["num_key_value_heads"]
    layer = (nh * hd + 2 * nkv * hd) * H + H * nh * hd + 3 * I * H + 2 * H
    w = 2 * (L * layer + V * H + H)          # lm_head + final norm; bf16
    kv = batch * ctx * 2 * L * nkv * hd * 2  # K and V, bf16
    return (w + kv) / tp

cfgs = {"8b": json.load(open(os.path.join(out, "llama3-8b", "config.json"))),
        "70b": json.load(open(os.path.join(out, "llama3-70b", "config.json")))}
rows = []
for name, r in res.items():
    if not name.startswith("bench_") or "bench" not in r:
        continue
    size = name.split("_")[1]
    bw = min(r.get("membw_gbs") or [0]) * 1e9
    for b in r["bench"]:
        by = step_bytes(cfgs[size], r["tp"], b["batch"], b["ctx"])
        roof = by / bw * 1e3 if bw > 0 else float("nan")
        rows.append({"run": name[6:], "tp": r["tp"], "batch": b["batch"], "ctx": b["ctx"],
                     "step_ms": b["step_ms"], "roofline_ms": roof, "bytes_per_rank": by,
                     "membw_gbs_per_gpu": bw / 1e9, "of_roofline": roof / b["step_ms"],
                     "init_ms": r.get("init_ms"), "comm_ms": r.get("comm_ms")})
res["roofline"] = rows
json.dump(res, open(os.path.join(out, "tp_results.json"), "w"), indent=1)
print("decode steps (tp_forward --bench: runner + device greedy, CUDA graphs; KV of ctx tokens per sequence)")
print("%-10s %3s %5s %5s %9s %12s %8s %10s" % ("run", "tp", "batch", "ctx", "step ms", "roofline ms", "% roof", "GB/s/GPU"))
for x in rows:
    print("%-10s %3d %5d %5d %9.3f %12.3f %7.1f%% %10.0f" % (x["run"], x["tp"], x["batch"], x["ctx"], x["step_ms"],
          x["roofline_ms"], 100 * x["of_roofline"], x["membw_gbs_per_gpu"]))
for name, r in res.items():
    if name.startswith("bench_") and "prefill" in r:
        pf = r["prefill"]
        print("%s prefill %dx%d: %.1f ms, %.0f tok/s" % (name[6:], pf["seqs"], pf["len"], pf["ms"],
                                                        pf["tokens"] / pf["ms"] * 1e3))
by = {(x["run"], x["batch"]): x["step_ms"] for x in rows}
for b in (1, 64):
    if ("8b_tp1", b) in by and ("8b_tp2", b) in by:
        print("8B batch %d: tp2 speedup over tp1 %.2fx" % (b, by[("8b_tp1", b)] / by[("8b_tp2", b)]))
PY

echo "--- $((SECONDS - start)) s" | tee -a "$summary"
tar -czf "$out/tp.tgz" -C "$out" logs check $(cd "$out" && ls *.json 2>/dev/null) 2>/dev/null
exit $failed
