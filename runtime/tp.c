/* tp.c -- the sharding arithmetic of tensor parallelism (see tp.h).
 *
 * Head, KV-head and intermediate dimensions split evenly (size must divide
 * them); the vocabulary splits into blocks of ceil(vocab/size) rows so any
 * vocabulary size works, the last block possibly short or even empty.
 */
#include "runtime/tp.h"

SglStatus sgl_tp_shard(const SglModelConfig *c, SglTp tp, SglTpShard *sh, SglErr *err)
{
    if (tp.size < 1 || tp.rank < 0 || tp.rank >= tp.size)
        return sgl_err(err, SGL_E_INVAL, "tp: rank %d of size %d is out of range (need 0 <= rank < size)",
                       tp.rank, tp.size);
    if (c->n_heads % tp.size != 0)
        return sgl_err(err, SGL_E_INVAL, "tp %d does not divide num_attention_heads %d", tp.size, c->n_heads);
    if (c->n_kv_heads % tp.size != 0)
        return sgl_err(err, SGL_E_INVAL, "tp %d does not divide num_key_value_heads %d", tp.size,
                       c->n_kv_heads);
    if (c->intermediate_size % tp.size != 0)
        return sgl_err(err, SGL_E_INVAL, "tp %d does not divide intermediate_size %d", tp.size,
                       c->intermediate_size);
    if (c->vocab_size < 1)
        return sgl_err(err, SGL_E_INVAL, "tp: vocab_size %d must be positive", c->vocab_size);
    sh->n_heads = c->n_heads / tp.size;
    sh->n_kv_heads = c->n_kv_heads / tp.size;
    sh->head0 = tp.rank * sh->n_heads;
    sh->kv_head0 = tp.rank * sh->n_kv_heads;
    sh->inter = c->intermediate_size / tp.size;
    sh->inter0 = (int64_t)tp.rank * sh->inter;
    sh->vocab_block = ((int64_t)c->vocab_size + tp.size - 1) / tp.size;
    sh->vocab0 = (int64_t)tp.rank * sh->vocab_block;
    int64_t end = sh->vocab0 + sh->vocab_block;
    if (end > c->vocab_size)
        end = c->vocab_size;
    if (sh->vocab0 > c->vocab_size)
        sh->vocab0 = c->vocab_size;
    sh->n_vocab = end - sh->vocab0;
    return SGL_OK;
}
