/* tokenizer.h -- Hugging Face compatible tokenization.
 *
 * Reads tokenizer.json (byte-level BPE as in GPT-2/Llama-3/Qwen/SmolLM, and
 * SentencePiece-style BPE with byte fallback as in Llama-2/Mistral/stories260K),
 * or a SentencePiece tokenizer.model when there is no tokenizer.json.
 * Added/special tokens are matched before the model runs. Encoding and
 * decoding reproduce Hugging Face `tokenizers` byte for byte.
 * A loaded tokenizer is immutable and safe to share between threads.
 */
#ifndef SGL_TOKENIZER_H
#define SGL_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/status.h"

typedef struct SglTokenizer SglTokenizer;

/* dir/tokenizer.json, else dir/tokenizer.model; tokenizer_config.json (when
 * present) gives bos/eos and add_bos_token/add_eos_token, and config.json's
 * bos_token_id/eos_token_id fill in ids nothing else names. `dir` may also be
 * a tokenizer file. On success *out is owned by the caller (free with
 * sgl_tokenizer_free); on failure *out is NULL and err names the file and the
 * field: SGL_E_IO (missing or unreadable), SGL_E_FORMAT (malformed content),
 * SGL_E_UNSUPPORTED (a model, normalizer, pre-tokenizer, decoder or option this
 * implementation does not have, e.g. NFC or Unigram), SGL_E_NOMEM. */
SglStatus sgl_tokenizer_load(const char *dir, SglTokenizer **out, SglErr *err);
/* A single file: tokenizer.json or a SentencePiece .model (same statuses). */
SglStatus sgl_tokenizer_load_file(const char *path, SglTokenizer **out, SglErr *err);
void sgl_tokenizer_free(SglTokenizer *t);

int32_t sgl_tokenizer_vocab_size(const SglTokenizer *t);
int32_t sgl_tokenizer_bos(const SglTokenizer *t);       /* -1 if none */
int32_t sgl_tokenizer_eos(const SglTokenizer *t);       /* -1 if none */
bool sgl_tokenizer_add_bos(const SglTokenizer *t);      /* HF add_special_tokens adds BOS */
/* The id of a token given by its exact text ("<|im_start|>"), or -1. */
int32_t sgl_tokenizer_token_id(const SglTokenizer *t, const char *text);
bool sgl_tokenizer_is_special(const SglTokenizer *t, int32_t id);

/* Encodes text[0..len) (any bytes: invalid UTF-8 becomes U+FFFD first, as a
 * Python str would carry it; sentencepiece models replace each bad byte).
 * Added/special tokens are matched in the raw text. With add_special, BOS (and
 * EOS where configured) is added as HF's add_special_tokens=True. On success
 * *ids (malloc'd, never NULL, owned by the caller) holds *n ids. Errors:
 * SGL_E_NOMEM; SGL_E_INVAL (text NULL with len > 0, or PCRE2 hit its match
 * limit on pathological input). On failure *ids is NULL and *n is 0. */
SglStatus sgl_tokenizer_encode(const SglTokenizer *t, const char *text, size_t len,
                               bool add_special, int32_t **ids, int32_t *n);

/* Decodes ids to a malloc'd NUL-terminated string (owned by the caller),
 * as HF decode(skip_special_tokens=skip_special). Invalid UTF-8 from byte
 * tokens becomes U+FFFD as in HF; ids outside the vocabulary are skipped. A
 * .model decodes as sentencepiece does (one U+FFFD per bad byte, <unk> as
 * " ⁇ "), control tokens showing their text unless skip_special. NULL only on
 * allocation failure. */
char *sgl_tokenizer_decode(const SglTokenizer *t, const int32_t *ids, int32_t n,
                           bool skip_special, size_t *len);

/* The raw bytes token id stands for inside a longer text (byte tokens give
 * their byte, the SentencePiece '▁' becomes ' ', byte-level BPE is unmapped;
 * added/special tokens give their text; an unknown id gives "" and *len 0).
 * Borrowed; valid while t lives. Used by constraint masks. */
const char *sgl_tokenizer_token_bytes(const SglTokenizer *t, int32_t id, size_t *len);

/* Incremental (streaming) detokenization: push ids one at a time and get only
 * complete UTF-8 text. The concatenation of every pushed piece and the final
 * flush equals sgl_tokenizer_decode of all ids, byte for byte (the decoder runs
 * as one streaming machine; text is held back only while later ids can still
 * change it: an unfinished UTF-8 character, a run of byte tokens, a possible
 * match of a decoder Replace pattern, trailing characters a Strip may drop).
 * Caller-provided storage: init, push..., flush, deinit. */
typedef struct TokDec TokDec;
typedef struct {
    const SglTokenizer *t;     /* borrowed; must outlive the detokenizer */
    int32_t *ids;              /* owned: all ids pushed so far */
    int32_t n, cap;
    bool skip_special;
    TokDec *st;                /* owned: streaming decoder state (made on first push) */
} SglDetok;

void sgl_detok_init(SglDetok *d, const SglTokenizer *t, bool skip_special);
void sgl_detok_deinit(SglDetok *d);
/* Appends id; on success *text (malloc'd, caller frees; may be "") holds the
 * newly completed text. Ids outside the vocabulary produce nothing. On
 * SGL_E_NOMEM *text is NULL and the stream is broken: deinit it. */
SglStatus sgl_detok_push(SglDetok *d, int32_t id, char **text, size_t *len);
/* Whatever is still held back (an incomplete UTF-8 tail, rendered as HF would).
 * After a flush the detokenizer starts over (as if freshly initialized). */
SglStatus sgl_detok_flush(SglDetok *d, char **text, size_t *len);

#endif
