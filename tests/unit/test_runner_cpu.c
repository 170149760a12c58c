/* test_runner_cpu.c -- the CPU runner against goldens, itself and a naive reference.
 *
 * 1. stories260K goldens (transformers fp32 greedy): prefill + 96 greedy
 *    steps, one sequence at a time and all 12 at once on shuffled slots;
 *    top-5 ids and log-probs at the 8 recorded positions.
 * 2. Batching invariance on a tiny random model: mixed lengths in one batch
 *    == one at a time; shuffled slots; chunked prefill; prefill+decode mixed.
 * 3. A deliberately naive reference forward (plain loops in double, written
 *    here from the Hugging Face definitions, sharing no code with the
 *    runtime) on a tiny Qwen2-style model (qkv bias, untied lm_head, llama3
 *    rope scaling, head_dim != hidden/heads) written as a real safetensors file.
 * 4. f32 / f16 / bf16 checkpoints of the same (exactly representable) values
 *    give identical logits; AVX2 and generic kernels agree.
 * 5. A dummy model of SmolLM2-135M's shape loads and decodes a few steps.
 * 6. forward_sample_begin/end (the step thread) against forward +
 *    sgl_ref_sample, with placeholder tokens; the contract's errors.
 * Tests needing ../shared print "skipped: ..." when SGL_SHARED_DIR is absent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/ref/ref.h"
#include "runtime/cpu_ops.h"
#include "runtime/model.h"
#include "runtime/runner.h"

/* ---- batch builder ------------------------------------------------------ */

#define MAXT 2048

typedef struct {
    int32_t tokens[MAXT], positions[MAXT], seq_off[MAXT + 1], kv_len[MAXT], slot_off[MAXT + 1];
    int32_t slots[8 * MAXT], logit_rows[MAXT];
    int n_seqs, n_tokens, n_logits, n_slots;
} TBatch;

static void tb_reset(TBatch *b)
{
    b->n_seqs = b->n_tokens = b->n_logits = b->n_slots = 0;
    b->seq_off[0] = b->slot_off[0] = 0;
}

/* Adds a sequence whose KV has kv_before cached positions and n_new new
 * tokens; seq_slots holds kv_before + n_new slots. Logits for the last new
 * token, or for every new token when all_logits. */
static void tb_add(TBatch *b, const int32_t *toks, int n_new, int kv_before, const int32_t *seq_slots,
                   bool all_logits)
{
    for (int j = 0; j < n_new; j++) {
        if (all_logits || j == n_new - 1)
            b->logit_rows[b->n_logits++] = b->n_tokens;
        b->positions[b->n_tokens] = kv_before + j;
        b->tokens[b->n_tokens++] = toks[j];
    }
    for (int j = 0; j < kv_before + n_new; j++)
        b->slots[b->n_slots++] = seq_slots[j];
    b->kv_len[b->n_seqs] = kv_before + n_new;
    b->n_seqs++;
    b->seq_off[b->n_seqs] = b->n_tokens;
    b->slot_off[b->n_seqs] = b->n_slots;
}

static SglBatch tb_view(const TBatch *b)
{
    return (SglBatch){.n_seqs = b->n_seqs, .n_tokens = b->n_tokens, .tokens = b->tokens,
                      .positions = b->positions, .seq_off = b->seq_off, .kv_len = b->kv_len,
                      .slot_off = b->slot_off, .slots = b->slots, .n_logits = b->n_logits,
                      .logit_rows = b->logit_rows};
}

static void run_batch(SglRunner *r, const TBatch *tb, float *logits)
{
    SglErr err = {{0}};
    SglBatch b = tb_view(tb);
    SglStatus st = sgl_runner_forward(r, &b, logits, &err);
    if (st != SGL_OK)
        fail_msg("forward: %s", err.msg);
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static double max_abs_diff(const float *a, const float *b, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m))
            m = d;  /* NaN propagates as a failure */
    }
    return m;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float rng_uniform(uint64_t *s) { return (float)((rng_next(s) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }

static void shuffle(int32_t *a, int n, uint64_t *s)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rng_next(s) % (uint64_t)(i + 1));
        int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static const char *shared_dir(void)
{
    const char *d = getenv("SGL_SHARED_DIR");
    struct stat sb;
    if (!d || stat(d, &sb) != 0)
        return NULL;
    return d;
}

/* ---- 1. stories260K goldens --------------------------------------------- */

typedef struct {
    int n_prompt;
    int32_t prompt[64];
    int32_t greedy[96];
    int32_t top5[8][5];
    double top5_lp[8][5];
} Golden;

static int load_goldens(const char *path, Golden *g, int max)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    assert_non_null(root);
    json_t *cases = json_object_get(root, "cases");
    int n = 0;
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        if (n == max)
            break;
        Golden *o = &g[n++];
        json_t *p = json_object_get(c, "prompt_ids"), *gr = json_object_get(c, "greedy_ids");
        o->n_prompt = (int)json_array_size(p);
        assert_true(o->n_prompt <= 64 && json_array_size(gr) == 96);
        for (int j = 0; j < o->n_prompt; j++)
            o->prompt[j] = (int32_t)json_integer_value(json_array_get(p, (size_t)j));
        for (int j = 0; j < 96; j++)
            o->greedy[j] = (int32_t)json_integer_value(json_array_get(gr, (size_t)j));
        for (int k = 0; k < 8; k++)
            for (int j = 0; j < 5; j++) {
                o->top5[k][j] = (int32_t)json_integer_value(
                    json_array_get(json_array_get(json_object_get(c, "top5_ids"), (size_t)k), (size_t)j));
                o->top5_lp[k][j] = json_number_value(
                    json_array_get(json_array_get(json_object_get(c, "top5_logprobs"), (size_t)k), (size_t)j));
            }
    }
    json_decref(root);
    return n;
}

/* Checks one step's logits against the golden: greedy id, and the top-5
 * ids / log-probs for the first 8 steps. Returns the greedy id. */
static int check_step(const Golden *g, int step, const float *logits, int V, int case_no)
{
    int next = argmax(logits, V);
    if (next != g->greedy[step])
        fail_msg("case %d step %d: greedy id %d, golden %d", case_no, step, next, g->greedy[step]);
    if (step < 8) {
        double mx = logits[next], sum = 0;
        for (int v = 0; v < V; v++)
            sum += exp((double)logits[v] - mx);
        double lse = mx + log(sum);
        for (int j = 0; j < 5; j++) {
            int id = g->top5[step][j];
            /* ids must be the top 5 in order: each id's logit is the j-th largest */
            int rank = 0;
            for (int v = 0; v < V; v++)
                rank += logits[v] > logits[id];
            if (rank != j)
                fail_msg("case %d step %d: golden top5[%d]=%d has rank %d", case_no, step, j, id, rank);
            double lp = (double)logits[id] - lse;
            if (fabs(lp - g->top5_lp[step][j]) > 1e-3)
                fail_msg("case %d step %d: logprob of %d = %.5f, golden %.5f", case_no, step, id, lp,
                         g->top5_lp[step][j]);
        }
    }
    return next;
}

