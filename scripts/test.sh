#!/usr/bin/env bash
# Builds sglc and runs every test: a normal build, then a build under
# AddressSanitizer + UndefinedBehaviorSanitizer. When nvcc is present the
# CUDA code is compiled too (GPU tests skip cleanly without a GPU).
# Installs missing Debian packages first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

jobs=$(nproc 2>/dev/null || echo 2)

configure() { # dir, options...
    local dir=$1; shift
    if [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" "$@" >/dev/null
    else
        meson setup "$dir" "$@" >/dev/null
    fi
}

echo "== build (debugoptimized) =="
configure build
ninja -C build -j "$jobs"
meson test -C build --print-errorlogs --num-processes "$jobs"

echo "== build under ASan + UBSan =="
# CUDA code is compiled (not run) by the first build; the sanitizer build skips it.
configure build-asan -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false -Dcuda=disabled
ninja -C build-asan -j "$jobs"
meson test -C build-asan --print-errorlogs --num-processes "$jobs" --timeout-multiplier 4

# One closing line for both builds: meson's counts summed.
summary() { # dir -> "ok fail skip"
    python3 - "$1/meson-logs/testlog.json" <<'PY'
import json, sys
ok = fail = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"): ok += 1
    elif r == "SKIP": skip += 1
    else: fail += 1
print(ok, fail, skip)
PY
}
read -r ok1 fail1 skip1 < <(summary build)
read -r ok2 fail2 skip2 < <(summary build-asan)
echo "== all tests passed =="
echo "tests: $((ok1 + ok2)) passed, $((fail1 + fail2)) failed, $((skip1 + skip2)) skipped"
