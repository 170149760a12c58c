#!/usr/bin/env bash
# test_router.sh -- `sglc router` and `sglc serve --dp` on loopback with real
# `sglc serve` replicas of stories260K (CPU) and real clients (curl, the
# `sglc run --backend` remote client):
#   - native, OpenAI and streamed answers through the router equal a direct
#     replica's greedy answers; /v1/models and /health_generate pass through
#   - cache_aware: prompts sharing a long prefix land on one worker (the
#     X-Sglc-Worker header and the replicas' own request counters agree)
#   - round_robin alternates; the API key is checked
#   - a killed worker: requests still succeed on the other (retry once),
#     the router marks it down; no worker left: a JSON 502/503
#   - bad flags (exit 2 with the flag named) and bad bodies (4xx with the
#     reason), the worker's own 400s passed through
#   - `sglc serve --dp 2` end to end; SIGTERM leaves no child process
# Needs $SGLC and $SGL_SHARED_DIR (skips with 77 when the model is absent).
set -u
MODEL="${SGL_SHARED_DIR:-/nonexistent}/models/stories260K-hf"
if [ ! -f "$MODEL/config.json" ]; then
    echo "skipped: no stories260K model at $MODEL"
    exit 77
fi
: "${SGLC:?SGLC must name the built sglc}"
TMP=$(mktemp -d /tmp/sglc-router-XXXXXX)
PIDS=()
N_PASS=0
N_FAIL=0

cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

check() {
    local what="$1"; shift
    if "$@"; then N_PASS=$((N_PASS + 1)); echo "ok - $what"
    else N_FAIL=$((N_FAIL + 1)); echo "FAIL - $what"; fi
}
pyassert() { # pyassert JSON_FILE 'python expression on j'
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2" 2>/dev/null
}
# wait_port FILE PID NAME: the port a process wrote to FILE (dies: FAIL)
wait_port() {
    for _ in $(seq 1 600); do
        [ -s "$1" ] && { cat "$1"; return 0; }
        kill -0 "$2" 2>/dev/null || { echo "FAIL: $3 died at start" >&2; cat "$TMP/$3.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "FAIL: $3 did not start" >&2; exit 1
}
# start NAME ARGS...: `sglc ARGS --port 0 --port-file F` in the background;
# sets LAST_PID and LAST_PORT.
start() {
    local name=$1; shift
    "$SGLC" "$@" --port 0 --port-file "$TMP/$name.port" >"$TMP/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    LAST_PORT=$(wait_port "$TMP/$name.port" "$LAST_PID" "$name") || exit 1
}
# post URL BODY [curl args]: status in $ST, body in $J, headers in $H
J="$TMP/out.json"
H="$TMP/headers.txt"
post() {
    local url=$1 body=$2; shift 2
    ST=$(curl -s -o "$J" -D "$H" -w '%{http_code}' -H 'Content-Type: application/json' "$@" \
        --data-binary "$body" "$url")
}
worker_of() { tr -d '\r' <"$H" | sed -n 's/^X-Sglc-Worker: //Ip'; }
# gen_count PORT: generation requests a replica has taken (its own counter)
gen_count() {
    curl -s "http://127.0.0.1:$1/get_server_info" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["http"]["generate_requests"])'
}

start w0 serve --model "$MODEL"; W0_PID=$LAST_PID; W0=http://127.0.0.1:$LAST_PORT; P0=$LAST_PORT
start w1 serve --model "$MODEL"; W1_PID=$LAST_PID; W1=http://127.0.0.1:$LAST_PORT; P1=$LAST_PORT
start router router --worker "$W0" --worker "$W1" --health-interval 0.2 --max-body-bytes 4096
R_PID=$LAST_PID; R=http://127.0.0.1:$LAST_PORT

# --- the same answers as a replica -----------------------------------------
G='{"text": "Once upon a time", "sampling_params": {"max_new_tokens": 16, "temperature": 0}}'
post "$W0/generate" "$G"; cp "$J" "$TMP/direct.json"
post "$R/generate" "$G"
check "/generate through the router: 200" test "$ST" = 200
check "/generate through the router == direct (greedy text and ids)" python3 -c '
import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2]))
sys.exit(0 if a["text"]==b["text"] and a["output_ids"]==b["output_ids"] and len(a["output_ids"])==16 else 1)' "$J" "$TMP/direct.json"
check "the answer names its worker (X-Sglc-Worker)" test -n "$(worker_of)"

