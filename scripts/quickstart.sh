#!/usr/bin/env bash
# The main job: set up, build, compile-check an example program and generate
# text with the tiny stories260K model (read from ../shared when present).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build

echo "== sglc check examples/fork_gather.sgl =="
./build/sglc check examples/fork_gather.sgl && echo "ok: no diagnostics"

model=${SGL_MODEL:-../shared/models/stories260K-hf}
if [ -d "$model" ]; then
    echo "== sglc generate --model $model =="
    ./build/sglc generate --model "$model" --prompt "Once upon a time" \
        --max-tokens 64 --temperature 0
else
    echo "(no model at $model: set SGL_MODEL to a Hugging Face Llama model directory)"
fi
