#!/usr/bin/env bash
# check_overlap.sh -- overlap scheduling on the CUDA runner, end to end.
#
#   bash tests/gpu/check_overlap.sh BUILD_DIR
#
# On the GPU machine (needs ../shared or BUILD_DIR/shared with
# models/stories260K-hf). Overlap (forward_sample_begin/end: step N+1 is
# enqueued before step N's ids are back, its decode tokens read on the
# device) is the default on cuda; --disable-overlap-schedule keeps every step
# synchronous. Checks:
#   1. greedy, stop string, stop id, n-free sampled-with-seed generations:
#      the same ids and text with and without overlap (the device draw is a
#      function of (seed, step) either way);
#   2. a 16-request batch through `bench one-batch --profile`: overlapped
#      steps > 0 with overlap, 0 without, every request complete;
#   3. --trace writes valid Chrome trace JSON with launch/wait phases and
#      batch spans.
# Prints one PASS/FAIL line per check; exit 1 on any failure, 77 without a GPU/model.
set -u
build=${1:?usage: check_overlap.sh BUILD_DIR}
case "$build" in /*) ;; *) build=$PWD/$build ;; esac
[ -d "$build/lib" ] && export LD_LIBRARY_PATH="$build/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
model=""
for d in "$build/shared/models/stories260K-hf" "$PWD/../shared/models/stories260K-hf"; do
    [ -f "$d/config.json" ] && model=$d && break
done
[ -n "$model" ] || { echo "check_overlap: skipped: no stories260K-hf model"; exit 77; }
nvidia-smi -L > /dev/null 2>&1 || { echo "check_overlap: skipped: no GPU"; exit 77; }
fails=0
gen() { "$build/sglc" generate --device cuda --model "$model" --json --max-tokens 200 "$@"; }
check() { # NAME A B: outputs must be equal and not empty
    if [ "$2" == "$3" ] && [ -n "$2" ]; then echo "PASS $1"; else echo "FAIL $1"; echo "  a: ${2:0:300}"; echo "  b: ${3:0:300}"; fails=$((fails + 1)); fi
}
ids() { python3 -c 'import json,sys; d=json.load(sys.stdin); m=d.get("meta_info",d); print(d.get("output_ids", m.get("output_ids")), d.get("text"), m.get("finish_reason"))'; }
for args in "--prompt Once --temperature 0" \
            "--prompt Lily --temperature 0 --stop park" \
            "--prompt Tom --temperature 0 --stop-token-id 13" \
            "--prompt Once --temperature 0.8 --top-k 40 --top-p 0.9 --seed 7"; do
    a=$(gen $args | ids)
    b=$(gen $args --disable-overlap-schedule | ids)
    check "overlap == synchronous: $args" "$a" "$b"
done
bench() { "$build/sglc" bench one-batch --device cuda --model "$model" --batch-size 16 --input-len 32 --output-len 64 --profile "$@" 2>&1; }
ov=$(bench | sed -n 's/.*(overlapped: \([0-9]*\)).*/\1/p')
sy=$(bench --disable-overlap-schedule | sed -n 's/.*(overlapped: \([0-9]*\)).*/\1/p')
if [ -n "$ov" ] && [ "$ov" -gt 0 ] && [ "$sy" = "0" ]; then echo "PASS bench: $ov steps overlapped, 0 without"
else echo "FAIL bench: overlapped '$ov' with overlap, '$sy' without"; fails=$((fails + 1)); fi
trace=$(mktemp /tmp/sgl_overlap_trace.XXXXXX)
"$build/sglc" bench one-batch --device cuda --model "$model" --batch-size 4 --input-len 32 --output-len 16 --trace "$trace" > /dev/null 2>&1
if python3 - "$trace" <<'PY'
import json, sys
ev = json.load(open(sys.argv[1]))["traceEvents"]
names = {e["name"] for e in ev if e.get("ph") == "X"}
need = {"schedule", "build", "launch", "wait", "postprocess", "emit", "batch"}
sys.exit(0 if need <= names else 1)
PY
then echo "PASS trace: valid JSON with every phase and batch spans"
else echo "FAIL trace: $trace"; fails=$((fails + 1)); fi
rm -f "$trace"
[ $fails -eq 0 ] && echo "check_overlap: all passed" || echo "check_overlap: $fails failed"
[ $fails -eq 0 ]
