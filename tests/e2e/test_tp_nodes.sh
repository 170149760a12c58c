#!/usr/bin/env bash
# test_tp_nodes.sh -- `sglc generate --tp` on the CPU: one process (threads)
# and two processes as two "hosts" over the tcp bootstrap on loopback
# (--nnodes 2 --node-rank 0/1 --dist-init-addr 127.0.0.1:PORT) give the
# same greedy text as tp 1 on stories260K (and `sglc run` of an example);
# bad flags and unreachable or absent peers give clear errors within the
# timeout, and a worker whose node 0 dies exits. Every process runs under
# `timeout` (or is killed by the script), so none outlives the test.
set -u
SGLC=${SGLC:?SGLC not set}
MODEL=${SGL_SHARED_DIR:-/nonexistent}/models/stories260K-hf
if [ ! -r "$MODEL/model.safetensors" ]; then
    echo "skipped: $MODEL is missing"
    exit 77
fi
TMP=$(mktemp -d /tmp/sgl_tp_nodes.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# A free loopback port whose successor is free too (the CPU ranks use PORT+1),
# below the ephemeral range so no outgoing connection takes it meanwhile.
free_port() {
    python3 - <<'EOF'
import random, socket
while True:
    p = random.randrange(20000, 32000)
    try:
        for q in (p, p + 1):
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", q)); s.close()
        print(p); break
    except OSError:
        s.close()
EOF
}

GEN=(generate --model "$MODEL" --device cpu --temperature 0 --ignore-eos --max-tokens 48 --threads 1
     --prompt "Once upon a time")
ref=$(timeout 60 "$SGLC" "${GEN[@]}") || bad "tp 1 failed"
[ -n "$ref" ] || bad "tp 1 gave no text"

for tp in 2 4; do
    out=$(timeout 60 "$SGLC" "${GEN[@]}" --tp $tp) || bad "tp $tp (one process) failed"
    [ "$out" == "$ref" ] || bad "tp $tp (one process) text differs: '$out' vs '$ref'"
done

# `sglc run` of a program takes the same flags.
ROOT=${SGL_SOURCE_ROOT:-.}
RUN=(run "$ROOT/examples/few_shot_qa.sgl" --model "$MODEL" --arg "question=Who is Lily?" --threads 1)
rref=$(timeout 60 "$SGLC" "${RUN[@]}") || bad "run tp 1 failed"
rout=$(timeout 60 "$SGLC" "${RUN[@]}" --tp 2) || bad "run --tp 2 failed"
[ -n "$rref" ] && [ "$rout" == "$rref" ] || bad "run --tp 2 differs: '$rout' vs '$rref'"

# Two processes: tp 2 (one rank each) and tp 4 (two ranks each).
for tp in 2 4; do
    port=$(free_port)
    DIST=(--tp $tp --nnodes 2 --dist-init-addr 127.0.0.1:$port --dist-timeout 30)
    timeout 60 "$SGLC" "${GEN[@]}" "${DIST[@]}" --node-rank 1 >"$TMP/n1.out" 2>"$TMP/n1.err" &
    n1=$!
    out=$(timeout 60 "$SGLC" "${GEN[@]}" "${DIST[@]}" --node-rank 0 2>"$TMP/n0.err") ||
        bad "tp $tp node 0 failed: $(cat "$TMP/n0.err")"
    wait $n1
    rc1=$?
    [ $rc1 -eq 0 ] || bad "tp $tp node 1 exited $rc1: $(cat "$TMP/n1.err")"
    [ "$out" == "$ref" ] || bad "tp $tp over two processes: '$out' vs '$ref'"
    [ ! -s "$TMP/n1.out" ] || bad "node 1 printed to stdout: $(cat "$TMP/n1.out")"
    grep -q "node 1 of 2: serving tp ranks $((tp / 2))..$((tp - 1)) for node 0 at 127.0.0.1:$port" "$TMP/n1.err" ||
        bad "node 1 did not say what it does: $(cat "$TMP/n1.err")"
done

# expect_err RC TEXT ARGS...: sglc exits with RC and says TEXT on stderr.
expect_err() {
    local want_rc=$1 text=$2
    shift 2
    timeout 30 "$SGLC" "$@" >/dev/null 2>"$TMP/err"
    local rc=$?
    [ $rc -eq "$want_rc" ] || bad "'$*' exited $rc, expected $want_rc: $(cat "$TMP/err")"
    grep -qF -- "$text" "$TMP/err" || bad "'$*' did not say '$text': $(cat "$TMP/err")"
}

port=$(free_port)
expect_err 1 "tp 3 does not divide num_attention_heads 8" "${GEN[@]}" --tp 3
expect_err 2 "--node-rank 2 must be below --nnodes 2" "${GEN[@]}" --tp 2 --nnodes 2 --node-rank 2 \
    --dist-init-addr 127.0.0.1:$port
expect_err 2 "--nnodes 2 needs --dist-init-addr" "${GEN[@]}" --tp 2 --nnodes 2
expect_err 2 "option --tp: 0 is out of range" "${GEN[@]}" --tp 0
expect_err 1 "tp 3 is not a multiple of nnodes 2" "${GEN[@]}" --tp 3 --nnodes 2 --dist-init-addr 127.0.0.1:$port
expect_err 1 "is not HOST:PORT" "${GEN[@]}" --tp 2 --nnodes 2 --dist-init-addr localhost
# nobody listens at node 0's address / nobody joins node 0: errors after the 1 s timeout
start=$(date +%s)
expect_err 1 "cannot connect to 127.0.0.1:$port" "${GEN[@]}" --tp 2 --nnodes 2 --node-rank 1 \
    --dist-init-addr 127.0.0.1:$port --dist-timeout 1
expect_err 1 "0 of 1 peers connected" "${GEN[@]}" --tp 2 --nnodes 2 --node-rank 0 \
    --dist-init-addr 127.0.0.1:$port --dist-timeout 1
[ $(( $(date +%s) - start )) -le 20 ] || bad "the timeouts took $(( $(date +%s) - start )) s"

# node 0 goes away while node 1 waits for the next step: node 1 exits with an error
port=$(free_port)
timeout 60 "$SGLC" "${GEN[@]}" --tp 2 --nnodes 2 --node-rank 1 --dist-init-addr 127.0.0.1:$port \
    --dist-timeout 30 >/dev/null 2>"$TMP/n1.err" &
n1=$!
"$SGLC" serve --model "$MODEL" --device cpu --threads 1 --port 0 --tp 2 --nnodes 2 --node-rank 0 \
    --dist-init-addr 127.0.0.1:$port --dist-timeout 30 >"$TMP/srv.out" 2>"$TMP/srv.err" &
srv=$!   # the sglc process itself (killed below, whatever happens)
for _ in $(seq 1 100); do   # until the engine is up (node 1 joined)
    grep -q "node 1 of 2" "$TMP/n1.err" 2>/dev/null && grep -qi "listen" "$TMP/srv.err" "$TMP/srv.out" 2>/dev/null && break
    sleep 0.2
done
kill -9 $srv 2>/dev/null
wait $srv 2>/dev/null
wait $n1
rc1=$?
[ $rc1 -eq 1 ] || bad "node 1 exited $rc1 after node 0 died: $(cat "$TMP/n1.err")"
grep -q "closed by the peer" "$TMP/n1.err" || bad "node 1 did not say node 0 went away: $(cat "$TMP/n1.err")"

[ $fail -eq 0 ] && echo "ok: tp 1/2/4 in one process and tp 2/4 over two processes agree; errors are clear"
exit $fail
