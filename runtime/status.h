/* status.h -- status codes and error messages shared by the runtime.
 *
 * Every runtime function that can fail returns an SglStatus. A recoverable
 * condition (no KV space, queue full, no event yet) has its own code, distinct
 * from invalid input and from fatal device errors. Functions that can fail for
 * reasons a person must read (a bad model file, a bad argument) also take an
 * SglErr* and write one line into it naming the file or field and the problem.
 */
#ifndef SGL_STATUS_H
#define SGL_STATUS_H

#include <stddef.h>

typedef enum {
    SGL_OK            = 0,
    SGL_E_INVAL       = -1,  /* invalid argument or malformed input */
    SGL_E_NOMEM       = -2,  /* host allocation failed */
    SGL_E_IO          = -3,  /* a file could not be opened or read */
    SGL_E_FORMAT      = -4,  /* a file was read but its content is malformed */
    SGL_E_UNSUPPORTED = -5,  /* well-formed but not supported (dtype, arch...) */
    SGL_E_NOSPACE     = -6,  /* KV pool exhausted (recoverable: evict or retract) */
    SGL_E_AGAIN       = -7,  /* nothing available yet; try again */
    SGL_E_FULL        = -8,  /* a bounded queue is full */
    SGL_E_NOTFOUND    = -9,  /* no such request, key or file */
    SGL_E_CLOSED      = -10, /* the engine is shutting down or closed */
    SGL_E_DEVICE      = -11, /* fatal device (GPU) error */
    SGL_STATUS_MIN_   = -12
} SglStatus;

/* A short constant name for a status ("no space"). Never NULL. */
const char *sgl_status_str(SglStatus s);

/* One human-readable error line. Filled by the function that failed; empty on
 * success. Callers own the struct (usually on the stack). */
typedef struct {
    char msg[512];
} SglErr;

/* Formats into err (if non-NULL) and returns st, so callers can write
 * `return sgl_err(err, SGL_E_FORMAT, "%s: bad header", path);` */
SglStatus sgl_err(SglErr *err, SglStatus st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
