/* run_main.c -- the run command line shared by `sglc run` (cmd_run.c) and
 * program binaries made by `sglc build` (aot.c): argument parsing, the
 * engine, main's parameters, --batch, output. Where the program comes from
 * is the caller's: SglRunMain.load compiles a file (sglc run) or returns the
 * program embedded in the binary. Everything after loading is one code path,
 * so a binary behaves exactly like `sglc run` (same flags, same output).
 * Messages are prefixed with SglRunMain.cmd ("sglc run" or the binary's name).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/remote.h"
#include "backend/run_main.h"

#include "backend/cli/cli.h"
#include "backend/cli/cli_device.h"
#include "backend/interp.h"

#define MAX_ARGS 256

static void help_params(FILE *f, const IrProgram *p);

static void help(FILE *f, const SglRunMain *m)
{
    if (m->takes_file) {
        fprintf(f, "usage: %s FILE.sgl [--model DIR] [--arg NAME=VALUE]... [options]\n\n"
                   "Compiles FILE.sgl and runs its main(); prints the final prompt state.\n\n",
                m->cmd);
    } else {
        fprintf(f, "usage: %s [--model DIR] [--arg NAME=VALUE]... [options]\n\n"
                   "Runs the program's main() (compiled by `sglc build`); prints the final prompt "
                   "state.\n\n", m->cmd);
        SglRunLoadOpts lo = {0};
        IrProgram *p = m->load(m->user, NULL, &lo);
        if (p)
            help_params(f, p);
        if (p && m->owns_program)
            ir_program_free(p);
        if (m->model_default)
            fprintf(f, "built for the model %s (default --model)\n\n", m->model_default);
    }
    fprintf(f,
            "  --model DIR             Hugging Face model directory (default: $SGL_MODEL, else a\n"
            "                          built-in random-weight demo model whose text is meaningless)\n"
            "  --backend URL           send the requests to a server speaking SGLang's native API\n"
            "                          (sglc serve, or SGLang) instead of loading a model here\n"
            "  --arg NAME=VALUE        a parameter of main (str as is; int/float/bool parsed;\n"
            "                          lists and records as JSON); NAME=@FILE reads VALUE from FILE\n"
            "  --temperature T  --max-tokens N  --top-p P  --top-k K  --min-p P\n"
            "                          defaults for every gen (a gen's own options win)\n"
            "  --max-tokens-cap N      upper bound on every gen's max_tokens, its own included\n"
            "                          (quick runs of big programs on small-context models)\n"
            "  --seed S                seed of the engine's sampling RNG\n"
            "  --json                  print {\"text\", \"vars\", \"return\", \"meta\"}\n"
            "  --stream                print main's text as it is generated\n"
            "  --batch IN.jsonl        one run of main per line (a JSON object of parameters)\n"
            "  --out OUT.jsonl         where --batch results go (default stdout), in input order\n"
            "  --parallel N            runs of --batch in flight at once (default 16)\n"
            "  --chat-template NAME    %s (default: from the model)\n"
            "  --no-prefix-hoist       disable the prefix_hoist pass\n"
            "  --no-parallel           run forks and calls one after another\n"
            "  --disable-radix-cache   no prefix caching in the engine\n"
            "  --no-jump-forward       decode forced constraint text token by token (ablation)\n"
            "  --schedule-policy P     lpm, fcfs, lof, random, dfs-weight\n"
            "  --load-format F         auto or dummy (random weights of the config's shape)\n"
            "  --threads N             CPU threads for the forward pass\n"
            "  --max-total-tokens N    KV cache capacity in tokens\n"
            "  --stats                 with --json: add \"engine\" (the engine's counters and\n"
            "                          startup_to_first_step_ms: start to the first engine step,\n"
            "                          program_load_ms: compiling or loading the program)\n"
            "  --step-log FILE         write one line per engine step: prefill_seqs decode_seqs tokens\n"
            CLI_DEVICE_HELP,
            chat_template_names());
}

/* ---- the built-in demo model: a byte-level BPE tokenizer (256 bytes + <s>
 * </s>) and a small Llama config, loaded with random weights ---- */

static bool write_text(const char *dir, const char *name, const char *text)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to
 * U+0100 upwards. */
