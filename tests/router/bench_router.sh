#!/usr/bin/env bash
# bench_router.sh -- the shared-prefix workload through `sglc router`, one
# run per policy, each on freshly started replicas (cold caches).
#
#   tests/router/bench_router.sh [policy ...]        (default: cache_aware round_robin)
#
# Settings (environment):
#   SGLC          the sglc binary (default build/sglc)
#   REPLICA_CMD   command starting one replica; the script appends
#                 `--port 0 --port-file FILE` (default:
#                 "$SGLC serve --model ../shared/models/stories260K-hf")
#   REPLICAS      number of replicas (2)
#   GPU_PER_REPLICA=1   replica i runs with CUDA_VISIBLE_DEVICES=i
#   N_GROUPS, PER_GROUP G groups x M prompts (16 x 8)
#   PREFIX_WORDS  words in each group's system prompt (88: ~256 tokens of
#                 stories260K's tokenizer; prompt_tokens is reported)
#   OUTPUT_LEN    max_new_tokens, with ignore_eos (32)
#   CONCURRENCY   requests in flight (8)
#   ROUTER_ARGS   extra `sglc router` flags
# Prompts: group g's system prompt (distinct from its first word on) + a
# short question; all G*M requests shuffled with a fixed seed. Reported per
# policy: wall time, req/s, output tok/s, the CPU time the replica processes
# spent on the workload (user + system, from /proc/PID/stat before and after:
# on a shared machine the wall clock depends on the neighbours, this much
# less), the replicas' prefix-cache hit rate (sum sglang:cached_tokens_total
# / sum sglang:prompt_tokens_total over the replicas' /metrics, i.e. what the
# engines really reused), the router's own prefix-match ratio, and the
# requests each worker took.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SGLC=${SGLC:-$ROOT/build/sglc}
REPLICA_CMD=${REPLICA_CMD:-"$SGLC serve --model $ROOT/../shared/models/stories260K-hf"}
REPLICAS=${REPLICAS:-2}
N_GROUPS=${N_GROUPS:-16}
PER_GROUP=${PER_GROUP:-8}
PREFIX_WORDS=${PREFIX_WORDS:-88}
OUTPUT_LEN=${OUTPUT_LEN:-32}
CONCURRENCY=${CONCURRENCY:-8}
ROUTER_ARGS=${ROUTER_ARGS:-}
POLICIES=("$@")
[ ${#POLICIES[@]} -gt 0 ] || POLICIES=(cache_aware round_robin)
TMP=$(mktemp -d /tmp/sglc-bench-router-XXXXXX)
PIDS=()

stop_all() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    PIDS=()
}
trap 'stop_all; rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM

wait_port() { # wait_port FILE PID LOG
    for _ in $(seq 1 6000); do
        [ -s "$1" ] && { cat "$1"; return 0; }
        kill -0 "$2" 2>/dev/null || { echo "bench_router: a process died at start:" >&2; tail -5 "$3" >&2; return 1; }
        sleep 0.1
    done
    echo "bench_router: start timed out" >&2
    return 1
}

printf '| policy | requests | wall s | req/s | output tok/s | replica CPU s | mean prompt tokens | engine cache hit rate | router prefix match | requests per worker |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n'
for policy in "${POLICIES[@]}"; do
    WORKERS=()
    WPIDS=()
    for i in $(seq 0 $((REPLICAS - 1))); do
        rm -f "$TMP/w$i.port"
        if [ "${GPU_PER_REPLICA:-0}" = 1 ]; then
            CUDA_VISIBLE_DEVICES=$i $REPLICA_CMD --port 0 --port-file "$TMP/w$i.port" >"$TMP/w$i.log" 2>&1 &
        else
            $REPLICA_CMD --port 0 --port-file "$TMP/w$i.port" >"$TMP/w$i.log" 2>&1 &
        fi
        PIDS+=($!)
        WPIDS+=($!)
        port=$(wait_port "$TMP/w$i.port" $! "$TMP/w$i.log") || exit 1
        WORKERS+=("http://127.0.0.1:$port")
    done
    args=()
    for w in "${WORKERS[@]}"; do args+=(--worker "$w"); done
    rm -f "$TMP/r.port"
    # shellcheck disable=SC2086
    "$SGLC" router "${args[@]}" --policy "$policy" $ROUTER_ARGS --port 0 --port-file "$TMP/r.port" \
        >"$TMP/router.log" 2>&1 &
    PIDS+=($!)
    rport=$(wait_port "$TMP/r.port" $! "$TMP/router.log") || exit 1
    REPLICA_PIDS="${WPIDS[*]}" python3 - "$policy" "http://127.0.0.1:$rport" "$N_GROUPS" "$PER_GROUP" "$PREFIX_WORDS" \
        "$OUTPUT_LEN" "$CONCURRENCY" "${WORKERS[@]}" <<'EOF' || exit 1
import json, os, random, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
policy, router = sys.argv[1], sys.argv[2]
G, M, W, OUT, C = (int(x) for x in sys.argv[3:8])
workers = sys.argv[8:]
words = ("little girl boy dog cat park tree sun rain happy sad big small red blue green "
         "ball toy friend mom dad house garden flower bird fish sky cloud wind play run "
         "jump sing dance cake apple milk bed night day school book story car boat").split()
rng = random.Random(1234)
prompts = []
for g in range(G):
    r = random.Random(g)
    system = "Story %d. " % g + " ".join(r.choice(words) for _ in range(W)) + "."
    for m in range(M):
        prompts.append(system + " Question %d: what did they do next?" % m)
rng.shuffle(prompts)

def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as f:
        return json.load(f), f.headers.get("X-Sglc-Worker")

def one(p):
    j, w = post(router + "/generate", {"text": p, "sampling_params": {
        "max_new_tokens": OUT, "temperature": 0, "ignore_eos": True}})
    return j["meta_info"], w

def metrics(url):
    m = {}
    with urllib.request.urlopen(url + "/metrics", timeout=60) as f:
        for line in f.read().decode().splitlines():
            if line.startswith("sglang:"):
                k, v = line.rsplit(" ", 1)
                m[k.split("{")[0]] = float(v)
    return m

def cpu_s():
    """user + system seconds of the replica processes (None if not local)"""
    total = 0
    for pid in os.environ.get("REPLICA_PIDS", "").split():
        try:
            f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += int(f[11]) + int(f[12])
    return total / os.sysconf("SC_CLK_TCK")

c0 = cpu_s()
t0 = time.monotonic()
with ThreadPoolExecutor(C) as ex:
    res = list(ex.map(one, prompts))
wall = time.monotonic() - t0
c1 = cpu_s()
cpu = "%.1f" % (c1 - c0) if c0 is not None and c1 is not None else "n/a"
out_tok = sum(r[0]["completion_tokens"] for r in res)
prompt_tok = sum(r[0]["prompt_tokens"] for r in res)
ms = [metrics(w) for w in workers]
cached = sum(m["sglang:cached_tokens_total"] for m in ms)
prompted = sum(m["sglang:prompt_tokens_total"] for m in ms)
with urllib.request.urlopen(router + "/get_server_info", timeout=60) as f:
    info = json.load(f)
per = "/".join(str(w["requests"]) for w in info["workers"])
print("| %s | %d | %.2f | %.2f | %.1f | %s | %.0f | %.3f | %.3f | %s |" % (
    policy, len(res), wall, len(res) / wall, out_tok / wall, cpu, prompt_tok / len(res),
    cached / prompted if prompted else 0.0, info["prefix_hit_ratio"], per))
EOF
    stop_all
done