C='{"model": "x", "prompt": "The cat sat", "max_tokens": 10, "temperature": 0}'
post "$W1/v1/completions" "$C"; cp "$J" "$TMP/direct_c.json"
post "$R/v1/completions" "$C"
check "/v1/completions through the router == direct" python3 -c '
import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2]))
sys.exit(0 if a["choices"][0]["text"]==b["choices"][0]["text"] and a["usage"]["completion_tokens"]==10 else 1)' "$J" "$TMP/direct_c.json"
CH='{"messages": [{"role": "system", "content": "You tell stories."}, {"role": "user", "content": "Tell me about a dog."}], "max_tokens": 12, "temperature": 0}'
post "$W0/v1/chat/completions" "$CH"; cp "$J" "$TMP/direct_ch.json"
post "$R/v1/chat/completions" "$CH"
check "/v1/chat/completions through the router == direct" python3 -c '
import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2]))
sys.exit(0 if a["choices"][0]["message"]["content"]==b["choices"][0]["message"]["content"] else 1)' "$J" "$TMP/direct_ch.json"

# streaming: native (cumulative text) and chat (deltas)
curl -s -N --data-binary '{"text": "Once upon a time", "stream": true, "sampling_params": {"max_new_tokens": 16, "temperature": 0}}' \
    "$R/generate" >"$TMP/s1.txt"
check "streamed /generate: several events, ends with [DONE], final == direct" python3 -c '
import json,sys
ev=[json.loads(l[6:]) for l in open(sys.argv[1]) if l.startswith("data: {")]
last=[l for l in open(sys.argv[1]) if l.startswith("data:")][-1].strip()
ref=json.load(open(sys.argv[2]))
sys.exit(0 if len(ev)>2 and last=="data: [DONE]" and ev[-1]["text"]==ref["text"] else 1)' "$TMP/s1.txt" "$TMP/direct.json"
curl -s -N --data-binary "${CH%\}}, \"stream\": true}" "$R/v1/chat/completions" >"$TMP/s2.txt"
check "streamed chat deltas add up to the direct answer" python3 -c '
import json,sys
ev=[json.loads(l[6:]) for l in open(sys.argv[1]) if l.startswith("data: {")]
txt="".join(c["delta"].get("content","") for e in ev for c in e["choices"])
ref=json.load(open(sys.argv[2]))["choices"][0]["message"]["content"]
sys.exit(0 if txt==ref and len(ev)>2 else 1)' "$TMP/s2.txt" "$TMP/direct_ch.json"

ST=$(curl -s -o "$J" -w '%{http_code}' "$R/v1/models")
check "/v1/models from a worker" pyassert "$J" 'j["data"][0]["id"]=="stories260K-hf"'
ST=$(curl -s -o /dev/null -w '%{http_code}' "$R/health_generate")
check "/health_generate through the router: 200" test "$ST" = 200
ST=$(curl -s -o /dev/null -w '%{http_code}' "$R/health")
check "/health: 200" test "$ST" = 200

# the remote client of `sglc run --backend` against the router
if [ -n "${SGL_SOURCE_ROOT:-}" ]; then
    "$SGLC" run "$SGL_SOURCE_ROOT/examples/few_shot_qa.sgl" --backend "$R" --temperature 0 \
        --max-tokens-cap 32 --arg question="Who is Lily?" --json >"$TMP/run_r.json" 2>"$TMP/run_r.err"
    "$SGLC" run "$SGL_SOURCE_ROOT/examples/few_shot_qa.sgl" --backend "$W1" --temperature 0 \
        --max-tokens-cap 32 --arg question="Who is Lily?" --json >"$TMP/run_w.json" 2>"$TMP/run_w.err"
    check "sglc run --backend ROUTER == --backend REPLICA" python3 -c '
import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2]))
sys.exit(0 if [a["text"],a["vars"]]==[b["text"],b["vars"]] and a["meta"]["requests"]>0 else 1)' "$TMP/run_r.json" "$TMP/run_w.json"
fi

