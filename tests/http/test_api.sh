#!/usr/bin/env bash
# test_api.sh -- a real `sglc serve` (stories260K) driven with curl: every
# SGLang native endpoint, the OpenAI endpoints, streaming, constraints,
# errors (4xx with the field named), the API key, and the official `openai`
# npm client (openai_client.mjs) when tests/http/node_modules is installed
# (scripts/setup.sh runs `npm ci` there).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

start_server --api-key sekret --served-model-name tiny
AUTH="Authorization: Bearer sekret"
J="$TMP/out.json"
post() { # post PATH BODY -> status in $ST, body in $J
    ST=$(curl -s -o "$J" -w '%{http_code}' -H "$AUTH" -H 'Content-Type: application/json' \
        --data-binary "$2" "$BASE$1")
}
get() { ST=$(curl -s -o "$J" -w '%{http_code}' -H "$AUTH" "$BASE$1"); }

# health and info
ST=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")
check "/health is open without the key" test "$ST" = 200
ST=$(curl -s -o "$J" -w '%{http_code}' "$BASE/get_model_info")
check "no key: 401" test "$ST" = 401
ST=$(curl -s -o "$J" -w '%{http_code}' -H 'Authorization: Bearer sekreT' "$BASE/get_model_info")
check "wrong key: 401" test "$ST" = 401
get /get_model_info
check "/get_model_info" pyassert "$J" 'j["served_model_name"]=="tiny" and j["context_length"]==512 and j["is_generation"]'
get /health_generate
check "/health_generate 200" test "$ST" = 200

