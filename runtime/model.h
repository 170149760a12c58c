/* model.h -- a Llama-family model directory: config, tokenizer settings, weights.
 *
 * Loads the Hugging Face layout: config.json, model.safetensors or the sharded
 * model.safetensors.index.json (mmap'd read-only; f32/f16/bf16; every shape
 * checked against the config), generation_config.json, tokenizer_config.json.
 * With SGL_LOAD_DUMMY the weights are random values of the config's shapes
 * from a fixed seed (for benchmarks): uniform in +-0.02*sqrt(3), norms 1, in
 * fp32 up to 4 GiB of weights and bf16 beyond. Supported architectures:
 * LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM (qkv bias).
 * Weights are host tensors in their file dtype; executors convert at init.
 * Implemented in model.c (config, weights, dummy) and safetensors.c.
 */
#ifndef SGL_MODEL_H
#define SGL_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/status.h"

typedef enum { SGL_ARCH_LLAMA, SGL_ARCH_MISTRAL, SGL_ARCH_QWEN2 } SglArch;
typedef enum { SGL_DT_F32, SGL_DT_F16, SGL_DT_BF16 } SglDType;
/* SGL_LOAD_DUMMY_SHAPES: sgl_model_dummy_shapes (no host weights; the CUDA
 * runner generates them on the device) */
typedef enum { SGL_LOAD_AUTO, SGL_LOAD_DUMMY, SGL_LOAD_DUMMY_SHAPES } SglLoadFormat;
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
    int sliding_window;            /* Mistral: attend to the last N positions only; 0 = all */
    /* special tokens: config.json, then generation_config.json overrides */
    int bos_token_id;              /* -1 when none */
    int eos_ids[SGL_MAX_EOS];      /* eos_token_id: an int or a list */
    int n_eos;
    bool add_bos;                  /* tokenizer_config add_bos_token; false when absent */
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
    bool dummy_shapes;             /* tensors have shapes but data NULL (sgl_model_dummy_shapes) */
    uint64_t dummy_seed;           /* the seed a runner generates them from */
} SglModel;

/* Parses dir/config.json (+ generation_config.json, tokenizer_config.json when
 * present) into cfg. Absent optional fields take Hugging Face's defaults
 * (num_key_value_heads = heads, head_dim = hidden/heads, rms_norm_eps 1e-6,
 * rope_theta 10000, max_position_embeddings 2048, untied). SGL_E_IO (config.json
 * unreadable), SGL_E_FORMAT (bad JSON, a missing/ill-typed/out-of-range
 * field), SGL_E_UNSUPPORTED (architecture, torch_dtype, rope_scaling type),
 * with err naming the file and field; cfg is untouched on failure. */
SglStatus sgl_config_load(const char *dir, SglModelConfig *cfg, SglErr *err);

/* Loads config and weights. On success *out is owned by the caller (free with
 * sgl_model_free); on failure *out is NULL and nothing leaks. Besides the
 * config's codes: SGL_E_IO (no weights file, a shard missing), SGL_E_FORMAT
 * (corrupt safetensors, missing tensor, wrong shape), SGL_E_UNSUPPORTED
 * (tensor dtype), SGL_E_NOMEM. */
SglStatus sgl_model_load(const char *dir, SglLoadFormat fmt, SglModel **out, SglErr *err);

/* A model from a config alone, with random weights (fixed seed: the same seed
 * gives the same bytes). SGL_E_INVAL for a non-positive size, SGL_E_NOMEM. */
SglStatus sgl_model_dummy(const SglModelConfig *cfg, uint64_t seed, SglModel **out, SglErr *err);

/* The same model with shapes only: every tensor's data is NULL (bf16 dtype),
 * dummy_shapes is set and dummy_seed = seed, so a runner that supports it
 * (sgl_runner_cuda_new) fills random weights of the same family on the
 * device in a fraction of the host's time. The CPU runner needs host
 * weights: give it sgl_model_dummy instead. Errors as sgl_model_dummy. */
SglStatus sgl_model_dummy_shapes(const SglModelConfig *cfg, uint64_t seed, SglModel **out, SglErr *err);

void sgl_model_free(SglModel *m);

/* Bytes of weights, for memory budgeting. */
int64_t sgl_model_weight_bytes(const SglModel *m);

#endif
