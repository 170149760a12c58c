/* test_model.c -- config parsing, safetensors validation, sharding, dummy weights.
 *
 * Malformed model directories are written into a temp dir, one defect each,
 * and every load must fail with the right SglStatus and a message naming the
 * file (and field or tensor). A byte-flipping / truncating loop checks that a
 * corrupt file never crashes the loader (run it under ASan). The real
 * stories260K config is checked when ../shared is present.
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

#include "runtime/model.h"

static char g_dir[4096];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

/* A fresh empty temp dir in g_dir for each test. */
static int setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/sgl_model_XXXXXX", t ? t : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nftw(g_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void write_file(const char *name, const void *data, size_t len)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void write_text(const char *name, const char *text) { write_file(name, text, strlen(text)); }

/* A small valid Llama config: hidden 8, 2 heads of 4, 1 KV head, ffn 12, vocab 10. */
static const char *k_config =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 8, \"intermediate_size\": 12,"
    " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 1,"
    " \"vocab_size\": 10, \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-5,"
    " \"rope_theta\": 10000.0, \"tie_word_embeddings\": true, \"torch_dtype\": \"float32\","
    " \"bos_token_id\": 1, \"eos_token_id\": 2}";

/* Writes k_config with one field replaced (value is raw JSON, NULL removes it). */
static void write_config_with(const char *field, const char *value)
{
    json_error_t je;
    json_t *c = json_loads(k_config, 0, &je);
    assert_non_null(c);
    if (value) {
        json_t *v = json_loads(value, JSON_DECODE_ANY, &je);
        assert_non_null(v);
        json_object_set_new(c, field, v);
    } else
        json_object_del(c, field);
    char *s = json_dumps(c, 0);
    write_text("config.json", s);
    free(s);
    json_decref(c);
}

/* The header of a valid checkpoint for k_config (F32, consecutive offsets). */
static json_t *valid_header(int64_t *data_len, bool untied)
{
    struct { const char *name; int64_t d0, d1; } t[] = {
        {"model.embed_tokens.weight", 10, 8},
        {"model.norm.weight", 8, 0},
        {"model.layers.0.input_layernorm.weight", 8, 0},
        {"model.layers.0.post_attention_layernorm.weight", 8, 0},
        {"model.layers.0.self_attn.q_proj.weight", 8, 8},
        {"model.layers.0.self_attn.k_proj.weight", 4, 8},
        {"model.layers.0.self_attn.v_proj.weight", 4, 8},
        {"model.layers.0.self_attn.o_proj.weight", 8, 8},
        {"model.layers.0.mlp.gate_proj.weight", 12, 8},
        {"model.layers.0.mlp.up_proj.weight", 12, 8},
        {"model.layers.0.mlp.down_proj.weight", 8, 12},
        {"lm_head.weight", 10, 8},
    };
    int n = (int)(sizeof t / sizeof t[0]) - (untied ? 0 : 1);
    json_t *h = json_object();
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        int64_t bytes = 4 * t[i].d0 * (t[i].d1 ? t[i].d1 : 1);
        json_t *shape = t[i].d1 ? json_pack("[I,I]", (json_int_t)t[i].d0, (json_int_t)t[i].d1)
                                : json_pack("[I]", (json_int_t)t[i].d0);
        json_object_set_new(h, t[i].name, json_pack("{s:s,s:o,s:[I,I]}", "dtype", "F32", "shape", shape,
                                                    "data_offsets", (json_int_t)off, (json_int_t)(off + bytes)));
        off += bytes;
    }
    json_object_set_new(h, "__metadata__", json_pack("{s:s}", "format", "pt"));
    *data_len = off;
    return h;
}

/* Writes name = 8-byte length (or hlen_override when >= 0) + header + data
 * (values 0.01*i), with the last cut bytes cut off when cut >= 0. Steals h. */
