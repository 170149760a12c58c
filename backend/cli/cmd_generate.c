/* cmd_generate.c -- `sglc generate`: one completion through the full engine.
 *
 *   sglc generate --model DIR [--prompt TEXT | --prompt-file F | --input-ids IDS]
 *                 [--max-tokens N] [--temperature T] [--top-p P] [--top-k K]
 *                 [--min-p P] [--seed S] [--stop STR]... [--ignore-eos] [--json]
 *                 [--regex RE | --json-schema FILE|JSON] [--no-jump-forward] ...
 *
 * The prompt is tokenized as Hugging Face does (BOS when the tokenizer config
 * adds it). Prints the generated text, or with --json one object
 *   {"text", "prompt_ids", "output_ids",
 *    "meta_info": {"prompt_tokens", "completion_tokens", "cached_tokens", "finish_reason"}}
 * (finish_reason as SGLang gives it: {"type": "length", "length": N} or
 * {"type": "stop", "matched": ID or STR}). Exit 0 ok, 1 model or request
 * error, 2 usage.
 */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cli/cli.h"
#include "backend/cli/cli_constraint.h"
#include "backend/cli/cli_device.h"
#include "runtime/engine.h"
#include "runtime/tokmask.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: sglc generate --model DIR [--prompt TEXT | --prompt-file F | --input-ids IDS]\n"
            "                     [options]\n\n"
            "Generates one completion of the prompt with the engine (CPU).\n\n"
            "  --model DIR              Hugging Face model directory (config.json, safetensors,\n"
            "                           tokenizer.json)\n"
            "  --load-format auto|dummy dummy: random weights of the config's shape\n"
            "  --prompt TEXT            the prompt (default: empty, i.e. BOS only)\n"
            "  --prompt-file F          read the prompt from F, byte for byte\n"
            "  --input-ids IDS          token ids instead of text: \"1,2,3\" or \"[1, 2, 3]\"\n"
            "  --max-tokens N           tokens to generate (default 128; 0 = prefill only)\n"
            "  --min-tokens N           EOS/stop ids are banned until N tokens (default 0)\n"
            "  --temperature T          0 = greedy (default: generation_config.json, else 1.0)\n"
            "  --top-p P  --top-k K  --min-p P\n"
            "  --seed S                 sampling seed (reproducible)\n"
            "  --stop STR               stop string (repeatable, up to 16)\n"
            "  --stop-token-id ID       stop token id (repeatable, up to 64)\n"
            "  --ignore-eos             keep going past EOS\n"
            "  --top-logprobs N         with --json, add output_token_logprobs and\n"
            "                           output_top_logprobs (N per token) to meta_info\n"
            "  --json                   print one JSON object (see 'sglc generate' docs)\n"
            "  --max-total-tokens N     KV cache capacity in tokens\n"
            "  --page-size N            tokens per KV page (default 1)\n"
            "  --disable-radix-cache    no prefix caching\n"
            "  --regex RE               the output must fully match RE (ir/fsm regex dialect)\n"
            "  --json-schema FILE|JSON  the output must be JSON valid against the schema\n"
            "                           (a file name, or the schema text when it starts with '{')\n"
            "  --no-jump-forward        decode forced constraint text token by token (ablation)\n"
            "  --threads N              CPU threads for the forward pass\n"
            CLI_DEVICE_HELP);
}

/* "1,2,3", "1 2 3" or "[1, 2, 3]"; false on anything else. */
static bool parse_ids(const char *s, int32_t **out, int32_t *n)
{
    size_t cap = strlen(s) / 2 + 2;
    int32_t *ids = malloc(cap * sizeof *ids);
    int32_t k = 0;
    if (!ids)
        return false;
    const char *p = s;
    while (*p == ' ' || *p == '[')
        p++;
    while (*p && *p != ']') {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > INT32_MAX) {
            free(ids);
            return false;
        }
        ids[k++] = (int32_t)v;
        p = end;
        while (*p == ' ' || *p == ',' || *p == '\n' || *p == '\t')
            p++;
    }
    if (*p == ']')
        p++;
    while (*p == ' ' || *p == '\n')
        p++;
    if (*p != '\0') {
        free(ids);
        return false;
    }
    *out = ids;
    *n = k;
    return true;
}

static json_t *finish_json(const SglGenSample *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string(sgl_finish_name(s->finish)));
    if (s->finish == SGL_FINISH_STOP) {
        if (s->matched_stop)
            json_object_set_new(o, "matched", json_string(s->matched_stop));
        else if (s->matched_token >= 0)
            json_object_set_new(o, "matched", json_integer(s->matched_token));
    } else if (s->finish == SGL_FINISH_LENGTH) {
        json_object_set_new(o, "length", json_integer(s->n_output));
    } else if (s->error) {
        json_object_set_new(o, "message", json_string(s->error));
    }
    return o;
}

static json_t *ids_json(const int32_t *ids, int32_t n)
{
    json_t *a = json_array();
    for (int32_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer(ids[i]));
    return a;
}

