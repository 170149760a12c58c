/* cmd_serve.c -- `sglc serve`: the HTTP server (backend/server/server.h).
 *
 *   sglc serve --model DIR [--host 127.0.0.1] [--port 30000] [--api-key KEY]
 *              [--served-model-name NAME] [--max-running-requests N]
 *              [--max-queued-requests N] [--chat-template NAME]
 *              [--load-format auto|dummy] [--device cpu|cuda|auto]
 *              [--disable-radix-cache] [--max-total-tokens N] [--threads N]
 *              [--max-body-bytes N] [--port-file FILE]
 *
 * Loads the engine, listens (loopback unless --host says otherwise), prints
 * "sglc serve: listening on http://HOST:PORT" and serves until SIGINT or
 * SIGTERM; then aborts in-flight requests, stops the server and closes the
 * engine. --port 0 picks a free port (tests read it from --port-file).
 * Exit: 0 after a clean shutdown, 1 model/listen failure, 2 usage.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cli/cli.h"
#include "backend/cli/cli_device.h"
#include "backend/server/server.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void help(FILE *f)
{
    fprintf(f,
            "usage: sglc serve --model DIR [options]\n\n"
            "Serves the model over HTTP: SGLang's native API (/generate, /health, ...),\n"
            "OpenAI's (/v1/completions, /v1/chat/completions, /v1/models) and /metrics.\n\n"
            "  --model DIR               Hugging Face model directory (default: $SGL_MODEL)\n"
            "  --host ADDR               numeric address (or localhost) to bind (default 127.0.0.1)\n"
            "  --port N                  TCP port (default 30000; 0 = any free port)\n"
            "  --port-file FILE          write the bound port to FILE once listening\n"
            "  --api-key KEY             require 'Authorization: Bearer KEY'\n"
            "  --served-model-name NAME  the model's name in responses (default: DIR's name)\n"
            "  --max-running-requests N  sequences decoding at once (default 256)\n"
            "  --max-queued-requests N   waiting requests before 503 (default 4096)\n"
            "  --max-body-bytes N        largest request body (default 8 MiB)\n"
            "  --chat-template NAME      %s (default: from the model)\n"
            "  --load-format F           auto or dummy (random weights of the config's shape)\n"
            "  --disable-radix-cache     no prefix caching\n"
            "  --max-total-tokens N      KV cache capacity in tokens\n"
            "  --threads N               CPU threads for the forward pass\n"
            "  --dp N                    N replicas (cuda: one GPU each) behind `sglc router`\n"
            "  --router-policy P         with --dp: cache_aware (default), round_robin, ...\n"
            "  --dp-timeout S            with --dp: seconds for the replicas to start (600)\n"
            CLI_DEVICE_HELP,
            chat_template_names());
}

int cmd_serve(int argc, char **argv)
{
    if (args_wants_help(argc, argv)) {
        help(stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++)   /* data-parallel replicas behind the router */
        if (strcmp(argv[i], "--dp") == 0 || strncmp(argv[i], "--dp=", 5) == 0)
            return cmd_serve_dp(argc, argv);
    SglArgs a;
    const char *model = NULL, *host = "127.0.0.1", *key = NULL, *name = NULL, *tmpl_name = NULL,
               *fmt = NULL, *port_file = NULL;
    long port = 30000, max_run = 0, max_q = 0, max_total = 0, threads = 0, max_body = 0;
    bool no_cache = false;
    CliDevice dev = {0};
    args_init(&a, argc, argv);
    while (args_more(&a)) {
        if (args_flag(&a, "--disable-radix-cache"))
            no_cache = true;
        else if (args_str(&a, "--model", &model) || args_str(&a, "--host", &host) ||
                 args_str(&a, "--api-key", &key) || args_str(&a, "--served-model-name", &name) ||
                 args_str(&a, "--chat-template", &tmpl_name) ||
                 args_str(&a, "--load-format", &fmt) || args_str(&a, "--port-file", &port_file))
            ;
        else if (args_long(&a, "--port", 0, 65535, &port) ||
                 args_long(&a, "--max-running-requests", 1, 1 << 20, &max_run) ||
                 args_long(&a, "--max-queued-requests", 1, 1 << 24, &max_q) ||
                 args_long(&a, "--max-total-tokens", 0, 1 << 30, &max_total) ||
                 args_long(&a, "--threads", 0, 1024, &threads) ||
                 args_long(&a, "--max-body-bytes", 1024, 1L << 30, &max_body) ||
                 cli_device_arg(&a, &dev))
            ;
        else
            return args_unknown(&a);
    }
    if (a.bad)
        return 2;
    if (!model)
        model = getenv("SGL_MODEL");
    if (!model || !*model)
        return args_usage_error(&a, "missing --model DIR");
    const ChatTemplate *tmpl = NULL;
    if (tmpl_name && !(tmpl = chat_template_find(tmpl_name)))
        return args_usage_error(&a, "--chat-template: unknown template '%s' (one of %s)", tmpl_name,
                                chat_template_names());
    SglEngineOpts eo;
    sgl_engine_opts_default(&eo);
    eo.model_dir = model;
    if (fmt && strcmp(fmt, "dummy") == 0)
        eo.load_format = SGL_LOAD_DUMMY;
    else if (fmt && strcmp(fmt, "auto") != 0)
        return args_usage_error(&a, "--load-format must be auto or dummy, got '%s'", fmt);
    if (cli_device_apply(&a, &dev, &eo))
        return 2;
    eo.max_total_tokens = max_total;
    eo.n_threads = (int)threads;
    eo.sched.max_running_requests = (int32_t)max_run;
    eo.sched.max_queued_requests = (int32_t)max_q;
    eo.sched.disable_radix_cache = no_cache;
    SglEngine *e = NULL;
    SglErr err = {{0}};
    if (eo.node_rank > 0)   /* a worker host of --nnodes */
        return cli_tp_worker("sglc serve", &eo);
    if (sgl_engine_open(&eo, &e, &err) != SGL_OK) {
        fprintf(stderr, "sglc serve: %s\n", err.msg);
        return 1;
    }
    if (!tmpl)
        tmpl = chat_template_detect(model, sgl_engine_tokenizer(e));
    SrvOpts so = {.host = host, .port = (int)port, .api_key = key, .served_model_name = name,
                  .model_dir = model, .tmpl = tmpl, .max_body_bytes = (size_t)max_body};
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    Srv *s = NULL;
    char msg[512];
    if (!srv_start(&so, e, &s, msg, sizeof msg)) {
        fprintf(stderr, "sglc serve: %s\n", msg);
        sgl_engine_close(e);
        return 1;
    }
    int rc = 0;
    if (port_file) {
        FILE *f = fopen(port_file, "w");
        if (!f || fprintf(f, "%d\n", srv_port(s)) < 0 || fclose(f) != 0) {
            fprintf(stderr, "sglc serve: --port-file: cannot write '%s'\n", port_file);
            g_stop = 1;
            rc = 1;
        }
    }
    fprintf(stderr, "sglc serve: listening on http://%s%s%s:%d (model %s, chat template %s)\n",
            strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", srv_port(s), model,
            tmpl->name);
    srv_run_until(s, &g_stop);
    sgl_engine_close(e);
    fprintf(stderr, "sglc serve: stopped\n");
    return rc;
}