# --- cache_aware: a shared prefix sticks to one worker ----------------------
SYS_A="You are a storyteller for small children. Every story has a dog named Max, a cat named Lily and a happy ending at the park."
SYS_B="Answer like a sailor from an old ship: short sentences, many waves, the wind and the sea, and never any numbers at all."
group() { # group SYS N: sends N prompts sharing SYS; prints the workers, one per line
    for i in $(seq 1 "$2"); do
        post "$R/generate" "{\"text\": \"$1 Question $i: what happened next?\", \"sampling_params\": {\"max_new_tokens\": 4, \"temperature\": 0}}"
        [ "$ST" = 200 ] && worker_of
    done
}
a0=$(gen_count "$P0"); b0=$(gen_count "$P1")
group "$SYS_A" 6 >"$TMP/ga.txt"
a1=$(gen_count "$P0"); b1=$(gen_count "$P1")
group "$SYS_B" 6 >"$TMP/gb.txt"
a2=$(gen_count "$P0"); b2=$(gen_count "$P1")
check "cache_aware: group A's 6 prompts all on one worker" test "$(sort -u "$TMP/ga.txt" | wc -l)" = 1 -a "$(wc -l <"$TMP/ga.txt")" = 6
check "cache_aware: group B's 6 prompts all on one worker" test "$(sort -u "$TMP/gb.txt" | wc -l)" = 1 -a "$(wc -l <"$TMP/gb.txt")" = 6
check "the replicas' own counters agree (6+0 and 6+0)" test "$(( (a1 - a0) * (b1 - b0) ))" = 0 -a "$(( a1 - a0 + b1 - b0 ))" = 6 \
    -a "$(( (a2 - a1) * (b2 - b1) ))" = 0 -a "$(( a2 - a1 + b2 - b1 ))" = 6
curl -s "$R/metrics" >"$TMP/metrics.txt"
check "router /metrics: per-worker counts, in-flight, prefix hit ratio" python3 -c '
import sys
m={}
for l in open(sys.argv[1]):
    if l.startswith("sglang_router:"): k,v=l.rsplit(" ",1); m[k]=float(v)
req=[v for k,v in m.items() if k.startswith("sglang_router:requests_total{")]
inf=[v for k,v in m.items() if k.startswith("sglang_router:inflight{")]
sys.exit(0 if len(req)==2 and sum(req)>=18 and inf==[0,0] and m["sglang_router:prefix_hit_ratio"]>0.5 else 1)' "$TMP/metrics.txt"

# --- bad bodies and paths ----------------------------------------------------
post "$R/generate" '{"text": "a", '
check "invalid JSON: 400 with line and column" pyassert "$J" 'j["error"]["code"]==400 and "line 1 column" in j["error"]["message"]'
post "$R/v1/completions" '[1, 2]'
check "a non-object body: 400" test "$ST" = 400
post "$R/generate" '{"text": "a", "sampling_params": {"top_p": 1.5}}'
check "the worker's 400 passes through, naming top_p" pyassert "$J" 'j["error"]["code"]==400 and "top_p" in j["error"]["message"]'
post "$R/generate" "{\"text\": \"$(head -c 5000 /dev/zero | tr '\0' a)\"}"
check "a body over --max-body-bytes: 413" test "$ST" = 413
ST=$(curl -s -o "$J" -w '%{http_code}' "$R/nope")
check "unknown path: 404" test "$ST" = 404
ST=$(curl -s -o "$J" -w '%{http_code}' "$R/generate")
check "GET /generate: 405 JSON" pyassert "$J" 'j["error"]["code"]==405'

