#!/usr/bin/env python3
"""check_tp.py -- tensor parallelism (tp=2 over NCCL) equals tp=1, on 2 GPUs.

usage: check_tp.py TP_FORWARD OUT_DIR [--steps N] [--port P] [--sglc SGLC --tokenizer DIR]

Builds small random-weight models with transformers (fixed seeds) and saves
each with save_pretrained(safe_serialization=True) under OUT_DIR/models/:
  llama_gqa_tp    Llama, GQA (8 heads, 2 KV heads), untied, bf16, an odd
                  vocabulary (3001: the two vocab blocks differ in size)
  qwen2_bias_tp   Qwen2, qkv biases, tied embeddings, fp32 checkpoint (the
                  runner converts and slices on the host)
and runs TP_FORWARD (tests/gpu/tp_forward.c) on each at
  tp1     the plain CUDA runner on GPU 0;
  tp2     two ranks as two threads of one process (GPUs 0 and 1);
  2proc   two processes, one GPU each (CUDA_VISIBLE_DEVICES=0 / =1), joined
          by --nnodes 2 --node-rank 0/1 --dist-init-addr 127.0.0.1:PORT;
plus llama_gqa_tp's config with --dummy (weights generated on the device:
each rank must get exactly its slice of the tp=1 weights) at tp1 and tp2.
Checks, per model and tp=2 run, against tp1:
  - last prompt position logits: max abs diff <= TP_REL * max |logit| and
    cosine >= COS_MIN (the shards sum in another order, nothing else);
  - greedy ids for N steps equal, or equal up to a near-tie (tp1's gap
    between its token and the other's below max(TIE_FLOOR, 2 x max abs));
  - batched device-greedy ids (B sequences) equal, or parted at a near-tie of
    that row (tp1's margin, from a host forward of the same step); the device
    greedy ids equal the host argmax of those logits;
  - every rank of a run saw the same ids (ranks_agree), and node 1 of the
    two-process run equals node 0;
  - for the checkpoints, tp1 and tp2 both within the bf16 tolerance of
    transformers in fp32 (check_transformers.py's bound: max(2% of max
    |logit|, 1.5 x transformers' own bf16 error on the same prompt)).
With --sglc (and a tokenizer.json directory, copied into each checkpoint:
the runs feed token ids), the same through the engine: `sglc generate
--device cuda --temperature 0 --json --top-logprobs 1` at --tp 1, --tp 2 and
as two processes (--nnodes 2 --node-rank 0/1 --dist-init-addr); tp=2 output
ids equal tp=1's (up to tp_forward's near-tie step, if any) and each token's
log-prob within max(0.01, 2 x the logits' max abs diff measured above).
Writes OUT_DIR/check_tp.json; prints one line per run; exit 0 when all pass,
1 otherwise, 77 when torch/transformers are missing or fewer than 2 GPUs.
"""
import inspect
import json
import os
import shutil
import subprocess
import sys
import traceback

# tp=2 vs tp=1 logits. Both keep weights and GEMM inputs in bf16 with fp32
# accumulation; tp=2 sums the row-parallel products (o_proj, down) of two
# half-size GEMMs in fp32 through the all-reduce instead of one GEMM, so the
# fp32 residual differs in its last bits, and an activation rounded to bf16
# afterwards may move by one bf16 step (2^-8 relative). Over a few layers that
# stays far below the 2% bound the runner itself has against fp32 (see
# check_transformers.py); 0.5% of max |logit| leaves room for it while a
# wrong shard (a missing head, a swapped block, a bias on the wrong rank)
# moves logits by O(max |logit|).
TP_REL = 0.005
COS_MIN = 0.9999
# Against transformers fp32 (a guard against tp1 and tp2 being wrong the same
# way; check_transformers.py is the runner's accuracy test): within
# max(HF_REL * max |logit|, HF_BF16_X * transformers-bf16's own error) and
# cosine >= HF_COS_MIN. The runner rounds to bf16 at more points than
# transformers in bf16 (normed inputs, attention output, activations): on
# the H200 (2026-11-22) qwen2_bias_tp's tp1 error was 0.1073 = 2.24% of
# max |logit| against transformers-bf16's 0.1065 (1.01x); a shard or loader
# bug moves logits by O(max |logit|) and the cosine far below 0.999.
HF_REL = 0.02
HF_BF16_X = 1.5
HF_COS_MIN = 0.999
TIE_FLOOR = 0.05


