#!/usr/bin/env bash
# check_sampling.sh -- device sampling (runner forward_sample) end to end.
#
#   bash tests/gpu/check_sampling.sh BUILD_DIR
#
# On the GPU machine (needs ../shared or BUILD_DIR/shared with
# models/stories260K-hf). `sglc generate --device cuda` is run with the
# tokens drawn on the device (default) and on the host (SGL_HOST_SAMPLING=1):
#   1. greedy: the same text and token ids (both take the argmax of the
#      same logits), plain and with a --regex constraint (the mask is
#      applied on the device);
#   2. temperature 0.8 / top-k 40 / top-p 0.9 / min-p 0.02 with a seed:
#      two device runs give the same output (the draw is a function of
#      (seed, step)), and seeds 7 and 8 differ; the host run uses another
#      RNG, so it is not compared.
# Prints one PASS/FAIL line per check; exit 1 on any failure, 77 without a GPU/model.
set -u
build=${1:?usage: check_sampling.sh BUILD_DIR}
case "$build" in /*) ;; *) build=$PWD/$build ;; esac
[ -d "$build/lib" ] && export LD_LIBRARY_PATH="$build/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
model=""
for d in "$build/shared/models/stories260K-hf" "$PWD/../shared/models/stories260K-hf"; do
    [ -f "$d/config.json" ] && model=$d && break
done
[ -n "$model" ] || { echo "check_sampling: skipped: no stories260K-hf model"; exit 77; }
nvidia-smi -L > /dev/null 2>&1 || { echo "check_sampling: skipped: no GPU"; exit 77; }
fails=0
gen() { "$build/sglc" generate --device cuda --model "$model" --json --max-tokens 64 "$@"; }
check() { # NAME CMD-A CMD-B: outputs must be equal
    if [ "$2" == "$3" ] && [ -n "$2" ]; then echo "PASS $1"; else echo "FAIL $1"; echo "  a: ${2:0:300}"; echo "  b: ${3:0:300}"; fails=$((fails + 1)); fi
}
ids() { python3 -c 'import json,sys; d=json.load(sys.stdin); m=d.get("meta_info",d); print(d.get("output_ids", m.get("output_ids")), d.get("text"))'; }
a=$(gen --prompt "Once upon a time" --temperature 0 | ids)
b=$(SGL_HOST_SAMPLING=1 gen --prompt "Once upon a time" --temperature 0 | ids)
check "greedy: device ids == host ids" "$a" "$b"
a=$(gen --prompt "The cat" --temperature 0 --regex '[a-z ]+\.' | ids)
b=$(SGL_HOST_SAMPLING=1 gen --prompt "The cat" --temperature 0 --regex '[a-z ]+\.' | ids)
check "greedy + regex mask: device ids == host ids" "$a" "$b"
a=$(gen --prompt "Once" --temperature 0.8 --top-k 40 --top-p 0.9 --min-p 0.02 --seed 7 | ids)
b=$(gen --prompt "Once" --temperature 0.8 --top-k 40 --top-p 0.9 --min-p 0.02 --seed 7 | ids)
check "sampled, seed 7: two device runs equal" "$a" "$b"
c=$(gen --prompt "Once" --temperature 0.8 --seed 8 | ids)
[ "$a" != "$c" ] && echo "PASS seeds 7 and 8 differ" || { echo "FAIL seeds 7 and 8 give the same output"; fails=$((fails + 1)); }
[ $fails -eq 0 ] && echo "check_sampling: all passed" || echo "check_sampling: $fails failed"
[ $fails -eq 0 ]