# --- bad flags ---------------------------------------------------------------
bad_flag() { # bad_flag WORD-IN-MESSAGE ARGS...: exit 2 and the message names it
    local want=$1; shift
    "$SGLC" "$@" >/dev/null 2>"$TMP/flag.err"
    local rc=$?
    [ "$rc" = 2 ] && grep -q -- "$want" "$TMP/flag.err"
}
check "router without --worker: exit 2" bad_flag "--worker" router --port 0
check "router --worker ftp://x: exit 2" bad_flag "http://HOST:PORT" router --worker ftp://x
check "router --policy bogus: exit 2 naming the policies" bad_flag "cache_aware" router --worker "$W0" --policy bogus
check "router --cache-threshold 2: exit 2" bad_flag "--cache-threshold" router --worker "$W0" --cache-threshold 2
check "router --balance-abs -1: exit 2" bad_flag "--balance-abs" router --worker "$W0" --balance-abs -1
check "router --frobnicate: exit 2" bad_flag "--frobnicate" router --worker "$W0" --frobnicate
check "serve --dp 0: exit 2" bad_flag "--dp" serve --model "$MODEL" --dp 0
check "serve --dp 2 --router-policy x: exit 2" bad_flag "--router-policy" serve --model "$MODEL" --dp 2 --router-policy x
dp_tp_short() { CUDA_VISIBLE_DEVICES=0,1,2 bad_flag "CUDA_VISIBLE_DEVICES" serve --model "$MODEL" --dp 2 --tp 2 --device cuda --port 0; }
check "serve --dp 2 --tp 2 over 3 listed GPUs: exit 2 naming CUDA_VISIBLE_DEVICES" dp_tp_short

# --- round_robin and the API key ---------------------------------------------
start rr router --worker "$W0" --worker "$W1" --policy round_robin --api-key sekret
RR_PID=$LAST_PID; RR=http://127.0.0.1:$LAST_PORT
post "$RR/generate" "$G"
check "router --api-key: no key -> 401" test "$ST" = 401
: >"$TMP/rr.txt"
for i in 1 2 3 4; do post "$RR/generate" "$G" -H 'Authorization: Bearer sekret'; worker_of >>"$TMP/rr.txt"; done
check "round_robin alternates the two workers (same prompt 4 times)" python3 -c '
import sys; w=[l.strip() for l in open(sys.argv[1])]
sys.exit(0 if len(w)==4 and w[0]!=w[1] and w[0]==w[2] and w[1]==w[3] else 1)' "$TMP/rr.txt"
kill -TERM "$RR_PID"; wait "$RR_PID"; rc=$?
check "router exits 0 after SIGTERM (rc $rc)" test "$rc" = 0

# --- a client that leaves: the worker aborts its request --------------------------
# (a slow replica: the SmolLM2-135M shape with random weights, ~30 tokens/s)
SLOW="${SGL_SHARED_DIR}/models/smollm2-135m-tokenizer"
if [ -f "$SLOW/config.json" ]; then
    start w3 serve --model "$SLOW" --load-format dummy --threads 1; W3_PID=$LAST_PID; P3=$LAST_PORT
    start dis router --worker "http://127.0.0.1:$P3"; DIS_PID=$LAST_PID; DIS=http://127.0.0.1:$LAST_PORT
    LONG='"text": "Once upon a time", "sampling_params": {"max_new_tokens": 400, "ignore_eos": true}'
    n_ev=$(curl -s -N --max-time 1 --data-binary "{$LONG, \"stream\": true}" "$DIS/generate" | grep -c '^data: {')
    curl -s --max-time 1 --data-binary "{$LONG}" "$DIS/generate" >/dev/null
    aborted=0
    for _ in $(seq 1 40); do
        aborted=$(curl -s "http://127.0.0.1:$P3/get_server_info" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["engine"]["requests_aborted"] if j["num_running_reqs"]==0 else -1)')
        [ "$aborted" = 2 ] && break
        sleep 0.1
    done
    check "streamed events arrived before the client left ($n_ev)" test "$n_ev" -gt 0
    check "clients that leave (streamed and not) abort their requests on the worker" test "$aborted" = 2
    curl -s "$DIS/metrics" >"$TMP/dis.txt"
    check "... and the router has nothing in flight" grep -q '^sglang_router:inflight{.*} 0$' "$TMP/dis.txt"
    kill -TERM "$DIS_PID" "$W3_PID"; wait "$DIS_PID" "$W3_PID"
else
    echo "skip - client disconnects (no $SLOW)"
fi