static void write_st(const char *name, json_t *h, int64_t data_len, int64_t hlen_override, int64_t cut)
{
    char *hs = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    size_t hl = strlen(hs);
    size_t total = 8 + hl + (size_t)data_len;
    unsigned char *buf = calloc(1, total);
    uint64_t L = hlen_override >= 0 ? (uint64_t)hlen_override : hl;
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(L >> (8 * i));
    memcpy(buf + 8, hs, hl);
    for (int64_t i = 0; i < data_len / 4; i++) {
        float v = 0.01f * (float)(i % 100);
        memcpy(buf + 8 + hl + 4 * i, &v, 4);
    }
    free(hs);
    write_file(name, buf, cut >= 0 ? total - (size_t)cut : total);
    free(buf);
}

static void expect_load(SglStatus want, const char *needle1, const char *needle2)
{
    SglModel *m = (SglModel *)0x1;
    SglErr err = {{0}};
    SglStatus st = sgl_model_load(g_dir, SGL_LOAD_AUTO, &m, &err);
    if (st != want || (needle1 && !strstr(err.msg, needle1)) || (needle2 && !strstr(err.msg, needle2)))
        fail_msg("status %s (want %s), message \"%s\" (want \"%s\" and \"%s\")", sgl_status_str(st),
                 sgl_status_str(want), err.msg, needle1 ? needle1 : "", needle2 ? needle2 : "");
    if (st == SGL_OK)
        sgl_model_free(m);
    else
        assert_null(m);
}

/* ---- config.json ------------------------------------------------------- */

