/* textfmt.h -- the one text form of a float, shared by every layer.
 *
 * Compile-time constant folding (frontend/sema) and run-time values
 * (backend/value) must print a float identically, or `const S = "{x}"` and
 * `"{x}"` would differ. The form is Python's repr: the shortest digits that
 * round-trip, plain decimal for exponents in [-4, 16), scientific otherwise,
 * ".0" on integral values, and "nan" / "inf" / "-inf".
 */
#ifndef SGL_TEXTFMT_H
#define SGL_TEXTFMT_H

#include <stddef.h>

/* Writes f's text into buf (NUL-terminated, truncated to cap). 40 bytes
 * always suffice. */
void sgl_format_float(double f, char *buf, size_t cap);

#endif
