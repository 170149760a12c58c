/* test_tp.c -- tensor parallelism on the CPU: shard arithmetic (runtime/tp.h),
 * the CPU runner's shards behind the TP runner (runtime/runner_tp.h) against
 * tp = 1 (logits within 1e-4 relative, same argmax), two "hosts" in one
 * process over the tcp bootstrap, the engine end to end (same greedy tokens
 * for tp 1, 2, 4), and the errors: tp not dividing a dimension, bad dist
 * options, an unreachable node 0, nobody joining.
 *
 * Models: a Llama config with GQA (8 heads, 4 KV heads, vocab 1001 so the
 * last vocabulary block is short) and a Qwen2 config (q/k/v biases, tied
 * embeddings), written to temp dirs and loaded with dummy weights; and
 * stories260K from SGL_SHARED_DIR. The engine cases symlink stories260K-hf's
 * tokenizer.json into the temp dirs and skip without SGL_SHARED_DIR. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kernels/ref/ref.h"
#include "runtime/comm_host.h"
#include "runtime/engine.h"
#include "runtime/runner_tp.h"

static const char *LLAMA_CFG =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 96,"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 8, \"num_key_value_heads\": 4, \"head_dim\": 8,"
    " \"vocab_size\": 1001, \"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-5,"
    " \"rope_theta\": 10000.0, \"tie_word_embeddings\": false, \"bos_token_id\": 1, \"eos_token_id\": 2,"
    " \"torch_dtype\": \"float32\"}";
static const char *QWEN_CFG =
    "{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 128,"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
    " \"vocab_size\": 515, \"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-6,"
    " \"rope_theta\": 1000000.0, \"tie_word_embeddings\": true, \"bos_token_id\": 1, \"eos_token_id\": 2,"
    " \"torch_dtype\": \"bfloat16\"}";

static char llama_dir[256], qwen_dir[256];

static const char *shared_dir(void)
{
    const char *s = getenv("SGL_SHARED_DIR");
    static char p[1024];
    if (!s)
        return NULL;
    snprintf(p, sizeof p, "%s/models/stories260K-hf/tokenizer.json", s);
    return access(p, R_OK) == 0 ? s : NULL;
}

static void make_model_dir(char *dir, size_t cap, const char *cfg)
{
    snprintf(dir, cap, "/tmp/sgl_test_tp_XXXXXX");
    assert_non_null(mkdtemp(dir));
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(cfg, f);
    fclose(f);
    const char *sh = shared_dir();
    if (sh) {   /* a tokenizer for the engine cases (vocab 512 <= the configs') */
        char src[1024];
        snprintf(src, sizeof src, "%s/models/stories260K-hf/tokenizer.json", sh);
        snprintf(p, sizeof p, "%s/tokenizer.json", dir);
        assert_int_equal(symlink(src, p), 0);
    }
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    (void)state;
    make_model_dir(llama_dir, sizeof llama_dir, LLAMA_CFG);
    make_model_dir(qwen_dir, sizeof qwen_dir, QWEN_CFG);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nftw(llama_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    nftw(qwen_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static SglModel *load_dummy(const char *dir)
{
    SglModel *m = NULL;
    SglErr err;
    if (sgl_model_load(dir, SGL_LOAD_DUMMY, &m, &err) != SGL_OK)
        fail_msg("%s", err.msg);
    return m;
}

/* A loopback port P with P + 1 also free (the CPU ranks' group), below the
 * kernel's ephemeral range (32768..) so no outgoing connection takes it
 * between this check and the listen. */
static int free_port(void)
{
    static unsigned seed;
    if (!seed)
        seed = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL);
    for (;;) {
        int p = 20000 + (int)(rand_r(&seed) % 12000), ok = 1;
        for (int k = 0; k < 2 && ok; k++) {
            int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
            struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(p + k)),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
            close(fd);
        }
        if (ok)
            return p;
    }
}

/* ---- shard arithmetic ---- */