static void test_config_errors(void **state)
{
    (void)state;
    expect_load(SGL_E_IO, "config.json", NULL);            /* missing */
    write_text("config.json", "{\"hidden_size\": 8,");
    expect_load(SGL_E_FORMAT, "config.json", "invalid JSON");
    write_text("config.json", "[1, 2]");
    expect_load(SGL_E_FORMAT, "config.json", "object");
    struct { const char *field, *value; SglStatus st; const char *msg; } cases[] = {
        {"num_attention_heads", "\"8\"", SGL_E_FORMAT, "config.json: num_attention_heads: expected a positive integer"},
        {"num_attention_heads", "0", SGL_E_FORMAT, "config.json: num_attention_heads: expected a positive integer"},
        {"hidden_size", NULL, SGL_E_FORMAT, "config.json: hidden_size: missing"},
        {"hidden_size", "-8", SGL_E_FORMAT, "config.json: hidden_size: expected a positive integer"},
        {"vocab_size", "1.5", SGL_E_FORMAT, "config.json: vocab_size"},
        {"num_key_value_heads", "3", SGL_E_FORMAT, "config.json: num_key_value_heads"},
        {"head_dim", "3", SGL_E_FORMAT, "config.json: head_dim"},
        {"rms_norm_eps", "\"small\"", SGL_E_FORMAT, "config.json: rms_norm_eps: expected a positive number"},
        {"rope_theta", "-1", SGL_E_FORMAT, "config.json: rope_theta"},
        {"tie_word_embeddings", "1", SGL_E_FORMAT, "config.json: tie_word_embeddings: expected true or false"},
        {"architectures", "\"LlamaForCausalLM\"", SGL_E_FORMAT, "config.json: architectures"},
        {"architectures", "[\"GPT2LMHeadModel\"]", SGL_E_UNSUPPORTED, "config.json: architectures: \"GPT2LMHeadModel\""},
        {"torch_dtype", "\"float64\"", SGL_E_UNSUPPORTED, "config.json: torch_dtype: \"float64\""},
        {"rope_scaling", "{\"type\": \"yarn\", \"factor\": 4.0}", SGL_E_UNSUPPORTED, "config.json: rope_scaling.type: \"yarn\""},
        {"rope_scaling", "{\"rope_type\": \"dynamic\", \"factor\": 2.0}", SGL_E_UNSUPPORTED, "rope_scaling.rope_type"},
        {"rope_scaling", "{\"rope_type\": \"llama3\", \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                         "\"original_max_position_embeddings\": 8192}", SGL_E_FORMAT, "factor: missing"},
        {"rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 4.0, \"high_freq_factor\": 1.0, "
                         "\"original_max_position_embeddings\": 8192}", SGL_E_FORMAT, "high_freq_factor"},
        {"rope_scaling", "7", SGL_E_FORMAT, "config.json: rope_scaling"},
        {"eos_token_id", "\"x\"", SGL_E_FORMAT, "config.json: eos_token_id"},
        {"eos_token_id", "[1, 99]", SGL_E_FORMAT, "config.json: eos_token_id[1]"},
        {"bos_token_id", "10", SGL_E_FORMAT, "config.json: bos_token_id"},
        {"attention_bias", "\"no\"", SGL_E_FORMAT, "config.json: attention_bias"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_config_with(cases[i].field, cases[i].value);
        SglModelConfig c;
        SglErr err = {{0}};
        SglStatus st = sgl_config_load(g_dir, &c, &err);
        if (st != cases[i].st || !strstr(err.msg, cases[i].msg))
            fail_msg("case %zu (%s = %s): status %s, message \"%s\"; want %s, \"%s\"", i, cases[i].field,
                     cases[i].value ? cases[i].value : "<absent>", sgl_status_str(st), err.msg,
                     sgl_status_str(cases[i].st), cases[i].msg);
    }
    /* the optional files are parsed too, and named in errors */
    write_text("config.json", k_config);
    write_text("generation_config.json", "{\"eos_token_id\": [2, 3], \"temperature\": \"hot\"}");
    SglModelConfig c;
    SglErr err = {{0}};
    assert_int_equal(sgl_config_load(g_dir, &c, &err), SGL_E_FORMAT);
    assert_non_null(strstr(err.msg, "generation_config.json: temperature"));
    write_text("generation_config.json", "{\"eos_token_id\": [2, 3]");
    assert_int_equal(sgl_config_load(g_dir, &c, &err), SGL_E_FORMAT);
    assert_non_null(strstr(err.msg, "generation_config.json"));
    write_text("generation_config.json", "{}");
    write_text("tokenizer_config.json", "{\"add_bos_token\": \"yes\"}");
    assert_int_equal(sgl_config_load(g_dir, &c, &err), SGL_E_FORMAT);
    assert_non_null(strstr(err.msg, "tokenizer_config.json: add_bos_token"));
}

static void test_config_fields(void **state)
{
    (void)state;
    write_text("config.json",
               "{\"architectures\": [\"Foo\", \"Qwen2ForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 100,"
               " \"num_hidden_layers\": 3, \"num_attention_heads\": 4, \"vocab_size\": 300,"
               " \"rms_norm_eps\": 1e-6, \"rope_theta\": 500000, \"torch_dtype\": \"bfloat16\","
               " \"eos_token_id\": 7, \"bos_token_id\": null,"
               " \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 32.0, \"low_freq_factor\": 1,"
               " \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}}");
    write_text("generation_config.json",
               "{\"eos_token_id\": [7, 8, 9], \"temperature\": 0.6, \"top_p\": 0.9, \"top_k\": 20}");
    write_text("tokenizer_config.json", "{\"add_bos_token\": true, \"bos_token\": \"<s>\"}");
    SglModelConfig c;
    SglErr err = {{0}};
    assert_int_equal(sgl_config_load(g_dir, &c, &err), SGL_OK);
    assert_int_equal(c.arch, SGL_ARCH_QWEN2);
    assert_true(c.qkv_bias);
    assert_int_equal(c.n_kv_heads, 4);         /* defaults to heads */
    assert_int_equal(c.head_dim, 16);          /* hidden / heads */
    assert_int_equal(c.max_position_embeddings, 2048);
    assert_false(c.tie_word_embeddings);
    assert_int_equal(c.dtype, SGL_DT_BF16);
    assert_int_equal(c.rope_type, SGL_ROPE_LLAMA3);
    assert_true(c.rope_factor == 32.0f && c.rope_high_freq_factor == 4.0f);
    assert_int_equal(c.rope_original_max_pos, 8192);
    assert_true(c.rope_theta == 500000.0f);
    assert_int_equal(c.bos_token_id, -1);
    assert_int_equal(c.n_eos, 3);              /* generation_config wins */
    assert_int_equal(c.eos_ids[2], 9);
    assert_true(c.gen_temperature == 0.6f && c.gen_top_p == 0.9f);
    assert_int_equal(c.gen_top_k, 20);
    assert_true(c.add_bos);
    /* Llama with attention_bias, no rope scaling, generation config absent */
    char p[8192];
    snprintf(p, sizeof p, "%s/generation_config.json", g_dir);
    remove(p);
    write_config_with("attention_bias", "true");
    assert_int_equal(sgl_config_load(g_dir, &c, &err), SGL_OK);
    assert_true(c.qkv_bias);
    assert_int_equal(c.rope_type, SGL_ROPE_DEFAULT);
    assert_int_equal(c.n_eos, 1);
    assert_int_equal(c.eos_ids[0], 2);
    assert_true(isnan(c.gen_temperature));
    assert_int_equal(c.gen_top_k, -1);
    write_config_with("architectures", "[\"MistralForCausalLM\"]");
    assert_int_equal(sgl_config_load(g_dir, &c, &err), SGL_OK);
    assert_int_equal(c.arch, SGL_ARCH_MISTRAL);
    assert_false(c.qkv_bias);
    assert_true(c.tie_word_embeddings);
    assert_int_equal(c.head_dim, 4);
    assert_int_equal(c.sliding_window, 0);
    /* sliding_window: honored for Mistral, ignored for Llama, refused for Qwen2 */
    write_text("config.json", "{\"architectures\": [\"MistralForCausalLM\"], \"hidden_size\": 8,"
               " \"intermediate_size\": 12, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
               " \"vocab_size\": 10, \"sliding_window\": 4096}");
    assert_int_equal(sgl_config_load(g_dir, &c, &err), SGL_OK);
    assert_int_equal(c.sliding_window, 4096);
    write_config_with("sliding_window", "4096");
    assert_int_equal(sgl_config_load(g_dir, &c, &err), SGL_OK);
    assert_int_equal(c.sliding_window, 0);
    write_text("config.json", "{\"architectures\": [\"MistralForCausalLM\"], \"hidden_size\": 8,"
               " \"intermediate_size\": 12, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
               " \"vocab_size\": 10, \"sliding_window\": \"wide\"}");
    assert_int_equal(sgl_config_load(g_dir, &c, &err), SGL_E_FORMAT);
    assert_non_null(strstr(err.msg, "config.json: sliding_window"));
    write_text("config.json", "{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 8,"
               " \"intermediate_size\": 12, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
               " \"vocab_size\": 10, \"use_sliding_window\": true, \"sliding_window\": 64}");
    assert_int_equal(sgl_config_load(g_dir, &c, &err), SGL_E_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "config.json: use_sliding_window"));
}