static void byte_char(int b, char *out)
{
    static int map[256];
    static bool init;
    if (!init) {
        int n = 0;
        for (int i = 0; i < 256; i++) {
            bool keep = (i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174);
            map[i] = keep ? i : 256 + n++;
        }
        init = true;
    }
    int cp = map[b];
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = '\0';
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = '\0';
    }
}

bool sgl_demo_model_write(const char *dir)
{
    json_t *vocab = json_object();
    for (int b = 0; b < 256; b++) {
        char c[4];
        byte_char(b, c);
        json_object_set_new(vocab, c, json_integer(b));
    }
    json_t *tok = json_pack(
        "{s:s, s:[{s:i, s:s, s:b, s:b, s:b, s:b, s:b}, {s:i, s:s, s:b, s:b, s:b, s:b, s:b}],"
        " s:n, s:{s:s, s:b, s:b, s:b}, s:n, s:{s:s, s:b, s:b, s:b},"
        " s:{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:o, s:[]}}",
        "version", "1.0", "added_tokens",
        "id", 256, "content", "<s>", "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1,
        "id", 257, "content", "</s>", "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1,
        "normalizer", "pre_tokenizer", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1,
        "use_regex", 1, "post_processor", "decoder", "type", "ByteLevel", "add_prefix_space", 0,
        "trim_offsets", 1, "use_regex", 1, "model", "type", "BPE", "dropout", "unk_token",
        "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0,
        "vocab", vocab, "merges");
    char *tj = tok ? json_dumps(tok, JSON_COMPACT) : NULL;
    json_decref(tok);
    bool ok = tj && write_text(dir, "tokenizer.json", tj);
    free(tj);
    ok = ok && write_text(dir, "tokenizer_config.json",
                          "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"add_bos_token\": true}\n");
    ok = ok && write_text(dir, "config.json",
                          "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\",\n"
                          " \"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2,\n"
                          " \"num_attention_heads\": 4, \"num_key_value_heads\": 4, \"vocab_size\": 258,\n"
                          " \"max_position_embeddings\": 4096, \"rms_norm_eps\": 1e-05,\n"
                          " \"rope_theta\": 10000.0, \"tie_word_embeddings\": true,\n"
                          " \"bos_token_id\": 256, \"eos_token_id\": 257, \"torch_dtype\": \"float32\"}\n");
    return ok;
}

