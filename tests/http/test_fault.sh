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

# a full queue answers 503 (OpenAI-shaped), never grows without bound
start_server --max-running-requests 1 --max-queued-requests 1
pids=()
for i in $(seq 1 12); do
    curl -s -o "$TMP/q$i.json" -w '%{http_code}\n' --data-binary \
        "{\"text\": \"Once upon a time $i\", \"sampling_params\": {\"max_new_tokens\": 300, \"ignore_eos\": true}}" \
        "$BASE/generate" >"$TMP/q$i.code" &
    pids+=($!)
done
wait "${pids[@]}"
codes=$(cat "$TMP"/q*.code | sort | uniq -c | tr '\n' ' ')
echo "   status codes with a 1-request queue: $codes"
check "full queue: some 503s, every other request 200" python3 -c '
import sys,glob,json
codes=[open(f).read().strip() for f in glob.glob(sys.argv[1]+"/q*.code")]
bad=[c for c in codes if c not in ("200","503")]
ok503=all(json.load(open(f[:-5]+".json"))["error"]["code"]==503 for f in glob.glob(sys.argv[1]+"/q*.code") if open(f).read().strip()=="503")
sys.exit(0 if not bad and "503" in codes and "200" in codes and ok503 else 1)' "$TMP"
stop_server

# graceful shutdown with requests in flight: SIGTERM aborts them, the server
# exits 0 (under ASan: without leaks) and every client gets its answer or EOF
start_server
pids=()
for i in 1 2 3 4; do
    curl -s -N --max-time 60 --data-binary "{\"text\": \"Story $i\", \"stream\": $([ $i -le 2 ] && echo true || echo false), \"sampling_params\": {\"max_new_tokens\": 500, \"ignore_eos\": true, \"n\": 8}}" \
        "$BASE/generate" >"$TMP/sd$i.txt" 2>/dev/null &
    pids+=($!)
done
for _ in $(seq 1 100); do
    running=$(curl -s "$BASE/get_server_info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["num_running_reqs"])' 2>/dev/null)
    [ "${running:-0}" -gt 0 ] && break
    sleep 0.05
done
stop_server
t0=$(date +%s)
wait "${pids[@]}"
check "clients return promptly after the shutdown" test $(( $(date +%s) - t0 )) -lt 10
finish