static SglModel *load_stories(void)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models/stories260K-hf", shared_dir());
    SglModel *m = NULL;
    SglErr err = {{0}};
    if (sgl_model_load(dir, SGL_LOAD_AUTO, &m, &err) != SGL_OK)
        fail_msg("load %s: %s", dir, err.msg);
    return m;
}

static void test_goldens_one_by_one(void **state)
{
    (void)state;
    if (!shared_dir())
        skip();
    static Golden g[16];
    char path[4096];
    snprintf(path, sizeof path, "%s/goldens/stories260K_goldens.json", shared_dir());
    int n = load_goldens(path, g, 16);
    assert_int_equal(n, 12);
    SglModel *m = load_stories();
    SglRunner *r = NULL;
    SglErr err = {{0}};
    SglRunnerOpts o = {.n_slots = 256, .max_batch_tokens = 64, .max_seqs = 4, .n_threads = 1};
    assert_int_equal(sgl_runner_cpu_new(m, &o, &r, &err), SGL_OK);
    const int V = m->cfg.vocab_size;
    float *logits = malloc(sizeof(float) * (size_t)V);
    static TBatch tb;
    int32_t slots[256], toks[256];
    for (int i = 0; i < 256; i++)
        slots[i] = 255 - i;   /* reversed: the slot order must not matter */
    for (int c = 0; c < n; c++) {
        memcpy(toks, g[c].prompt, sizeof(int32_t) * (size_t)g[c].n_prompt);
        int len = g[c].n_prompt;
        tb_reset(&tb);
        tb_add(&tb, toks, len, 0, slots, false);
        run_batch(r, &tb, logits);
        for (int step = 0; step < 96; step++) {
            int next = check_step(&g[c], step, logits, V, c);
            if (step == 95)
                break;
            toks[len] = next;
            tb_reset(&tb);
            tb_add(&tb, &toks[len], 1, len, slots, false);
            len++;
            run_batch(r, &tb, logits);
        }
    }
    free(logits);
    sgl_runner_free(r);
    sgl_model_free(m);
}

/* All 12 prompts prefilled in one batch and decoded together, each sequence
 * on a random, non-contiguous set of slots. */
static void test_goldens_batched(void **state)
{
    (void)state;
    if (!shared_dir())
        skip();
    static Golden g[16];
    char path[4096];
    snprintf(path, sizeof path, "%s/goldens/stories260K_goldens.json", shared_dir());
    int n = load_goldens(path, g, 16);
    SglModel *m = load_stories();
    SglRunner *r = NULL;
    SglErr err = {{0}};
    enum { PER = 112 };
    SglRunnerOpts o = {.n_slots = 16 * PER, .max_batch_tokens = 256, .max_seqs = 16, .n_threads = 1};
    assert_int_equal(sgl_runner_cpu_new(m, &o, &r, &err), SGL_OK);
    const int V = m->cfg.vocab_size;
    float *logits = malloc(sizeof(float) * (size_t)V * 16);
    static int32_t perm[16 * PER], toks[16][PER];
    static TBatch tb;
    uint64_t rng = 12345;
    for (int i = 0; i < 16 * PER; i++)
        perm[i] = i;
    shuffle(perm, 16 * PER, &rng);
    int len[16];
    tb_reset(&tb);
    for (int c = 0; c < n; c++) {
        memcpy(toks[c], g[c].prompt, sizeof(int32_t) * (size_t)g[c].n_prompt);
        len[c] = g[c].n_prompt;
        tb_add(&tb, toks[c], len[c], 0, perm + c * PER, false);
    }
    run_batch(r, &tb, logits);
    for (int step = 0; step < 96; step++) {
        tb_reset(&tb);
        for (int c = 0; c < n; c++) {
            int next = check_step(&g[c], step, logits + (int64_t)c * V, V, c);
            toks[c][len[c]] = next;
            tb_add(&tb, &toks[c][len[c]], 1, len[c], perm + c * PER, false);
            len[c]++;
        }
        if (step < 95)
            run_batch(r, &tb, logits);
    }
    free(logits);
    sgl_runner_free(r);
    sgl_model_free(m);
}

/* ---- tiny model written as safetensors ---------------------------------- */

typedef struct {
    int hidden, inter, layers, heads, kv_heads, head_dim, vocab;
    bool qkv_bias, tied, llama3;
    int window;           /* sliding_window (Mistral); 0 = none */
    const char *arch;
} TinyCfg;

typedef struct {
    char name[96];
    int ndim;
    int64_t shape[2];
    float *data;          /* values as float (exactly representable in bf16) */
} TinyTensor;

typedef struct {
    TinyCfg c;
    TinyTensor t[256];
    int n;
} TinyModel;

static float round_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x8000) & 0xFFFF0000u;
    memcpy(&f, &u, 4);
    if (fabsf(f) < 1.0f / 8192)   /* keep values f16-normal as well */
        f = 0;
    return f;
}

static void tiny_add(TinyModel *tm, uint64_t *rng, const char *name, int ndim, int64_t d0, int64_t d1,
                     float scale, float offset)
{
    TinyTensor *t = &tm->t[tm->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    int64_t n = ndim == 1 ? d0 : d0 * d1;
    t->data = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        t->data[i] = round_bf16(offset + scale * rng_uniform(rng));
}

static void tiny_build(TinyModel *tm, const TinyCfg *c, uint64_t seed)
{
    memset(tm, 0, sizeof *tm);
    tm->c = *c;
    uint64_t rng = seed;
    int Q = c->heads * c->head_dim, KV = c->kv_heads * c->head_dim;
    char nm[96];
    tiny_add(tm, &rng, "model.embed_tokens.weight", 2, c->vocab, c->hidden, 1.0f, 0);
    tiny_add(tm, &rng, "model.norm.weight", 1, c->hidden, 0, 0.2f, 1.0f);
    if (!c->tied)
        tiny_add(tm, &rng, "lm_head.weight", 2, c->vocab, c->hidden, 0.3f, 0);
    for (int l = 0; l < c->layers; l++) {
#define ADD(suffix, nd, a, b, sc, off) \
    (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix), tiny_add(tm, &rng, nm, nd, a, b, sc, off))
        ADD("input_layernorm.weight", 1, c->hidden, 0, 0.2f, 1.0f);
        ADD("self_attn.q_proj.weight", 2, Q, c->hidden, 0.4f, 0);
        ADD("self_attn.k_proj.weight", 2, KV, c->hidden, 0.4f, 0);
        ADD("self_attn.v_proj.weight", 2, KV, c->hidden, 0.4f, 0);
        if (c->qkv_bias) {
            ADD("self_attn.q_proj.bias", 1, Q, 0, 0.3f, 0);
            ADD("self_attn.k_proj.bias", 1, KV, 0, 0.3f, 0);
            ADD("self_attn.v_proj.bias", 1, KV, 0, 0.3f, 0);
        }
        ADD("self_attn.o_proj.weight", 2, c->hidden, Q, 0.3f, 0);
        ADD("post_attention_layernorm.weight", 1, c->hidden, 0, 0.2f, 1.0f);
        ADD("mlp.gate_proj.weight", 2, c->inter, c->hidden, 0.4f, 0);
        ADD("mlp.up_proj.weight", 2, c->inter, c->hidden, 0.4f, 0);
        ADD("mlp.down_proj.weight", 2, c->hidden, c->inter, 0.3f, 0);
#undef ADD
    }
}

