/* metrics.c -- server counters: /get_server_info (JSON) and /metrics
 * (Prometheus text exposition format 0.0.4).
 *
 * Engine numbers come from one sgl_engine_stats snapshot per call; HTTP
 * numbers from SrvCounters (atomics, updated by the handlers). Generation
 * throughput is the engine's generated-token count over a sliding sample of
 * at least one second, refreshed whenever a job ends or metrics are read.
 */
#include <stdio.h>
#include <stdlib.h>

#include "backend/server/srv_int.h"

void metrics_tick(Srv *s)
{
    SglEngineStats st = sgl_engine_stats(s->engine);
    double now = srv_now();
    pthread_mutex_lock(&s->rate_mu);
    if (now - s->rate_t >= 1.0) {
        s->rate_tps = (double)(st.generated_tokens - s->rate_tokens) / (now - s->rate_t);
        s->rate_t = now;
        s->rate_tokens = st.generated_tokens;
    }
    pthread_mutex_unlock(&s->rate_mu);
}

static double tps(Srv *s)
{
    metrics_tick(s);
    pthread_mutex_lock(&s->rate_mu);
    double r = s->rate_tps;
    pthread_mutex_unlock(&s->rate_mu);
    return r;
}

void api_server_info(SrvCall *c)
{
    Srv *s = c->s;
    SglEngineStats st = sgl_engine_stats(s->engine);
    json_t *eng = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f}",
        "steps", (json_int_t)st.steps, "prefill_tokens", (json_int_t)st.prefill_tokens,
        "decode_tokens", (json_int_t)st.decode_tokens, "generated_tokens",
        (json_int_t)st.generated_tokens, "cached_tokens", (json_int_t)st.cached_tokens,
        "requests_finished", (json_int_t)st.requests_finished, "requests_aborted",
        (json_int_t)st.requests_aborted, "retractions", (json_int_t)st.retractions,
        "pool_pages", (int)st.pool_pages, "pool_free_pages", (int)st.pool_free_pages,
        "page_size", (int)st.page_size, "cache_tokens", (int)st.cache_tokens,
        "cache_evictable_tokens", (int)st.cache_evictable_tokens, "cache_protected_tokens",
        (int)st.cache_protected_tokens, "integrity_failures", (int)st.integrity_failures,
        "cache_hit_rate", st.cache_hit_rate);
    json_t *http = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i}", "requests",
        (json_int_t)atomic_load(&s->c.http_requests), "errors_4xx",
        (json_int_t)atomic_load(&s->c.http_errors_4xx), "errors_5xx",
        (json_int_t)atomic_load(&s->c.http_errors_5xx), "disconnects",
        (json_int_t)atomic_load(&s->c.disconnects), "generate_requests",
        (json_int_t)atomic_load(&s->c.gen_requests), "prompt_tokens",
        (json_int_t)atomic_load(&s->c.prompt_tokens), "completion_tokens",
        (json_int_t)atomic_load(&s->c.completion_tokens), "cached_tokens",
        (json_int_t)atomic_load(&s->c.cached_tokens), "inflight", atomic_load(&s->c.inflight));
    /* pool pages held by requests (not by the cache): 0 when idle */
    int32_t held = st.pool_pages - st.pool_free_pages -
                   (st.page_size > 0 ? (st.cache_tokens + st.page_size - 1) / st.page_size : 0);
    json_t *o = json_pack("{s:s, s:s, s:i, s:f, s:i, s:i, s:f, s:f, s:i, s:o, s:o}", "model_path",
                          s->o.model_dir ? s->o.model_dir : "", "served_model_name", s->model_name,
                          "port", s->port, "uptime_s", srv_now() - s->t_start, "num_running_reqs",
                          (int)st.running, "num_queued_reqs", (int)st.queued, "cache_hit_rate",
                          st.cache_hit_rate, "gen_throughput", tps(s), "kv_pages_in_use",
                          held < 0 ? 0 : (int)held, "engine", eng ? eng : json_object(), "http",
                          http ? http : json_object());
    call_json(c, 200, o);
}

void api_metrics(SrvCall *c)
{
    Srv *s = c->s;
    SglEngineStats st = sgl_engine_stats(s->engine);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        call_error(c, 500, NULL, "out of memory");
        return;
    }
    const char *m = s->model_name;
#define G(name, help, type, val)                                                            \
    fprintf(f, "# HELP sglang:" name " " help "\n# TYPE sglang:" name " " type "\n"       \
               "sglang:" name "{model_name=\"%s\"} %.17g\n", m, (double)(val))
    G("num_running_reqs", "Requests decoding now.", "gauge", st.running);
    G("num_queue_reqs", "Requests waiting in the queue.", "gauge", st.queued);
    G("cache_hit_rate", "Prefix-cache hit rate.", "gauge", st.cache_hit_rate);
    G("token_usage", "Fraction of KV pool pages in use.", "gauge",
      st.pool_pages ? 1.0 - (double)st.pool_free_pages / st.pool_pages : 0.0);
    G("gen_throughput", "Generated tokens per second.", "gauge", tps(s));
    G("prompt_tokens_total", "Prompt tokens of finished requests.", "counter",
      atomic_load(&s->c.prompt_tokens));
    G("generation_tokens_total", "Generated tokens of finished requests.", "counter",
      atomic_load(&s->c.completion_tokens));
    G("cached_tokens_total", "Prompt tokens served from the prefix cache.", "counter",
      atomic_load(&s->c.cached_tokens));
    G("num_requests_total", "Engine requests submitted.", "counter", atomic_load(&s->c.gen_requests));
    G("http_requests_total", "HTTP requests received.", "counter", atomic_load(&s->c.http_requests));
    G("http_errors_4xx_total", "HTTP 4xx answers.", "counter", atomic_load(&s->c.http_errors_4xx));
    G("http_errors_5xx_total", "HTTP 5xx answers.", "counter", atomic_load(&s->c.http_errors_5xx));
    G("client_disconnects_total", "Requests aborted because the client left.", "counter",
      atomic_load(&s->c.disconnects));
#undef G
    if (fclose(f) != 0 || !buf) {
        free(buf);
        call_error(c, 500, NULL, "out of memory");
        return;
    }
    call_text(c, 200, "text/plain; version=0.0.4", buf);
    free(buf);
}