void sgl_demo_model_remove(const char *dir)
{
    const char *names[] = {"tokenizer.json", "tokenizer_config.json", "config.json"};
    char path[4200];
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* ---- engine step log ---- */

typedef struct {
    FILE *f;
    int64_t steps, max_decode, prefill_tokens;
    double t0, first_step_s;    /* start of sgl_run_main; when the first engine step ran */
    double load_s, open_s;      /* time to get the program; to open the engine */
} StepLog;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void on_step(void *user, int32_t n_prefill, int32_t n_decode, int32_t n_tokens)
{
    StepLog *l = user;
    if (l->steps++ == 0)
        l->first_step_s = now_s() - l->t0;
    if (n_decode > l->max_decode)
        l->max_decode = n_decode;
    l->prefill_tokens += n_tokens - n_decode;
    if (l->f)
        fprintf(l->f, "%d %d %d\n", (int)n_prefill, (int)n_decode, (int)n_tokens);
}

/* ---- arguments of main ---- */

typedef struct {
    const char *name, *value;   /* NAME=VALUE split (value points into argv) */
} ArgKV;

static const IrFunc *main_fn(const IrProgram *p)
{
    return p->main >= 0 && (uint32_t)p->main < p->n_funcs ? p->funcs[p->main] : NULL;
}

/* Values of main's parameters from --arg pairs; false (usage error printed). */
static bool args_to_values(const char *cmd, SglExec *x, const IrFunc *fn, const ArgKV *kv, int n_kv, Value **vals)
{
    for (uint32_t k = 0; k < fn->n_params; k++) {
        const char *pname = fn->slots[k].name;
        const ArgKV *hit = NULL;
        for (int i = 0; i < n_kv; i++)
            if (strcmp(kv[i].name, pname) == 0)
                hit = &kv[i];
        if (!hit) {
            fprintf(stderr, "%s: missing --arg %s=VALUE (a parameter of main)\n", cmd, pname);
            return false;
        }
        const char *text = hit->value;
        size_t len = strlen(text);
        char *file = NULL;
        if (text[0] == '@') {
            if (!(file = cli_read_file(text + 1, &len))) {
                fprintf(stderr, "%s: --arg %s: cannot read '%s'\n", cmd, pname, text + 1);
                return false;
            }
            text = file;
        }
        char msg[400];
        const ValType *vt = exec_vtype(x, fn->slots[k].type);
        bool ok = vt && val_from_arg(text, len, vt, &vals[k], msg, sizeof msg);
        free(file);
        if (!ok) {
            fprintf(stderr, "%s: --arg %s: %s\n", cmd, pname, vt ? msg : "unsupported type");
            return false;
        }
    }
    return true;
}

static bool json_to_values(SglExec *x, const IrFunc *fn, const json_t *obj, Value **vals,
                           char *msg, size_t cap)
{
    if (!json_is_object(obj)) {
        snprintf(msg, cap, "expected a JSON object of main's parameters");
        return false;
    }
    const char *key;
    json_t *jv;
    json_object_foreach((json_t *)obj, key, jv) {
        bool known = false;
        for (uint32_t k = 0; k < fn->n_params && !known; k++)
            known = strcmp(fn->slots[k].name, key) == 0;
        if (!known) {
            snprintf(msg, cap, "unknown parameter '%s'", key);
            return false;
        }
    }
    for (uint32_t k = 0; k < fn->n_params; k++) {
        const json_t *j = json_object_get(obj, fn->slots[k].name);
        char m[300];
        if (!j) {
            snprintf(msg, cap, "missing parameter '%s'", fn->slots[k].name);
            return false;
        }
        const ValType *vt = exec_vtype(x, fn->slots[k].type);
        if (!vt || !val_from_json(j, vt, &vals[k], m, sizeof m)) {
            snprintf(msg, cap, "parameter '%s': %s", fn->slots[k].name, vt ? m : "unsupported type");
            return false;
        }
    }
    return true;
}

static void unref_all(Value **v, uint32_t n)
{
    for (uint32_t i = 0; v && i < n; i++) {
        val_unref(v[i]);
        v[i] = NULL;
    }
}

/* ---- --batch ---- */

typedef struct {
    SglExec *x;
    Value ***args;              /* (n) per line */
    SglRunResult *res;          /* (n) */
    int32_t n;
    int32_t next, done;
    pthread_mutex_t mu;
    bool progress;
} Batch;

static void *batch_worker(void *arg)
{
    Batch *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        int32_t i = b->next < b->n ? b->next++ : -1;
        pthread_mutex_unlock(&b->mu);
        if (i < 0)
            return NULL;
        sgl_exec_run_main(b->x, b->args[i], &b->res[i]);
        pthread_mutex_lock(&b->mu);
        b->done++;
        if (b->progress) {
            int w = 30, filled = (int)((int64_t)b->done * w / b->n);
            fprintf(stderr, "\r[%.*s%*s] %d/%d", filled, "##############################", w - filled, "",
                    (int)b->done, (int)b->n);
            fflush(stderr);
        }
        pthread_mutex_unlock(&b->mu);
    }
}

