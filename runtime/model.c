/* model.c -- model directory loading: config, special tokens, weights.
 *
 * sgl_config_load reads config.json (required) and generation_config.json /
 * tokenizer_config.json (optional) into an SglModelConfig; every field is
 * type- and range-checked, and the error names the file and the field.
 * sgl_model_load then maps model.safetensors (or the shards listed in
 * model.safetensors.index.json), looks up every tensor the config implies and
 * checks its shape. sgl_model_dummy builds the same structure from random
 * numbers. The SglModel owns everything through its priv block; each loader
 * has one cleanup path (sgl_model_free), so no failure leaks.
 */
#include "runtime/model.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/safetensors.h"

/* Dimensions above this are rejected as corrupt (keeps products in int64). */
#define MAX_DIM (1 << 24)
/* Dummy weights larger than this (as fp32) are generated in bf16. */
#define DUMMY_F32_LIMIT_BYTES ((int64_t)4 << 30)

struct SglModelPriv {
    SglStFile *files;              /* (n_files) mapped safetensors files */
    int n_files;
    void *owned;                   /* dummy weights, one buffer */
};

/* ---- config.json ------------------------------------------------------ */

/* Reads an integer field. A missing field takes def unless required. */
static SglStatus get_int(const char *file, json_t *o, const char *key, bool required, int def,
                         int lo, int hi, int *out, SglErr *err)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required)
            return sgl_err(err, SGL_E_FORMAT, "%s: %s: missing (expected an integer in [%d, %d])",
                           file, key, lo, hi);
        *out = def;
        return SGL_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        if (lo == 1 && hi == MAX_DIM)
            return sgl_err(err, SGL_E_FORMAT, "%s: %s: expected a positive integer", file, key);
        return sgl_err(err, SGL_E_FORMAT, "%s: %s: expected an integer in [%d, %d]", file, key, lo, hi);
    }
    *out = (int)json_integer_value(v);
    return SGL_OK;
}

/* Reads a positive finite number (integer or real JSON values). */
static SglStatus get_pos_float(const char *file, json_t *o, const char *key, bool required,
                               float def, float *out, SglErr *err)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required)
            return sgl_err(err, SGL_E_FORMAT, "%s: %s: missing (expected a positive number)", file, key);
        *out = def;
        return SGL_OK;
    }
    double d = json_is_number(v) ? json_number_value(v) : -1.0;
    if (!json_is_number(v) || !(d > 0) || !isfinite(d) || d > 3e38)
        return sgl_err(err, SGL_E_FORMAT, "%s: %s: expected a positive number", file, key);
    *out = (float)d;
    return SGL_OK;
}

static SglStatus get_bool(const char *file, json_t *o, const char *key, bool def, bool *out, SglErr *err)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return SGL_OK;
    }
    if (!json_is_boolean(v))
        return sgl_err(err, SGL_E_FORMAT, "%s: %s: expected true or false", file, key);
    *out = json_is_true(v);
    return SGL_OK;
}

/* eos_token_id: an integer, a list of integers, or null (keeps *n at 0). */
static SglStatus get_eos(const char *file, json_t *o, int vocab, int *ids, int *n, bool *present,
                         SglErr *err)
{
    json_t *v = json_object_get(o, "eos_token_id");
    *present = false;
    if (!v || json_is_null(v))
        return SGL_OK;
    *present = true;
    *n = 0;
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0 || json_integer_value(v) >= vocab)
            return sgl_err(err, SGL_E_FORMAT, "%s: eos_token_id: expected an integer in [0, %d)", file, vocab);
        ids[(*n)++] = (int)json_integer_value(v);
        return SGL_OK;
    }
    if (!json_is_array(v) || json_array_size(v) > SGL_MAX_EOS)
        return sgl_err(err, SGL_E_FORMAT, "%s: eos_token_id: expected an integer or a list of at most %d",
                       file, SGL_MAX_EOS);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) >= vocab)
            return sgl_err(err, SGL_E_FORMAT, "%s: eos_token_id[%zu]: expected an integer in [0, %d)",
                           file, i, vocab);
        ids[(*n)++] = (int)json_integer_value(e);
    }
    return SGL_OK;
}