/* transformers 5 writes rope_parameters (with rope_theta inside) instead of
 * rope_scaling + rope_theta. */
static void test_config_rope_parameters(void **state)
{
    (void)state;
    write_text("config.json",
               "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 100,"
               " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
               " \"vocab_size\": 300, \"rope_parameters\": {\"rope_type\": \"llama3\", \"rope_theta\": 500000.0,"
               " \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
               " \"original_max_position_embeddings\": 8192}}");
    SglModelConfig c;
    SglErr err = {{0}};
    assert_int_equal(sgl_config_load(g_dir, &c, &err), SGL_OK);
    assert_int_equal(c.rope_type, SGL_ROPE_LLAMA3);
    assert_true(c.rope_theta == 500000.0f && c.rope_factor == 8.0f);
    assert_int_equal(c.rope_original_max_pos, 8192);
    /* default rope type: only the theta */
    write_text("config.json",
               "{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 100,"
               " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 300,"
               " \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 1000000.0}}");
    assert_int_equal(sgl_config_load(g_dir, &c, &err), SGL_OK);
    assert_int_equal(c.rope_type, SGL_ROPE_DEFAULT);
    assert_true(c.rope_theta == 1000000.0f);
    /* errors name the object */
    write_text("config.json",
               "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 100,"
               " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 300,"
               " \"rope_parameters\": {\"rope_type\": \"yarn\", \"rope_theta\": 10000.0}}");
    assert_int_equal(sgl_config_load(g_dir, &c, &err), SGL_E_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "config.json: rope_parameters.rope_type: \"yarn\""));
    write_text("config.json",
               "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 100,"
               " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 300,"
               " \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": -1}}");
    assert_int_equal(sgl_config_load(g_dir, &c, &err), SGL_E_FORMAT);
    assert_non_null(strstr(err.msg, "rope_parameters"));
}