static void tiny_free(TinyModel *tm)
{
    for (int i = 0; i < tm->n; i++)
        free(tm->t[i].data);
}

static const TinyTensor *tiny_get(const TinyModel *tm, const char *name)
{
    for (int i = 0; i < tm->n; i++)
        if (!strcmp(tm->t[i].name, name))
            return &tm->t[i];
    fail_msg("no tensor %s", name);
    return NULL;
}

static uint16_t to_f16(float f)   /* exact for the values round_bf16 makes */
{
    if (f == 0)
        return 0;
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000, e = (u >> 23) & 0xFF, man = u & 0x7FFFFF;
    return (uint16_t)(sign | ((e - 112) << 10) | (man >> 13));
}

/* Writes dir/config.json and dir/model.safetensors in dtype "F32"/"F16"/"BF16". */
static void tiny_write(const TinyModel *tm, const char *dir, const char *dtype)
{
    char path[4200];
    const TinyCfg *c = &tm->c;
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"architectures\": [\"%s\"], \"hidden_size\": %d, \"intermediate_size\": %d,\n"
               " \"num_hidden_layers\": %d, \"num_attention_heads\": %d, \"num_key_value_heads\": %d,\n"
               " \"head_dim\": %d, \"vocab_size\": %d, \"max_position_embeddings\": 256,\n"
               " \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0, \"tie_word_embeddings\": %s,\n"
               " \"torch_dtype\": \"float32\", \"bos_token_id\": 1, \"eos_token_id\": [2, 3],\n"
               " \"attention_bias\": %s, \"rope_scaling\": %s}\n",
            c->arch, c->hidden, c->inter, c->layers, c->heads, c->kv_heads, c->head_dim, c->vocab,
            c->tied ? "true" : "false", c->qkv_bias ? "true" : "false",
            c->llama3 ? "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, "
                        "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 64}"
                      : "null");
    if (c->window > 0) {   /* reopen the object to append the field */
        fseek(f, -2, SEEK_END);
        fprintf(f, ", \"sliding_window\": %d}\n", c->window);
    }
    fclose(f);
    int esz = strcmp(dtype, "F32") ? 2 : 4;
    json_t *h = json_object();
    int64_t off = 0;
    for (int i = 0; i < tm->n; i++) {
        const TinyTensor *t = &tm->t[i];
        int64_t n = t->ndim == 1 ? t->shape[0] : t->shape[0] * t->shape[1];
        json_t *shape = t->ndim == 1 ? json_pack("[I]", (json_int_t)t->shape[0])
                                     : json_pack("[I,I]", (json_int_t)t->shape[0], (json_int_t)t->shape[1]);
        json_object_set_new(h, t->name, json_pack("{s:s,s:o,s:[I,I]}", "dtype", dtype, "shape", shape,
                                                  "data_offsets", (json_int_t)off, (json_int_t)(off + n * esz)));
        off += n * esz;
    }
    char *hs = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    size_t hl = strlen(hs), padded = (hl + 7) / 8 * 8;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(hs, 1, hl, f);
    for (size_t i = hl; i < padded; i++)
        fputc(' ', f);
    free(hs);
    for (int i = 0; i < tm->n; i++) {
        const TinyTensor *t = &tm->t[i];
        int64_t n = t->ndim == 1 ? t->shape[0] : t->shape[0] * t->shape[1];
        for (int64_t j = 0; j < n; j++) {
            float v = t->data[j];
            if (esz == 4)
                fwrite(&v, 4, 1, f);
            else {
                uint32_t u;
                memcpy(&u, &v, 4);
                uint16_t b = !strcmp(dtype, "BF16") ? (uint16_t)(u >> 16) : to_f16(v);
                fwrite(&b, 2, 1, f);
            }
        }
    }
    fclose(f);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static void make_tmpdir(char *buf, size_t n)
{
    const char *t = getenv("TMPDIR");
    snprintf(buf, n, "%s/sgl_runner_XXXXXX", t ? t : "/tmp");
    assert_non_null(mkdtemp(buf));
}

static void rm_tree(const char *dir) { nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS); }

static const TinyCfg qwen_cfg = {.hidden = 32, .inter = 44, .layers = 2, .heads = 4, .kv_heads = 2,
                                 .head_dim = 16, .vocab = 67, .qkv_bias = true, .tied = false,
                                 .llama3 = true, .arch = "Qwen2ForCausalLM"};

static SglModel *tiny_load(const TinyModel *tm, const char *dtype)
{
    char dir[4096];
    make_tmpdir(dir, sizeof dir);
    tiny_write(tm, dir, dtype);
    SglModel *m = NULL;
    SglErr err = {{0}};
    SglStatus st = sgl_model_load(dir, SGL_LOAD_AUTO, &m, &err);
    rm_tree(dir);    /* the mapping stays valid after unlink */
    if (st != SGL_OK)
        fail_msg("load tiny model: %s", err.msg);
    return m;
}

/* ---- 3. naive reference forward ----------------------------------------- */

/* Full-sequence forward of tokens[0..n) in double precision; logits (n, vocab).
 * Written from the HF modeling code: nothing here is shared with the runtime. */