static SglStatus get_bos(const char *file, json_t *o, int vocab, int *out, SglErr *err)
{
    json_t *v = json_object_get(o, "bos_token_id");
    if (!v || json_is_null(v))
        return SGL_OK;
    if (json_is_array(v) && json_array_size(v) >= 1)   /* rare, but HF allows it */
        v = json_array_get(v, 0);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= vocab)
        return sgl_err(err, SGL_E_FORMAT, "%s: bos_token_id: expected an integer in [0, %d)", file, vocab);
    *out = (int)json_integer_value(v);
    return SGL_OK;
}

/* Loads path as a JSON object. *root is NULL with SGL_OK when the file is
 * absent and optional. */
static SglStatus load_json(const char *path, bool optional, json_t **root, SglErr *err)
{
    *root = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (optional && errno == ENOENT)
            return SGL_OK;
        return sgl_err(err, SGL_E_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    json_error_t jerr;
    json_t *r = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!r)
        return sgl_err(err, jerr.position == 0 && jerr.line <= 0 ? SGL_E_IO : SGL_E_FORMAT,
                       "%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column, jerr.text);
    if (!json_is_object(r)) {
        json_decref(r);
        return sgl_err(err, SGL_E_FORMAT, "%s: expected a JSON object", path);
    }
    *root = r;
    return SGL_OK;
}

static SglStatus parse_arch(const char *file, json_t *root, SglArch *arch, SglErr *err)
{
    json_t *a = json_object_get(root, "architectures");
    if (!json_is_array(a) || json_array_size(a) == 0)
        return sgl_err(err, SGL_E_FORMAT, "%s: architectures: expected a non-empty list of strings", file);
    const char *first = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e) {
        if (!json_is_string(e))
            return sgl_err(err, SGL_E_FORMAT, "%s: architectures[%zu]: expected a string", file, i);
        const char *s = json_string_value(e);
        if (!first)
            first = s;
        if (!strcmp(s, "LlamaForCausalLM")) { *arch = SGL_ARCH_LLAMA; return SGL_OK; }
        if (!strcmp(s, "MistralForCausalLM")) { *arch = SGL_ARCH_MISTRAL; return SGL_OK; }
        if (!strcmp(s, "Qwen2ForCausalLM")) { *arch = SGL_ARCH_QWEN2; return SGL_OK; }
    }
    return sgl_err(err, SGL_E_UNSUPPORTED,
                   "%s: architectures: \"%.64s\" is not supported (LlamaForCausalLM, "
                   "MistralForCausalLM, Qwen2ForCausalLM)", file, first);
}

/* rope_scaling (transformers 4), or rope_parameters (transformers 5: the same
 * keys plus rope_theta, which then replaces the top-level one). */
static SglStatus parse_rope_scaling(const char *file, json_t *root, SglModelConfig *c, SglErr *err)
{
    const char *obj = "rope_scaling";
    json_t *rs = json_object_get(root, obj);
    if (!rs || json_is_null(rs)) {
        json_t *rp = json_object_get(root, "rope_parameters");
        if (rp && !json_is_null(rp)) {
            obj = "rope_parameters";
            rs = rp;
        }
    }
    c->rope_type = SGL_ROPE_DEFAULT;
    c->rope_factor = 1.0f;
    c->rope_low_freq_factor = 1.0f;
    c->rope_high_freq_factor = 1.0f;
    c->rope_original_max_pos = c->max_position_embeddings;
    if (!rs || json_is_null(rs))
        return SGL_OK;
    if (!json_is_object(rs))
        return sgl_err(err, SGL_E_FORMAT, "%s: %s: expected an object or null", file, obj);
    SglStatus st;
    char fname[4200];
    snprintf(fname, sizeof fname, "%s: %s", file, obj);
    if (rs != json_object_get(root, "rope_scaling") && !json_object_get(root, "rope_theta") &&
        (st = get_pos_float(fname, rs, "rope_theta", false, c->rope_theta, &c->rope_theta, err)))
        return st;
    json_t *t = json_object_get(rs, "rope_type");
    const char *key = "rope_type";
    if (!t) {
        t = json_object_get(rs, "type");
        key = "type";
    }
    if (!json_is_string(t))
        return sgl_err(err, SGL_E_FORMAT, "%s: %s.%s: expected a string", file, obj, key);
    const char *ts = json_string_value(t);
    if (!strcmp(ts, "default"))
        return SGL_OK;
    if (strcmp(ts, "llama3"))
        return sgl_err(err, SGL_E_UNSUPPORTED, "%s: %s.%s: \"%.32s\" is not supported (llama3, default)",
                       file, obj, key, ts);
    c->rope_type = SGL_ROPE_LLAMA3;
    if ((st = get_pos_float(fname, rs, "factor", true, 0, &c->rope_factor, err)) ||
        (st = get_pos_float(fname, rs, "low_freq_factor", true, 0, &c->rope_low_freq_factor, err)) ||
        (st = get_pos_float(fname, rs, "high_freq_factor", true, 0, &c->rope_high_freq_factor, err)) ||
        (st = get_int(fname, rs, "original_max_position_embeddings", true, 0, 1, MAX_DIM,
                      &c->rope_original_max_pos, err)))
        return st;
    if (!(c->rope_high_freq_factor > c->rope_low_freq_factor))
        return sgl_err(err, SGL_E_FORMAT, "%s: %s: high_freq_factor must exceed low_freq_factor",
                       file, obj);
    return SGL_OK;
}