def rope_kwargs(cls, theta):
    if "rope_parameters" in inspect.signature(cls.__init__).parameters:
        return {"rope_parameters": {"rope_type": "default", "rope_theta": theta}}
    return {"rope_theta": theta}


def with_dtype(fn, *args, dtype, **kw):
    try:
        return fn(*args, dtype=dtype, **kw)
    except TypeError:
        return fn(*args, torch_dtype=dtype, **kw)


def models(torch, transformers):
    L, Q = transformers.LlamaConfig, transformers.Qwen2Config
    common = dict(initializer_range=0.06, max_position_embeddings=4096, rms_norm_eps=1e-5,
                  bos_token_id=1, eos_token_id=2)
    return [
        ("llama_gqa_tp", L(vocab_size=3001, hidden_size=512, intermediate_size=1376,
                           num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2,
                           head_dim=64, tie_word_embeddings=False, **rope_kwargs(L, 10000.0),
                           **common), torch.bfloat16, 40),
        ("qwen2_bias_tp", Q(vocab_size=2500, hidden_size=512, intermediate_size=1200,
                            num_hidden_layers=3, num_attention_heads=8, num_key_value_heads=2,
                            tie_word_embeddings=True, use_sliding_window=False,
                            **rope_kwargs(Q, 1000000.0), **common), torch.float32, 33),
    ]


def build(torch, transformers, name, cfg, dtype, out_dir, seed):
    torch.manual_seed(seed)
    model = with_dtype(transformers.AutoModelForCausalLM.from_config, cfg, dtype=torch.float32)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.uniform_(0.6, 1.4)
            elif n.endswith(".bias"):
                p.normal_(0.0, 0.2)
    model = model.to(dtype)
    path = os.path.join(out_dir, "models", name)
    model.save_pretrained(path, safe_serialization=True)
    return path


def run_tp(exe, path, prompt, steps, tp, dummy=False, two_proc=False, port=29517, timeout=90):
    """Returns (json of node 0, json of node 1 or None, error text or None)."""
    base = [exe, "--model", path, "--prompt-ids", ",".join(map(str, prompt)), "--steps", str(steps),
            "--batch", "4", "--tp", str(tp)] + (["--dummy"] if dummy else [])
    env = dict(os.environ, NCCL_NVLS_ENABLE="0")
    if not two_proc:
        p = subprocess.run(base, capture_output=True, text=True, timeout=timeout, env=env)
        if p.returncode != 0:
            return None, None, "exit %d: %s" % (p.returncode, p.stderr.strip()[-2000:])
        return json.loads(p.stdout), None, None
    procs = []
    for rank in (0, 1):
        e = dict(env, CUDA_VISIBLE_DEVICES=str(rank))
        cmd = base + ["--nnodes", "2", "--node-rank", str(rank), "--dist-init-addr",
                      "127.0.0.1:%d" % port]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=e))
    outs = []
    for p in procs:
        try:
            o, e = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            return None, None, "two-process run timed out"
        outs.append((p.returncode, o, e))
    if any(rc != 0 for rc, _, _ in outs):
        return None, None, "; ".join("node %d exit %d: %s" % (i, rc, e.strip()[-1500:])
                                     for i, (rc, _, e) in enumerate(outs))
    return json.loads(outs[0][1]), json.loads(outs[1][1]), None


