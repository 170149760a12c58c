#!/usr/bin/env bash
# The main job: set up, build, compile-check an example program and generate
# text with the tiny stories260K model (read from ../shared when present).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build

echo "== sglc check examples/parallel_judge.sgl =="
./build/sglc check examples/parallel_judge.sgl && echo "ok: no diagnostics"

model=${SGL_MODEL:-../shared/models/stories260K-hf}
echo "== sglc run examples/few_shot_qa.sgl =="
if [ -d "$model" ]; then
    ./build/sglc run examples/few_shot_qa.sgl --model "$model" \
        --arg question="What did Lily find in the park?" --temperature 0
else
    # no model anywhere: sglc runs its built-in random-weight demo model
    env -u SGL_MODEL ./build/sglc run examples/few_shot_qa.sgl --arg question="What is 2+2?"
fi
if [ -d "$model" ]; then
    echo "== sglc generate --model $model =="
    ./build/sglc generate --model "$model" --prompt "Once upon a time" \
        --max-tokens 64 --temperature 0
else
    echo "(no model at $model: set SGL_MODEL to a Hugging Face Llama model directory)"
fi