# --- a worker dies -------------------------------------------------------------
# no health probes in this router (--health-interval 3600): the request that
# finds the dead worker is retried on the other one
start w2 serve --model "$MODEL"; W2_PID=$LAST_PID; W2=http://127.0.0.1:$LAST_PORT
start dead router --worker "$W2" --worker "$W1" --policy round_robin --health-interval 3600
D_PID=$LAST_PID; D=http://127.0.0.1:$LAST_PORT
kill -KILL "$W2_PID"; wait "$W2_PID" 2>/dev/null
ok=0
for i in 1 2 3 4; do post "$D/generate" "$G"; [ "$ST" = 200 ] && ok=$((ok + 1)); done
check "a killed worker: all 4 requests still answered (by the other)" test "$ok" = 4
curl -s "$D/metrics" >"$TMP/dm.txt"
check "the dead worker is marked down and one request was retried" python3 -c '
import sys
m={l.rsplit(" ",1)[0]: float(l.rsplit(" ",1)[1]) for l in open(sys.argv[1]) if l.startswith("sglang_router:")}
sys.exit(0 if m["sglang_router:worker_healthy{worker=\"%s\"}"%sys.argv[2]]==0 and m["sglang_router:retries_total"]==1 else 1)' "$TMP/dm.txt" "$W2"
curl -s -N --data-binary '{"text": "Once upon a time", "stream": true, "sampling_params": {"max_new_tokens": 8, "temperature": 0}}' \
    "$D/generate" >"$TMP/s3.txt"
check "streaming still works with one worker down" test "$(grep '^data:' "$TMP/s3.txt" | tail -1)" = "data: [DONE]"
kill -KILL "$W1_PID"; wait "$W1_PID" 2>/dev/null
post "$D/generate" "$G"
check "no worker left: a JSON 502/503 naming the reason" pyassert "$J" 'j["error"]["code"] in (502,503) and ("worker" in j["error"]["message"])'
post "$D/generate" "$G"
check "... and again, with both marked down: 503 no healthy worker" pyassert "$J" 'j["error"]["code"]==503 and "no healthy worker" in j["error"]["message"]'
ST=$(curl -s -o /dev/null -w '%{http_code}' "$D/health")
check "router /health: 503 with no healthy worker" test "$ST" = 503
kill -TERM "$D_PID"; wait "$D_PID"; rc=$?
check "router exits 0 after SIGTERM (rc $rc)" test "$rc" = 0
kill -TERM "$R_PID"; wait "$R_PID"; rc=$?
check "the first router exits 0 after SIGTERM (rc $rc)" test "$rc" = 0

# --- sglc serve --dp 2 -----------------------------------------------------------
start dp serve --model "$MODEL" --dp 2
DP_PID=$LAST_PID; DP=http://127.0.0.1:$LAST_PORT
KIDS=$(pgrep -P "$DP_PID" | tr '\n' ' ')
check "serve --dp 2 runs two replica processes" test "$(echo $KIDS | wc -w)" = 2
post "$DP/generate" "$G"
check "serve --dp 2: /generate == a single server's answer" python3 -c '
import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2]))
sys.exit(0 if a["output_ids"]==b["output_ids"] else 1)' "$J" "$TMP/direct.json"
post "$DP/v1/chat/completions" "$CH"
check "serve --dp 2: chat == direct" python3 -c '
import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2]))
sys.exit(0 if a["choices"][0]["message"]["content"]==b["choices"][0]["message"]["content"] else 1)' "$J" "$TMP/direct_ch.json"
curl -s "$DP/get_server_info" >"$J"
check "serve --dp 2: the router sees 2 healthy workers, cache_aware" pyassert "$J" 'j["policy"]=="cache_aware" and [w["healthy"] for w in j["workers"]]==[True,True]'
kill -TERM "$DP_PID"; wait "$DP_PID"; rc=$?
check "serve --dp 2 exits 0 after SIGTERM (rc $rc)" test "$rc" = 0
alive=0
for k in $KIDS; do kill -0 "$k" 2>/dev/null && alive=$((alive + 1)); done
check "no replica process is left" test "$alive" = 0 -a -z "$(pgrep -P "$DP_PID")"
"$SGLC" serve --model /nonexistent --dp 2 --port 0 >/dev/null 2>"$TMP/dpfail.err"; rc=$?
check "serve --dp with a bad model: exit 1 naming the replica" test "$rc" = 1 -a -n "$(grep 'replica .* exited during startup' "$TMP/dpfail.err")"

echo "$N_PASS passed, $N_FAIL failed"
[ "$N_FAIL" -eq 0 ]