static int run_batch(const char *cmd, SglExec *x, const IrFunc *fn, const char *in, const char *outp, long parallel,
                     bool stats_json, SglEngine *e)
{
    (void)stats_json;
    (void)e;
    size_t len;
    char *text = cli_read_file(in, &len);
    if (!text) {
        fprintf(stderr, "%s: --batch: cannot read '%s'\n", cmd, in);
        return 2;
    }
    Batch b = {.x = x};
    int rc = 0;
    int32_t cap = 0;
    char *save = NULL;
    int line_no = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (*p == '\0')
            continue;
        if (b.n == cap) {
            cap = cap ? cap * 2 : 64;
            Value ***na = realloc(b.args, (size_t)cap * sizeof *na);
            if (!na) {
                rc = 1;
                fprintf(stderr, "%s: out of memory\n", cmd);
                goto out;
            }
            b.args = na;
        }
        b.args[b.n] = calloc(fn->n_params + 1, sizeof(Value *));
        if (!b.args[b.n]) {
            rc = 1;
            goto out;
        }
        b.n++;
        json_error_t je;
        json_t *j = json_loads(p, 0, &je);
        char msg[400];
        if (!j) {
            fprintf(stderr, "%s: %s:%d: invalid JSON: %s\n", cmd, in, line_no, je.text);
            rc = 2;
            goto out;
        }
        bool ok = json_to_values(x, fn, j, b.args[b.n - 1], msg, sizeof msg);
        json_decref(j);
        if (!ok) {
            fprintf(stderr, "%s: %s:%d: %s\n", cmd, in, line_no, msg);
            rc = 2;
            goto out;
        }
    }
    FILE *out = outp ? fopen(outp, "w") : stdout;
    if (!out) {
        fprintf(stderr, "%s: --out: cannot write '%s'\n", cmd, outp);
        rc = 1;
        goto out;
    }
    b.res = calloc((size_t)b.n + 1, sizeof *b.res);
    pthread_mutex_init(&b.mu, NULL);
    b.progress = isatty(2) && b.n > 0;
    int nt = (int)(parallel < b.n ? parallel : b.n);
    pthread_t *th = calloc((size_t)nt + 1, sizeof *th);
    int started = 0;
    for (int i = 0; b.res && th && i < nt; i++)
        if (pthread_create(&th[i], NULL, batch_worker, &b) == 0)
            started++;
    if (b.res && started == 0)
        batch_worker(&b);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    free(th);
    if (b.progress)
        fputc('\n', stderr);
    for (int32_t i = 0; b.res && i < b.n; i++) {
        json_t *o = sgl_run_result_json(&b.res[i]);
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        json_decref(o);
        if (s)
            fprintf(out, "%s\n", s);
        free(s);
        if (b.res[i].error) {
            fprintf(stderr, "%s\n", b.res[i].error);
            rc = 1;
        }
        sgl_run_result_free(&b.res[i]);
    }
    if (!b.res)
        rc = 1;
    if (out != stdout && fclose(out) != 0)
        rc = 1;
    pthread_mutex_destroy(&b.mu);
out:
    for (int32_t i = 0; i < b.n; i++) {
        unref_all(b.args[i], fn->n_params);
        free(b.args[i]);
    }
    free(b.args);
    free(b.res);
    free(text);
    return rc;
}

static json_t *engine_json(SglEngine *e, const StepLog *l)
{
    /* wait (briefly) for fire-and-forget prefills to drain */
    SglEngineStats st = sgl_engine_stats(e);
    for (int i = 0; i < 200 && (st.running || st.queued); i++) {
        usleep(10000);
        st = sgl_engine_stats(e);
    }
    json_t *o = json_pack("{s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "startup_to_first_step_ms",
                     l->first_step_s * 1e3, "steps", (json_int_t)st.steps,
                     "prefill_tokens", (json_int_t)st.prefill_tokens, "decode_tokens",
                     (json_int_t)st.decode_tokens, "cached_tokens", (json_int_t)st.cached_tokens,
                     "requests_finished", (json_int_t)st.requests_finished, "max_decode_batch",
                     (json_int_t)l->max_decode, "cache_hit_rate", st.cache_hit_rate);
    if (o) {
        json_object_set_new(o, "jump_forwards", json_integer(st.jump_forwards));
        json_object_set_new(o, "jump_forward_tokens", json_integer(st.jump_forward_tokens));
        json_object_set_new(o, "generated_tokens", json_integer(st.generated_tokens));
        json_object_set_new(o, "program_load_ms", json_real(l->load_s * 1e3));
        json_object_set_new(o, "engine_open_ms", json_real(l->open_s * 1e3));
    }
    return o;
}

static void help_params(FILE *f, const IrProgram *p)
{
    const IrFunc *fn = main_fn(p);
    if (!fn) {
        fprintf(f, "the program has no main\n\n");
        return;
    }
    fprintf(f, "parameters of main (--arg NAME=VALUE):\n");
    if (fn->n_params == 0)
        fprintf(f, "  (none)\n");
    for (uint32_t k = 0; k < fn->n_params; k++) {
        char tb[256];
        fprintf(f, "  %-22s %s\n", fn->slots[k].name, ir_type_name(fn->slots[k].type, tb, sizeof tb));
    }
    fputc('\n', f);
}

