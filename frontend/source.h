/* source.h -- source text and locations.
 *
 * An SglSource owns one file's bytes (plus a NUL sentinel the lexer relies on)
 * and its line-start table. Everything else refers to text by SglLoc: the
 * source, a byte offset and a byte length. Line and column are computed only
 * when printing; columns count characters (UTF-8 code points, an invalid byte
 * counts as one), 1-based. Sources are heap objects (_new/_free), owned by the
 * compilation (compile.h) and outliving its diagnostics.
 */
#ifndef SGL_SOURCE_H
#define SGL_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SGL_MAX_SOURCE_BYTES (16u << 20) /* 16 MiB */

typedef struct SglSource {
    char *name;               /* display name ("<stdin>" for -) */
    char *text;               /* len bytes + a NUL sentinel; may contain NULs */
    uint32_t len;
    uint32_t *line_off;       /* byte offset where each line starts */
    uint32_t n_lines;         /* >= 1 */
} SglSource;

typedef struct {
    const SglSource *src;     /* NULL: no location */
    uint32_t off;             /* byte offset */
    uint32_t len;             /* bytes */
} SglLoc;

/* Copies bytes[0..len) (len <= SGL_MAX_SOURCE_BYTES). NULL on allocation
 * failure or oversize; the caller still owns `bytes`. */
SglSource *sgl_source_new(const char *name, const char *bytes, size_t len);
void sgl_source_free(SglSource *s);

/* Reads a whole file ("-" = stdin). On failure returns NULL and writes one
 * line to err (cap err_cap): cannot open, read error, or "larger than the
 * 16 MiB limit". */
SglSource *sgl_source_read_file(const char *path, char *err, size_t err_cap);

/* 1-based line and column (in characters) of byte offset `off`. */
void sgl_source_line_col(const SglSource *s, uint32_t off, uint32_t *line, uint32_t *col);
/* Start and length (without the newline) of 1-based line `line`. */
void sgl_source_line(const SglSource *s, uint32_t line, uint32_t *off, uint32_t *len);

static inline SglLoc sgl_loc(const SglSource *s, uint32_t off, uint32_t len)
{
    SglLoc l = {s, off, len};
    return l;
}
/* Decodes one UTF-8 sequence at p (n bytes available): returns its length
 * (1-4) and stores the code point, or returns 0 for an invalid sequence
 * (overlong, surrogate, > U+10FFFF, truncated, stray continuation byte). */
int sgl_utf8_decode(const unsigned char *p, size_t n, uint32_t *cp);

/* The span from the start of a to the end of b (same source). */
SglLoc sgl_loc_span(SglLoc a, SglLoc b);

#endif