# /generate greedy: text and the same prompt as input_ids agree
post /generate '{"text": "Once upon a time", "sampling_params": {"max_new_tokens": 12, "temperature": 0}}'
check "/generate text 200" test "$ST" = 200
cp "$J" "$TMP/g1.json"
check "/generate response shape" pyassert "$J" 'len(j["output_ids"])==12 and j["meta_info"]["finish_reason"]["type"]=="length" and j["meta_info"]["completion_tokens"]==12 and j["meta_info"]["prompt_tokens"]>0 and isinstance(j["text"],str) and len(j["text"])>0 and "e2e_latency" in j["meta_info"] and "id" in j["meta_info"]'
post /generate '{"text": "Once upon a time", "return_logprob": true, "logprob_start_len": 0, "sampling_params": {"max_new_tokens": 0}}'
check "prefill-only request (max_new_tokens 0) returns prompt logprobs" pyassert "$J" 'j["output_ids"]==[] and len(j["meta_info"]["input_token_logprobs"])==j["meta_info"]["prompt_tokens"]'
IDS=$(python3 -c 'import json,sys; print(json.dumps([e[1] for e in json.load(open(sys.argv[1]))["meta_info"]["input_token_logprobs"]]))' "$J")
post /generate "{\"input_ids\": $IDS, \"sampling_params\": {\"max_new_tokens\": 12, \"temperature\": 0}}"
check "/generate input_ids == text (greedy)" python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(0 if a["output_ids"]==b["output_ids"] and a["text"]==b["text"] else 1)' "$J" "$TMP/g1.json"
check "the same prompt again hits the radix cache" pyassert "$J" 'j["meta_info"]["cached_tokens"]>0'
# batch and n
post /generate '{"text": ["Once upon a time", "The cat"], "sampling_params": {"max_new_tokens": 5, "temperature": 0}}'
check "/generate batch -> list of 2" pyassert "$J" 'isinstance(j,list) and len(j)==2 and all(len(x["output_ids"])==5 for x in j)'
post /generate '{"text": "The dog", "sampling_params": {"max_new_tokens": 5, "n": 3, "seed": 7}}'
check "/generate n=3 -> list of 3" pyassert "$J" 'isinstance(j,list) and len(j)==3'
# logprobs
post /generate '{"text": "Once upon a time", "return_logprob": true, "logprob_start_len": 0, "top_logprobs_num": 2, "sampling_params": {"max_new_tokens": 3, "temperature": 0}}'
check "/generate logprobs" pyassert "$J" 'len(j["meta_info"]["output_token_logprobs"])==3 and all(e[0]<=0 for e in j["meta_info"]["output_token_logprobs"]) and len(j["meta_info"]["output_top_logprobs"][0])==2 and j["meta_info"]["input_token_logprobs"][0][0] is None and len(j["meta_info"]["input_token_logprobs"])==j["meta_info"]["prompt_tokens"] and j["meta_info"]["output_top_logprobs"][0][0][1]==j["output_ids"][0]'
# stop strings
post /generate '{"text": "Once upon a time", "sampling_params": {"max_new_tokens": 30, "temperature": 0, "stop": ["girl"]}}'
check "/generate stop string" pyassert "$J" 'j["meta_info"]["finish_reason"]=={"type":"stop","matched":"girl"} and "girl" not in j["text"]'
# constraints
post /generate '{"text": "Her age is", "sampling_params": {"max_new_tokens": 10, "regex": "[0-9]{2}"}}'
check "/generate regex" pyassert "$J" '__import__("re").fullmatch("[0-9]{2}", j["text"]) is not None'
post /generate '{"text": "Tom", "sampling_params": {"max_new_tokens": 150, "temperature": 0, "json_schema": "{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\", \"maxLength\": 10}, \"age\": {\"type\": \"integer\"}}, \"required\": [\"name\", \"age\"]}"}}'
check "/generate json_schema -> valid JSON with the keys" pyassert "$J" 'set(json.loads(j["text"]).keys())=={"name","age"}' || cat "$J"
# streaming: cumulative text, finish in the last event, [DONE]
curl -s -N -H "$AUTH" --data-binary '{"text": "Once upon a time", "stream": true, "sampling_params": {"max_new_tokens": 12, "temperature": 0}}' "$BASE/generate" >"$TMP/stream.txt"
check "/generate stream ends with [DONE]" test "$(grep '^data:' "$TMP/stream.txt" | tail -1)" = "data: [DONE]"
check "/generate stream: cumulative text, final == non-streamed" python3 -c '
import json,sys
ev=[json.loads(l[6:]) for l in open(sys.argv[1]) if l.startswith("data: {")]
ref=json.load(open(sys.argv[2]))
texts=[e["text"] for e in ev]
ok=all(texts[i+1].startswith(texts[i]) for i in range(len(texts)-1))
ok=ok and ev[-1]["text"]==ref["text"] and ev[-1]["meta_info"]["finish_reason"]["type"]=="length" and ev[0]["meta_info"]["finish_reason"] is None
sys.exit(0 if ok else 1)' "$TMP/stream.txt" "$TMP/g1.json"

# validation errors name the field
post /generate '{"text": "a", "sampling_params": {"top_p": 1.5}}'
check "bad top_p: 400 naming the field" pyassert "$J" 'j["error"]["code"]==400 and "top_p" in j["error"]["message"]'
test "$ST" = 400 || echo "   got $ST"
post /generate '{"text": "a", "sampling_params": {"regex": "(ab"}}'
check "bad regex: 400" test "$ST" = 400
post /generate '{"text": "a", "sampling_params": {"max_new_tokens": 600}}'
check "max_new_tokens past the context: 400" test "$ST" = 400
ST=$(curl -s -o "$J" -w '%{http_code}' -H "$AUTH" "$BASE/generate")
check "GET /generate: 405" test "$ST" = 405
get /nope
check "unknown path: 404" test "$ST" = 404
head -c 9000000 /dev/zero | tr '\0' 'a' >"$TMP/big"
ST=$(curl -s -o "$J" -w '%{http_code}' -H "$AUTH" --data-binary @"$TMP/big" "$BASE/generate")
check "9 MB body: 413" test "$ST" = 413

