#!/usr/bin/env bash
# test_load.sh -- CONNS concurrent keep-alive connections against a real
# `sglc serve` for SECONDS (after a warm-up): zero errors, and the server's
# RSS after the run within the allowed growth of its RSS after the warm-up
# (tests/load/http_load.c load). The CI run is short; the 60 s, 256
# connection run is documented in docs/serving.md.
# usage: test_load.sh HTTP_LOAD [SECONDS] [CONNS] [MAX_RSS_GROWTH_MB]
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
LOAD=${1:?usage: test_load.sh HTTP_LOAD}
start_server --max-running-requests 256
if "$LOAD" load --port "$PORT" --pid "$SERVER_PID" --seconds "${2:-20}" --conns "${3:-256}" \
        --warmup 5 --max-rss-growth-mb "${4:-32}"; then
    check "load: zero errors, bounded RSS" true
else
    check "load: zero errors, bounded RSS" false
fi
stop_server
finish
