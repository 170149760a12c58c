#!/usr/bin/env python3
"""bench_hf.py -- the transformers (eager, bf16) baseline for tests/gpu/bench.sh.

usage: bench_hf.py MODEL_DIR OUT_JSON

Builds the model of MODEL_DIR/config.json with random weights directly on the
GPU (bf16, eager attention; no checkpoint needed) and times, with CUDA syncs
around each region, the same workloads bench.sh gives `sglc bench one-batch`:
  decode_b1:    batch 1, prompt 512, 64 greedy steps -> median ms per step
  decode_b64:   batch 64, prompt 1024, 16 steps -> median ms per step
  prefill_8x2k: batch 8 x 2048 prompt tokens, one forward (last-position
                logits only) -> tok/s
  shared_prefix: 64 prompts = one 1024-token prefix + 32 unique tokens, 16
                new tokens each, one batch (transformers has no prefix cache)
                -> total seconds
Prints one line per workload and writes OUT_JSON.
"""
import json
import statistics
import sys
import time


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    import torch
    import transformers
    path, out = sys.argv[1], sys.argv[2]
    cfg = transformers.AutoConfig.from_pretrained(path)
    torch.manual_seed(0)
    t0 = time.time()
    with torch.device("cuda"):
        try:
            model = transformers.AutoModelForCausalLM.from_config(
                cfg, dtype=torch.bfloat16, attn_implementation="eager")
        except TypeError:
            model = transformers.AutoModelForCausalLM.from_config(
                cfg, torch_dtype=torch.bfloat16, attn_implementation="eager")
    model = model.to(torch.bfloat16).eval()
    init_s = time.time() - t0
    V = cfg.vocab_size
    g = torch.Generator(device="cuda").manual_seed(1)
    res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "transformers": transformers.__version__, "init_s": init_s}

    def sync():
        torch.cuda.synchronize()

    def fwd(ids, pkv=None, keep=1):
        try:
            return model(input_ids=ids, past_key_values=pkv, use_cache=True, logits_to_keep=keep)
        except TypeError:
            return model(input_ids=ids, past_key_values=pkv, use_cache=True)

    def decode(ids, steps):
        """prefill seconds, per-step seconds (greedy)"""
        sync()
        t = time.time()
        o = fwd(ids)
        sync()
        pre = time.time() - t
        pkv, nxt, per = o.past_key_values, o.logits[:, -1].argmax(-1, keepdim=True), []
        for _ in range(steps):
            sync()
            t = time.time()
            o = fwd(nxt, pkv)
            pkv, nxt = o.past_key_values, o.logits[:, -1].argmax(-1, keepdim=True)
            sync()
            per.append(time.time() - t)
        return pre, per

    with torch.no_grad():
        decode(torch.randint(3, V, (1, 16), device="cuda", generator=g), 2)  # warmup
        pre, per = decode(torch.randint(3, V, (1, 512), device="cuda", generator=g), 64)
        res["decode_b1_ms"] = 1e3 * statistics.median(per)
        print("transformers decode batch 1 (prompt 512): %.2f ms/token" % res["decode_b1_ms"])
        pre, per = decode(torch.randint(3, V, (64, 1024), device="cuda", generator=g), 16)
        res["decode_b64_ms"] = 1e3 * statistics.median(per)
        res["prefill_64x1024_s"] = pre
        print("transformers decode batch 64 x 1024: %.2f ms/step (prefill %.2f s)"
              % (res["decode_b64_ms"], pre))
        torch.cuda.empty_cache()
        ids = torch.randint(3, V, (8, 2048), device="cuda", generator=g)
        sync()
        t = time.time()
        fwd(ids)
        sync()
        res["prefill_8x2048_tok_s"] = 8 * 2048 / (time.time() - t)
        print("transformers prefill 8 x 2048: %.0f tok/s" % res["prefill_8x2048_tok_s"])
        torch.cuda.empty_cache()
        prefix = torch.randint(3, V, (1, 1024), device="cuda", generator=g).expand(64, 1024)
        ids = torch.cat([prefix, torch.randint(3, V, (64, 32), device="cuda", generator=g)], 1)
        sync()
        t = time.time()
        pre, per = decode(ids, 15)  # prefill gives new token 1, 15 steps the rest
        res["shared_prefix_s"] = time.time() - t
        print("transformers 64 x (1024 shared + 32) prompt, 16 new: %.2f s" % res["shared_prefix_s"])
    json.dump(res, open(out, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