static void naive_forward(const TinyModel *tm, const int32_t *tokens, int n, double *logits)
{
    const TinyCfg *c = &tm->c;
    int D = c->hidden, hd = c->head_dim, NH = c->heads, NKV = c->kv_heads, F = c->inter;
    int Q = NH * hd, KV = NKV * hd;
    double *x = calloc((size_t)n * D, sizeof(double)), *h = calloc((size_t)D, sizeof(double));
    double *q = calloc((size_t)n * Q, sizeof(double)), *k = calloc((size_t)n * KV, sizeof(double));
    double *v = calloc((size_t)n * KV, sizeof(double)), *att = calloc((size_t)n * Q, sizeof(double));
    double *mid = calloc((size_t)F * 2, sizeof(double)), *sc = calloc((size_t)n, sizeof(double));
    char nm[128];
    const TinyTensor *emb = tiny_get(tm, "model.embed_tokens.weight");
    for (int t = 0; t < n; t++)
        for (int i = 0; i < D; i++)
            x[t * D + i] = emb->data[tokens[t] * D + i];
    /* inverse frequencies with HF's llama3 rule */
    double inv[64];
    for (int i = 0; i < hd / 2; i++) {
        double f = 1.0 / pow(10000.0, 2.0 * i / hd);
        if (c->llama3) {
            double factor = 8, lo = 1, hi = 4, old = 64;
            double wl = 2 * M_PI / f;
            if (wl > old / lo)
                f = f / factor;
            else if (wl >= old / hi) {
                double s = (old / wl - lo) / (hi - lo);
                f = (1 - s) * f / factor + s * f;
            }
        }
        inv[i] = f;
    }
    for (int l = 0; l < c->layers; l++) {
#define W(suffix) (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix), tiny_get(tm, nm)->data)
        const float *ln1 = W("input_layernorm.weight"), *wq = W("self_attn.q_proj.weight"),
                    *wk = W("self_attn.k_proj.weight"), *wv = W("self_attn.v_proj.weight"),
                    *wo = W("self_attn.o_proj.weight"), *ln2 = W("post_attention_layernorm.weight"),
                    *wg = W("mlp.gate_proj.weight"), *wu = W("mlp.up_proj.weight"),
                    *wd = W("mlp.down_proj.weight");
        const float *bq = c->qkv_bias ? W("self_attn.q_proj.bias") : NULL;
        const float *bk = c->qkv_bias ? W("self_attn.k_proj.bias") : NULL;
        const float *bv = c->qkv_bias ? W("self_attn.v_proj.bias") : NULL;
#undef W
        for (int t = 0; t < n; t++) {
            double ss = 0;
            for (int i = 0; i < D; i++)
                ss += x[t * D + i] * x[t * D + i];
            double rr = 1.0 / sqrt(ss / D + 1e-5);
            for (int i = 0; i < D; i++)
                h[i] = ln1[i] * x[t * D + i] * rr;
            for (int o = 0; o < Q; o++) {
                double a = bq ? bq[o] : 0;
                for (int i = 0; i < D; i++)
                    a += wq[o * D + i] * h[i];
                q[t * Q + o] = a;
            }
            for (int o = 0; o < KV; o++) {
                double a = bk ? bk[o] : 0, b = bv ? bv[o] : 0;
                for (int i = 0; i < D; i++) {
                    a += wk[o * D + i] * h[i];
                    b += wv[o * D + i] * h[i];
                }
                k[t * KV + o] = a;
                v[t * KV + o] = b;
            }
            /* rotate_half: out = x*cos + rotate_half(x)*sin, rotate_half(x) = (-x2, x1) */
            for (int hh = 0; hh < NH + NKV; hh++) {
                double *vec = hh < NH ? &q[t * Q + hh * hd] : &k[t * KV + (hh - NH) * hd];
                double tmp[128];
                for (int i = 0; i < hd; i++) {
                    double ang = t * inv[i % (hd / 2)];
                    double rot = i < hd / 2 ? -vec[i + hd / 2] : vec[i - hd / 2];
                    tmp[i] = vec[i] * cos(ang) + rot * sin(ang);
                }
                memcpy(vec, tmp, sizeof(double) * (size_t)hd);
            }
        }
        for (int t = 0; t < n; t++)
            for (int hh = 0; hh < NH; hh++) {
                int kvh = hh / (NH / NKV);
                double mx = -1e300, sum = 0;
                int s0 = c->window > 0 && t >= c->window ? t - c->window + 1 : 0;
                for (int s = s0; s <= t; s++) {
                    double a = 0;
                    for (int i = 0; i < hd; i++)
                        a += q[t * Q + hh * hd + i] * k[s * KV + kvh * hd + i];
                    sc[s] = a / sqrt((double)hd);
                    if (sc[s] > mx)
                        mx = sc[s];
                }
                for (int s = s0; s <= t; s++)
                    sum += sc[s] = exp(sc[s] - mx);
                for (int i = 0; i < hd; i++) {
                    double a = 0;
                    for (int s = s0; s <= t; s++)
                        a += sc[s] / sum * v[s * KV + kvh * hd + i];
                    att[t * Q + hh * hd + i] = a;
                }
            }
        for (int t = 0; t < n; t++) {
            for (int o = 0; o < D; o++) {
                double a = 0;
                for (int i = 0; i < Q; i++)
                    a += wo[o * Q + i] * att[t * Q + i];
                h[o] = a;
            }
            for (int o = 0; o < D; o++)
                x[t * D + o] += h[o];
            double ss = 0;
            for (int i = 0; i < D; i++)
                ss += x[t * D + i] * x[t * D + i];
            double rr = 1.0 / sqrt(ss / D + 1e-5);
            for (int i = 0; i < D; i++)
                h[i] = ln2[i] * x[t * D + i] * rr;
            for (int o = 0; o < F; o++) {
                double g = 0, u = 0;
                for (int i = 0; i < D; i++) {
                    g += wg[o * D + i] * h[i];
                    u += wu[o * D + i] * h[i];
                }
                mid[o] = g / (1 + exp(-g)) * u;
            }
            for (int o = 0; o < D; o++) {
                double a = 0;
                for (int i = 0; i < F; i++)
                    a += wd[o * F + i] * mid[i];
                x[t * D + o] += a;
            }
        }
    }
    const float *fn = tiny_get(tm, "model.norm.weight")->data;
    const float *lm = tiny_get(tm, c->tied ? "model.embed_tokens.weight" : "lm_head.weight")->data;
    for (int t = 0; t < n; t++) {
        double ss = 0;
        for (int i = 0; i < D; i++)
            ss += x[t * D + i] * x[t * D + i];
        double rr = 1.0 / sqrt(ss / D + 1e-5);
        for (int i = 0; i < D; i++)
            h[i] = fn[i] * x[t * D + i] * rr;
        for (int o = 0; o < c->vocab; o++) {
            double a = 0;
            for (int i = 0; i < D; i++)
                a += lm[o * D + i] * h[i];
            logits[t * c->vocab + o] = a;
        }
    }
    free(x); free(h); free(q); free(k); free(v); free(att); free(mid); free(sc);
}

/* Prefill of N tokens (logits for all) and N single-token decode steps of
 * the runner against naive_forward, on every kernel path. */
static void check_naive(const TinyCfg *cfg, uint64_t seed)
{
    static TinyModel tm;
    tiny_build(&tm, cfg, seed);
    SglModel *m = tiny_load(&tm, "F32");
    assert_int_equal(m->cfg.sliding_window, cfg->window);
    enum { N = 150 };   /* > CPU_ATTN_TILE: the online softmax crosses a tile */
    int V = cfg->vocab;
    int32_t toks[N], slots[N];
    uint64_t rng = 99;
    for (int i = 0; i < N; i++) {
        toks[i] = (int32_t)(rng_next(&rng) % (uint64_t)V);
        slots[i] = N - 1 - i;
    }
    double *ref = malloc(sizeof(double) * N * (size_t)V);
    naive_forward(&tm, toks, N, ref);
    float *got = malloc(sizeof(float) * N * (size_t)V);
    SglRunnerOpts o = {.n_slots = N, .max_batch_tokens = N, .max_seqs = 2, .n_threads = 1};
    SglRunner *r = NULL;
    SglErr err = {{0}};
    static TBatch tb;
    /* every path: sgemm for everything, the best hand-written kernels, and
     * the generic C kernels (what a CPU without AVX2 runs) */
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 2)
            setenv("SGL_CPU_KERNELS", "generic", 1);
        assert_int_equal(sgl_runner_cpu_new(m, &o, &r, &err), SGL_OK);
        unsetenv("SGL_CPU_KERNELS");
        if (pass == 0)
            sgl_runner_cpu_set_sgemm_cutoff(r, 1, 0);
        else
            sgl_runner_cpu_set_sgemm_cutoff(r, INT32_MAX, INT64_MAX);
        tb_reset(&tb);
        tb_add(&tb, toks, N, 0, slots, true);
        run_batch(r, &tb, got);
        double mag = 0;
        for (int i = 0; i < N * V; i++) {
            /* fp32 vs double through 2 layers: |err| ~ 1e-6 * |logit|; 1e-4 abs. */
            double d = fabs(got[i] - ref[i]);
            mag = fabs(ref[i]) > mag ? fabs(ref[i]) : mag;
            if (!(d <= 1e-4))
                fail_msg("pass %d prefill logit [%d][%d]: runner %.7f, reference %.7f", pass, i / V, i % V,
                         got[i], ref[i]);
        }
        assert_true(mag > 1.0);   /* the comparison is not vacuous */
        for (int t = 0; t < N; t++) {
            tb_reset(&tb);
            tb_add(&tb, &toks[t], 1, t, slots, false);
            run_batch(r, &tb, got);
            for (int v = 0; v < V; v++)
                if (!(fabs(got[v] - ref[t * V + v]) <= 1e-4))
                    fail_msg("pass %d decode step %d logit %d: runner %.7f, reference %.7f", pass, t, v,
                             got[v], ref[t * V + v]);
        }
        sgl_runner_free(r);
    }
    setenv("SGL_CPU_KERNELS", "avx512-nope", 1);
    assert_int_equal(sgl_runner_cpu_new(m, &o, &r, &err), SGL_E_INVAL);
    assert_null(r);
    assert_non_null(strstr(err.msg, "SGL_CPU_KERNELS"));
    unsetenv("SGL_CPU_KERNELS");
    sgl_model_free(m);
    free(ref);
    free(got);
    tiny_free(&tm);
}