def compare(torch, ref, got):
    """tp=1 (ref) vs a tp=2 run: (ok, dict of measurements, note)."""
    a = torch.tensor(ref["logits"], dtype=torch.float64)
    b = torch.tensor(got["logits"], dtype=torch.float64)
    max_abs = float((a - b).abs().max())
    scale = float(a.abs().max())
    cos = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
    la = torch.tensor(ref["last_logits"], dtype=torch.float64)
    lb = torch.tensor(got["last_logits"], dtype=torch.float64)
    ok = max_abs <= TP_REL * scale and cos >= COS_MIN and got["ranks_agree"]
    tie_eps = max(TIE_FLOOR, 2 * max_abs)
    g1, g2 = ref["greedy_ids"], got["greedy_ids"]
    div = next((i for i, (x, y) in enumerate(zip(g1, g2)) if x != y), None)
    if div is None:
        note = "greedy equal for %d steps" % (len(g1) - 1)
        last_abs = float((la - lb).abs().max())
        ok = ok and last_abs <= TP_REL * max(float(la.abs().max()), scale)
    else:
        # the margins are top1 - top2 of tp1's row: a flip between them is a near-tie
        near = ref["margins"][div] < tie_eps
        note = "greedy equal for %d steps, then a %s (tp1 margin %.4f, tie_eps %.4f)" % (
            div, "near-tie" if near else "REAL DIVERGENCE", ref["margins"][div], tie_eps)
        ok = ok and near
        last_abs = None
    # batched rows: equal, or parted at a near-tie of tp1's row (its margin)
    S, B = ref["steps"], ref["batch"]
    b_ties, b_bad = [], []
    for s in range(B):
        a_ids, b_ids = ref["batched_ids"][s * S:(s + 1) * S], got["batched_ids"][s * S:(s + 1) * S]
        k = next((i for i, (x, y) in enumerate(zip(a_ids, b_ids)) if x != y), None)
        if k is not None:
            m = ref["batched_margins"][s * S + k]
            (b_ties if m < tie_eps else b_bad).append({"row": s, "step": k, "tp1_margin": m})
    ok = ok and not b_bad and got["argmax_mismatch"] == 0 and ref["argmax_mismatch"] == 0
    if b_ties or b_bad:
        note += "; batched rows parted: %s" % ", ".join(
            "row %d step %d (margin %.4f, %s)" % (x["row"], x["step"], x["tp1_margin"],
                                                 "near-tie" if x in b_ties else "REAL")
            for x in b_ties + b_bad)
    else:
        note += "; batched rows equal"
    return ok, {"max_abs": max_abs, "max_abs_logit": scale, "cosine": cos, "tolerance": TP_REL * scale,
                "last_step_max_abs": last_abs, "first_divergence": div,
                "batched_near_ties": b_ties, "batched_real_divergences": b_bad,
                "argmax_mismatch": got["argmax_mismatch"], "ranks_agree": got["ranks_agree"],
                "decode_ms": got["decode_ms"]}, note


def run_cli(sglc, path, prompt, steps, tp, two_proc=False, port=29600, timeout=90):
    """sglc generate through the engine; (json of node 0, error text or None)."""
    base = [sglc, "generate", "--device", "cuda", "--model", path, "--input-ids",
            ",".join(map(str, prompt)), "--max-tokens", str(steps), "--temperature", "0",
            "--ignore-eos", "--json", "--top-logprobs", "1", "--max-total-tokens", "16384",
            "--tp", str(tp)]
    env = dict(os.environ, NCCL_NVLS_ENABLE="0")
    if not two_proc:
        p = subprocess.run(base, capture_output=True, text=True, timeout=timeout, env=env)
        if p.returncode != 0:
            return None, "exit %d: %s" % (p.returncode, p.stderr.strip()[-2000:])
        return json.loads(p.stdout), None
    procs = []
    for rank in (0, 1):
        e = dict(env, CUDA_VISIBLE_DEVICES=str(rank))
        cmd = base + ["--nnodes", "2", "--node-rank", str(rank), "--dist-init-addr", "127.0.0.1:%d" % port]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e))
    outs = []
    for p in procs:
        try:
            o, e = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            return None, "two-process sglc generate timed out"
        outs.append((p.returncode, o, e))
    if any(rc != 0 for rc, _, _ in outs):
        return None, "; ".join("node %d exit %d: %s" % (i, rc, e.strip()[-1500:])
                               for i, (rc, _, e) in enumerate(outs))
    return json.loads(outs[0][1]), None