static void test_shard(void **state)
{
    (void)state;
    SglModelConfig c = {.vocab_size = 10, .n_heads = 8, .n_kv_heads = 4, .intermediate_size = 96};
    SglTpShard sh;
    SglErr err;
    assert_int_equal(sgl_tp_shard(&c, (SglTp){1, 2}, &sh, &err), SGL_OK);
    assert_int_equal(sh.n_heads, 4);
    assert_int_equal(sh.n_kv_heads, 2);
    assert_int_equal(sh.head0, 4);
    assert_int_equal(sh.kv_head0, 2);
    assert_int_equal(sh.inter, 48);
    assert_int_equal(sh.inter0, 48);
    assert_int_equal(sh.vocab_block, 5);
    assert_int_equal(sh.vocab0, 5);
    assert_int_equal(sh.n_vocab, 5);
    /* vocab 10 over 4: blocks of 3, the last has 1 row */
    int64_t total = 0;
    for (int r = 0; r < 4; r++) {
        assert_int_equal(sgl_tp_shard(&c, (SglTp){r, 4}, &sh, &err), SGL_OK);
        assert_int_equal(sh.vocab_block, 3);
        assert_int_equal(sh.vocab0, 3 * r);
        assert_int_equal(sh.n_vocab, r < 3 ? 3 : 1);
        assert_int_equal(sh.kv_head0, r);
        assert_int_equal(sh.head0, 2 * r);
        total += sh.n_vocab;
    }
    assert_int_equal(total, 10);
    /* a vocabulary smaller than the rank count: empty blocks at the end */
    c.vocab_size = 2;
    assert_int_equal(sgl_tp_shard(&c, (SglTp){3, 4}, &sh, &err), SGL_OK);
    assert_int_equal(sh.n_vocab, 0);
    c.vocab_size = 10;
    assert_int_equal(sgl_tp_shard(&c, (SglTp){0, 1}, &sh, &err), SGL_OK);
    assert_int_equal(sh.n_heads, 8);
    assert_int_equal(sh.n_vocab, 10);
    /* errors name the field */
    assert_int_equal(sgl_tp_shard(&c, (SglTp){0, 3}, &sh, &err), SGL_E_INVAL);
    assert_string_equal(err.msg, "tp 3 does not divide num_attention_heads 8");
    c.n_kv_heads = 2;
    assert_int_equal(sgl_tp_shard(&c, (SglTp){0, 4}, &sh, &err), SGL_E_INVAL);
    assert_string_equal(err.msg, "tp 4 does not divide num_key_value_heads 2");
    c.n_kv_heads = 8;
    c.intermediate_size = 90;
    assert_int_equal(sgl_tp_shard(&c, (SglTp){0, 4}, &sh, &err), SGL_E_INVAL);
    assert_string_equal(err.msg, "tp 4 does not divide intermediate_size 90");
    assert_int_equal(sgl_tp_shard(&c, (SglTp){2, 2}, &sh, &err), SGL_E_INVAL);
    assert_int_equal(sgl_tp_shard(&c, (SglTp){0, 0}, &sh, &err), SGL_E_INVAL);
}

/* ---- runner level: tp = 1 vs the TP runner ---- */

#define MAXT 64

typedef struct {
    int32_t tokens[MAXT], positions[MAXT], seq_off[9], kv_len[8], slot_off[9], slots[8 * MAXT], rows[MAXT];
    SglBatch b;
} Step;

/* Step 0: prefill of 3 sequences (5, 3, 7 tokens, logits for every token of
 * the second); later steps: one decode token each, the previous argmax. */