static void test_naive_reference(void **state)
{
    (void)state;
    check_naive(&qwen_cfg, 777);
}

/* Mistral with a sliding window of 7 positions, tied embeddings, no bias. */
static void test_naive_sliding_window(void **state)
{
    (void)state;
    TinyCfg cfg = qwen_cfg;
    cfg.arch = "MistralForCausalLM";
    cfg.qkv_bias = false;
    cfg.tied = true;
    cfg.llama3 = false;
    cfg.window = 7;
    check_naive(&cfg, 4321);
}

/* ---- 2. batching invariance --------------------------------------------- */

/* forward_sample_begin/end: the ids equal sgl_ref_sample over forward's
 * logits (greedy and seeded temperature rows), with decode tokens given as
 * placeholders -(row+1) of the previous batch; the contract's errors. */
static void test_async_begin_end(void **state)
{
    (void)state;
    static TinyModel tm;
    TinyCfg cfg = qwen_cfg;
    tiny_build(&tm, &cfg, 77);
    SglModel *m = tiny_load(&tm, "F32");
    const int V = cfg.vocab;
    enum { NS = 3, PL = 9, STEPS = 12 };
    SglRunnerOpts o = {.n_slots = 512, .max_batch_tokens = 64, .max_seqs = 4, .n_threads = 1};
    SglRunner *ra = NULL, *rb = NULL;
    SglErr err = {{0}};
    assert_int_equal(sgl_runner_cpu_new(m, &o, &ra, &err), SGL_OK);
    assert_int_equal(sgl_runner_cpu_new(m, &o, &rb, &err), SGL_OK);
    assert_non_null(rb->ops->forward_sample_begin);
    int32_t prompt[NS][PL], slots[NS][PL + STEPS];
    uint64_t rng = 9;
    for (int s = 0; s < NS; s++) {
        for (int j = 0; j < PL; j++)
            prompt[s][j] = (int32_t)(rng_next(&rng) % (uint64_t)V);
        for (int j = 0; j < PL + STEPS; j++)
            slots[s][j] = 100 * s + j;
    }
    SglRowSampling rows[NS];
    SglKSampleRow kr[NS];
    for (int s = 0; s < NS; s++) {
        rows[s] = (SglRowSampling){.temperature = s == 1 ? 0.8f : 0.0f, .top_k = 0, .top_p = 1.0f,
                                   .seed = 1000 + (uint64_t)s, .want_logprob = true};
        kr[s] = (SglKSampleRow){.seed = rows[s].seed, .temperature = rows[s].temperature, .top_p = 1.0f,
                                .want_logprob = 1};
    }
    /* reference: synchronous forward + sgl_ref_sample */
    static TBatch tb;
    static float logits[NS * 67];
    int32_t want[STEPS + 1][NS], got[STEPS + 1][NS], last[NS];
    float want_lp[STEPS + 1][NS], got_lp[STEPS + 1][NS];
    for (int t = 0; t <= STEPS; t++) {
        tb_reset(&tb);
        for (int s = 0; s < NS; s++)
            if (t == 0)
                tb_add(&tb, prompt[s], PL, 0, slots[s], false);
            else
                tb_add(&tb, &last[s], 1, PL + t - 1, slots[s], false);
        run_batch(ra, &tb, logits);
        for (int s = 0; s < NS; s++)
            kr[s].step = (uint64_t)t;
        sgl_ref_sample(logits, NS, V, kr, NULL, want[t], want_lp[t]);
        memcpy(last, want[t], sizeof last);
    }
    /* async: step t is begun before step t-1's ids are back */
    for (int t = 0; t <= STEPS; t++) {
        tb_reset(&tb);
        for (int s = 0; s < NS; s++) {
            int32_t ph = -(s + 1);
            if (t == 0)
                tb_add(&tb, prompt[s], PL, 0, slots[s], false);
            else
                tb_add(&tb, &ph, 1, PL + t - 1, slots[s], false);
            rows[s].step = (uint64_t)t;
        }
        SglBatch b = tb_view(&tb);
        assert_int_equal(rb->ops->forward_sample_begin(rb, &b, rows, &err), SGL_OK);
        memset(&tb, 0x7f, sizeof tb); /* begin copied what it needs */
        if (t == 1) { /* two outstanding: a third begin and a synchronous forward are refused */
            assert_int_equal(rb->ops->forward_sample_begin(rb, &b, rows, &err), SGL_E_INVAL);
            assert_int_equal(sgl_runner_forward(rb, &b, logits, &err), SGL_E_INVAL);
        }
        if (t > 0)
            assert_int_equal(rb->ops->forward_sample_end(rb, got[t - 1], got_lp[t - 1], &err), SGL_OK);
    }
    assert_int_equal(rb->ops->forward_sample_end(rb, got[STEPS], got_lp[STEPS], &err), SGL_OK);
    for (int t = 0; t <= STEPS; t++)
        for (int s = 0; s < NS; s++) {
            assert_int_equal(got[t][s], want[t][s]);
            assert_true(got_lp[t][s] == want_lp[t][s]);
        }
    /* errors: nothing outstanding; a placeholder past the previous batch's
     * rows; more rows than max_seqs (declined, nothing enqueued) */
    assert_int_equal(rb->ops->forward_sample_end(rb, got[0], NULL, &err), SGL_E_INVAL);
    tb_reset(&tb);
    int32_t bad = -(NS + 1);
    tb_add(&tb, &bad, 1, PL + STEPS, slots[0], false);
    SglBatch b = tb_view(&tb);
    assert_int_equal(rb->ops->forward_sample_begin(rb, &b, rows, &err), SGL_E_INVAL);
    assert_non_null(strstr(err.msg, "previous batch"));
    tb_reset(&tb);
    for (int s = 0; s < NS; s++)
        tb_add(&tb, prompt[s], 2, 0, slots[s], true); /* 6 logit rows > max_seqs 4 */
    b = tb_view(&tb);
    assert_int_equal(rb->ops->forward_sample_begin(rb, &b, rows, &err), SGL_E_UNSUPPORTED);
    sgl_runner_free(ra);
    sgl_runner_free(rb);
    sgl_model_free(m);
    tiny_free(&tm);
}

