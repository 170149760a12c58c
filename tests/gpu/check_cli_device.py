#!/usr/bin/env python3
"""check_cli_device.py -- `sglc generate`'s device flags, on any machine.

usage: check_cli_device.py   (uses $SGLC and $SGL_SHARED_DIR)

With stories260K (greedy, 24 tokens):
  --device cpu                 the reference text;
  --device auto                the same text (cuda when built in and a GPU is
                               present, else the cpu);
  --device cuda                on a machine with a GPU and a CUDA build: the same
                               text (bf16 can flip a near-tie, so only the first
                               12 tokens' text must agree); otherwise exit 1 with
                               a message saying cuda was requested and why not;
  --device gpu, --mem-fraction-static 2: usage errors (exit 2).
Exit 0 pass, 1 fail, 77 skip (no ../shared).
"""
import os
import subprocess
import sys


def main():
    sglc = os.environ.get("SGLC")
    shared = os.environ.get("SGL_SHARED_DIR", "")
    model = os.path.join(shared, "models", "stories260K-hf")
    if not sglc or not os.path.isdir(model):
        print("skipped: $SGLC or %s missing" % model)
        return 77

    def gen(*extra):
        return subprocess.run([sglc, "generate", "--model", model, "--prompt", "Once upon a time",
                               "--max-tokens", "24", "--temperature", "0", *extra],
                              capture_output=True, text=True, timeout=120)

    fails = 0

    def check(cond, what):
        nonlocal fails
        print("%s: %s" % ("ok" if cond else "FAIL", what))
        fails += not cond

    cpu = gen("--device", "cpu")
    check(cpu.returncode == 0 and len(cpu.stdout) > 20, "--device cpu generates (%r)" % cpu.stdout[:60])
    auto = gen("--device", "auto")
    check(auto.returncode == 0 and auto.stdout[:40] == cpu.stdout[:40], "--device auto generates the same text")
    cuda = gen("--device", "cuda", "--cuda-graph-max-bs", "4")
    if cuda.returncode == 0:
        check(cuda.stdout[:40] == cpu.stdout[:40], "--device cuda generates the same text (%r)"
              % cuda.stdout[:60])
    else:
        err = cuda.stderr
        check(cuda.returncode == 1 and "cuda requested" in err and
              ("built without CUDA" in err or "no usable CUDA device" in err),
              "--device cuda without a GPU/CUDA build: clear error (%r)" % err.strip()[:160])
    bad = gen("--device", "gpu")
    check(bad.returncode == 2 and "--device must be cpu, cuda or auto" in bad.stderr, "--device gpu rejected")
    bad = gen("--device", "cuda", "--mem-fraction-static", "2")
    check(bad.returncode == 2 and "mem-fraction-static" in bad.stderr, "--mem-fraction-static 2 rejected")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