# OpenAI endpoints (curl)
get /v1/models
check "/v1/models" pyassert "$J" 'j["object"]=="list" and j["data"][0]["id"]=="tiny"'
post /v1/completions '{"model": "tiny", "prompt": "Once upon a time", "max_tokens": 6, "temperature": 0, "logprobs": 2}'
check "/v1/completions" pyassert "$J" 'j["object"]=="text_completion" and j["choices"][0]["finish_reason"]=="length" and j["usage"]["completion_tokens"]==6 and "cached_tokens" in j["usage"]["prompt_tokens_details"] and len(j["choices"][0]["logprobs"]["tokens"])==6 and len(j["choices"][0]["logprobs"]["top_logprobs"][0])==2'
post /v1/completions '{"model": "tiny", "prompt": ["Once", "The cat"], "n": 2, "max_tokens": 3}'
check "/v1/completions 2 prompts x n=2 -> 4 choices" pyassert "$J" '[c["index"] for c in j["choices"]]==[0,1,2,3]'
post /v1/completions '{"model": "tiny", "prompt": "Once", "max_tokens": 3, "echo": true, "temperature": 0}'
check "/v1/completions echo" pyassert "$J" 'j["choices"][0]["text"].startswith("Once")'
post /v1/chat/completions '{"model": "tiny", "messages": [{"role": "system", "content": "You tell stories."}, {"role": "user", "content": "Tell me one."}], "max_tokens": 8, "logprobs": true, "top_logprobs": 2}'
check "/v1/chat/completions" pyassert "$J" 'j["object"]=="chat.completion" and j["choices"][0]["message"]["role"]=="assistant" and len(j["choices"][0]["logprobs"]["content"])==j["usage"]["completion_tokens"] and len(j["choices"][0]["logprobs"]["content"][0]["top_logprobs"])==2'
post /v1/chat/completions '{"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 150, "temperature": 0, "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8}, "ok": {"type": "boolean"}}, "required": ["name", "ok"]}}}}'
check "chat response_format json_schema" pyassert "$J" 'set(json.loads(j["choices"][0]["message"]["content"]).keys())=={"name","ok"}' || cat "$J"
post /v1/chat/completions '{"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 40, "regex": "(yes|no)"}'
check "chat regex extra" pyassert "$J" 'j["choices"][0]["message"]["content"] in ("yes","no")'
curl -s -N -H "$AUTH" --data-binary '{"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, "stream": true, "stream_options": {"include_usage": true}}' "$BASE/v1/chat/completions" >"$TMP/cs.txt"
check "chat stream: role first, usage chunk, [DONE]" python3 -c '
import json,sys
ls=[l[6:].strip() for l in open(sys.argv[1]) if l.startswith("data: ")]
ev=[json.loads(l) for l in ls[:-1]]
ok=ls[-1]=="[DONE]" and ev[0]["choices"][0]["delta"].get("role")=="assistant"
ok=ok and ev[-1]["choices"]==[] and ev[-1]["usage"]["completion_tokens"]==5
ok=ok and any(e["choices"] and e["choices"][0]["finish_reason"]=="length" for e in ev)
sys.exit(0 if ok else 1)' "$TMP/cs.txt"
post /v1/chat/completions '{"model": "tiny", "messages": [{"role": "pirate", "content": "Hi"}]}'
check "chat bad role: 400 OpenAI error" pyassert "$J" 'j["error"]["code"]==400 and j["error"]["param"]=="messages"'