static SglStatus parse_dtype(const char *file, json_t *root, SglDType *dt, SglErr *err)
{
    const char *key = "torch_dtype";
    json_t *v = json_object_get(root, key);
    if (!v) {
        key = "dtype";
        v = json_object_get(root, key);
    }
    *dt = SGL_DT_F32;
    if (!v || json_is_null(v))
        return SGL_OK;
    if (!json_is_string(v))
        return sgl_err(err, SGL_E_FORMAT, "%s: %s: expected a string", file, key);
    const char *s = json_string_value(v);
    if (!strcmp(s, "float32")) *dt = SGL_DT_F32;
    else if (!strcmp(s, "float16")) *dt = SGL_DT_F16;
    else if (!strcmp(s, "bfloat16")) *dt = SGL_DT_BF16;
    else
        return sgl_err(err, SGL_E_UNSUPPORTED, "%s: %s: \"%.32s\" is not supported "
                       "(float32, float16, bfloat16)", file, key, s);
    return SGL_OK;
}

static SglStatus parse_config(const char *file, json_t *r, SglModelConfig *c, SglErr *err)
{
    SglStatus st;
    if ((st = parse_arch(file, r, &c->arch, err)) ||
        (st = get_int(file, r, "hidden_size", true, 0, 1, MAX_DIM, &c->hidden_size, err)) ||
        (st = get_int(file, r, "intermediate_size", true, 0, 1, MAX_DIM, &c->intermediate_size, err)) ||
        (st = get_int(file, r, "num_hidden_layers", true, 0, 1, 4096, &c->n_layers, err)) ||
        (st = get_int(file, r, "num_attention_heads", true, 0, 1, MAX_DIM, &c->n_heads, err)) ||
        (st = get_int(file, r, "num_key_value_heads", false, c->n_heads, 1, MAX_DIM, &c->n_kv_heads, err)) ||
        (st = get_int(file, r, "vocab_size", true, 0, 1, MAX_DIM, &c->vocab_size, err)))
        return st;
    if (c->n_heads % c->n_kv_heads != 0)
        return sgl_err(err, SGL_E_FORMAT, "%s: num_key_value_heads: %d does not divide num_attention_heads (%d)",
                       file, c->n_kv_heads, c->n_heads);
    json_t *hd = json_object_get(r, "head_dim");
    if ((!hd || json_is_null(hd)) && c->hidden_size % c->n_heads != 0)
        return sgl_err(err, SGL_E_FORMAT, "%s: num_attention_heads: %d does not divide hidden_size (%d) "
                       "and head_dim is absent", file, c->n_heads, c->hidden_size);
    if ((st = get_int(file, r, "head_dim", false, c->hidden_size / c->n_heads, 1, MAX_DIM, &c->head_dim, err)))
        return st;
    if (c->head_dim % 2 != 0)
        return sgl_err(err, SGL_E_FORMAT, "%s: head_dim: %d is odd (rotary embedding needs pairs)",
                       file, c->head_dim);
    if ((int64_t)c->n_heads * c->head_dim > MAX_DIM)
        return sgl_err(err, SGL_E_FORMAT, "%s: num_attention_heads * head_dim is too large", file);
    if ((st = get_int(file, r, "max_position_embeddings", false, 2048, 1, 1 << 30,
                      &c->max_position_embeddings, err)) ||
        (st = get_pos_float(file, r, "rms_norm_eps", false, 1e-6f, &c->rms_norm_eps, err)) ||
        (st = get_pos_float(file, r, "rope_theta", false, 10000.0f, &c->rope_theta, err)) ||
        (st = get_bool(file, r, "tie_word_embeddings", false, &c->tie_word_embeddings, err)) ||
        (st = parse_rope_scaling(file, r, c, err)) ||
        (st = parse_dtype(file, r, &c->dtype, err)))
        return st;
    bool attn_bias = false, use_sw = false;
    if ((st = get_bool(file, r, "attention_bias", false, &attn_bias, err)) ||
        (st = get_bool(file, r, "use_sliding_window", false, &use_sw, err)))
        return st;
    /* Mistral applies sliding_window to every layer; Qwen2 only with
     * use_sliding_window, and then per layer (max_window_layers): refused. */
    if (c->arch == SGL_ARCH_MISTRAL &&
        (st = get_int(file, r, "sliding_window", false, 0, 1, 1 << 30, &c->sliding_window, err)))
        return st;
    if (c->arch == SGL_ARCH_QWEN2 && use_sw)
        return sgl_err(err, SGL_E_UNSUPPORTED, "%s: use_sliding_window: true is not supported", file);
    c->qkv_bias = c->arch == SGL_ARCH_QWEN2 || attn_bias;
    bool present;
    if ((st = get_bos(file, r, c->vocab_size, &c->bos_token_id, err)) ||
        (st = get_eos(file, r, c->vocab_size, c->eos_ids, &c->n_eos, &present, err)))
        return st;
    return SGL_OK;
}