static void test_stories_config(void **state)
{
    (void)state;
    const char *sd = getenv("SGL_SHARED_DIR");
    char dir[4096];
    struct stat sb;
    if (!sd || stat(sd, &sb) != 0)
        skip();
    snprintf(dir, sizeof dir, "%s/models/stories260K-hf", sd);
    SglModel *m = NULL;
    SglErr err = {{0}};
    assert_int_equal(sgl_model_load(dir, SGL_LOAD_AUTO, &m, &err), SGL_OK);
    assert_int_equal(m->cfg.arch, SGL_ARCH_LLAMA);
    assert_int_equal(m->cfg.hidden_size, 64);
    assert_int_equal(m->cfg.n_layers, 5);
    assert_int_equal(m->cfg.n_heads, 8);
    assert_int_equal(m->cfg.n_kv_heads, 4);
    assert_int_equal(m->cfg.head_dim, 8);
    assert_int_equal(m->cfg.vocab_size, 512);
    assert_true(m->cfg.tie_word_embeddings);
    assert_true(m->cfg.add_bos);
    assert_int_equal(m->cfg.bos_token_id, 1);
    assert_int_equal(m->cfg.n_eos, 1);
    assert_int_equal(m->cfg.eos_ids[0], 2);
    assert_ptr_equal(m->lm_head.data, m->embed.data);
    assert_int_equal(m->layers[4].w_down.shape[1], 172);
    assert_int_equal(sgl_model_weight_bytes(m), 260032 * 4);
    sgl_model_free(m);
}

/* ---- safetensors ------------------------------------------------------- */

