/* ffi.h -- extern C functions called through libffi (dlopen + dlsym).
 *
 * sgl_ffi_load opens every extern's library and resolves its symbol once,
 * before the program runs, and prepares one ffi_cif per extern. Types map as
 * docs/language.md says: int -> int64_t, float -> double, bool -> _Bool,
 * str -> const char * (borrowed for the call; a returned str is copied).
 * Libraries stay open until sgl_ffi_free. Calls are thread-safe as far as
 * the C functions themselves are.
 * Error convention: an extern returning str reports failure by returning
 * NULL, optionally with errno set (errno is cleared before each call); that
 * is a runtime error at the call ("extern 'f' failed: <strerror> ..."). Externs
 * returning int/float/bool/nothing have no error channel.
 */
#ifndef SGL_FFI_H
#define SGL_FFI_H

#include <stdbool.h>
#include <stddef.h>

#include "backend/value.h"
#include "ir/ir.h"

typedef struct SglFfi SglFfi;

/* false with msg "file:line:col: error: cannot open library 'x': ..." or
 * "... symbol 'f' not found in 'x'"; *out NULL then. */
bool sgl_ffi_load(const IrProgram *p, SglFfi **out, char *msg, size_t cap);
void sgl_ffi_free(SglFfi *f);
/* Calls extern i with args (borrowed, in parameter order). *out: a new
 * value (VOID when the extern returns nothing). false + msg on failure
 * (a NULL str returned: the error convention above). */
bool sgl_ffi_call(SglFfi *f, uint32_t i, Value *const *args, Value **out, char *msg, size_t cap);

#endif