static SglStatus parse_generation_config(const char *file, json_t *r, SglModelConfig *c, SglErr *err)
{
    SglStatus st;
    bool present;
    int ids[SGL_MAX_EOS], n = 0;
    if ((st = get_bos(file, r, c->vocab_size, &c->bos_token_id, err)) ||
        (st = get_eos(file, r, c->vocab_size, ids, &n, &present, err)))
        return st;
    if (present) {
        memcpy(c->eos_ids, ids, sizeof ids);
        c->n_eos = n;
    }
    json_t *v = json_object_get(r, "temperature");
    if (v && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) < 0 || !isfinite(json_number_value(v)))
            return sgl_err(err, SGL_E_FORMAT, "%s: temperature: expected a non-negative number", file);
        c->gen_temperature = (float)json_number_value(v);
    }
    v = json_object_get(r, "top_p");
    if (v && !json_is_null(v)) {
        if (!json_is_number(v) || !(json_number_value(v) > 0) || json_number_value(v) > 1)
            return sgl_err(err, SGL_E_FORMAT, "%s: top_p: expected a number in (0, 1]", file);
        c->gen_top_p = (float)json_number_value(v);
    }
    return get_int(file, r, "top_k", false, -1, 0, MAX_DIM, &c->gen_top_k, err);
}

static SglStatus parse_tokenizer_config(const char *file, json_t *r, SglModelConfig *c, SglErr *err)
{
    return get_bool(file, r, "add_bos_token", c->add_bos, &c->add_bos, err);
}

