/* sema_int.h -- state shared by the checker's files (sema.c, sema_expr.c,
 * sema_gen.c). Not for use outside frontend/.
 *
 * SemaCtx is the whole checker state (no file-level statics). Name lookup:
 * each module has a global NameMap (name -> SemaSym*); locals live on a
 * scope stack with a NameMap from name to the innermost binding, so lookups
 * are O(1) however many locals a function has. Every walker recurses at most
 * once or twice per tree level, and the parser bounds tree height
 * (SGL_MAX_TREE_DEPTH), so recursion depth is bounded.
 */
#ifndef SGL_SEMA_INT_H
#define SGL_SEMA_INT_H

#include "frontend/sema.h"

/* Open-addressing map from a name (by content) to a pointer. A key whose
 * value is NULL means "no binding" (a popped local). */
typedef struct {
    AstStr *keys;
    void **vals;
    uint32_t cap, n;          /* cap is 0 or a power of two */
} NameMap;

/* One local binding on the scope stack. */
typedef struct {
    SemaSym *sym;
    void *shadowed;           /* the binding this one hides (NULL: none) */
    uint32_t block;           /* block id it was declared in */
} ScopeEntry;

typedef struct SemaCtx {
    SglArena *arena;
    SglDiags *diags;
    SglTypes *ts;
    const SemaOptions *opt;
    SemaResult *res;
    bool oom;
    /* current module */
    SemaModule *mod;
    NameMap *globals;         /* of the current module */
    bool lenient;             /* an import failed: unknown names are not reported */
    /* current function */
    SemaSym *fn;              /* NULL in const initializers */
    bool in_const;            /* checking a const initializer */
    NameMap locals;
    ScopeEntry *scope;        /* stack */
    uint32_t n_scope, cap_scope;
    uint32_t block_id, next_block_id, param_block;
    uint32_t loop_depth, fork_depth, loops_outside_fork;
    const AstNode *role;      /* enclosing role block, if any */
    uint32_t n_modules_loaded;
    SemaModule *root;
    NameMap modmap;           /* canonical path -> ModState* (sema.c) */
    SemaModule *stack[SEMA_MAX_IMPORT_DEPTH + 1];  /* modules being loaded */
    SglLoc stack_at[SEMA_MAX_IMPORT_DEPTH + 1];    /* the import that loaded each */
    uint32_t n_stack;
    uint32_t fold_quiet;      /* > 0: sema_fold reports nothing */
} SemaCtx;

/* "did you mean" search: the closest candidate within a small edit distance. */
typedef struct {
    AstStr name;
    const char *best;
    uint32_t best_len, dist, max;
} Suggest;
void suggest_init(Suggest *s, AstStr name);
void suggest_try(Suggest *s, const char *cand, uint32_t len);
/* Adds "did you mean `x`?" to d when a candidate was close enough. */
void suggest_note(SemaCtx *c, SglDiag *d, const Suggest *s, SglLoc at);

/* ---- sema.c ---- */
void *sema_alloc(SemaCtx *c, size_t n);              /* zeroed; reports OOM once */
void *nmap_get(const NameMap *m, AstStr k);
bool nmap_put(SemaCtx *c, NameMap *m, AstStr k, void *v);
bool str_eq(AstStr a, AstStr b);
bool str_eq_c(AstStr a, const char *s);
SemaSym *sema_lookup(SemaCtx *c, AstStr name);       /* locals, then globals */
/* Declares a local in the current block; reports redefinition. NULL on error. */
SemaSym *sema_declare_local(SemaCtx *c, AstStr name, SglLoc loc, AstNode *decl, AstType *t,
                            SemaLocalKind kind);
void sema_check_block(SemaCtx *c, AstNode *block, bool new_scope);
/* Resolves a type expression (AST_TYPE_*); TY_ERROR after a diagnostic. */
AstType *sema_resolve_type(SemaCtx *c, AstNode *t);
const char *tname(const AstType *t, char *buf);       /* buf of TNAME_CAP bytes */
#define TNAME_CAP 128

/* ---- sema_expr.c ---- */
/* Checks an expression; `expected` (may be NULL) types [] and record literals,
 * parse_json, and the elements of list literals. Sets and returns e->type. */
AstType *sema_expr(SemaCtx *c, AstNode *e, AstType *expected);
/* Checks e and reports when its type is not assignable to `want`. */
AstType *sema_expect(SemaCtx *c, AstNode *e, AstType *want, const char *what);
/* Folds an already checked expression; NULL when not a compile-time constant
 * (or after a diagnostic such as integer overflow). */
const SemaValue *sema_fold(SemaCtx *c, const AstNode *e);
/* v with int widened to float wherever type t says float (lists, records too). */
const SemaValue *sema_coerce(SemaCtx *c, const SemaValue *v, const AstType *t);
/* sema_fold without diagnostics (for probes that may run more than once). */
const SemaValue *quiet_fold(SemaCtx *c, const AstNode *e);
/* Text form of a value as interpolation gives it; false on OOM / size limit. */
bool sema_value_text(SemaCtx *c, const SemaValue *v, AstStr *out, SglLoc at);
/* Index of the built-in function `name` (len, strip, ...), or -1. */
int sema_builtin_find(AstStr name);
/* Checks a call node (user fn, extern or built-in). */
AstType *sema_call(SemaCtx *c, AstNode *e, AstType *expected);

/* ---- sema_gen.c ---- */
void sema_gen(SemaCtx *c, AstNode *s);                /* AST_GEN */
void sema_select(SemaCtx *c, AstNode *s);             /* AST_SELECT */
/* Validates a JSON schema text; diagnostics inside `lit` where possible. */
void sema_json_schema(SemaCtx *c, const SemaValue *v, const AstNode *use);
/* Maps a byte offset in the decoded text of a string literal to its source
 * location (one character), or the whole literal when it cannot. */
SglLoc sema_literal_loc(const AstNode *lit, uint32_t off);

#endif