static void make_step(Step *s, int step, const int32_t *prev_ids, int V)
{
    static const int lens[3] = {5, 3, 7};
    int nt = 0, nr = 0;
    s->seq_off[0] = s->slot_off[0] = 0;
    for (int q = 0; q < 3; q++) {
        int kv = lens[q] + step, n_new = step == 0 ? lens[q] : 1;
        for (int j = 0; j < n_new; j++) {
            int pos = kv - n_new + j;
            s->tokens[nt] = step == 0 ? (int32_t)((q * 131 + pos * 17 + 3) % V) : prev_ids[q];
            s->positions[nt] = pos;
            if (j == n_new - 1 || (step == 0 && q == 1))
                s->rows[nr++] = nt;
            nt++;
        }
        s->kv_len[q] = kv;
        for (int p = 0; p < kv; p++)   /* scattered slots */
            s->slots[s->slot_off[q] + p] = 5 + q + 3 * p;
        s->seq_off[q + 1] = nt;
        s->slot_off[q + 1] = s->slot_off[q] + kv;
    }
    s->b = (SglBatch){.n_seqs = 3, .n_tokens = nt, .tokens = s->tokens, .positions = s->positions,
                      .seq_off = s->seq_off, .kv_len = s->kv_len, .slot_off = s->slot_off, .slots = s->slots,
                      .n_logits = nr, .logit_rows = s->rows};
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* |a - b| <= 1e-4 * max|a| over each row (fp32 sums in another order). */
static void check_close(const float *ref, const float *got, int rows, int V, const char *what)
{
    for (int i = 0; i < rows; i++) {
        double mx = 0, d = 0;
        for (int j = 0; j < V; j++) {
            double a = fabs(ref[(int64_t)i * V + j]), e = fabs((double)ref[(int64_t)i * V + j] - got[(int64_t)i * V + j]);
            mx = a > mx ? a : mx;
            d = e > d || e != e ? e : d;
        }
        if (!(d <= 1e-4 * mx))
            fail_msg("%s: row %d: max |diff| %g vs max |logit| %g", what, i, d, mx);
        assert_int_equal(argmax(ref + (int64_t)i * V, V), argmax(got + (int64_t)i * V, V));
    }
}

static const SglRunnerOpts RO = {.n_slots = 512, .max_batch_tokens = MAXT, .max_seqs = 8, .n_threads = 1};

/* Runs 6 steps on r and on the reference; logits must agree each step. */
static void compare_runners(SglRunner *ref, SglRunner *r, const SglModelConfig *c, const char *what)
{
    int V = c->vocab_size;
    float *a = malloc(sizeof(float) * MAXT * (size_t)V), *b = malloc(sizeof(float) * MAXT * (size_t)V);
    int32_t prev[3] = {0};
    for (int step = 0; step < 6; step++) {
        Step s;
        make_step(&s, step, prev, V);
        SglErr err;
        /* canary: every logit must be written */
        for (int64_t i = 0; i < (int64_t)s.b.n_logits * V; i++)
            b[i] = NAN;
        if (sgl_runner_forward(ref, &s.b, a, &err) != SGL_OK)
            fail_msg("reference: %s", err.msg);
        if (sgl_runner_forward(r, &s.b, b, &err) != SGL_OK)
            fail_msg("%s: %s", what, err.msg);
        check_close(a, b, s.b.n_logits, V, what);
        int last[3] = {s.b.seq_off[1] - 1, s.b.seq_off[2] - 1, s.b.seq_off[3] - 1};
        for (int q = 0; q < 3; q++)
            for (int i = 0; i < s.b.n_logits; i++)
                if (s.rows[i] == last[q])
                    prev[q] = argmax(a + (int64_t)i * V, V);
    }
    free(a);
    free(b);
}

static void check_model_tp(SglModel *m, int tp, const char *what)
{
    SglRunner *ref = NULL, *r = NULL;
    SglErr err;
    assert_int_equal(sgl_runner_cpu_new(m, &RO, &ref, &err), SGL_OK);
    if (sgl_runner_tp_new(m, &RO, tp, NULL, &sgl_tp_cpu_factory, &r, &err) != SGL_OK)
        fail_msg("%s: %s", what, err.msg);
    assert_string_equal(r->ops->name, "cpu");
    assert_int_equal(r->opts.tp.size, tp);
    compare_runners(ref, r, &m->cfg, what);
    /* a bad batch fails on every rank alike; the group is usable afterwards */
    Step s;
    int32_t prev[3] = {0};
    make_step(&s, 0, prev, m->cfg.vocab_size);
    s.tokens[2] = m->cfg.vocab_size;
    float *lg = malloc(sizeof(float) * MAXT * (size_t)m->cfg.vocab_size);
    assert_int_equal(sgl_runner_forward(r, &s.b, lg, &err), SGL_E_INVAL);
    assert_non_null(strstr(err.msg, "tp rank 0: runner: token 2"));
    free(lg);
    sgl_runner_free(r);
    /* again, fresh KV, to check the same after an error */
    assert_int_equal(sgl_runner_tp_new(m, &RO, tp, NULL, &sgl_tp_cpu_factory, &r, &err), SGL_OK);
    sgl_runner_free(ref);
    assert_int_equal(sgl_runner_cpu_new(m, &RO, &ref, &err), SGL_OK);
    compare_runners(ref, r, &m->cfg, what);
    sgl_runner_free(r);
    sgl_runner_free(ref);
}

static void test_runner_llama(void **state)
{
    (void)state;
    SglModel *m = load_dummy(llama_dir);
    check_model_tp(m, 2, "llama tp 2");
    check_model_tp(m, 4, "llama tp 4");
    check_model_tp(m, 1, "llama tp 1 through the tp runner");
    SglRunner *r = NULL;
    SglErr err;
    assert_int_equal(sgl_runner_tp_new(m, &RO, 3, NULL, &sgl_tp_cpu_factory, &r, &err), SGL_E_INVAL);
    assert_string_equal(err.msg, "tp 3 does not divide num_attention_heads 8");
    assert_null(r);
    sgl_model_free(m);
}

static void test_runner_qwen2(void **state)
{
    (void)state;
    SglModel *m = load_dummy(qwen_dir);
    assert_true(m->cfg.qkv_bias);
    assert_true(m->cfg.tie_word_embeddings);
    check_model_tp(m, 2, "qwen2 tp 2");
    SglRunner *r = NULL;
    SglErr err;
    assert_int_equal(sgl_runner_tp_new(m, &RO, 4, NULL, &sgl_tp_cpu_factory, &r, &err), SGL_E_INVAL);
    assert_string_equal(err.msg, "tp 4 does not divide num_key_value_heads 2");
    /* the CPU runner itself refuses a shard without a matching comm */
    SglRunnerOpts o = RO;
    o.tp = (SglTp){1, 2};
    assert_int_equal(sgl_runner_cpu_new(m, &o, &r, &err), SGL_E_INVAL);
    assert_non_null(strstr(err.msg, "comm endpoint"));
    sgl_model_free(m);
}

static void test_runner_stories(void **state)
{
    (void)state;
    const char *sh = getenv("SGL_SHARED_DIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/stories260K-hf", sh ? sh : "");
    if (!sh || access(dir, R_OK) != 0)
        skip();
    SglModel *m = NULL;
    SglErr err;
    assert_int_equal(sgl_model_load(dir, SGL_LOAD_AUTO, &m, &err), SGL_OK);
    check_model_tp(m, 2, "stories260K tp 2");
    check_model_tp(m, 4, "stories260K tp 4");
    sgl_model_free(m);
}

/* ---- two hosts in one process: node 0's runner + a worker thread ---- */

typedef struct {
    SglModel *m;
    int tp;
    SglTpDist d;
    SglStatus st;
    SglErr err;
} Worker;

static void *worker_main(void *p)
{
    Worker *w = p;
    w->st = sgl_tp_worker_run(w->m, w->tp, &w->d, &sgl_tp_cpu_factory, &w->err);
    return NULL;
}

static void check_two_nodes(SglModel *m, int tp)
{
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
    Worker w = {.m = m, .tp = tp, .d = {.nnodes = 2, .node_rank = 1, .dist_init_addr = addr, .timeout_ms = 10000}};
    pthread_t th;
    pthread_create(&th, NULL, worker_main, &w);
    SglTpDist d0 = {.nnodes = 2, .node_rank = 0, .dist_init_addr = addr, .timeout_ms = 10000};
    SglRunner *ref = NULL, *r = NULL;
    SglErr err;
    assert_int_equal(sgl_runner_cpu_new(m, &RO, &ref, &err), SGL_OK);
    if (sgl_runner_tp_new(m, &RO, tp, &d0, &sgl_tp_cpu_factory, &r, &err) != SGL_OK)
        fail_msg("node 0: %s", err.msg);
    compare_runners(ref, r, &m->cfg, tp == 2 ? "2 nodes x 1 rank" : "2 nodes x 2 ranks");
    sgl_runner_free(r);   /* sends exit */
    pthread_join(th, NULL);
    if (w.st != SGL_OK)
        fail_msg("worker: %s", w.err.msg);
    sgl_runner_free(ref);
}

static void test_two_nodes(void **state)
{
    (void)state;
    SglModel *m = load_dummy(llama_dir);
    check_two_nodes(m, 2);
    check_two_nodes(m, 4);
    sgl_model_free(m);
}

static void test_dist_errors(void **state)
{
    (void)state;
    SglModel *m = load_dummy(llama_dir);
    SglRunner *r = NULL;
    SglErr err;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
    SglTpDist d = {.nnodes = 2, .node_rank = 0, .dist_init_addr = addr, .timeout_ms = 300};
    /* nobody joins node 0 */
    assert_int_equal(sgl_runner_tp_new(m, &RO, 2, &d, &sgl_tp_cpu_factory, &r, &err), SGL_E_IO);
    assert_non_null(strstr(err.msg, "0 of 1 peers connected"));
    /* node 0 never comes */
    d.node_rank = 1;
    assert_int_equal(sgl_tp_worker_run(m, 2, &d, &sgl_tp_cpu_factory, &err), SGL_E_IO);
    assert_non_null(strstr(err.msg, "cannot connect"));
    d.node_rank = 2;
    assert_int_equal(sgl_tp_worker_run(m, 2, &d, &sgl_tp_cpu_factory, &err), SGL_E_INVAL);
    assert_string_equal(err.msg, "node_rank 2 must be in [0, nnodes 2)");
    d.node_rank = 0;
    assert_int_equal(sgl_runner_tp_new(m, &RO, 3, &d, &sgl_tp_cpu_factory, &r, &err), SGL_E_INVAL);
    assert_string_equal(err.msg, "tp 3 is not a multiple of nnodes 2");
    d.dist_init_addr = NULL;
    assert_int_equal(sgl_runner_tp_new(m, &RO, 2, &d, &sgl_tp_cpu_factory, &r, &err), SGL_E_INVAL);
    assert_non_null(strstr(err.msg, "needs dist_init_addr"));
    d.dist_init_addr = "127.0.0.1";
    assert_int_equal(sgl_runner_tp_new(m, &RO, 2, &d, &sgl_tp_cpu_factory, &r, &err), SGL_E_INVAL);
    assert_non_null(strstr(err.msg, "not HOST:PORT"));
    d.node_rank = 1;
    assert_int_equal(sgl_runner_tp_new(m, &RO, 2, &d, &sgl_tp_cpu_factory, &r, &err), SGL_E_INVAL);
    assert_null(r);
    sgl_model_free(m);
}

/* ---- forward_sample through the TP runner ----
 * The CPU runner has no forward_sample; this test runner adds one (forward,
 * then sgl_ref_sample, the C reference of the device sampler) so the TP
 * runner's sampling path and its step messages (rows, masks, log-probs) run
 * as they do over CUDA runners. */

typedef struct {
    SglRunner base;
    SglRunner *cpu;
    float *logits;              /* (max_batch_tokens, V) */
    SglKSampleRow *krows;       /* (max_batch_tokens) */
} SampRunner;

static SglStatus samp_forward(SglRunner *r, const SglBatch *b, float *logits, SglErr *err)
{
    return sgl_runner_forward(((SampRunner *)r)->cpu, b, logits, err);
}

static SglStatus samp_forward_sample(SglRunner *r, const SglBatch *b, const SglRowSampling *rows,
                                     const uint32_t *masks, int32_t *ids, float *logprobs, SglErr *err)
{
    SampRunner *s = (SampRunner *)r;
    SglStatus st = sgl_runner_forward(s->cpu, b, s->logits, err);
    if (st != SGL_OK)
        return st;
    for (int i = 0; i < b->n_logits; i++)
        s->krows[i] = (SglKSampleRow){.seed = rows[i].seed, .step = rows[i].step, .temperature = rows[i].temperature,
                                      .top_k = rows[i].top_k, .top_p = rows[i].top_p, .min_p = rows[i].min_p,
                                      .use_mask = rows[i].use_mask, .want_logprob = rows[i].want_logprob};
    sgl_ref_sample(s->logits, b->n_logits, r->cfg->vocab_size, s->krows, masks, ids, logprobs);
    return SGL_OK;
}

static void samp_free(SglRunner *r)
{
    SampRunner *s = (SampRunner *)r;
    sgl_runner_free(s->cpu);
    free(s->logits);
    free(s->krows);
    free(s);
}

static const SglRunnerOps samp_ops = {.name = "cpu+ref_sample", .forward = samp_forward, .free = samp_free,
                                      .forward_sample = samp_forward_sample};

static SglStatus samp_new(void *ctx, const SglModel *m, const SglRunnerOpts *o, SglRunner **out, SglErr *err)
{
    (void)ctx;
    SampRunner *s = calloc(1, sizeof *s);
    SglStatus st = sgl_runner_cpu_new(m, o, &s->cpu, err);
    if (st != SGL_OK) {
        free(s);
        return st;
    }
    s->base = (SglRunner){.ops = &samp_ops, .cfg = &m->cfg, .opts = *o};
    s->logits = malloc(sizeof(float) * (size_t)o->max_batch_tokens * (size_t)m->cfg.vocab_size);
    s->krows = malloc(sizeof *s->krows * (size_t)o->max_batch_tokens);
    *out = &s->base;
    return SGL_OK;
}

static SglStatus samp_comm_new(void *ctx, const SglTpDist *d, SglComm *boot, int first_rank, int n_local, int size,
                               const int *device_ids, SglComm **out, SglErr *err)
{
    return sgl_tp_cpu_factory.comm_new(ctx, d, boot, first_rank, n_local, size, device_ids, out, err);
}

static const SglTpFactory samp_factory = {.comm_new = samp_comm_new, .runner_new = samp_new};

typedef struct {
    SglModel *m;
    SglTpDist d;
    SglStatus st;
    SglErr err;
} SampWorker;

static void *samp_worker_main(void *p)
{
    SampWorker *w = p;
    w->st = sgl_tp_worker_run(w->m, 2, &w->d, &samp_factory, &w->err);
    return NULL;
}

/* Greedy rows, some under a mask that bans the unmasked winner, log-probs
 * for some: ids equal and log-probs within 1e-4 of tp 1's. */
static void check_sample(SglRunner *ref, SglRunner *r, int V)
{
    int W = (V + 31) / 32;
    uint32_t *masks = malloc(sizeof *masks * MAXT * (size_t)W);
    float *lg = malloc(sizeof(float) * MAXT * (size_t)V);
    int32_t prev[3] = {0};
    for (int step = 0; step < 4; step++) {
        Step s;
        make_step(&s, step, prev, V);
        SglErr err;
        /* the unmasked winners, to ban them in the masked rows */
        if (sgl_runner_forward(ref, &s.b, lg, &err) != SGL_OK)
            fail_msg("%s", err.msg);
        SglRowSampling rows[MAXT];
        for (int i = 0; i < s.b.n_logits; i++) {
            rows[i] = (SglRowSampling){.temperature = 0, .top_p = 1, .use_mask = i % 2 == 1, .want_logprob = i % 3 != 2};
            for (int w = 0; w < W; w++)
                masks[(int64_t)i * W + w] = 0xffffffffu;
            int win = argmax(lg + (int64_t)i * V, V);
            masks[(int64_t)i * W + win / 32] &= ~(1u << (win % 32));
        }
        int32_t ids_a[MAXT], ids_b[MAXT];
        float lp_a[MAXT], lp_b[MAXT];
        if (ref->ops->forward_sample(ref, &s.b, rows, masks, ids_a, lp_a, &err) != SGL_OK)
            fail_msg("%s", err.msg);
        /* forward_sample also wrote this step's KV again: same values, same slots */
        if (r->ops->forward_sample(r, &s.b, rows, masks, ids_b, lp_b, &err) != SGL_OK)
            fail_msg("%s", err.msg);
        for (int i = 0; i < s.b.n_logits; i++) {
            assert_int_equal(ids_a[i], ids_b[i]);
            if (rows[i].use_mask)
                assert_int_not_equal(ids_a[i], argmax(lg + (int64_t)i * V, V));
            if (rows[i].want_logprob)
                assert_true(fabsf(lp_a[i] - lp_b[i]) <= 1e-4f * (1 + fabsf(lp_a[i])));
        }
        int last[3] = {s.b.seq_off[1] - 1, s.b.seq_off[2] - 1, s.b.seq_off[3] - 1};
        for (int q = 0; q < 3; q++)
            for (int i = 0; i < s.b.n_logits; i++)
                if (s.rows[i] == last[q])
                    prev[q] = ids_a[i];
    }
    free(masks);
    free(lg);
}

static void test_forward_sample(void **state)
{
    (void)state;
    SglModel *m = load_dummy(qwen_dir);
    SglRunner *ref = NULL, *r = NULL;
    SglErr err;
    /* one host */
    assert_int_equal(samp_new(NULL, m, &RO, &ref, &err), SGL_OK);
    assert_int_equal(sgl_runner_tp_new(m, &RO, 2, NULL, &samp_factory, &r, &err), SGL_OK);
    assert_non_null(r->ops->forward_sample);
    check_sample(ref, r, m->cfg.vocab_size);
    sgl_runner_free(r);
    sgl_runner_free(ref);
    /* two hosts: rows and masks travel in the step messages */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
    SampWorker w = {.m = m, .d = {.nnodes = 2, .node_rank = 1, .dist_init_addr = addr, .timeout_ms = 10000}};
    pthread_t th;
    pthread_create(&th, NULL, samp_worker_main, &w);
    SglTpDist d0 = {.nnodes = 2, .node_rank = 0, .dist_init_addr = addr, .timeout_ms = 10000};
    assert_int_equal(samp_new(NULL, m, &RO, &ref, &err), SGL_OK);
    if (sgl_runner_tp_new(m, &RO, 2, &d0, &samp_factory, &r, &err) != SGL_OK)
        fail_msg("%s", err.msg);
    check_sample(ref, r, m->cfg.vocab_size);
    sgl_runner_free(r);
    pthread_join(th, NULL);
    if (w.st != SGL_OK)
        fail_msg("worker: %s", w.err.msg);
    sgl_runner_free(ref);
    /* the plain CPU runner has none, and neither has its TP runner */
    assert_int_equal(sgl_runner_tp_new(m, &RO, 2, NULL, &sgl_tp_cpu_factory, &r, &err), SGL_OK);
    assert_null(r->ops->forward_sample);
    sgl_runner_free(r);
    sgl_model_free(m);
}

/* ---- forward_sample_begin / _end (the overlap scheduler's pair) ----
 * Greedy pipeline of 5 batches with two in flight: each decode batch's
 * tokens are negative references to the previous batch's sampled ids. The
 * TP runner over CPU ranks must return tp 1's ids. */

static void pipeline(SglRunner *r, int V, int32_t out[5][MAXT], int n_out[5])
{
    static Step s[5];
    SglRowSampling rows[MAXT];
    for (int i = 0; i < MAXT; i++)
        rows[i] = (SglRowSampling){.temperature = 0, .top_p = 1};
    int32_t zero[3] = {0};
    SglErr err;
    for (int step = 0; step < 5; step++) {
        make_step(&s[step], step, zero, V);
        if (step > 0) {   /* token of sequence q = the id sampled for its last row of the previous batch */
            const Step *p = &s[step - 1];
            for (int q = 0; q < 3; q++)
                for (int i = 0; i < p->b.n_logits; i++)
                    if (p->rows[i] == p->b.seq_off[q + 1] - 1)
                        s[step].tokens[q] = -(i + 1);
        }
        n_out[step] = s[step].b.n_logits;
        if (r->ops->forward_sample_begin(r, &s[step].b, rows, &err) != SGL_OK)
            fail_msg("begin %d: %s", step, err.msg);
        if (step > 0 && r->ops->forward_sample_end(r, out[step - 1], NULL, &err) != SGL_OK)
            fail_msg("end %d: %s", step - 1, err.msg);
    }
    if (r->ops->forward_sample_end(r, out[4], NULL, &err) != SGL_OK)
        fail_msg("end 4: %s", err.msg);
    assert_int_equal(r->ops->forward_sample_end(r, out[4], NULL, &err), SGL_E_INVAL);   /* nothing outstanding */
}

static void check_pipeline(SglModel *m, const SglTpDist *d0, const SglTpDist *d1)
{
    SglRunner *ref = NULL, *r = NULL;
    SglErr err;
    assert_int_equal(sgl_runner_cpu_new(m, &RO, &ref, &err), SGL_OK);
    if (!ref->ops->forward_sample_begin)
        skip();
    Worker w = {.m = m, .tp = 2};
    pthread_t th;
    if (d1) {
        w.d = *d1;
        pthread_create(&th, NULL, worker_main, &w);
    }
    if (sgl_runner_tp_new(m, &RO, 2, d0, &sgl_tp_cpu_factory, &r, &err) != SGL_OK)
        fail_msg("%s", err.msg);
    assert_non_null(r->ops->forward_sample_begin);
    static int32_t a[5][MAXT], b[5][MAXT];
    int na[5], nb[5];
    pipeline(ref, m->cfg.vocab_size, a, na);
    pipeline(r, m->cfg.vocab_size, b, nb);
    for (int k = 0; k < 5; k++) {
        assert_int_equal(na[k], nb[k]);
        assert_memory_equal(a[k], b[k], sizeof(int32_t) * (size_t)na[k]);
    }
    sgl_runner_free(r);
    if (d1) {
        pthread_join(th, NULL);
        if (w.st != SGL_OK)
            fail_msg("worker: %s", w.err.msg);
    }
    sgl_runner_free(ref);
}

static void test_begin_end(void **state)
{
    (void)state;
    SglModel *m = load_dummy(llama_dir);
    check_pipeline(m, NULL, NULL);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
    SglTpDist d0 = {.nnodes = 2, .node_rank = 0, .dist_init_addr = addr, .timeout_ms = 10000};
    SglTpDist d1 = d0;
    d1.node_rank = 1;
    check_pipeline(m, &d0, &d1);
    sgl_model_free(m);
}

/* ---- the engine: greedy tokens for tp 1, 2 (and 4) ---- */

static int32_t *generate(const char *dir, SglLoadFormat lf, int tp, int32_t *n_out)
{
    SglEngineOpts o;
    sgl_engine_opts_default(&o);
    o.model_dir = dir;
    o.load_format = lf;
    o.tp_size = tp;
    o.n_threads = 1;
    o.max_total_tokens = 4096;
    SglEngine *e = NULL;
    SglErr err;
    if (sgl_engine_open(&o, &e, &err) != SGL_OK)
        fail_msg("tp %d: %s", tp, err.msg);
    int32_t ids[8] = {1, 15, 300, 47, 9, 88, 120, 5};
    SglRequest rq = {.input_ids = ids, .n_input = 8};
    sgl_sampling_params_default(&rq.params);
    rq.params.temperature = 0.0f;
    rq.params.ignore_eos = true;
    rq.params.max_new_tokens = 24;
    SglGenResult res;
    assert_int_equal(sgl_engine_generate(e, &rq, &res, &err), SGL_OK);
    assert_int_equal(res.samples[0].finish, SGL_FINISH_LENGTH);
    *n_out = res.samples[0].n_output;
    int32_t *out = malloc(sizeof *out * (size_t)*n_out);
    memcpy(out, res.samples[0].output_ids, sizeof *out * (size_t)*n_out);
    sgl_gen_result_free(&res);
    sgl_engine_close(e);
    return out;
}

static void check_engine(const char *dir, SglLoadFormat lf, const int *tps, int n_tps)
{
    int32_t n1 = 0, n2 = 0;
    int32_t *a = generate(dir, lf, 1, &n1);
    assert_int_equal(n1, 24);
    for (int i = 0; i < n_tps; i++) {
        int32_t *b = generate(dir, lf, tps[i], &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(a, b, sizeof *a * (size_t)n1);
        free(b);
    }
    free(a);
}

static void test_engine(void **state)
{
    (void)state;
    if (!shared_dir()) {
        printf("skipped: SGL_SHARED_DIR (stories260K-hf tokenizer) is missing\n");
        skip();
    }
    check_engine(llama_dir, SGL_LOAD_DUMMY, (int[]){2, 4}, 2);
    check_engine(qwen_dir, SGL_LOAD_DUMMY, (int[]){2}, 1);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/stories260K-hf", shared_dir());
    check_engine(dir, SGL_LOAD_AUTO, (int[]){2, 4}, 2);
    /* options the engine refuses */
    SglEngineOpts o;
    sgl_engine_opts_default(&o);
    o.model_dir = dir;
    SglEngine *e = NULL;
    SglErr err;
    o.tp_size = 3;
    assert_int_equal(sgl_engine_open(&o, &e, &err), SGL_E_INVAL);
    assert_non_null(strstr(err.msg, "tp 3 does not divide num_attention_heads 8"));
    o.tp_size = 2;
    o.nnodes = 2;
    o.node_rank = 2;
    assert_int_equal(sgl_engine_open(&o, &e, &err), SGL_E_INVAL);
    assert_string_equal(err.msg, "node_rank 2 must be in [0, nnodes 2)");
    o.node_rank = 1;
    o.dist_init_addr = "127.0.0.1:1";
    assert_int_equal(sgl_engine_open(&o, &e, &err), SGL_E_INVAL);
    assert_non_null(strstr(err.msg, "is a worker"));
    assert_null(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shard),
        cmocka_unit_test(test_runner_llama),
        cmocka_unit_test(test_runner_qwen2),
        cmocka_unit_test(test_runner_stories),
        cmocka_unit_test(test_two_nodes),
        cmocka_unit_test(test_dist_errors),
        cmocka_unit_test(test_forward_sample),
        cmocka_unit_test(test_begin_end),
        cmocka_unit_test(test_engine),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