# metrics, abort, flush
get /get_server_info
check "/get_server_info" pyassert "$J" 'j["num_running_reqs"]==0 and j["http"]["requests"]>10 and "cache_hit_rate" in j and "gen_throughput" in j'
get /metrics
check "/metrics (Prometheus)" grep -q '^sglang:num_running_reqs{model_name="tiny"} 0' "$J"
# 128 samples x 500 tokens: long enough that the abort lands while it runs
curl -s -N -H "$AUTH" --data-binary '{"text": "Once", "rid": "long-one", "stream": true, "sampling_params": {"max_new_tokens": 500, "ignore_eos": true, "n": 128}}' "$BASE/generate" >"$TMP/ab.txt" &
CURL=$!
for _ in $(seq 1 200); do
    post /abort_request '{"rid": "long-one"}'
    pyassert "$J" 'j["aborted"]==1' && break
done
wait $CURL
check "/abort_request ends the stream with finish abort" python3 -c '
import json,sys
ev=[json.loads(l[6:]) for l in open(sys.argv[1]) if l.startswith("data: {")]
sys.exit(0 if ev and ev[-1]["meta_info"]["finish_reason"]["type"]=="abort" else 1)' "$TMP/ab.txt"
post /flush_cache ''
check "/flush_cache 200" test "$ST" = 200
get /get_server_info
check "pool fully free after flush" pyassert "$J" 'j["engine"]["pool_free_pages"]==j["engine"]["pool_pages"]'

# sglc run --backend: the same programs, in-process and through this server,
# give the same text and variables (greedy; select, regex/typed constraints,
# roles and prefix prefills all go over HTTP)
run_both() { # run_both EXAMPLE ARGS...
    local f=$1; shift
    SGLC_API_KEY=sekret "$SGLC" run "$SGL_SOURCE_ROOT/examples/$f" --backend "$BASE" --temperature 0 \
        --max-tokens-cap 64 "$@" --json >"$TMP/remote.json" 2>"$TMP/remote.err"
    "$SGLC" run "$SGL_SOURCE_ROOT/examples/$f" --model "$MODEL" --temperature 0 \
        --max-tokens-cap 64 "$@" --json >"$TMP/local.json" 2>"$TMP/local.err"
    python3 -c '
import json,sys
a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2]))
ok=[a["text"],a["vars"]]==[b["text"],b["vars"]] and a["meta"]["requests"]>0
if not ok: print("   remote:", json.dumps(a)[:600]); print("   local: ", json.dumps(b)[:600])
sys.exit(0 if ok else 1)' "$TMP/remote.json" "$TMP/local.json" || { head -c 600 "$TMP/remote.err" "$TMP/local.err"; false; }
}
if [ -n "${SGL_SOURCE_ROOT:-}" ]; then
    check "run --backend == in-process: few_shot_qa" run_both few_shot_qa.sgl --arg question="Who is Lily?"
    check "run --backend == in-process: hellaswag_select (3 select methods)" run_both hellaswag_select.sgl \
        --arg context="Lily went to the park" --arg endings='["and played.", "and the sky.", "and slept."]'
    check "run --backend == in-process: json_regex_fields (regex constraints)" run_both json_regex_fields.sgl --arg document="Tom is 5"
    check "run --backend == in-process: multi_turn_chat (roles)" run_both multi_turn_chat.sgl --arg first=Hi --arg second=Bye
    check "run --backend == in-process: json_typed (typed output)" run_both json_typed.sgl --arg name=Tom --max-tokens-cap 200
    SGLC_API_KEY=wrong "$SGLC" run "$SGL_SOURCE_ROOT/examples/few_shot_qa.sgl" --backend "$BASE" --arg question=Hi >/dev/null 2>"$TMP/err"
    check "run --backend with a wrong key: exit 1 naming HTTP 401" grep -q "HTTP 401" "$TMP/err"
fi

# the official OpenAI client
if [ -d "$HERE/node_modules/openai" ] && command -v node >/dev/null; then
    if SGLC_BASE="$BASE/v1" SGLC_KEY=sekret node "$HERE/openai_client.mjs"; then
        check "openai npm client" true
    else
        check "openai npm client" false
    fi
else
    echo "skipped: openai npm client (run scripts/setup.sh: npm ci in tests/http)"
fi

stop_server
finish