static void test_batching_invariance(void **state)
{
    (void)state;
    static TinyModel tm;
    TinyCfg cfg = qwen_cfg;
    cfg.arch = "LlamaForCausalLM";
    cfg.qkv_bias = false;
    cfg.tied = true;
    cfg.llama3 = false;
    cfg.head_dim = 8;
    tiny_build(&tm, &cfg, 4242);
    SglModel *m = tiny_load(&tm, "F32");
    const int V = cfg.vocab;
    enum { NS = 6, MAXL = 70 };
    const int lens[NS] = {1, 5, 17, 33, 2, 70};
    int32_t toks[NS][MAXL];
    uint64_t rng = 5;
    for (int s = 0; s < NS; s++)
        for (int j = 0; j < MAXL; j++)
            toks[s][j] = (int32_t)(rng_next(&rng) % (uint64_t)V);
    SglRunnerOpts o = {.n_slots = 1024, .max_batch_tokens = 256, .max_seqs = 8, .n_threads = 1};
    SglRunner *r = NULL;
    SglErr err = {{0}};
    assert_int_equal(sgl_runner_cpu_new(m, &o, &r, &err), SGL_OK);
    static TBatch tb;
    static float one[NS][MAXL * 67], all[256 * 67], tmp[256 * 67];
    int32_t slots_a[NS][MAXL], slots_b[NS][MAXL];
    int32_t perm[1024];
    for (int i = 0; i < 1024; i++)
        perm[i] = i;
    shuffle(perm, 1024, &rng);
    for (int s = 0; s < NS; s++)
        for (int j = 0; j < MAXL; j++) {
            slots_a[s][j] = s * MAXL + j;             /* contiguous */
            slots_b[s][j] = perm[s * MAXL + j];       /* shuffled */
        }
    /* one sequence at a time, contiguous slots, logits for every position */
    for (int s = 0; s < NS; s++) {
        tb_reset(&tb);
        tb_add(&tb, toks[s], lens[s], 0, slots_a[s], true);
        run_batch(r, &tb, one[s]);
    }
    /* all in one batch, shuffled slots, products through sgemm */
    sgl_runner_cpu_set_sgemm_cutoff(r, 1, 0);
    tb_reset(&tb);
    for (int s = 0; s < NS; s++)
        tb_add(&tb, toks[s], lens[s], 0, slots_b[s], true);
    run_batch(r, &tb, all);
    int row = 0;
    for (int s = 0; s < NS; s++)
        for (int j = 0; j < lens[s]; j++, row++) {
            double d = max_abs_diff(one[s] + j * V, all + row * V, V);
            if (!(d <= 1e-4))
                fail_msg("batched seq %d pos %d differs by %g", s, j, d);
        }
    sgl_runner_cpu_set_sgemm_cutoff(r, 16, 512 * 1024);
    /* chunked prefill: a prefix, then the rest reading the prefix's KV */
    for (int s = 0; s < NS; s++) {
        if (lens[s] < 2)
            continue;
        int cut = lens[s] / 3 + 1;
        tb_reset(&tb);
        tb_add(&tb, toks[s], cut, 0, slots_b[s], true);
        run_batch(r, &tb, tmp);
        tb_reset(&tb);
        tb_add(&tb, toks[s] + cut, lens[s] - cut, cut, slots_b[s], true);
        run_batch(r, &tb, tmp + cut * V);
        double d = max_abs_diff(one[s], tmp, (int64_t)lens[s] * V);
        if (!(d <= 1e-4))
            fail_msg("chunked prefill of seq %d differs by %g", s, d);
    }
    /* mixed: sequences 0..2 decode one token over their cached KV (written by
     * the chunked pass), sequences 3..5 prefill from scratch, in one batch */
    tb_reset(&tb);
    for (int s = 0; s < NS; s++) {
        if (s < 3 && lens[s] >= 2)
            tb_add(&tb, &toks[s][lens[s] - 1], 1, lens[s] - 1, slots_b[s], false);
        else
            tb_add(&tb, toks[s], lens[s], 0, slots_b[s], false);
    }
    run_batch(r, &tb, tmp);
    for (int s = 0; s < NS; s++) {
        double d = max_abs_diff(one[s] + (lens[s] - 1) * V, tmp + s * V, V);
        if (!(d <= 1e-4))
            fail_msg("mixed batch seq %d differs by %g", s, d);
    }
    /* the batch is validated, not trusted */
    tb_reset(&tb);
    tb_add(&tb, toks[0], 3, 0, slots_a[0], false);
    tb.positions[1] = 7;
    SglBatch b = tb_view(&tb);
    assert_int_equal(sgl_runner_forward(r, &b, tmp, &err), SGL_E_INVAL);
    tb_reset(&tb);
    int32_t bad_slot[3] = {0, 1, 5000};
    tb_add(&tb, toks[0], 3, 0, bad_slot, false);
    b = tb_view(&tb);
    assert_int_equal(sgl_runner_forward(r, &b, tmp, &err), SGL_E_INVAL);
    assert_non_null(strstr(err.msg, "slot"));
    tb_reset(&tb);   /* more tokens than max_batch_tokens */
    tb_add(&tb, toks[5], 70, 0, slots_a[5], false);
    tb_add(&tb, toks[4], 70, 0, slots_a[4], false);
    tb_add(&tb, toks[3], 70, 0, slots_a[3], false);
    tb_add(&tb, toks[2], 70, 0, slots_a[2], false);
    b = tb_view(&tb);
    assert_int_equal(sgl_runner_forward(r, &b, tmp, &err), SGL_E_INVAL);
    tb_reset(&tb);   /* a token id outside the vocabulary */
    int32_t bad_tok[2] = {3, 67};
    tb_add(&tb, bad_tok, 2, 0, slots_a[0], false);
    b = tb_view(&tb);
    assert_int_equal(sgl_runner_forward(r, &b, tmp, &err), SGL_E_INVAL);
    sgl_runner_free(r);
    SglRunner *r2 = (SglRunner *)0x1;
    SglRunnerOpts bad = {.n_slots = 0, .max_batch_tokens = 8, .max_seqs = 1};
    assert_int_equal(sgl_runner_cpu_new(m, &bad, &r2, &err), SGL_E_INVAL);
    assert_null(r2);
    sgl_model_free(m);
    tiny_free(&tm);
}

/* n_threads = 3 splits matmul rows and attention tokens over threads, and
 * n_threads = 0 (auto) picks its own way per pass: the results must be
 * bit-identical to one thread, on both matmul paths. */
