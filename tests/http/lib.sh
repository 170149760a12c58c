# lib.sh -- shared by the tests/http scripts: start a real `sglc serve` on
# loopback (port 0: the kernel picks a free one, read back from
# --port-file), stop it at exit whatever happens, small assertion helpers.
# Needs $SGLC and $SGL_SHARED_DIR (skips with 77 when the model is absent).

MODEL="${SGL_SHARED_DIR:-/nonexistent}/models/stories260K-hf"
if [ ! -f "$MODEL/config.json" ]; then
    echo "skipped: no stories260K model at $MODEL"
    exit 77
fi
: "${SGLC:?SGLC must name the built sglc}"
TMP=$(mktemp -d /tmp/sglc-http-XXXXXX)
SERVER_PID=
N_PASS=0
N_FAIL=0

cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# start_server [extra sglc serve options...]: sets PORT, BASE, SERVER_PID.
start_server() {
    rm -f "$TMP/port"
    # ASan builds: a bounded free-quarantine so that RSS reaches a steady state
    ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=16:thread_local_quarantine_size_kb=64" "$SGLC" serve --model "$MODEL" --port 0 --port-file "$TMP/port" "$@" >"$TMP/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 300); do
        [ -s "$TMP/port" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log"; echo "FAIL: server died at start"; exit 1; }
        sleep 0.1
    done
    [ -s "$TMP/port" ] || { cat "$TMP/server.log"; echo "FAIL: server did not start"; exit 1; }
    PORT=$(cat "$TMP/port")
    BASE="http://127.0.0.1:$PORT"
}

# stop_server: SIGTERM, expect a clean exit 0 (ASan reports leaks as failure).
stop_server() {
    kill -TERM "$SERVER_PID"
    local rc=0
    wait "$SERVER_PID" || rc=$?
    SERVER_PID=
    check "server exits 0 after SIGTERM (rc $rc)" test "$rc" -eq 0
    if [ "$rc" -ne 0 ]; then tail -40 "$TMP/server.log"; fi
}

check() {
    local what="$1"; shift
    if "$@"; then N_PASS=$((N_PASS + 1)); echo "ok - $what"
    else N_FAIL=$((N_FAIL + 1)); echo "FAIL - $what"; fi
}

# jq-like assertions with python3: pyassert JSON_FILE 'python expression on j'
pyassert() {
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2" 2>/dev/null
}

finish() {
    echo "$N_PASS passed, $N_FAIL failed"
    [ "$N_FAIL" -eq 0 ]
}