def check_cli(sglc, tokdir, path, prompt, steps, port, name, tp_meas, results):
    """The engine at tp 1 / 2 / two processes; tp_meas: tp_forward's tp2 comparison."""
    for f in ("tokenizer.json", "tokenizer_config.json"):
        if os.path.exists(os.path.join(tokdir, f)):
            shutil.copy(os.path.join(tokdir, f), path)
    upto = tp_meas.get("first_divergence") if tp_meas else None
    lp_tol = max(0.01, 2 * (tp_meas or {}).get("max_abs", 0.0))
    ref = None
    for label, kw in (("cli_tp1", dict(tp=1)), ("cli_tp2", dict(tp=2)),
                      ("cli_2proc", dict(tp=2, two_proc=True, port=port))):
        r, e = run_cli(sglc, path, prompt, steps, **kw)
        res = {"model": name, "run": label, "ok": e is None}
        if e:
            res["error"] = e
            print("%s %s: FAIL: %s" % (name, label, e))
            results.append(res)
            continue
        ids, lps = r["output_ids"], r["meta_info"]["output_token_logprobs"]
        res["output_ids"] = ids
        if ref is None:
            ref = (ids, lps)
            print("%s %s: ok: %d tokens (reference)" % (name, label, len(ids)))
            results.append(res)
            continue
        n = len(ids) if upto is None else min(upto, len(ids))
        same = ids[:n] == ref[0][:n] and len(ids) == len(ref[0])
        lp_diff = max([abs(a - b) for a, b in zip(lps[:n], ref[1][:n])] or [0.0])
        res.update(ids_equal_steps=n, ids_equal=same, logprob_max_abs=lp_diff, logprob_tol=lp_tol)
        res["ok"] = same and lp_diff <= lp_tol
        print("%s %s: %s: output ids %s for %d steps; log-probs max abs %.3g (tol %.3g)" % (
            name, label, "ok" if res["ok"] else "FAIL", "equal" if same else "DIFFER", n, lp_diff, lp_tol))
        results.append(res)


def hf_first(torch, transformers, path, prompt):
    """Last-position logits of transformers in fp32, and bf16's max abs error on them."""
    out = []
    for dt in (torch.float32, torch.bfloat16):
        m = with_dtype(transformers.AutoModelForCausalLM.from_pretrained, path, dtype=dt,
                       attn_implementation="eager").to("cuda").eval()
        with torch.no_grad():
            out.append(m(input_ids=torch.tensor([prompt], device="cuda")).logits[0, -1].double().cpu())
        del m
        torch.cuda.empty_cache()
    return out[0], float((out[1] - out[0]).abs().max())