SglStatus sgl_config_load(const char *dir, SglModelConfig *cfg, SglErr *err)
{
    SglStatus st = SGL_OK;
    json_t *root = NULL;
    char path[4096];
    SglModelConfig c;
    memset(&c, 0, sizeof c);
    c.bos_token_id = -1;
    c.gen_temperature = NAN;
    c.gen_top_p = NAN;
    c.gen_top_k = -1;
    /* HF's LlamaTokenizer adds BOS by default; byte-level tokenizers set it
     * explicitly (or leave it absent, meaning no BOS). */
    c.add_bos = false;

    if (strlen(dir) > sizeof path - 64)
        return sgl_err(err, SGL_E_INVAL, "%.64s...: model directory path is too long", dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if ((st = load_json(path, false, &root, err)) || (st = parse_config(path, root, &c, err)))
        goto out;
    json_decref(root);

    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    if ((st = load_json(path, true, &root, err)) || (root && (st = parse_generation_config(path, root, &c, err))))
        goto out;
    json_decref(root);

    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if ((st = load_json(path, true, &root, err)) || (root && (st = parse_tokenizer_config(path, root, &c, err))))
        goto out;
    *cfg = c;
out:
    json_decref(root);
    return st;
}

/* ---- weights ---------------------------------------------------------- */

/* Where tensors come from: one file, or shards found through the index. */
typedef struct {
    SglModel *m;
    json_t *weight_map;            /* NULL for a single file */
    const char *index_path;
    const char *dir;
} Source;

static SglStatus find_tensor(Source *src, const char *name, const SglStTensor **out, SglErr *err)
{
    struct SglModelPriv *p = src->m->priv;
    *out = NULL;
    if (!src->weight_map) {
        *out = sgl_st_find(&p->files[0], name);
        return SGL_OK;
    }
    json_t *f = json_object_get(src->weight_map, name);
    if (!f)
        return SGL_OK;
    if (!json_is_string(f))
        return sgl_err(err, SGL_E_FORMAT, "%s: weight_map.%s: expected a file name", src->index_path, name);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", src->dir, json_string_value(f));
    for (int i = 0; i < p->n_files; i++)
        if (!strcmp(p->files[i].path, path)) {
            *out = sgl_st_find(&p->files[i], name);
            if (!*out)
                return sgl_err(err, SGL_E_FORMAT, "%s: tensor %s: listed in %s but not in the file",
                               path, name, src->index_path);
            return SGL_OK;
        }
    return sgl_err(err, SGL_E_FORMAT, "%s: weight_map.%s: file %s was not opened", src->index_path, name, path);
}

/* Looks up name and checks it has exactly the expected shape. */
static SglStatus bind(Source *src, const char *name, int ndim, int64_t d0, int64_t d1, bool optional,
                      SglTensor *t, SglErr *err)
{
    const SglStTensor *st;
    SglStatus s = find_tensor(src, name, &st, err);
    if (s != SGL_OK)
        return s;
    memset(t, 0, sizeof *t);
    if (!st) {
        if (optional)
            return SGL_OK;
        return sgl_err(err, SGL_E_FORMAT, "%s: missing tensor %s",
                       src->weight_map ? src->index_path : src->m->priv->files[0].path, name);
    }
    bool ok = st->ndim == ndim && st->shape[0] == d0 && (ndim == 1 || st->shape[1] == d1);
    if (!ok) {
        char got[96] = "[", *g = got + 1;
        for (int i = 0; i < st->ndim; i++)
            g += snprintf(g, (size_t)(got + sizeof got - g), "%s%lld", i ? ", " : "", (long long)st->shape[i]);
        snprintf(g, (size_t)(got + sizeof got - g), "]");
        char want[64];
        if (ndim == 1)
            snprintf(want, sizeof want, "[%lld]", (long long)d0);
        else
            snprintf(want, sizeof want, "[%lld, %lld]", (long long)d0, (long long)d1);
        const char *file = src->m->priv->files[0].path;
        for (int i = 0; i < src->m->priv->n_files; i++)
            if ((const char *)st->data >= (const char *)src->m->priv->files[i].map &&
                (const char *)st->data <= (const char *)src->m->priv->files[i].map + src->m->priv->files[i].map_len)
                file = src->m->priv->files[i].path;
        return sgl_err(err, SGL_E_FORMAT, "%s: tensor %s: expected shape %s, got %s", file, name, want, got);
    }
    t->data = st->data;
    t->dtype = st->dtype;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim == 2 ? d1 : 0;
    return SGL_OK;
}

static SglStatus bind_all(Source *src, SglErr *err)
{
    SglModel *m = src->m;
    const SglModelConfig *c = &m->cfg;
    int64_t H = c->hidden_size, I = c->intermediate_size, Q = (int64_t)c->n_heads * c->head_dim,
            KV = (int64_t)c->n_kv_heads * c->head_dim;
    SglStatus st;
    char nm[160];
    if ((st = bind(src, "model.embed_tokens.weight", 2, c->vocab_size, H, false, &m->embed, err)) ||
        (st = bind(src, "model.norm.weight", 1, H, 0, false, &m->final_norm, err)))
        return st;
    if (c->tie_word_embeddings)
        m->lm_head = m->embed;
    else if ((st = bind(src, "lm_head.weight", 2, c->vocab_size, H, false, &m->lm_head, err)))
        return st;
    for (int l = 0; l < c->n_layers; l++) {
        SglLayerWeights *w = &m->layers[l];
        struct { const char *suffix; int ndim; int64_t d0, d1; bool opt; SglTensor *t; } spec[] = {
            {"input_layernorm.weight", 1, H, 0, false, &w->attn_norm},
            {"self_attn.q_proj.weight", 2, Q, H, false, &w->wq},
            {"self_attn.k_proj.weight", 2, KV, H, false, &w->wk},
            {"self_attn.v_proj.weight", 2, KV, H, false, &w->wv},
            {"self_attn.o_proj.weight", 2, H, Q, false, &w->wo},
            {"post_attention_layernorm.weight", 1, H, 0, false, &w->mlp_norm},
            {"mlp.gate_proj.weight", 2, I, H, false, &w->w_gate},
            {"mlp.up_proj.weight", 2, I, H, false, &w->w_up},
            {"mlp.down_proj.weight", 2, H, I, false, &w->w_down},
            {"self_attn.q_proj.bias", 1, Q, 0, !c->qkv_bias, &w->bq},
            {"self_attn.k_proj.bias", 1, KV, 0, !c->qkv_bias, &w->bk},
            {"self_attn.v_proj.bias", 1, KV, 0, !c->qkv_bias, &w->bv},
        };
        int n_spec = (int)(sizeof spec / sizeof spec[0]) - (c->qkv_bias ? 0 : 3);
        for (int i = 0; i < n_spec; i++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s", l, spec[i].suffix);
            if ((st = bind(src, nm, spec[i].ndim, spec[i].d0, spec[i].d1, spec[i].opt, spec[i].t, err)))
                return st;
        }
    }
    return SGL_OK;
}

/* Allocates the model shell: struct, priv, layer array, a copy of cfg. */
static SglStatus model_shell(const SglModelConfig *cfg, const char *dir, SglModel **out, SglErr *err)
{
    SglModel *m = calloc(1, sizeof *m);
    if (!m)
        return sgl_err(err, SGL_E_NOMEM, "model: out of memory");
    m->cfg = *cfg;
    m->priv = calloc(1, sizeof *m->priv);
    m->layers = calloc((size_t)cfg->n_layers, sizeof *m->layers);
    m->dir = dir ? strdup(dir) : NULL;
    if (!m->priv || !m->layers || (dir && !m->dir)) {
        sgl_model_free(m);
        return sgl_err(err, SGL_E_NOMEM, "model: out of memory");
    }
    *out = m;
    return SGL_OK;
}

static SglStatus open_sharded(SglModel *m, const char *dir, const char *index_path, json_t **wm_out,
                              json_t **root_out, SglErr *err)
{
    SglStatus st = load_json(index_path, false, root_out, err);
    if (st != SGL_OK)
        return st;
    json_t *wm = json_object_get(*root_out, "weight_map");
    if (!json_is_object(wm) || json_object_size(wm) == 0)
        return sgl_err(err, SGL_E_FORMAT, "%s: weight_map: expected a non-empty object", index_path);
    m->priv->files = calloc(json_object_size(wm), sizeof *m->priv->files);
    if (!m->priv->files)
        return sgl_err(err, SGL_E_NOMEM, "%s: out of memory", index_path);
    const char *key;
    json_t *v;
    char path[4096];
    json_object_foreach(wm, key, v) {
        if (!json_is_string(v))
            return sgl_err(err, SGL_E_FORMAT, "%s: weight_map.%s: expected a file name", index_path, key);
        const char *fn = json_string_value(v);
        if (!fn[0] || strchr(fn, '/') || !strcmp(fn, "..") || !strcmp(fn, ".") || strlen(fn) > 255)
            return sgl_err(err, SGL_E_FORMAT, "%s: weight_map.%s: \"%.64s\" is not a plain file name",
                           index_path, key, fn);
        snprintf(path, sizeof path, "%s/%s", dir, fn);
        bool seen = false;
        for (int i = 0; i < m->priv->n_files && !seen; i++)
            seen = !strcmp(m->priv->files[i].path, path);
        if (seen)
            continue;
        if ((st = sgl_st_init(&m->priv->files[m->priv->n_files], path, err)))
            return st;
        m->priv->n_files++;
    }
    *wm_out = wm;
    return SGL_OK;
}

SglStatus sgl_model_load(const char *dir, SglLoadFormat fmt, SglModel **out, SglErr *err)
{
    SglStatus st;
    SglModel *m = NULL;
    json_t *index = NULL;
    SglModelConfig cfg;
    char path[4096], ipath[4096];
    struct stat sb;
    *out = NULL;
    if ((st = sgl_config_load(dir, &cfg, err)))
        goto out;
    if (fmt == SGL_LOAD_DUMMY || fmt == SGL_LOAD_DUMMY_SHAPES) {
        if ((st = fmt == SGL_LOAD_DUMMY ? sgl_model_dummy(&cfg, 0x5EED, &m, err)
                                        : sgl_model_dummy_shapes(&cfg, 0x5EED, &m, err)))
            goto out;
        m->dir = strdup(dir);
        if (!m->dir)
            st = sgl_err(err, SGL_E_NOMEM, "model: out of memory");
        goto out;
    }
    if ((st = model_shell(&cfg, dir, &m, err)))
        goto out;
    Source src = {.m = m, .dir = dir};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(ipath, sizeof ipath, "%s/model.safetensors.index.json", dir);
    if (stat(path, &sb) == 0) {
        /* one file: it takes precedence over an index next to it */
        m->priv->files = calloc(1, sizeof *m->priv->files);
        if (!m->priv->files) {
            st = sgl_err(err, SGL_E_NOMEM, "model: out of memory");
            goto out;
        }
        if ((st = sgl_st_init(&m->priv->files[0], path, err)))
            goto out;
        m->priv->n_files = 1;
    } else if (stat(ipath, &sb) == 0) {
        src.index_path = ipath;
        if ((st = open_sharded(m, dir, ipath, &src.weight_map, &index, err)))
            goto out;
    } else {
        st = sgl_err(err, SGL_E_IO, "%s: no model.safetensors or model.safetensors.index.json", dir);
        goto out;
    }
    st = bind_all(&src, err);
out:
    json_decref(index);
    if (st == SGL_OK)
        *out = m;
    else
        sgl_model_free(m);
    return st;
}

/* ---- dummy weights ---------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7FFF + ((u >> 16) & 1);   /* round to nearest even; inputs are finite */
    return (uint16_t)(u >> 16);
}