static void test_safetensors_errors(void **state)
{
    (void)state;
    int64_t dl;
    json_t *h;
    write_text("config.json", k_config);
    expect_load(SGL_E_IO, "model.safetensors", NULL);              /* no weights at all */

    h = valid_header(&dl, false);
    write_st("model.safetensors", h, dl, -1, -1);
    expect_load(SGL_OK, NULL, NULL);

    write_file("model.safetensors", "\x05\0\0", 3);
    expect_load(SGL_E_FORMAT, "model.safetensors", "too short");

    h = valid_header(&dl, false);
    write_st("model.safetensors", h, dl, 1 << 30, -1);
    expect_load(SGL_E_FORMAT, "model.safetensors", "header length");

    h = valid_header(&dl, false);
    write_st("model.safetensors", h, dl, 20, -1);   /* cuts the JSON */
    expect_load(SGL_E_FORMAT, "model.safetensors", "JSON");

    h = valid_header(&dl, false);
    write_st("model.safetensors", h, dl, -1, 100);  /* truncated data */
    expect_load(SGL_E_FORMAT, "model.safetensors", "outside the data region");

    h = valid_header(&dl, false);
    json_object_set_new(json_object_get(h, "model.norm.weight"), "data_offsets", json_pack("[I,I]", (json_int_t)dl, (json_int_t)dl + 32));
    write_st("model.safetensors", h, dl, -1, -1);
    expect_load(SGL_E_FORMAT, "model.norm.weight", "outside the data region");

    h = valid_header(&dl, false);
    json_object_set_new(json_object_get(h, "model.norm.weight"), "data_offsets", json_pack("[I,I]", 40, 8));
    write_st("model.safetensors", h, dl, -1, -1);
    expect_load(SGL_E_FORMAT, "model.norm.weight", "data_offsets");

    h = valid_header(&dl, false);
    json_object_set_new(json_object_get(h, "model.norm.weight"), "data_offsets", json_pack("[I,I]", 0, 36));
    write_st("model.safetensors", h, dl, -1, -1);
    expect_load(SGL_E_FORMAT, "model.norm.weight", "bytes");

    h = valid_header(&dl, false);
    json_object_set_new(json_object_get(h, "model.layers.0.mlp.up_proj.weight"), "dtype", json_string("I64"));
    write_st("model.safetensors", h, dl, -1, -1);
    expect_load(SGL_E_UNSUPPORTED, "model.layers.0.mlp.up_proj.weight", "I64");

    h = valid_header(&dl, false);
    json_object_set_new(json_object_get(h, "model.norm.weight"), "shape", json_pack("[s]", "8"));
    write_st("model.safetensors", h, dl, -1, -1);
    expect_load(SGL_E_FORMAT, "model.norm.weight", "shape");

    h = valid_header(&dl, false);   /* same byte count, wrong shape */
    json_object_set_new(json_object_get(h, "model.layers.0.mlp.down_proj.weight"), "shape", json_pack("[I,I]", 12, 8));
    write_st("model.safetensors", h, dl, -1, -1);
    expect_load(SGL_E_FORMAT, "model.layers.0.mlp.down_proj.weight", "expected shape [8, 12], got [12, 8]");

    h = valid_header(&dl, false);
    json_object_del(h, "model.layers.0.self_attn.k_proj.weight");
    write_st("model.safetensors", h, dl, -1, -1);
    expect_load(SGL_E_FORMAT, "model.safetensors: missing tensor model.layers.0.self_attn.k_proj.weight", NULL);

    /* untied needs lm_head.weight */
    write_config_with("tie_word_embeddings", "false");
    h = valid_header(&dl, false);
    write_st("model.safetensors", h, dl, -1, -1);
    expect_load(SGL_E_FORMAT, "missing tensor lm_head.weight", NULL);
    h = valid_header(&dl, true);
    write_st("model.safetensors", h, dl, -1, -1);
    expect_load(SGL_OK, NULL, NULL);
    /* Qwen2 needs q/k/v biases */
    write_config_with("architectures", "[\"Qwen2ForCausalLM\"]");
    h = valid_header(&dl, false);
    write_st("model.safetensors", h, dl, -1, -1);
    expect_load(SGL_E_FORMAT, "missing tensor model.layers.0.self_attn.q_proj.bias", NULL);
}

