/* textbuf.h -- a growable NUL-terminated byte buffer held as three fields
 * (pointer, length, capacity) of the caller's own struct. */
#ifndef SGL_TEXTBUF_H
#define SGL_TEXTBUF_H

#include <stdbool.h>
#include <stddef.h>

/* Appends p[0..n) to *buf (realloc'd as needed, at least doubling) and
 * keeps it NUL-terminated. false (nothing changed) when out of memory. */
bool sgl_text_append(char **buf, size_t *len, size_t *cap, const char *p, size_t n);

#endif