/* Fills t (n elements at *cursor) with uniform values in [-a, a] (16 random
 * bits each, four per generator call: multi-billion-parameter configs stay
 * quick), or ones when a == 0, and advances the cursor. */
static void dummy_fill(SglTensor *t, SglDType dt, int ndim, int64_t d0, int64_t d1, float a,
                       uint64_t *rng, char **cursor)
{
    int64_t n = ndim == 1 ? d0 : d0 * d1;
    t->data = *cursor;
    t->dtype = dt;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim == 2 ? d1 : 0;
    if (!*cursor) { /* shapes only */
        t->data = NULL;
        return;
    }
    const float step = 2.0f * a / 65535.0f;
    uint64_t bits = 0;
    for (int64_t i = 0; i < n; i++) {
        if ((i & 3) == 0)
            bits = splitmix64(rng);
        float v = a != 0 ? -a + step * (float)(bits & 0xFFFF) : 1.0f;
        bits >>= 16;
        if (dt == SGL_DT_F32)
            memcpy(*cursor + 4 * i, &v, 4);
        else {
            uint16_t h = f32_to_bf16(v);
            memcpy(*cursor + 2 * i, &h, 2);
        }
    }
    *cursor += n * sgl_dtype_size(dt);
}

static SglStatus dummy_build(const SglModelConfig *cfg, uint64_t seed, bool shapes_only, SglModel **out,
                             SglErr *err);