static void test_threads_identical(void **state)
{
    (void)state;
    static TinyModel tm;
    tiny_build(&tm, &qwen_cfg, 2024);
    SglModel *m = tiny_load(&tm, "F32");
    const int V = qwen_cfg.vocab;
    enum { NS = 5, L = 60 };
    static int32_t toks[NS][L], slots[NS][L];
    uint64_t rng = 11;
    for (int s = 0; s < NS; s++)
        for (int j = 0; j < L; j++) {
            toks[s][j] = (int32_t)(rng_next(&rng) % (uint64_t)V);
            slots[s][j] = s * L + j;
        }
    static float out[3][2][NS * L * 67];
    static TBatch tb;
    const int n_threads[3] = {1, 3, 0};
    for (int th = 0; th < 3; th++) {
        SglRunnerOpts o = {.n_slots = NS * L, .max_batch_tokens = NS * L, .max_seqs = NS,
                           .n_threads = n_threads[th]};
        SglRunner *r = NULL;
        SglErr err = {{0}};
        assert_int_equal(sgl_runner_cpu_new(m, &o, &r, &err), SGL_OK);
        for (int path = 0; path < 2; path++) {
            if (path == 0)
                sgl_runner_cpu_set_sgemm_cutoff(r, 1, 0);
            else
                sgl_runner_cpu_set_sgemm_cutoff(r, INT32_MAX, INT64_MAX);
            tb_reset(&tb);
            for (int s = 0; s < NS; s++)
                tb_add(&tb, toks[s], L - 2 * s, 0, slots[s], true);
            run_batch(r, &tb, out[th][path]);
        }
        sgl_runner_free(r);
    }
    assert_memory_equal(out[0][0], out[1][0], sizeof out[0][0]);
    assert_memory_equal(out[0][1], out[1][1], sizeof out[0][1]);
    assert_memory_equal(out[0][0], out[2][0], sizeof out[0][0]);
    assert_memory_equal(out[0][1], out[2][1], sizeof out[0][1]);
    assert_true(max_abs_diff(out[0][0], out[0][1], NS * L * 67) <= 1e-4);
    sgl_model_free(m);
    tiny_free(&tm);
}

/* ---- 4. dtypes and kernel tables ----------------------------------------- */

static void test_dtypes_agree(void **state)
{
    (void)state;
    static TinyModel tm;
    tiny_build(&tm, &qwen_cfg, 31337);
    const char *dts[3] = {"F32", "F16", "BF16"};
    static float out[3][12 * 67];
    int32_t toks[12] = {1, 5, 9, 33, 2, 66, 0, 14, 15, 16, 40, 41}, slots[12];
    for (int i = 0; i < 12; i++)
        slots[i] = i;
    for (int d = 0; d < 3; d++) {
        SglModel *m = tiny_load(&tm, dts[d]);
        SglRunnerOpts o = {.n_slots = 16, .max_batch_tokens = 12, .max_seqs = 1, .n_threads = 1};
        SglRunner *r = NULL;
        SglErr err = {{0}};
        assert_int_equal(sgl_runner_cpu_new(m, &o, &r, &err), SGL_OK);
        static TBatch tb;
        tb_reset(&tb);
        tb_add(&tb, toks, 12, 0, slots, true);
        run_batch(r, &tb, out[d]);
        sgl_runner_free(r);
        sgl_model_free(m);
    }
    assert_memory_equal(out[0], out[1], sizeof out[0]);
    assert_memory_equal(out[0], out[2], sizeof out[0]);
    tiny_free(&tm);
}

/* Half and bfloat16 conversion, including subnormals, infinities and NaN. */
static void test_convert(void **state)
{
    (void)state;
    const uint16_t h[8] = {0x0000, 0x8000, 0x3C00, 0xC000, 0x0001, 0x03FF, 0x7C00, 0x7BFF};
    const float want[8] = {0.0f, -0.0f, 1.0f, -2.0f, 5.9604645e-8f, 6.0975552e-5f, INFINITY, 65504.0f};
    float got[8];
    cpu_f16_to_f32(8, h, got);
    for (int i = 0; i < 8; i++)
        if (!(got[i] == want[i] && signbit(got[i]) == signbit(want[i])))
            fail_msg("f16 0x%04x -> %g, want %g", h[i], got[i], want[i]);
    uint16_t nan16 = 0x7E00;
    cpu_f16_to_f32(1, &nan16, got);
    assert_true(isnan(got[0]));
    const uint16_t b[4] = {0x3F80, 0xC040, 0x0001, 0xFF80};
    const float bwant[4] = {1.0f, -3.0f, 9.1835496e-41f, -INFINITY};
    unsigned char unaligned[9];
    memcpy(unaligned + 1, b, 8);
    cpu_bf16_to_f32(4, unaligned + 1, got);
    for (int i = 0; i < 4; i++)
        if (!(got[i] == bwant[i]))
            fail_msg("bf16 0x%04x -> %g, want %g", b[i], got[i], bwant[i]);
}

/* checkasm-style: every kernel table against the generic one, odd shapes,
 * with canaries after the outputs. */
