#!/usr/bin/env bash
# run_diag_golden.sh -- rendered-diagnostics goldens for `sglc check`.
#
# Every tests/golden/diag/<class>.sgl is a bad program (one error class each,
# plus multiple_errors.sgl with several). `sglc check` must exit 1 and print
# exactly tests/golden/diag/<class>.diag on stderr (byte for byte) and nothing
# on stdout. Files under diag/modules/ are import fixtures, not cases; `std/`
# imports resolve to diag/modules/std (SGL_STDLIB).
# Usage: run_diag_golden.sh [--update]   (--update rewrites the .diag files)
# Env: SGLC (the sglc to test), SGL_SOURCE_ROOT (the repository root).
set -u
update=0
[ "${1:-}" = "--update" ] && update=1
root=${SGL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
sglc=${SGLC:-$root/build/sglc}
cd "$root" || exit 1
export SGL_STDLIB=tests/golden/diag/modules/std
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

n=0
failed=0
for src in tests/golden/diag/*.sgl; do
    case=${src%.sgl}
    n=$((n + 1))
    "$sglc" check "$src" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ "$update" = 1 ] && [ "$rc" = 1 ] && [ ! -s "$tmp/out" ]; then
        cp "$tmp/err" "$case.diag"
    fi
    problem=""
    if [ "$rc" != 1 ]; then
        problem="exit status $rc, expected 1"
    elif [ -s "$tmp/out" ]; then
        problem="unexpected output on stdout"
    elif [ ! -f "$case.diag" ]; then
        problem="missing $case.diag (run with --update)"
    elif ! cmp -s "$tmp/err" "$case.diag"; then
        problem="stderr differs from $case.diag"
    fi
    if [ -n "$problem" ]; then
        failed=$((failed + 1))
        echo "FAIL $src: $problem"
        [ -f "$case.diag" ] && diff -u "$case.diag" "$tmp/err" | head -40
    fi
done
for d in tests/golden/diag/*.diag; do
    if [ ! -f "${d%.diag}.sgl" ]; then
        echo "FAIL $d: no matching .sgl"
        failed=$((failed + 1))
    fi
done
if [ "$n" -lt 35 ]; then
    echo "FAIL: only $n diagnostic cases (at least 35 expected)"
    failed=$((failed + 1))
fi
echo "$((n - failed))/$n diagnostic goldens match"
[ "$failed" = 0 ]