int sgl_run_main(const SglRunMain *m, int argc, char **argv)
{
    double t_start = now_s();
    const char *cmd = m->cmd;
    if (args_wants_help(argc, argv)) {
        help(stdout, m);
        return 0;
    }
    SglArgs a;
    const char *file = NULL, *model = NULL, *batch = NULL, *outp = NULL, *tmpl_name = NULL,
               *policy = NULL, *fmt = NULL, *step_log = NULL, *sv, *backend = NULL;
    SglRemote *rm = NULL;
    ArgKV kv[MAX_ARGS];
    int n_kv = 0;
    long parallel = 16, threads = 0, max_total = 0, lv;
    bool json = false, stream = false, no_hoist = false, no_par = false, no_cache = false,
         stats = false, no_jump = false;
    SglExecOpts xo;
    sgl_exec_opts_default(&xo);
    CliDevice dev = {0};
    double dv;
    args_init(&a, argc, argv);
    while (args_more(&a)) {
        if (args_flag(&a, "--json"))
            json = true;
        else if (args_flag(&a, "--stream"))
            stream = true;
        else if (args_flag(&a, "--no-prefix-hoist"))
            no_hoist = true;
        else if (args_flag(&a, "--no-parallel"))
            no_par = true;
        else if (args_flag(&a, "--disable-radix-cache"))
            no_cache = true;
        else if (args_flag(&a, "--no-jump-forward"))
            no_jump = true;
        else if (args_flag(&a, "--stats"))
            stats = true;
        else if (args_str(&a, "--model", &model) || args_str(&a, "--batch", &batch) ||
                 args_str(&a, "--out", &outp) || args_str(&a, "--chat-template", &tmpl_name) ||
                 args_str(&a, "--schedule-policy", &policy) || args_str(&a, "--load-format", &fmt) ||
                 args_str(&a, "--step-log", &step_log) || args_str(&a, "--backend", &backend))
            ;
        else if (args_str(&a, "--arg", &sv)) {
            if (a.bad)
                break;
            const char *eq = strchr(sv, '=');
            if (!eq || eq == sv)
                return args_usage_error(&a, "--arg expects NAME=VALUE, got '%s'", sv);
            if (n_kv == MAX_ARGS)
                return args_usage_error(&a, "at most %d --arg", MAX_ARGS);
            kv[n_kv].name = strndup(sv, (size_t)(eq - sv));
            kv[n_kv].value = eq + 1;
            if (!kv[n_kv].name)
                return 1;
            n_kv++;
        } else if (args_double(&a, "--temperature", 0.0, 1e6, &xo.temperature) ||
                   args_double(&a, "--top-p", 1e-9, 1.0, &xo.top_p) ||
                   args_double(&a, "--min-p", 0.0, 1.0, &xo.min_p))
            ;
        else if (args_long(&a, "--max-tokens", 0, 1 << 24, &lv)) {
            xo.max_tokens = (int32_t)lv;
        } else if (args_long(&a, "--max-tokens-cap", 1, 1 << 24, &lv)) {
            xo.max_tokens_cap = (int32_t)lv;
        } else if (args_long(&a, "--top-k", -1, 1 << 24, &lv)) {
            xo.top_k = (int32_t)lv;
        } else if (args_long(&a, "--seed", 0, 0x7fffffffffffffffL, &lv)) {
            xo.seed = lv;
        } else if (args_long(&a, "--parallel", 1, 4096, &parallel) ||
                   args_long(&a, "--threads", 0, 1024, &threads) ||
                   args_long(&a, "--max-total-tokens", 0, 1 << 30, &max_total))
            ;
        else if (cli_device_arg(&a, &dev))
            ;
        else if (args_positional(&a, &sv)) {
            if (file)
                return args_usage_error(&a, "only one program file, got '%s' and '%s'", file, sv);
            file = sv;
        } else
            return args_unknown(&a);
    }
    (void)dv;
    int rc = 2;
    IrProgram *p = NULL;
    SglEngine *e = NULL;
    SglExec *x = NULL;
    Value **vals = NULL;
    const IrFunc *fn = NULL;
    char demo_dir[64] = "";
    StepLog slog = {.t0 = t_start};
    SglRunResult res = {0};
    if (a.bad)
        goto out;
    if (m->takes_file && !file) {
        args_usage_error(&a, "missing FILE.sgl (see '%s --help')", cmd);
        goto out;
    }
    if (!m->takes_file && file) {
        args_usage_error(&a, "unexpected argument '%s' (the program is built in)", file);
        goto out;
    }
    if (outp && !batch) {
        args_usage_error(&a, "--out needs --batch");
        goto out;
    }
    if (batch && (stream || n_kv)) {
        args_usage_error(&a, "--batch takes parameters from IN.jsonl (no --arg or --stream)");
        goto out;
    }
    const ChatTemplate *tmpl = NULL;
    if (tmpl_name && !(tmpl = chat_template_find(tmpl_name))) {
        args_usage_error(&a, "--chat-template: unknown template '%s' (one of %s)", tmpl_name,
                         chat_template_names());
        goto out;
    }
    int pol = -1;
    if (policy && (pol = sgl_policy_parse(policy)) < 0) {
        args_usage_error(&a, "--schedule-policy: unknown policy '%s'", policy);
        goto out;
    }
    SglLoadFormat lf = SGL_LOAD_AUTO;
    if (fmt && strcmp(fmt, "dummy") == 0)
        lf = SGL_LOAD_DUMMY;
    else if (fmt && strcmp(fmt, "auto") != 0) {
        args_usage_error(&a, "--load-format must be auto or dummy, got '%s'", fmt);
        goto out;
    }
    /* the program: compiled (sglc run) or embedded (a built binary) */
    rc = 1;
    SglRunLoadOpts lo = {.no_prefix_hoist = no_hoist, .no_parallel = no_par};
    double t_load = now_s();
    p = m->load(m->user, file, &lo);
    slog.load_s = now_s() - t_load;
    if (!p)
        goto out;
    if (!(fn = main_fn(p))) {
        fprintf(stderr, "%s: error: the program has no `main` function to run\n", file ? file : cmd);
        goto out;
    }
    for (int i = 0; i < n_kv; i++) {
        bool known = false;
        for (uint32_t k = 0; k < fn->n_params && !known; k++)
            known = strcmp(fn->slots[k].name, kv[i].name) == 0;
        if (!known) {
            fprintf(stderr, "%s: --arg %s: main has no parameter '%s'\n", cmd, kv[i].name, kv[i].name);
            rc = 2;
            goto out;
        }
    }
    if (backend) {   /* the HTTP backend (backend/remote.h): no engine here */
        char bmsg[600];
        if (!remote_open(backend, &rm, bmsg, sizeof bmsg)) {
            fprintf(stderr, "%s: --backend: %s\n", cmd, bmsg);
            goto out;
        }
        if (!tmpl)
            tmpl = chat_template_detect(model, NULL);
        xo.remote = rm;
        xo.no_parallel = no_par;
        xo.stream = stream ? stdout : NULL;
        if (!sgl_exec_new(p, NULL, tmpl, &xo, &x, bmsg, sizeof bmsg)) {
            fprintf(stderr, "%s\n", bmsg);
            goto out;
        }
        goto have_exec;
    }
    /* engine */
    if (!model)
        model = getenv("SGL_MODEL");
    if ((!model || !*model) && m->model_default)
        model = m->model_default;
    if (!model || !*model) {
        snprintf(demo_dir, sizeof demo_dir, "/tmp/sglc-demo-XXXXXX");
        if (!mkdtemp(demo_dir) || !sgl_demo_model_write(demo_dir)) {
            fprintf(stderr, "%s: cannot write the demo model to %s\n", cmd, demo_dir);
            goto out;
        }
        fprintf(stderr, "%s: no --model and no $SGL_MODEL: using the built-in demo model "
                        "(random weights: its text is meaningless)\n", cmd);
        model = demo_dir;
        lf = SGL_LOAD_DUMMY;
    }
    if (step_log && !(slog.f = fopen(step_log, "w"))) {
        fprintf(stderr, "%s: --step-log: cannot write '%s'\n", cmd, step_log);
        goto out;
    }
    SglEngineOpts eo;
    sgl_engine_opts_default(&eo);
    eo.model_dir = model;
    eo.load_format = lf;
    eo.n_threads = (int)threads;
    eo.max_total_tokens = max_total;
    eo.sched.disable_radix_cache = no_cache;
    eo.sched.disable_jump_forward = no_jump;
    if (pol >= 0)
        eo.sched.policy = (SglPolicy)pol;
    if (xo.seed >= 0)
        eo.sched.seed = (uint64_t)xo.seed;
    eo.sched.on_step = on_step;
    eo.sched.on_step_user = &slog;
    if (cli_device_apply(&a, &dev, &eo)) {
        rc = 2;
        goto out;
    }
    if (eo.node_rank > 0) {   /* a worker host of --nnodes */
        rc = cli_tp_worker(cmd, &eo);
        goto out;
    }
    SglErr err = {{0}};
    char msg[1024];
    double t_open = now_s();
    SglStatus open_st = sgl_engine_open(&eo, &e, &err);
    slog.open_s = now_s() - t_open;
    if (open_st != SGL_OK) {
        fprintf(stderr, "%s: %s\n", cmd, err.msg);
        goto out;
    }
    if (m->check_model && !m->check_model(m->user, e, model, msg, sizeof msg)) {
        fprintf(stderr, "%s: %s\n", cmd, msg);
        goto out;
    }
    if (!tmpl)
        tmpl = chat_template_detect(demo_dir[0] ? NULL : model, sgl_engine_tokenizer(e));
    xo.no_parallel = no_par;
    xo.stream = stream ? stdout : NULL;
    if (!sgl_exec_new(p, e, tmpl, &xo, &x, msg, sizeof msg)) {
        fprintf(stderr, "%s\n", msg);
        goto out;
    }
    if (m->prepare_exec && !m->prepare_exec(m->user, x, model, msg, sizeof msg)) {
        fprintf(stderr, "%s: %s\n", cmd, msg);
        goto out;
    }
have_exec:
    if (!(no_hoist && !m->takes_file))
        sgl_exec_warm(x);
    if (batch) {
        rc = run_batch(m->cmd, x, fn, batch, outp, parallel, stats, e);
        goto out;
    }
    if (!(vals = calloc(fn->n_params + 1, sizeof *vals)))
        goto out;
    if (!args_to_values(m->cmd, x, fn, kv, n_kv, vals)) {
        rc = 2;
        goto out;
    }
    if (!sgl_exec_run_main(x, vals, &res)) {
        if (stream)
            fputc('\n', stdout);
        fprintf(stderr, "%s\n", res.error);
        goto out;
    }
    if (json) {
        json_t *o = sgl_run_result_json(&res);
        if (o && stats && e)
            json_object_set_new(o, "engine", engine_json(e, &slog));
        json_t *eng = o && stats && e ? json_object_get(o, "engine") : NULL;
        if (eng) {   /* constraint masks served from the cache / computed by a trie walk */
            uint64_t hits, walks;
            tokreg_counters(x->tokreg, &hits, &walks);
            json_object_set_new(eng, "mask_cache_hits", json_integer((json_int_t)hits));
            json_object_set_new(eng, "mask_computations", json_integer((json_int_t)walks));
        }
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        json_decref(o);
        if (!s)
            goto out;
        if (stream && (res.len == 0 || res.text[res.len - 1] != '\n'))
            fputc('\n', stdout);
        printf("%s\n", s);
        free(s);
    } else if (stream) {
        if (res.len == 0 || res.text[res.len - 1] != '\n')
            fputc('\n', stdout);
    } else {
        fwrite(res.text, 1, res.len, stdout);
        if (res.len == 0 || res.text[res.len - 1] != '\n')
            fputc('\n', stdout);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    sgl_run_result_free(&res);
    if (vals && fn)
        unref_all(vals, fn->n_params);
    free(vals);
    sgl_engine_close(e);   /* first: it releases constraints that point into x */
    sgl_exec_free(x);
    remote_free(rm);
    if (slog.f)
        fclose(slog.f);
    if (demo_dir[0])
        sgl_demo_model_remove(demo_dir);
    if (m->owns_program)
        ir_program_free(p);
    for (int i = 0; i < n_kv; i++)
        free((char *)kv[i].name);
    return rc;
}