static void test_kernels_agree(void **state)
{
    (void)state;
    const CpuKernels *ref = cpu_kernels_get("generic"), *opt = cpu_kernels_get(NULL);
    assert_non_null(ref);
    if (opt == ref) {
        print_message("only the generic kernels exist on this CPU\n");
        return;
    }
    uint64_t rng = 3;
    enum { MAXN = 9, MAXO = 37, MAXI = 72 };
    static float X[MAXN * MAXI], W[MAXO * MAXI], Y0[MAXN * MAXO + 8], Y1[MAXN * MAXO + 8];
    for (int i = 0; i < MAXN * MAXI; i++)
        X[i] = rng_uniform(&rng);
    for (int i = 0; i < MAXO * MAXI; i++)
        W[i] = rng_uniform(&rng);
    for (int n = 1; n <= MAXN; n++)
        for (int out = 1; out <= MAXO; out += 3)
            for (int in = 8; in <= MAXI; in += 8) {
                for (int i = 0; i < MAXN * MAXO + 8; i++)
                    Y0[i] = Y1[i] = 1234.5f;
                ref->matmul(n, out, in, X, MAXI, W, MAXI, Y0, MAXO);
                opt->matmul(n, out, in, X, MAXI, W, MAXI, Y1, MAXO);
                for (int i = 0; i < MAXN * MAXO + 8; i++) {
                    int t = i / MAXO, o = i % MAXO;
                    bool written = t < n && o < out;
                    /* fp32 dot of <= 72 terms of |x| <= 1: 1e-5 absolute */
                    if (written ? !(fabsf(Y0[i] - Y1[i]) <= 1e-5f) : Y1[i] != 1234.5f)
                        fail_msg("matmul n=%d out=%d in=%d: [%d][%d] %g vs %g", n, out, in, t, o, Y0[i], Y1[i]);
                }
            }
    static float g[300], u[300], s0[300], s1[300];
    for (int i = 0; i < 300; i++) {
        g[i] = 12 * rng_uniform(&rng);
        u[i] = rng_uniform(&rng);
    }
    ref->silu_mul(299, g, u, s0);
    opt->silu_mul(299, g, u, s1);
    for (int i = 0; i < 299; i++)
        assert_true(fabsf(s0[i] - s1[i]) <= 1e-6f * (1 + fabsf(s0[i])));
    /* RMSNorm over odd lengths (vector body + scalar tail), canary after the
     * output: fp32 sums of <= 299 squares, 1e-6 relative */
    for (int n = 1; n <= 299; n += 17) {
        for (int i = 0; i < 300; i++)
            s0[i] = s1[i] = 1234.5f;
        ref->rmsnorm(n, g, u, 1e-5f, s0);
        opt->rmsnorm(n, g, u, 1e-5f, s1);
        for (int i = 0; i < n; i++)
            if (!(fabsf(s0[i] - s1[i]) <= 1e-6f * (1 + fabsf(s0[i]))))
                fail_msg("rmsnorm n=%d: [%d] %g vs %g", n, i, s0[i], s1[i]);
        assert_true(s1[n] == 1234.5f);
    }
    /* RoPE: head_dim 8 (4-wide), 16, 24 (8 + 4), 64 and 6 (scalar fallback), 3 heads */
    const int rope_hd[5] = {8, 16, 24, 64, 6};
    for (int k = 0; k < 5; k++) {
        int hd = rope_hd[k];
        static float cs[32], sn[32];
        for (int j = 0; j < hd / 2; j++) {
            cs[j] = cosf(0.37f * (float)j + 1);
            sn[j] = sinf(0.37f * (float)j + 1);
        }
        for (int i = 0; i < 3 * hd + 1; i++)
            s0[i] = s1[i] = i < 3 * hd ? g[i] : 1234.5f;
        ref->rope(3, hd, s0, cs, sn);
        opt->rope(3, hd, s1, cs, sn);
        for (int i = 0; i < 3 * hd; i++)   /* two products of |x| <= 12: 1e-5 absolute */
            if (!(fabsf(s0[i] - s1[i]) <= 1e-5f))
                fail_msg("rope head_dim=%d: [%d] %g vs %g", hd, i, s0[i], s1[i]);
        assert_true(s1[3 * hd] == 1234.5f);
    }
    /* attention: head_dim 8, 24 and 12 (generic fallback), GQA groups of 2,
     * 3 and 1 with fewer than 8 heads and of 2 and 8 with 8 or 16 heads (the
     * head_dim-8 kernel's 8-head PV path), n_keys across tile boundaries;
     * K/V rows of 80 floats read at an 8-float offset */
    static float K[300 * 80], Vv[300 * 80], q[16 * 24], o0[16 * 24], o1[16 * 24],
        scr[CPU_ATTN_SCRATCH(16, 72)];
    static int32_t slots[300];
    for (int i = 0; i < 300 * 80; i++) {
        K[i] = 3 * rng_uniform(&rng);
        Vv[i] = rng_uniform(&rng);
    }
    for (int i = 0; i < 300; i++)
        slots[i] = i;
    shuffle(slots, 300, &rng);
    const int heads[5][2] = {{4, 2}, {6, 2}, {3, 3}, {8, 4}, {16, 2}}, hds[3] = {8, 24, 12};
    for (int hc = 0; hc < 5; hc++)
        for (int di = 0; di < 3; di++)
            for (int nk = 1; nk <= 300; nk += 37) {
                int nh = heads[hc][0], nkv = heads[hc][1], hd = hds[di];
                if (nkv * hd > 72)   /* the K/V rows hold 72 floats */
                    continue;
                for (int i = 0; i < nh * hd; i++)
                    q[i] = rng_uniform(&rng);
                CpuAttnArgs a = {.n_heads = nh, .n_kv_heads = nkv, .head_dim = hd, .n_keys = nk, .q = q,
                                 .k = K + 8, .v = Vv + 8, .kv_stride = 80, .slots = slots, .scale = 0.3f,
                                 .out = o0, .scratch = scr};
                ref->attend(&a);
                a.out = o1;
                opt->attend(&a);
                for (int i = 0; i < nh * hd; i++)
                    if (!(fabsf(o0[i] - o1[i]) <= 1e-5f))
                        fail_msg("attend heads %d/%d hd=%d n_keys=%d: [%d] %g vs %g", nh, nkv, hd, nk, i,
                                 o0[i], o1[i]);
            }
}

/* ---- 5. dummy SmolLM2-135M shape ---------------------------------------- */

static void test_dummy_smollm(void **state)
{
    (void)state;
    if (!shared_dir())
        skip();
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models/smollm2-135m-tokenizer", shared_dir());
    SglModel *m = NULL;
    SglErr err = {{0}};
    if (sgl_model_load(dir, SGL_LOAD_DUMMY, &m, &err) != SGL_OK)
        fail_msg("dummy load: %s", err.msg);
    assert_int_equal(m->cfg.hidden_size, 576);
    assert_int_equal(m->cfg.n_kv_heads, 3);
    assert_int_equal(m->cfg.head_dim, 64);
    SglRunnerOpts o = {.n_slots = 64, .max_batch_tokens = 16, .max_seqs = 2, .n_threads = 1};
    SglRunner *r = NULL;
    assert_int_equal(sgl_runner_cpu_new(m, &o, &r, &err), SGL_OK);
    const int V = m->cfg.vocab_size;
    float *lg = malloc(sizeof(float) * (size_t)V * 2), *lg1 = malloc(sizeof(float) * (size_t)V);
    int32_t toks[16] = {1, 100, 2000, 30000, 49151, 7, 8, 9}, slots[16];
    for (int i = 0; i < 16; i++)
        slots[i] = 2 * i;
    static TBatch tb;
    tb_reset(&tb);
    tb_add(&tb, toks, 8, 0, slots, false);
    run_batch(r, &tb, lg);
    int len = 8;
    for (int step = 0; step < 3; step++) {
        for (int v = 0; v < V; v++)
            assert_true(isfinite(lg[v]));
        toks[len] = argmax(lg, V);
        tb_reset(&tb);
        tb_add(&tb, &toks[len], 1, len, slots, false);
        len++;
        run_batch(r, &tb, lg);
    }
    /* the same 11 tokens prefilled at once on other slots give the same logits */
    int32_t slots2[16];
    for (int i = 0; i < 16; i++)
        slots2[i] = 2 * i + 1;
    tb_reset(&tb);
    tb_add(&tb, toks, len, 0, slots2, false);
    run_batch(r, &tb, lg1);
    assert_true(max_abs_diff(lg, lg1, V) <= 1e-4);
    free(lg);
    free(lg1);
    sgl_runner_free(r);
    sgl_model_free(m);
}

int main(void)
{
    if (!shared_dir())
        printf("skipped: goldens and SmolLM2 tests (SGL_SHARED_DIR absent); running the self-contained ones\n");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_convert),
        cmocka_unit_test(test_kernels_agree),
        cmocka_unit_test(test_naive_reference),
        cmocka_unit_test(test_naive_sliding_window),
        cmocka_unit_test(test_batching_invariance),
        cmocka_unit_test(test_async_begin_end),
        cmocka_unit_test(test_dtypes_agree),
        cmocka_unit_test(test_threads_identical),
        cmocka_unit_test(test_goldens_one_by_one),
        cmocka_unit_test(test_goldens_batched),
        cmocka_unit_test(test_dummy_smollm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