def check(torch, transformers, exe, out_dir, steps, port, k, name, cfg, dtype, plen, results, sglc, tokdir):
    path = build(torch, transformers, name, cfg, dtype, out_dir, 4321 + k)
    g = torch.Generator().manual_seed(7 + k)
    prompt = [1] + torch.randint(3, cfg.vocab_size, (plen - 1,), generator=g).tolist()
    hf, hf_bf16 = hf_first(torch, transformers, path, prompt)
    hf_tol = max(HF_REL * float(hf.abs().max()), HF_BF16_X * hf_bf16)
    runs = [("tp1", dict(tp=1)), ("tp2", dict(tp=2)), ("2proc", dict(tp=2, two_proc=True, port=port + k))]
    if k == 0:
        runs += [("dummy_tp1", dict(tp=1, dummy=True)), ("dummy_tp2", dict(tp=2, dummy=True))]
    out = {}
    tp2_meas = None
    for label, kw in runs:
        r0, r1, e = run_tp(exe, path, prompt, steps, **kw)
        if e:
            print("%s %s: FAIL: %s" % (name, label, e))
            results.append({"model": name, "run": label, "ok": False, "error": e})
            continue
        out[label] = r0
        res = {"model": name, "run": label, "ok": True, "init_ms": r0["init_ms"], "comm_ms": r0["comm_ms"],
               "decode_ms": r0["decode_ms"]}
        if not label.startswith("dummy"):
            ours = torch.tensor(r0["logits"], dtype=torch.float64)
            hf_abs = float((ours - hf).abs().max())
            hf_cos = float(torch.nn.functional.cosine_similarity(ours, hf, dim=0))
            res.update(hf_fp32_max_abs=hf_abs, hf_fp32_cosine=hf_cos, hf_tolerance=hf_tol,
                       hf_bf16_max_abs=hf_bf16)
            res["ok"] = hf_abs <= hf_tol and hf_cos >= HF_COS_MIN
        ref = out.get("dummy_tp1" if label.startswith("dummy") else "tp1")
        note = "reference"
        if label not in ("tp1", "dummy_tp1"):
            if ref is None:
                res["ok"], note = False, "no tp=1 reference"
            else:
                ok, meas, note = compare(torch, ref, r0)
                res.update(meas)
                res["ok"] = res["ok"] and ok
        if r1 is not None:
            same = r1["greedy_ids"] == r0["greedy_ids"] and r1["batched_ids"] == r0["batched_ids"]
            res["node1_equals_node0"] = same
            res["ok"] = res["ok"] and same
        res["greedy"] = note
        if label == "tp2":
            tp2_meas = res
        print("%s %s: %s: %s%s; %s; decode %.3f ms/step, init %.0f ms, comm %.0f ms" % (
            name, label, "ok" if res["ok"] else "FAIL",
            "vs tp1 logits max_abs %.4g (tol %.4g, cos %.7f); " % (res["max_abs"], res["tolerance"], res["cosine"])
            if "max_abs" in res else "",
            "vs transformers fp32 max_abs %.4g (tol %.4g)" % (res["hf_fp32_max_abs"], res["hf_tolerance"])
            if "hf_fp32_max_abs" in res else "dummy weights",
            note, r0["decode_ms"], r0["init_ms"], r0["comm_ms"]))
        results.append(res)
    if sglc and tokdir:
        check_cli(sglc, tokdir, path, prompt, steps, port + 50 + k, name, tp2_meas, results)


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        print(__doc__)
        return 2
    exe, out_dir = args[0], args[1]
    steps = int(args[args.index("--steps") + 1]) if "--steps" in args else 32
    port = int(args[args.index("--port") + 1]) if "--port" in args else 29517
    sglc = args[args.index("--sglc") + 1] if "--sglc" in args else None
    tokdir = args[args.index("--tokenizer") + 1] if "--tokenizer" in args else None
    try:
        import torch
        import transformers
    except ImportError as e:
        print("skipped: %s" % e)
        return 77
    if torch.cuda.device_count() < 2:
        print("skipped: %d CUDA devices, tp=2 needs 2" % torch.cuda.device_count())
        return 77
    torch.backends.cuda.matmul.allow_tf32 = False
    os.makedirs(out_dir, exist_ok=True)
    results = []
    for k, (name, cfg, dtype, plen) in enumerate(models(torch, transformers)):
        try:
            check(torch, transformers, exe, out_dir, steps, port, k, name, cfg, dtype, plen, results,
                  sglc, tokdir)
        except Exception:
            print("%s: FAIL: exception\n%s" % (name, traceback.format_exc()))
            results.append({"model": name, "ok": False, "error": traceback.format_exc()})
    failures = sum(not r["ok"] for r in results)
    with open(os.path.join(out_dir, "check_tp.json"), "w") as f:
        json.dump({"transformers": transformers.__version__, "torch": torch.__version__,
                   "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
                   "results": results}, f, indent=1)
    print("check_tp: %d passed, %d failed" % (len(results) - failures, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
