/* diag.c -- diagnostic list and renderer (see diag.h).
 *
 * The source line is printed with control characters and invalid UTF-8 bytes
 * shown as '?', so the caret column (counted in characters) stays aligned and
 * no raw bytes from bad input reach the terminal. Lines longer than WINDOW
 * characters are cut to a window around the caret.
 */
#include "frontend/diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW 160

void sgl_diags_init(SglDiags *d, uint32_t max_errors)
{
    memset(d, 0, sizeof *d);
    d->max_errors = max_errors ? max_errors : SGL_MAX_ERRORS;
}

void sgl_diags_deinit(SglDiags *d)
{
    for (uint32_t i = 0; i < d->n; i++) {
        for (uint32_t j = 0; j < d->items[i].n_notes; j++)
            free(d->items[i].notes[j].msg);
        free(d->items[i].notes);
        free(d->items[i].msg);
    }
    free(d->items);
    memset(d, 0, sizeof *d);
}

static char *vformat(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

static SglDiag *vadd(SglDiags *d, SglSeverity sev, SglLoc loc, const char *fmt, va_list ap)
{
    if (sev == SGL_SEV_ERROR && ++d->n_errors > d->max_errors)
        return NULL;
    if (sev == SGL_SEV_WARNING)
        d->n_warnings++;
    if (d->n == d->cap) {
        uint32_t cap = d->cap ? d->cap * 2 : 16;
        SglDiag *items = realloc(d->items, cap * sizeof *items);
        if (!items) {
            d->alloc_failed = true;
            return NULL;
        }
        d->items = items;
        d->cap = cap;
    }
    char *msg = vformat(fmt, ap);
    if (!msg) {
        d->alloc_failed = true;
        return NULL;
    }
    SglDiag *g = &d->items[d->n++];
    memset(g, 0, sizeof *g);
    g->sev = sev;
    g->loc = loc;
    g->msg = msg;
    return g;
}

SglDiag *sgl_diag_add(SglDiags *d, SglSeverity sev, SglLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    SglDiag *g = vadd(d, sev, loc, fmt, ap);
    va_end(ap);
    return g;
}

SglDiag *sgl_diag_error(SglDiags *d, SglLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    SglDiag *g = vadd(d, SGL_SEV_ERROR, loc, fmt, ap);
    va_end(ap);
    return g;
}

void sgl_diag_note(SglDiags *ds, SglDiag *d, SglLoc loc, const char *fmt, ...)
{
    if (!d)
        return;
    SglNote *notes = realloc(d->notes, (d->n_notes + 1) * sizeof *notes);
    if (!notes) {
        ds->alloc_failed = true;
        return;
    }
    d->notes = notes;
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    if (!msg) {
        ds->alloc_failed = true;
        return;
    }
    notes[d->n_notes].loc = loc;
    notes[d->n_notes].msg = msg;
    d->n_notes++;
}

static const char *sev_name(SglSeverity s)
{
    switch (s) {
    case SGL_SEV_ERROR: return "error";
    case SGL_SEV_WARNING: return "warning";
    case SGL_SEV_NOTE: return "note";
    }
    return "error";
}

/* Prints the line holding loc, then a caret under its first character and '~'
 * under the rest of the span (up to the end of that line). */
static void render_snippet(SglLoc loc, FILE *out)
{
    const SglSource *s = loc.src;
    uint32_t line, col, loff, llen;
    sgl_source_line_col(s, loc.off, &line, &col);
    sgl_source_line(s, line, &loff, &llen);
    const unsigned char *t = (const unsigned char *)s->text + loff;
    /* character index of the span start/end within the line */
    uint32_t start = col - 1, first = 0, pos = 0;
    uint32_t end_off = loc.off + (loc.len ? loc.len : 1);
    if (start > WINDOW / 2)
        first = start - WINDOW / 2;
    int width = snprintf(NULL, 0, "%u", line);
    if (width < 5)
        width = 5;
    fprintf(out, "%*u | %s", width, line, first ? "..." : "");
    char caret[WINDOW * 4 + 16];
    size_t nc = 0;
    for (uint32_t i = 0; i < llen && pos < first + WINDOW;) {
        uint32_t cp;
        int k = sgl_utf8_decode(t + i, llen - i, &cp);
        bool bad = k == 0 || (cp < 0x20 && cp != '\t') || (cp >= 0x7F && cp <= 0x9F);
        uint32_t n = k ? (uint32_t)k : 1;
        if (pos >= first) {
            if (bad)
                fputc('?', out);
            else
                fwrite(t + i, 1, n, out);
            char c = ' ';
            if (pos == start)
                c = '^';
            else if (pos > start && loff + i < end_off)
                c = '~';
            else if (!bad && cp == '\t')
                c = '\t';
            if (pos <= start || c == '~')
                caret[nc++] = c;
        }
        i += n;
        pos++;
    }
    if (start >= pos && start < first + WINDOW) { /* caret at end of line */
        while (pos < start && nc < sizeof caret - 2) {
            caret[nc++] = ' ';
            pos++;
        }
        caret[nc++] = '^';
    }
    caret[nc] = '\0';
    if (pos >= first + WINDOW && llen)
        fputs("...", out);
    fprintf(out, "\n%*s | %s%s\n", width, "", first ? "   " : "", caret);
}

static void render_head(SglSeverity sev, SglLoc loc, const char *msg, FILE *out)
{
    if (loc.src) {
        uint32_t line, col;
        sgl_source_line_col(loc.src, loc.off, &line, &col);
        fprintf(out, "%s:%u:%u: %s: %s\n", loc.src->name, line, col, sev_name(sev), msg);
        render_snippet(loc, out);
    } else if (sev == SGL_SEV_NOTE) {
        fprintf(out, "note: %s\n", msg);
    } else {
        fprintf(out, "sglc: %s: %s\n", sev_name(sev), msg);
    }
}

void sgl_diag_render(const SglDiag *d, FILE *out)
{
    render_head(d->sev, d->loc, d->msg, out);
    for (uint32_t i = 0; i < d->n_notes; i++)
        render_head(SGL_SEV_NOTE, d->notes[i].loc, d->notes[i].msg, out);
}

void sgl_diags_render(const SglDiags *d, FILE *out)
{
    for (uint32_t i = 0; i < d->n; i++)
        sgl_diag_render(&d->items[i], out);
    if (d->n_errors > d->max_errors)
        fprintf(out, "sglc: error: too many errors (%u), stopped after %u\n", d->n_errors,
                d->max_errors);
    if (d->alloc_failed)
        fprintf(out, "sglc: error: out of memory while recording diagnostics\n");
}
