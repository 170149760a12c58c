#!/usr/bin/env python3
"""check_goldens.py -- stories260K through gpu_forward against the goldens.

usage: check_goldens.py GPU_FORWARD [--cpu] [--out FILE]

For every case of $SGL_SHARED_DIR/goldens/stories260K_goldens.json (default
../shared relative to the repo): prompt_ids, then len(greedy_ids)-1 greedy
steps through the runner; the greedy ids must equal the goldens (transformers,
fp32). The CUDA runner stores weights in bf16, so a divergence is accepted
only at a near-tie: the fp32 reference's own top-1/top-2 logit gap at that
step (from sglc's CPU runner, which reproduces the goldens, run with --cpu)
below max(TIE_EPS, 2 x the measured bf16-vs-fp32 max logit error: each of the
two logits may be off by that much). The first
position's logits must be within 2% of max |logit| of the fp32 reference (the
same for the decode path's logits of that position), and its top-5 log-probs
within 2 x that measured logit error of the goldens (see LOGIT_REL). Also checks that the chunked-prefill and batched runs of
gpu_forward (and its all-prompt-rows logits) agree with the single prefill
(CONSIST_TOL). Exit 0 pass, 1 fail,
77 skip (no GPU, or no ../shared).
"""
import json
import math
import os
import subprocess
import sys

# A CPU emulation of the runner's rounding (bf16 weights and GEMM inputs,
# fp32 accumulation and residual) moved this model's logits by 0.05-0.16 (max
# over the vocabulary) and diverged from the goldens in 4 of 12 cases, each
# where the fp32 gap was 0.0076-0.065. A reference gap below 0.05, or below
# 2x the logit error measured on the case, is a tie bf16 can legitimately flip.
TIE_EPS = 0.05
# Log-probs. log p_i = z_i - logsumexp(z): if bf16 moves every logit by at
# most e (measured per case against the fp32 CPU runner), each log-prob moves
# by at most 2e. So the first position's top-5 log-prob error must stay within
# 2 x the measured logit error (+ LOGPROB_SLACK for the goldens' own rounding),
# and the logit error itself within LOGIT_REL of max |logit| (the fp32
# reference's): the bf16 bound. Measured on the H100 (2026-11-21, 12 cases):
# logit error 0.049-0.156 with max |logit| 13.0-18.8 (0.3-1.2%); top-5
# log-prob error 0.013-0.067, at most 0.68 x the logit error. The earlier
# fixed 0.06 came from the top-1 log-prob alone and failed case 4 (top-5 err
# 0.0674 with logit error 0.099: bf16 rounding, not a bug). Without a usable
# fp32 reference (--cpu runs), LOGPROB_TOL applies.
LOGIT_REL = 0.02
LOGPROB_SLACK = 0.01
LOGPROB_TOL = 0.06
# chunked / batched vs single prefill: the same math through different GEMM
# kernels (sgl_k_gemv for 1-2 rows, cuBLAS above) and reduction orders. The
# fp32 sums then differ in the last bits, and where that flips the rounding
# of a bf16 activation the difference propagates like any bf16 error: on the
# H100 (2026-11-21) chunked/batched differed by up to 0.069 while each path
# was 0.09-0.1 from fp32 (and by exactly 0 when every product went through
# cuBLAS). Each path is within the measured logit error e of fp32, so the two
# differ by at most 2e: the bound is max(CONSIST_TOL, 2e). A wrong cached
# prefix or batch layout moves logits by O(max |logit|) = 13-19 here.
CONSIST_TOL = 0.05


def log_softmax(x):
    m = max(x)
    s = sum(math.exp(v - m) for v in x)
    return [v - m - math.log(s) for v in x]


