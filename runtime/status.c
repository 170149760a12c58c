/* status.c -- names of status codes and the SglErr formatter. */
#include "runtime/status.h"

#include <stdarg.h>
#include <stdio.h>

const char *sgl_status_str(SglStatus s)
{
    switch (s) {
    case SGL_OK: return "ok";
    case SGL_E_INVAL: return "invalid argument";
    case SGL_E_NOMEM: return "out of memory";
    case SGL_E_IO: return "i/o error";
    case SGL_E_FORMAT: return "malformed input";
    case SGL_E_UNSUPPORTED: return "unsupported";
    case SGL_E_NOSPACE: return "no KV space";
    case SGL_E_AGAIN: return "try again";
    case SGL_E_FULL: return "queue full";
    case SGL_E_NOTFOUND: return "not found";
    case SGL_E_CLOSED: return "closed";
    case SGL_E_DEVICE: return "device error";
    case SGL_STATUS_MIN_: break;
    }
    return "unknown status";
}

SglStatus sgl_err(SglErr *err, SglStatus st, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return st;
}
