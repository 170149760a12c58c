#!/usr/bin/env bash
# test_fault.sh -- robustness of a real `sglc serve`: 1,000 malformed
# requests (bad JSON, wrong types, huge numbers, invalid UTF-8, oversized
# bodies, wrong paths) must each get a 4xx; clients killed mid-stream must
# have their requests aborted; afterwards the server is up, idle, and its KV
# pool fully free (tests/load/http_load.c fault). Then a clean SIGTERM.
# usage: test_fault.sh HTTP_LOAD [N_REQUESTS] [N_KILLS]
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
LOAD=${1:?usage: test_fault.sh HTTP_LOAD}
start_server --max-body-bytes 1048576
if "$LOAD" fault --port "$PORT" --n "${2:-1000}" --kills "${3:-40}"; then
    check "malformed requests get 4xx, dropped clients are aborted, KV pool free" true
else
    check "malformed requests get 4xx, dropped clients are aborted, KV pool free" false
fi
stop_server
finish
