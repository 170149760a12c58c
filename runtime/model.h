/* model.h -- a Llama-family model directory: config, tokenizer settings, weights.
 *
 * Loads the Hugging Face layout: config.json, model.safetensors or the sharded
 * model.safetensors.index.json (mmap'd; f32/f16/bf16), generation_config.json,
 * tokenizer_config.json. With SGL_LOAD_DUMMY the weights are random values of
 * the config's shapes from a fixed seed (for benchmarks). Supported
 * architectures: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM (qkv bias).
 * Weights are host tensors in their file dtype; executors convert at init.
 */
#ifndef SGL_MODEL_H
#define SGL_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/status.h"

typedef enum { SGL_ARCH_LLAMA, SGL_ARCH_MISTRAL, SGL_ARCH_QWEN2 } SglArch;
typedef enum { SGL_DT_F32, SGL_DT_F16, SGL_DT_BF16 } SglDType;
typedef enum { SGL_LOAD_AUTO, SGL_LOAD_DUMMY } SglLoadFormat;
typedef enum { SGL_ROPE_DEFAULT, SGL_ROPE_LLAMA3 } SglRopeType;

#define SGL_MAX_EOS 8

typedef struct {
    SglArch arch;
    int vocab_size, hidden_size, intermediate_size;
    int n_layers, n_heads, n_kv_heads, head_dim;
    int max_position_embeddings;
    float rms_norm_eps, rope_theta;
    bool tie_word_embeddings;
    bool qkv_bias;                 /* Qwen2, or attention_bias: true */
    SglRopeType rope_type;         /* rope_scaling {"rope_type": "llama3", ...} */
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_pos;
    SglDType dtype;                /* torch_dtype of the checkpoint */
    /* special tokens: config.json, generation_config.json, tokenizer_config.json */
    int bos_token_id;              /* -1 when none */
    int eos_ids[SGL_MAX_EOS];
    int n_eos;
    bool add_bos;                  /* tokenizer_config add_bos_token */
    /* generation_config.json defaults (NaN / -1 when absent) */
    float gen_temperature, gen_top_p;
    int gen_top_k;
} SglModelConfig;

/* A host tensor. data is borrowed from the model (mmap or owned buffer). */
typedef struct {
    const void *data;
    SglDType dtype;
    int ndim;
    int64_t shape[2];
} SglTensor;

typedef struct {
    SglTensor attn_norm;           /* (hidden) */
    SglTensor wq, wk, wv;          /* (n_heads*head_dim, hidden), (n_kv*hd, hidden) x2 */
    SglTensor bq, bk, bv;          /* (n_heads*hd), (n_kv*hd) x2; data NULL without bias */
    SglTensor wo;                  /* (hidden, n_heads*head_dim) */
    SglTensor mlp_norm;            /* (hidden) */
    SglTensor w_gate, w_up;        /* (intermediate, hidden) */
    SglTensor w_down;              /* (hidden, intermediate) */
} SglLayerWeights;

typedef struct SglModel {
    SglModelConfig cfg;
    char *dir;                     /* the model directory, or NULL for built-ins */
    SglTensor embed;               /* (vocab, hidden) */
    SglTensor final_norm;          /* (hidden) */
    SglTensor lm_head;             /* (vocab, hidden); same data as embed when tied */
    SglLayerWeights *layers;       /* (n_layers) */
    struct SglModelPriv *priv;     /* mmaps and owned buffers */
} SglModel;

/* Parses dir/config.json (+ generation_config.json, tokenizer_config.json when
 * present) into cfg. SGL_E_IO / SGL_E_FORMAT / SGL_E_UNSUPPORTED with err naming
 * the file and field. */
SglStatus sgl_config_load(const char *dir, SglModelConfig *cfg, SglErr *err);

/* Loads config and weights. On success *out is owned by the caller (free with
 * sgl_model_free); on failure *out is NULL and nothing leaks. */
SglStatus sgl_model_load(const char *dir, SglLoadFormat fmt, SglModel **out, SglErr *err);

/* A model from a config alone, with random weights (fixed seed). */
SglStatus sgl_model_dummy(const SglModelConfig *cfg, uint64_t seed, SglModel **out, SglErr *err);

void sgl_model_free(SglModel *m);

/* Bytes of weights, for memory budgeting. */
int64_t sgl_model_weight_bytes(const SglModel *m);

#endif