int cmd_generate(int argc, char **argv)
{
    if (args_wants_help(argc, argv)) {
        help(stdout);
        return 0;
    }
    SglArgs a;
    const char *model = NULL, *prompt = NULL, *prompt_file = NULL, *input_ids = NULL, *fmt = NULL, *sv;
    long max_tokens = 128, min_tokens = 0, top_k = -1, seed = -1, top_lp = 0, max_total = 0, page = 1, threads = 0, lv;
    double temperature = NAN, top_p = 1.0, min_p = 0.0;
    bool ignore_eos = false, json = false, no_cache = false, no_jump = false;
    const char *regex = NULL, *schema = NULL;
    CliDevice dev = {0};
    const char *stops[SGL_MAX_STOP];
    int32_t n_stops = 0, stop_ids[64], n_stop_ids = 0;
    args_init(&a, argc, argv);
    while (args_more(&a)) {
        if (args_flag(&a, "--json"))
            json = true;
        else if (args_flag(&a, "--ignore-eos"))
            ignore_eos = true;
        else if (args_flag(&a, "--disable-radix-cache"))
            no_cache = true;
        else if (args_flag(&a, "--no-jump-forward"))
            no_jump = true;
        else if (args_str(&a, "--regex", &regex) || args_str(&a, "--json-schema", &schema))
            ;
        else if (args_str(&a, "--model", &model) || args_str(&a, "--prompt", &prompt) ||
                 args_str(&a, "--prompt-file", &prompt_file) || args_str(&a, "--input-ids", &input_ids) ||
                 args_str(&a, "--load-format", &fmt) || cli_device_arg(&a, &dev))
            ;
        else if (args_long(&a, "--max-tokens", 0, 1 << 24, &max_tokens) ||
                 args_long(&a, "--min-tokens", 0, 1 << 24, &min_tokens) ||
                 args_long(&a, "--top-k", -1, 1 << 24, &top_k) ||
                 args_long(&a, "--seed", 0, LONG_MAX, &seed) ||
                 args_long(&a, "--top-logprobs", 0, SGL_MAX_TOP_LOGPROBS, &top_lp) ||
                 args_long(&a, "--max-total-tokens", 0, 1 << 30, &max_total) ||
                 args_long(&a, "--page-size", 1, 4096, &page) ||
                 args_long(&a, "--threads", 0, 1024, &threads))
            ;
        else if (args_double(&a, "--temperature", 0.0, 1e6, &temperature) ||
                 args_double(&a, "--top-p", 1e-9, 1.0, &top_p) || args_double(&a, "--min-p", 0.0, 1.0, &min_p))
            ;
        else if (args_str(&a, "--stop", &sv)) {
            if (!a.bad && n_stops == SGL_MAX_STOP)
                return args_usage_error(&a, "at most %d --stop strings", SGL_MAX_STOP);
            if (!a.bad)
                stops[n_stops++] = sv;
        } else if (args_long(&a, "--stop-token-id", 0, INT32_MAX, &lv)) {
            if (!a.bad && n_stop_ids == 64)
                return args_usage_error(&a, "at most 64 --stop-token-id values");
            if (!a.bad)
                stop_ids[n_stop_ids++] = (int32_t)lv;
        } else
            return args_unknown(&a);
    }
    if (a.bad)
        return 2;
    if (!model)
        return args_usage_error(&a, "--model DIR is required");
    if ((prompt != NULL) + (prompt_file != NULL) + (input_ids != NULL) > 1)
        return args_usage_error(&a, "give only one of --prompt, --prompt-file, --input-ids");
    if (regex && schema)
        return args_usage_error(&a, "give only one of --regex, --json-schema");
    SglLoadFormat lf = SGL_LOAD_AUTO;
    if (fmt && strcmp(fmt, "dummy") == 0)
        lf = SGL_LOAD_DUMMY;
    else if (fmt && strcmp(fmt, "auto") != 0)
        return args_usage_error(&a, "--load-format must be auto or dummy, got '%s'", fmt);
    int32_t *ids = NULL, n_ids = 0;
    if (input_ids && !parse_ids(input_ids, &ids, &n_ids))
        return args_usage_error(&a, "--input-ids: expected token ids like \"1,2,3\", got '%s'", input_ids);

    int rc = 1;
    SglEngine *e = NULL;
    SglDfa *dfa = NULL;
    TokRegistry *reg = NULL;
    SglGenResult res = {0};
    char *text = NULL;
    size_t text_len = 0;
    SglErr err = {{0}};
    if (prompt_file && !(text = cli_read_file(prompt_file, &text_len))) {
        fprintf(stderr, "sglc generate: %s: cannot read the prompt file\n", prompt_file);
        goto out;
    }
    SglEngineOpts eo;
    sgl_engine_opts_default(&eo);
    eo.model_dir = model;
    eo.load_format = lf;
    eo.max_total_tokens = max_total;
    eo.page_size = (int32_t)page;
    eo.n_threads = (int)threads;
    eo.sched.disable_radix_cache = no_cache;
    eo.sched.disable_jump_forward = no_jump;
    if ((regex || schema) && !(dfa = cli_compile_output_constraint("generate", regex, schema)))
        goto out;
    if (cli_device_apply(&a, &dev, &eo)) {
        rc = 2;
        goto out;
    }
    if (eo.node_rank > 0) {   /* a worker host of --nnodes */
        rc = cli_tp_worker("sglc generate", &eo);
        goto out;
    }
    if (sgl_engine_open(&eo, &e, &err) != SGL_OK) {
        fprintf(stderr, "sglc generate: %s\n", err.msg);
        goto out;
    }
    if (!input_ids) {
        const char *t = text ? text : prompt ? prompt : "";
        size_t tl = text ? text_len : strlen(t);
        if (sgl_engine_encode(e, t, tl, true, &ids, &n_ids) != SGL_OK) {
            fprintf(stderr, "sglc generate: cannot tokenize the prompt\n");
            goto out;
        }
    }
    const SglModelConfig *mc = sgl_engine_model_config(e);
    SglRequest rq = {.input_ids = ids, .n_input = n_ids};
    SglSamplingParams *p = &rq.params;
    sgl_sampling_params_default(p);
    p->max_new_tokens = (int32_t)max_tokens;
    p->min_new_tokens = (int32_t)min_tokens;
    p->temperature = !isnan(temperature) ? (float)temperature
                     : !isnan(mc->gen_temperature) ? mc->gen_temperature : 1.0f;
    p->top_p = (float)top_p;
    p->top_k = (int32_t)top_k;
    p->min_p = (float)min_p;
    if (seed >= 0) {
        p->seed = (uint64_t)seed;
        p->has_seed = true;
    }
    p->ignore_eos = ignore_eos;
    for (int32_t i = 0; i < n_stops; i++)
        p->stop[i] = stops[i];
    p->n_stop = n_stops;
    p->stop_token_ids = stop_ids;
    p->n_stop_token_ids = n_stop_ids;
    p->return_logprob = top_lp > 0;
    p->top_logprobs_num = (int32_t)top_lp;
    if (dfa && (!(reg = tokreg_new()) ||
                tokmask_constraint_new(reg, dfa, sgl_engine_tokenizer(e), 1, &rq.constraint, &err) != SGL_OK)) {
        fprintf(stderr, "sglc generate: %s\n", reg ? err.msg : "out of memory");
        goto out;
    }
    if (sgl_engine_generate(e, &rq, &res, &err) != SGL_OK) {
        fprintf(stderr, "sglc generate: %s\n", err.msg);
        goto out;
    }
    const SglGenSample *s = &res.samples[0];
    if (s->finish == SGL_FINISH_ERROR) {
        fprintf(stderr, "sglc generate: %s\n", s->error ? s->error : "generation failed");
        goto out;
    }
    if (json) {
        json_t *o = json_object(), *meta = json_object();
        json_object_set_new(o, "text", json_stringn(s->text, s->text_len));
        json_object_set_new(o, "prompt_ids", ids_json(ids, n_ids));
        json_object_set_new(o, "output_ids", ids_json(s->output_ids, s->n_output));
        json_object_set_new(meta, "prompt_tokens", json_integer(n_ids));
        json_object_set_new(meta, "completion_tokens", json_integer(s->n_output));
        json_object_set_new(meta, "cached_tokens", json_integer(s->cached_tokens));
        json_object_set_new(meta, "finish_reason", finish_json(s));
        if (top_lp > 0 && s->output_logprobs) {
            json_t *lp = json_array(), *tops = json_array();
            for (int32_t i = 0; i < s->n_output; i++) {
                json_array_append_new(lp, json_real(s->output_logprobs[i]));
                json_t *row = json_array();
                for (int32_t k = 0; s->top && k < s->n_top; k++) {
                    const SglTopLogprob *t = &s->top[(size_t)i * (size_t)s->n_top + (size_t)k];
                    json_array_append_new(row, json_pack("[f,i]", (double)t->logprob, (json_int_t)t->id));
                }
                json_array_append_new(tops, row);
            }
            json_object_set_new(meta, "output_token_logprobs", lp);
            json_object_set_new(meta, "output_top_logprobs", tops);
        }
        json_object_set_new(o, "meta_info", meta);
        char *out = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(o);
        if (!out) {
            fprintf(stderr, "sglc generate: out of memory\n");
            goto out;
        }
        printf("%s\n", out);
        free(out);
    } else {
        fwrite(s->text, 1, s->text_len, stdout);
        fputc('\n', stdout);
    }
    rc = 0;
out:
    sgl_gen_result_free(&res);
    sgl_engine_close(e); /* releases the constraint: before the registry */
    tokreg_free(reg);
    sgl_dfa_free(dfa);
    free(ids);
    free(text);
    return rc;
}
