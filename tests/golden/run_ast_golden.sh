#!/usr/bin/env bash
# run_ast_golden.sh -- every examples/*.sgl passes `sglc check`, and its AST
# dump (`sglc check --emit=ast`) equals tests/golden/ast/<name>.ast byte for byte.
#
# usage: run_ast_golden.sh [--update | --check-only]
#   --update      rewrite the golden files from the current sglc (review the diff!)
#   --check-only  only require `sglc check` to pass (exit 0) for every example
# Needs SGLC (path of sglc) and SGL_SOURCE_ROOT (set by meson test).
set -u
root=${SGL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
sglc=${SGLC:?SGLC must name the sglc executable}
mode=${1:-compare}
golden_dir=$root/tests/golden/ast
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

fail=0 n=0
for src in "$root"/examples/*.sgl; do
    name=$(basename "$src" .sgl)
    n=$((n + 1))
    if [ "$mode" = --check-only ]; then
        if ! "$sglc" check "$src"; then
            echo "FAIL: sglc check $src" >&2
            fail=1
        fi
        continue
    fi
    if ! "$sglc" check --emit=ast "$src" >"$tmp"; then
        echo "FAIL: sglc check --emit=ast $src exited non-zero" >&2
        fail=1
        continue
    fi
    golden=$golden_dir/$name.ast
    if [ "$mode" = --update ]; then
        cp "$tmp" "$golden"
        echo "updated $golden"
    elif [ ! -f "$golden" ]; then
        echo "FAIL: missing golden $golden (run with --update)" >&2
        fail=1
    elif ! cmp -s "$tmp" "$golden"; then
        echo "FAIL: AST of $src differs from $golden:" >&2
        diff -u "$golden" "$tmp" | head -40 >&2
        fail=1
    fi
done
if [ "$n" -eq 0 ]; then
    echo "FAIL: no examples found in $root/examples" >&2
    exit 1
fi
# Golden files without an example are stale.
if [ "$mode" = compare ]; then
    for g in "$golden_dir"/*.ast; do
        [ -f "$root/examples/$(basename "$g" .ast).sgl" ] || { echo "FAIL: stale golden $g" >&2; fail=1; }
    done
fi
[ "$fail" -eq 0 ] && echo "ok: $n examples ($mode)"
exit "$fail"
