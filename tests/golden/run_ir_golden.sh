#!/usr/bin/env bash
# run_ir_golden.sh -- the IR of every examples/*.sgl after each stage equals
# tests/golden/ir/<name>.<stage>.ir byte for byte. Stages: lower (before any
# pass), then each pass in order (fold, prefix_hoist, forkjoin), each dumped
# with `sglc check --dump-after=STAGE` (which also verifies the IR after
# every stage: a verifier failure fails the test).
#
# usage: run_ir_golden.sh [--update]
#   --update   rewrite the golden files from the current sglc (review the diff!)
# Needs SGLC (path of sglc) and SGL_SOURCE_ROOT (set by meson test).
set -u
root=${SGL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
sglc=${SGLC:?SGLC must name the sglc executable}
mode=${1:-compare}
golden_dir=$root/tests/golden/ir
stages="lower fold prefix_hoist forkjoin"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

fail=0 n=0
for src in "$root"/examples/*.sgl; do
    name=$(basename "$src" .sgl)
    n=$((n + 1))
    for stage in $stages; do
        golden=$golden_dir/$name.$stage.ir
        if ! "$sglc" check --dump-after="$stage" "$src" >"$tmp"; then
            echo "FAIL: sglc check --dump-after=$stage $src exited non-zero" >&2
            fail=1
            continue
        fi
        if [ "$mode" = --update ]; then
            cp "$tmp" "$golden"
            echo "updated $golden"
        elif [ ! -f "$golden" ]; then
            echo "FAIL: missing golden $golden (run with --update)" >&2
            fail=1
        elif ! cmp -s "$tmp" "$golden"; then
            echo "FAIL: IR of $src after $stage differs from $golden:" >&2
            diff -u "$golden" "$tmp" | head -40 >&2
            fail=1
        fi
    done
done
# The pass options of `sglc check` (usage errors exit 2; --no-pass really skips).
ex=$root/examples/nested_calls.sgl
"$sglc" check --no-pass=nope "$ex" >/dev/null 2>&1
[ $? -eq 2 ] || { echo "FAIL: --no-pass=nope should be a usage error (exit 2)" >&2; fail=1; }
"$sglc" check --dump-after=nope "$ex" >/dev/null 2>&1
[ $? -eq 2 ] || { echo "FAIL: --dump-after=nope should be a usage error (exit 2)" >&2; fail=1; }
"$sglc" check --emit=ir "$ex" | grep -q ' async' ||
    { echo "FAIL: --emit=ir of $ex has no async call" >&2; fail=1; }
if "$sglc" check --emit=ir --no-pass=forkjoin "$ex" | grep -q ' async'; then
    echo "FAIL: --no-pass=forkjoin still made calls async" >&2; fail=1
fi
if "$sglc" check --emit=ir --no-pass=prefix_hoist --no-pass=fold "$ex" | grep -q 'PREFILL'; then
    echo "FAIL: --no-pass=prefix_hoist still emitted PREFILL" >&2; fail=1
fi
[ "$("$sglc" check --dump-after=all "$ex" | grep -c '^;; after ')" -eq 5 ] ||
    { echo "FAIL: --dump-after=all should dump 5 stages (lower + 4 passes)" >&2; fail=1; }

if [ "$n" -eq 0 ]; then
    echo "FAIL: no examples found in $root/examples" >&2
    exit 1
fi
# Golden files without an example are stale.
if [ "$mode" = compare ]; then
    for g in "$golden_dir"/*.ir; do
        [ -e "$g" ] || continue
        ex=$(basename "$g"); ex=${ex%%.*}
        [ -f "$root/examples/$ex.sgl" ] || { echo "FAIL: stale golden $g" >&2; fail=1; }
    done
fi
[ "$fail" -eq 0 ] && echo "ok: $n examples x 4 stages ($mode)"
exit "$fail"