/* Two shards plus an index; then the index's defects. */
static void test_sharded(void **state)
{
    (void)state;
    int64_t dl;
    write_text("config.json", k_config);
    /* shard 1: everything but the MLP; shard 2: the MLP (offsets rebased) */
    json_t *all = valid_header(&dl, false);
    json_t *h1 = json_object(), *h2 = json_object(), *wm = json_object();
    int64_t off2 = 0, dl1 = 0;
    const char *key;
    json_t *v;
    json_object_foreach(all, key, v) {
        if (!strcmp(key, "__metadata__"))
            continue;
        json_t *offs = json_object_get(v, "data_offsets");
        int64_t b = json_integer_value(json_array_get(offs, 0)), e = json_integer_value(json_array_get(offs, 1));
        if (strstr(key, ".mlp.")) {
            json_t *c = json_deep_copy(v);
            json_object_set_new(c, "data_offsets", json_pack("[I,I]", (json_int_t)off2, (json_int_t)(off2 + (e - b))));
            off2 += e - b;
            json_object_set_new(h2, key, c);
            json_object_set_new(wm, key, json_string("model-00002-of-00002.safetensors"));
        } else {
            json_object_set(h1, key, v);
            dl1 = e > dl1 ? e : dl1;
            json_object_set_new(wm, key, json_string("model-00001-of-00002.safetensors"));
        }
    }
    json_decref(all);
    write_st("model-00001-of-00002.safetensors", h1, dl, -1, -1);
    write_st("model-00002-of-00002.safetensors", h2, off2, -1, -1);
    json_t *index = json_pack("{s:{s:I},s:o}", "metadata", "total_size", (json_int_t)dl, "weight_map", wm);
    char *s = json_dumps(index, 0);
    write_text("model.safetensors.index.json", s);
    free(s);
    SglModel *m = NULL;
    SglErr err = {{0}};
    assert_int_equal(sgl_model_load(g_dir, SGL_LOAD_AUTO, &m, &err), SGL_OK);
    assert_non_null(m->layers[0].w_up.data);
    assert_int_equal(m->layers[0].w_down.shape[0], 8);
    sgl_model_free(m);

    /* the index points at a shard that does not exist */
    json_object_set_new(wm, "model.layers.0.mlp.up_proj.weight", json_string("model-00003-of-00002.safetensors"));
    s = json_dumps(index, 0);
    write_text("model.safetensors.index.json", s);
    free(s);
    expect_load(SGL_E_IO, "model-00003-of-00002.safetensors", NULL);
    /* a path escaping the directory */
    json_object_set_new(wm, "model.layers.0.mlp.up_proj.weight", json_string("../x.safetensors"));
    s = json_dumps(index, 0);
    write_text("model.safetensors.index.json", s);
    free(s);
    expect_load(SGL_E_FORMAT, "model.safetensors.index.json", "plain file name");
    /* listed in a shard that lacks it */
    json_object_set_new(wm, "model.layers.0.mlp.up_proj.weight", json_string("model-00001-of-00002.safetensors"));
    s = json_dumps(index, 0);
    write_text("model.safetensors.index.json", s);
    free(s);
    expect_load(SGL_E_FORMAT, "model.layers.0.mlp.up_proj.weight", "model-00001-of-00002.safetensors");
    json_decref(index);
    write_text("model.safetensors.index.json", "{\"weight_map\": 3}");
    expect_load(SGL_E_FORMAT, "model.safetensors.index.json", "weight_map");
    write_text("model.safetensors.index.json", "{\"weight_map\": ");
    expect_load(SGL_E_FORMAT, "model.safetensors.index.json", "invalid JSON");
}

/* Random byte flips in the header and random truncations: any status is
 * fine, a crash or an ASan report is not. */