def run(cmd):
    """(parsed JSON, "") on success, (77, message) on skip, (None, message) on error."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode == 77:
        return 77, p.stderr.strip()
    if p.returncode != 0:
        return None, "exit %d: %s" % (p.returncode, p.stderr.strip())
    return json.loads(p.stdout), p.stderr.strip()


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    exe, cpu, out = args[0], "--cpu" in args, None
    if "--out" in args:
        out = args[args.index("--out") + 1]
    root = os.environ.get("SGL_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
    shared = os.environ.get("SGL_SHARED_DIR", os.path.join(root, "..", "shared"))
    gold = os.path.join(shared, "goldens", "stories260K_goldens.json")
    model = os.path.join(shared, "models", "stories260K-hf")
    if not os.path.exists(gold) or not os.path.isdir(model):
        print("skipped: %s or %s not found" % (gold, model))
        return 77
    cases = json.load(open(gold))["cases"]
    failures, report = 0, []
    for k, c in enumerate(cases):
        base = [exe, "--model", model, "--prompt-ids", ",".join(map(str, c["prompt_ids"])),
                "--steps", str(len(c["greedy_ids"]) - 1), "--batch", "4"]
        r, msg = run(base + (["--cpu"] if cpu else []))
        if r == 77:
            print("skipped: " + msg)
            return 77
        if r is None or isinstance(r, int):
            print("case %d: gpu_forward failed: %s" % (k, msg))
            failures += 1
            continue
        # the fp32 CPU runner (which reproduces the goldens) measures how far
        # bf16 moved the logits and how close the reference was to a tie
        ref = None
        if not cpu:
            ref, _ = run(base + ["--cpu"])
            if not isinstance(ref, dict) or ref["greedy_ids"] != c["greedy_ids"]:
                ref = None
        got, want = r["greedy_ids"], c["greedy_ids"]
        first_diff = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)
        lp = log_softmax(r["logits"])
        lp_err = max(abs(lp[i] - v) for i, v in zip(c["top5_ids"][0], c["top5_logprobs"][0]))
        logit_err = max(abs(a - b) for a, b in zip(r["logits"], ref["logits"])) if ref else 0.0
        tie_eps = max(TIE_EPS, 2 * logit_err)
        lp_tol = 2 * logit_err + LOGPROB_SLACK if ref else LOGPROB_TOL
        ok = True
        note = "equal %d/%d" % (len(want), len(want))
        if first_diff is not None:
            m = ref["margins"][first_diff] if ref else r["margins"][first_diff]
            note = "equal for %d steps, then %s gap %.4f (tie_eps %.4f)" % (
                first_diff, "fp32 reference" if ref else "our", m, tie_eps)
            if m >= tie_eps:
                ok = False
                note += ": NOT a near-tie"
            else:
                note += ": near-tie"
        if lp_err > lp_tol:
            ok = False
            note += "; top-5 logprob err %.4f > %.4f" % (lp_err, lp_tol)
        ext_err = None
        if ref:
            scale = max(abs(v) for v in ref["logits"])
            if logit_err > LOGIT_REL * scale:
                ok = False
                note += "; logits vs fp32 %.4f > %.0f%% of max |logit| %.2f" % (
                    logit_err, 100 * LOGIT_REL, scale)
            # the decode path's logits for the same position (1-token extend
            # over the cached prompt) meet the same bf16 bound
            if "extend_logits" in r:
                ext_err = max(abs(a - b) for a, b in zip(r["extend_logits"], ref["logits"]))
                if ext_err > LOGIT_REL * scale:
                    ok = False
                    note += "; decode-path logits vs fp32 %.4f > %.0f%% of max |logit| %.2f" % (
                        ext_err, 100 * LOGIT_REL, scale)
        if r.get("errors_ok") is False:
            ok = False
            note += "; runner error contract failed (gpu_forward stderr: %s)" % msg
        consist = max(r["chunked_max_abs"], r["batched_max_abs"], r["all_rows_max_abs"],
                  r.get("mixed_decode_max_abs", 0), r.get("mixed_prefill_max_abs", 0))  # mixed: one decode + one prefill
        if consist > max(CONSIST_TOL, 2 * logit_err):
            ok = False
            note += "; chunked/batched/all-rows logits differ (%.4g / %.4g / %.4g)" % (
                r["chunked_max_abs"], r["batched_max_abs"], r["all_rows_max_abs"])
        print("case %2d: %s: %s; logits vs fp32 %.4f (decode path %s), top5 logprob err %.4f "
              "(tol %.4f), chunked %.2g, batched %.2g" % (
                  k, "ok" if ok else "FAIL", note, logit_err,
                  "n/a" if ext_err is None else "%.4f" % ext_err, lp_err, lp_tol,
                  r["chunked_max_abs"], r["batched_max_abs"]))
        report.append({"case": k, "ok": ok, "note": note, "first_divergence": first_diff,
                       "logit_err_vs_fp32": logit_err, "logprob_err": lp_err,
                       "logprob_tol": lp_tol, "extend_err_vs_fp32": ext_err,
                       "extend_repeat_max_abs": r.get("extend_repeat_max_abs"),
                       "chunked_max_abs": r["chunked_max_abs"],
                       "mixed_decode_max_abs": r.get("mixed_decode_max_abs"), "mixed_prefill_max_abs": r.get("mixed_prefill_max_abs"),
                       "batched_max_abs": r["batched_max_abs"], "decode_ms": r["decode_ms"]})
        failures += not ok
    if out:
        with open(out, "w") as f:
            json.dump({"runner": "cpu" if cpu else "cuda", "cases": report}, f, indent=1)
    print("stories260K goldens: %d passed, %d failed" % (len(cases) - failures, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
