/* diag.h -- compiler diagnostics: collected, then rendered.
 *
 * Every stage appends SglDiag records (severity, location, message, notes) to
 * one SglDiags list and keeps going; nothing prints or aborts while compiling.
 * Rendering follows chibicc/clang:
 *     file:line:col: error: message
 *        12 |     fork x in xs {
 *           |     ^~~~
 *     file:line:col: note: to close `fork` opened at line 12
 * After max_errors errors further ones are counted but not stored, and one
 * "too many errors" line is rendered. Storage is malloc'd (not arena) so that
 * running out of arena memory can still be reported; _deinit frees it.
 */
#ifndef SGL_DIAG_H
#define SGL_DIAG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "frontend/source.h"

#define SGL_MAX_ERRORS 100

typedef enum { SGL_SEV_ERROR, SGL_SEV_WARNING, SGL_SEV_NOTE } SglSeverity;

typedef struct {
    SglLoc loc;               /* loc.src may be NULL */
    char *msg;                /* owned */
} SglNote;

typedef struct {
    SglSeverity sev;
    SglLoc loc;
    char *msg;                /* owned */
    SglNote *notes;           /* owned array */
    uint32_t n_notes;
} SglDiag;

typedef struct {
    SglDiag *items;           /* owned */
    uint32_t n, cap;
    uint32_t n_errors;        /* all errors, stored or not */
    uint32_t n_warnings;
    uint32_t max_errors;      /* errors stored before capping */
    bool alloc_failed;        /* a diagnostic could not be stored */
} SglDiags;

void sgl_diags_init(SglDiags *d, uint32_t max_errors);
void sgl_diags_deinit(SglDiags *d);

/* Appends a diagnostic; returns it (for notes) or NULL when not stored. */
SglDiag *sgl_diag_add(SglDiags *d, SglSeverity sev, SglLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
SglDiag *sgl_diag_error(SglDiags *d, SglLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Adds a note to d (ignored when d is NULL). */
void sgl_diag_note(SglDiags *ds, SglDiag *d, SglLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Renders every diagnostic in order, as above. */
void sgl_diags_render(const SglDiags *d, FILE *out);
/* Renders one diagnostic (used by tests). */
void sgl_diag_render(const SglDiag *d, FILE *out);

#endif