static void test_corrupt_never_crashes(void **state)
{
    (void)state;
    int64_t dl;
    write_text("config.json", k_config);
    json_t *h = valid_header(&dl, false);
    char *hs = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    size_t hl = strlen(hs), total = 8 + hl + (size_t)dl;
    unsigned char *good = calloc(1, total), *bad = malloc(total);
    for (int i = 0; i < 8; i++)
        good[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(good + 8, hs, hl);
    free(hs);
    uint64_t rng = 0x1234567;
    int n_ok = 0, n_err = 0;
    for (int it = 0; it < 300; it++) {
        memcpy(bad, good, total);
        size_t len = total;
        int flips = 1 + it % 4;
        for (int f = 0; f < flips; f++) {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
            size_t pos = (size_t)(rng % (8 + hl));
            bad[pos] = (unsigned char)(rng >> 24);
        }
        if (it % 3 == 0)
            len = (size_t)(rng % total);
        write_file("model.safetensors", bad, len);
        SglModel *m = NULL;
        SglErr err = {{0}};
        SglStatus st = sgl_model_load(g_dir, SGL_LOAD_AUTO, &m, &err);
        if (st == SGL_OK) {
            n_ok++;
            sgl_model_free(m);
        } else {
            n_err++;
            assert_null(m);
            assert_true(err.msg[0] != 0);
        }
    }
    assert_true(n_err > 0);
    free(good);
    free(bad);
}

/* ---- dummy weights ----------------------------------------------------- */

static void test_dummy(void **state)
{
    (void)state;
    write_text("config.json", k_config);
    SglModelConfig c;
    SglErr err = {{0}};
    assert_int_equal(sgl_config_load(g_dir, &c, &err), SGL_OK);
    SglModel *a = NULL, *b = NULL, *d = NULL;
    assert_int_equal(sgl_model_dummy(&c, 7, &a, &err), SGL_OK);
    assert_int_equal(sgl_model_dummy(&c, 7, &b, &err), SGL_OK);
    assert_int_equal(sgl_model_load(g_dir, SGL_LOAD_DUMMY, &d, &err), SGL_OK);   /* no weights needed */
    assert_int_equal(a->embed.dtype, SGL_DT_F32);
    assert_memory_equal(a->layers[0].w_down.data, b->layers[0].w_down.data, 8 * 12 * 4);
    const float *norm = a->layers[0].attn_norm.data, *wq = a->layers[0].wq.data;
    for (int i = 0; i < 8; i++)
        assert_true(norm[i] == 1.0f);
    double ss = 0;
    for (int i = 0; i < 64; i++) {
        assert_true(fabsf(wq[i]) <= 0.0347f);
        ss += wq[i] * wq[i];
    }
    assert_true(ss > 0);
    assert_ptr_equal(a->lm_head.data, a->embed.data);
    /* 80 + 8 + 1 layer (8+8 + 64 + 32 + 32 + 64 + 3*96) */
    assert_int_equal(sgl_model_weight_bytes(a), (80 + 8 + 16 + 64 + 32 + 32 + 64 + 288) * 4);
    assert_string_equal(d->dir, g_dir);
    sgl_model_free(a);
    sgl_model_free(b);
    sgl_model_free(d);
    c.n_layers = 0;
    assert_int_equal(sgl_model_dummy(&c, 7, &a, &err), SGL_E_INVAL);
    assert_null(a);
}

/* Shapes-only dummy (the CUDA runner fills it on the device): the same shapes
 * as sgl_model_dummy, no data, bf16, the seed kept; errors as sgl_model_dummy. */
static void test_dummy_shapes(void **state)
{
    (void)state;
    write_text("config.json", k_config);
    SglModelConfig c;
    SglErr err = {{0}};
    assert_int_equal(sgl_config_load(g_dir, &c, &err), SGL_OK);
    SglModel *a = NULL, *s = NULL, *d = NULL;
    assert_int_equal(sgl_model_dummy(&c, 7, &a, &err), SGL_OK);
    assert_int_equal(sgl_model_dummy_shapes(&c, 7, &s, &err), SGL_OK);
    assert_int_equal(sgl_model_load(g_dir, SGL_LOAD_DUMMY_SHAPES, &d, &err), SGL_OK);
    assert_true(s->dummy_shapes && d->dummy_shapes && !a->dummy_shapes);
    assert_true(s->dummy_seed == 7);
    const SglTensor *ta[] = {&a->embed, &a->final_norm, &a->layers[0].wq, &a->layers[0].w_down};
    const SglTensor *ts[] = {&s->embed, &s->final_norm, &s->layers[0].wq, &s->layers[0].w_down};
    for (int i = 0; i < 4; i++) {
        assert_null(ts[i]->data);
        assert_int_equal(ts[i]->dtype, SGL_DT_BF16);
        assert_int_equal(ts[i]->ndim, ta[i]->ndim);
        assert_true(ts[i]->shape[0] == ta[i]->shape[0] && ts[i]->shape[1] == ta[i]->shape[1]);
    }
    assert_int_equal(sgl_model_weight_bytes(s), 0);
    assert_string_equal(d->dir, g_dir);
    sgl_model_free(a);
    sgl_model_free(s);
    sgl_model_free(d);
    c.n_layers = 0;
    assert_int_equal(sgl_model_dummy_shapes(&c, 7, &s, &err), SGL_E_INVAL);
    assert_null(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_rope_parameters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stories_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_safetensors_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sharded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_never_crashes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dummy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dummy_shapes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