SglStatus sgl_model_dummy(const SglModelConfig *cfg, uint64_t seed, SglModel **out, SglErr *err)
{
    return dummy_build(cfg, seed, false, out, err);
}

SglStatus sgl_model_dummy_shapes(const SglModelConfig *cfg, uint64_t seed, SglModel **out, SglErr *err)
{
    return dummy_build(cfg, seed, true, out, err);
}

static SglStatus dummy_build(const SglModelConfig *cfg, uint64_t seed, bool shapes_only, SglModel **out,
                             SglErr *err)
{
    SglModel *m = NULL;
    *out = NULL;
    if (cfg->hidden_size < 1 || cfg->intermediate_size < 1 || cfg->n_layers < 1 || cfg->n_heads < 1 ||
        cfg->n_kv_heads < 1 || cfg->n_heads % cfg->n_kv_heads != 0 || cfg->head_dim < 2 ||
        cfg->head_dim % 2 != 0 || cfg->vocab_size < 1)
        return sgl_err(err, SGL_E_INVAL, "dummy model: config has a non-positive size or odd head_dim");
    SglStatus st = model_shell(cfg, NULL, &m, err);
    if (st != SGL_OK)
        return st;
    const SglModelConfig *c = &m->cfg;
    int64_t H = c->hidden_size, I = c->intermediate_size, Q = (int64_t)c->n_heads * c->head_dim,
            KV = (int64_t)c->n_kv_heads * c->head_dim, V = c->vocab_size;
    int64_t per_layer = 2 * H + Q * H + 2 * KV * H + H * Q + 3 * I * H + (c->qkv_bias ? Q + 2 * KV : 0);
    int64_t n = V * H * (c->tie_word_embeddings ? 1 : 2) + H + per_layer * c->n_layers;
    SglDType dt = shapes_only || n * 4 > DUMMY_F32_LIMIT_BYTES ? SGL_DT_BF16 : SGL_DT_F32;
    m->dummy_shapes = shapes_only;
    m->dummy_seed = seed;
    if (!shapes_only)
        m->priv->owned = malloc((size_t)(n * sgl_dtype_size(dt)));
    if (!shapes_only && !m->priv->owned) {
        sgl_model_free(m);
        return sgl_err(err, SGL_E_NOMEM, "dummy model: cannot allocate %lld bytes of weights",
                       (long long)(n * sgl_dtype_size(dt)));
    }
    /* std 0.02 like HF's initializer_range: uniform in +-0.02*sqrt(3). */
    const float a = 0.02f * 1.7320508f;
    uint64_t rng = seed;
    char *cur = m->priv->owned;
    dummy_fill(&m->embed, dt, 2, V, H, a, &rng, &cur);
    dummy_fill(&m->final_norm, dt, 1, H, 0, 0, &rng, &cur);
    if (c->tie_word_embeddings)
        m->lm_head = m->embed;
    else
        dummy_fill(&m->lm_head, dt, 2, V, H, a, &rng, &cur);
    for (int l = 0; l < c->n_layers; l++) {
        SglLayerWeights *w = &m->layers[l];
        dummy_fill(&w->attn_norm, dt, 1, H, 0, 0, &rng, &cur);
        dummy_fill(&w->wq, dt, 2, Q, H, a, &rng, &cur);
        dummy_fill(&w->wk, dt, 2, KV, H, a, &rng, &cur);
        dummy_fill(&w->wv, dt, 2, KV, H, a, &rng, &cur);
        if (c->qkv_bias) {
            dummy_fill(&w->bq, dt, 1, Q, 0, a, &rng, &cur);
            dummy_fill(&w->bk, dt, 1, KV, 0, a, &rng, &cur);
            dummy_fill(&w->bv, dt, 1, KV, 0, a, &rng, &cur);
        }
        dummy_fill(&w->wo, dt, 2, H, Q, a, &rng, &cur);
        dummy_fill(&w->mlp_norm, dt, 1, H, 0, 0, &rng, &cur);
        dummy_fill(&w->w_gate, dt, 2, I, H, a, &rng, &cur);
        dummy_fill(&w->w_up, dt, 2, I, H, a, &rng, &cur);
        dummy_fill(&w->w_down, dt, 2, H, I, a, &rng, &cur);
    }
    *out = m;
    return SGL_OK;
}

void sgl_model_free(SglModel *m)
{
    if (!m)
        return;
    if (m->priv) {
        for (int i = 0; i < m->priv->n_files; i++)
            sgl_st_deinit(&m->priv->files[i]);
        free(m->priv->files);
        free(m->priv->owned);
        free(m->priv);
    }
    free(m->layers);
    free(m->dir);
    free(m);
}

static int64_t tensor_bytes(const SglTensor *t)
{
    if (!t->data)
        return 0;
    return (t->ndim == 1 ? t->shape[0] : t->shape[0] * t->shape[1]) * sgl_dtype_size(t->dtype);
}

int64_t sgl_model_weight_bytes(const SglModel *m)
{
    int64_t n = tensor_bytes(&m->embed) + tensor_bytes(&m->final_norm);
    if (!m->cfg.tie_word_embeddings)
        n += tensor_bytes(&m->lm_head);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const SglLayerWeights *w = &m->layers[l];
        const SglTensor *ts[] = {&w->attn_norm, &w->wq, &w->wk, &w->wv, &w->bq, &w->bk, &w->bv,
                                 &w->wo, &w->mlp_norm, &w->w_gate, &w->w_up, &w->w_down};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
            n += tensor_bytes(ts[i]);
    }
    return n;
}
