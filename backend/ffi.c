/* ffi.c -- the libffi bridge for `extern fn` (see ffi.h). */
#include "backend/ffi.h"

#include <dlfcn.h>
#include <errno.h>
#include <ffi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FFI_MAX_ARGS 32

typedef struct {
    void *lib;
    void (*fn)(void);
    ffi_cif cif;
    ffi_type *atypes[FFI_MAX_ARGS];
    const IrExtern *ex;
} FfiFn;

struct SglFfi {
    FfiFn *fns;
    uint32_t n;
};

static ffi_type *ffi_of(const IrType *t)
{
    switch (t->kind) {
    case IR_TY_INT: return &ffi_type_sint64;
    case IR_TY_FLOAT: return &ffi_type_double;
    case IR_TY_BOOL: return &ffi_type_uint8;
    case IR_TY_STR: return &ffi_type_pointer;
    case IR_TY_VOID: return &ffi_type_void;
    default: return NULL;
    }
}

void sgl_ffi_free(SglFfi *f)
{
    if (!f)
        return;
    for (uint32_t i = 0; i < f->n; i++)
        if (f->fns[i].lib)
            dlclose(f->fns[i].lib);
    free(f->fns);
    free(f);
}

bool sgl_ffi_load(const IrProgram *p, SglFfi **out, char *msg, size_t cap)
{
    *out = NULL;
    SglFfi *f = calloc(1, sizeof *f);
    if (!f || !(f->fns = calloc(p->n_externs + 1, sizeof *f->fns))) {
        free(f);
        snprintf(msg, cap, "out of memory");
        return false;
    }
    for (uint32_t i = 0; i < p->n_externs; i++, f->n++) {
        const IrExtern *e = &p->externs[i];
        FfiFn *fn = &f->fns[i];
        fn->ex = e;
        const char *where = e->loc.file ? e->loc.file : "<program>";
        if (e->n_params > FFI_MAX_ARGS) {
            snprintf(msg, cap, "%s:%u:%u: error: extern '%s' has more than %d parameters", where,
                     e->loc.line, e->loc.col, e->name, FFI_MAX_ARGS);
            goto fail;
        }
        fn->lib = dlopen(e->lib, RTLD_NOW | RTLD_LOCAL);
        if (!fn->lib) {
            snprintf(msg, cap, "%s:%u:%u: error: cannot open library '%s' for extern '%s': %s", where,
                     e->loc.line, e->loc.col, e->lib, e->name, dlerror());
            goto fail;
        }
        dlerror();
        void *sym = dlsym(fn->lib, e->name);
        if (!sym) {
            snprintf(msg, cap, "%s:%u:%u: error: symbol '%s' not found in '%s'", where, e->loc.line,
                     e->loc.col, e->name, e->lib);
            goto fail;
        }
        memcpy(&fn->fn, &sym, sizeof sym);
        for (uint32_t k = 0; k < e->n_params; k++)
            fn->atypes[k] = ffi_of(e->params[k]);
        ffi_type *rt = e->ret ? ffi_of(e->ret) : &ffi_type_void;
        if (ffi_prep_cif(&fn->cif, FFI_DEFAULT_ABI, e->n_params, rt, fn->atypes) != FFI_OK) {
            snprintf(msg, cap, "%s:%u:%u: error: cannot prepare the call of extern '%s'", where,
                     e->loc.line, e->loc.col, e->name);
            goto fail;
        }
    }
    *out = f;
    return true;
fail:
    f->n++;
    sgl_ffi_free(f);
    return false;
}

bool sgl_ffi_call(SglFfi *f, uint32_t i, Value *const *args, Value **out, char *msg, size_t cap)
{
    FfiFn *fn = &f->fns[i];
    const IrExtern *e = fn->ex;
    union { int64_t i; double d; uint8_t b; const char *s; } vals[FFI_MAX_ARGS];
    void *ptrs[FFI_MAX_ARGS];
    for (uint32_t k = 0; k < e->n_params; k++) {
        const Value *v = args[k];
        switch (v->kind) {
        case VAL_INT: vals[k].i = v->i; break;
        case VAL_FLOAT: vals[k].d = v->f; break;
        case VAL_BOOL: vals[k].b = v->b; break;
        case VAL_STR: vals[k].s = v->str.s; break;
        default: vals[k].i = 0; break;
        }
        ptrs[k] = &vals[k];
    }
    union { ffi_arg a; int64_t i; double d; const char *s; uint8_t b; } ret;
    memset(&ret, 0, sizeof ret);
    errno = 0;
    ffi_call(&fn->cif, fn->fn, &ret, ptrs);
    int err = errno;
    IrTyKind rk = e->ret ? e->ret->kind : IR_TY_VOID;
    switch (rk) {
    case IR_TY_INT: *out = val_int(ret.i); break;
    case IR_TY_FLOAT: *out = val_float(ret.d); break;
    case IR_TY_BOOL: *out = val_bool((uint8_t)ret.a != 0); break;
    case IR_TY_STR:
        if (!ret.s) {   /* the error convention (ffi.h) */
            if (err)
                snprintf(msg, cap, "extern '%s' failed: %s (it returned NULL, errno %d)", e->name,
                         strerror(err), err);
            else
                snprintf(msg, cap, "extern '%s' failed (it returned NULL)", e->name);
            return false;
        }
        *out = val_str(ret.s, strlen(ret.s));
        break;
    default: *out = val_void(); break;
    }
    if (!*out) {
        snprintf(msg, cap, "out of memory");
        return false;
    }
    return true;
}
