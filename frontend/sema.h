/* sema.h -- the semantic checker: names, types, gen/select/fork rules, imports.
 *
 * Pipeline place: parse -> sema_check -> lower. sema_check walks the root
 * module's AST_PROGRAM, loads and checks every imported module (parsed into
 * the same arena), appends every problem it finds to the diagnostics (never
 * stopping at the first) and annotates the trees for lowering:
 *   node->type  every expression, AST_TYPE_*, AST_LET/GEN/SELECT/CAPTURE (the
 *               declared name's type; list[T] for `gen x(n: k)`), AST_FN and
 *               AST_EXTERN (return type, void when none), AST_CONST,
 *               AST_PARAM, AST_FIELD_INIT, AST_FOR and named AST_FORK (the
 *               element variable's type).
 *   node->sym   a SemaSym* on AST_NAME, AST_CALL, AST_FN, AST_EXTERN,
 *               AST_CONST, AST_TYPEDEF, AST_PARAM, AST_LET, AST_GEN,
 *               AST_SELECT, AST_CAPTURE, AST_FOR and AST_FORK (the element
 *               variable; NULL for `fork N`), and a SemaValue* (or NULL when
 *               the value is not a compile-time constant) on AST_OPTION.
 *               Built-in calls keep sym NULL (sema_builtin_find names them).
 * Names a fork body declares at its top level are gathered: the branch
 * symbol's `gather` is the list[T] symbol bound after the fork.
 * An int expression used where a float is expected keeps type int; lowering
 * converts by comparing node->type with the slot's type.
 * Ownership: everything sema allocates lives in the caller's arena; imported
 * sources are appended to the caller's source array (SemaOptions).
 */
#ifndef SGL_SEMA_H
#define SGL_SEMA_H

#include "frontend/types.h"

#define SEMA_MAX_PARAMS 64         /* parameters of one fn or extern */
#define SEMA_MAX_FIELDS 256        /* fields of one record type */
#define SEMA_MAX_TYPE_DEPTH 32     /* nesting of list/record types */
#define SEMA_MAX_MODULES 256       /* files per compilation, root included */
#define SEMA_MAX_IMPORT_DEPTH 32   /* length of an import chain */
#define SEMA_MAX_FORK_DEPTH 8      /* forks nested inside forks */
#define SEMA_MAX_CONST_LIST 65536  /* elements of a folded constant list */
#define SEMA_MAX_OPTIONS 64        /* options of one gen or select */

typedef struct SemaModule SemaModule;

/* A folded compile-time constant (consts, gen/select constraint options). */
typedef enum { SEMA_VAL_STR, SEMA_VAL_INT, SEMA_VAL_FLOAT, SEMA_VAL_BOOL, SEMA_VAL_LIST,
               SEMA_VAL_RECORD } SemaValKind;
typedef struct SemaValue {
    SemaValKind kind;
    AstType *type;
    int64_t i;
    double f;
    bool b;
    AstStr s;                        /* SEMA_VAL_STR (not interned) */
    struct SemaValue **items;        /* SEMA_VAL_LIST elements; SEMA_VAL_RECORD fields in type order */
    uint32_t n_items;
    const AstNode *literal;          /* SEMA_VAL_STR: the AST_STRING it is the text of, if one */
} SemaValue;

typedef enum { SYM_FN, SYM_EXTERN, SYM_CONST, SYM_TYPE, SYM_BUILTIN, SYM_LOCAL } SemaSymKind;
/* How a local got its name (for meta() and gather). */
typedef enum { LOCAL_PARAM, LOCAL_LET, LOCAL_GEN, LOCAL_SELECT, LOCAL_CAPTURE, LOCAL_FOR,
               LOCAL_FORK_VAR, LOCAL_GATHER } SemaLocalKind;

typedef struct SemaSym {
    SemaSymKind kind;
    SemaLocalKind local;             /* SYM_LOCAL only */
    AstStr name;
    SglLoc loc;                      /* the defining name (no src for built-ins) */
    AstNode *decl;                   /* declaring node; NULL for built-ins */
    AstType *type;                   /* value type; fn/extern: return type (void if none);
                                        type: the named type */
    AstType **params;                /* fn/extern: parameter types */
    uint32_t n_params;
    uint32_t n_locals;               /* fn: local slots used by its body (params first) */
    uint32_t slot;                   /* local: slot index within its fn */
    int builtin;                     /* SYM_BUILTIN: index into the built-in table */
    const SemaValue *value;          /* const: folded value, NULL if not foldable */
    struct SemaSym *gather;          /* local declared at a fork body's top level:
                                        the list-typed local bound after the fork */
    SemaModule *module;              /* defining module (NULL for built-ins) */
    int state;                       /* sema.c bookkeeping */
} SemaSym;

struct SemaModule {
    const char *path;                /* as opened (the root: the name it was given) */
    const SglSource *src;
    AstNode *program;                /* NULL when it did not parse */
    bool loading, done, failed;      /* failed: had parse errors */
};

/* Where imported sources go: a malloc'd array grown with realloc, owned by
 * the caller (SglCompile's `sources`), so they outlive the diagnostics. When
 * `sources` is NULL, imports are reported as unavailable. */
typedef struct {
    const char *stdlib_dir;          /* NULL: env SGL_STDLIB, SGL_SOURCE_ROOT/stdlib/std,
                                        else <dir of the executable>/../stdlib/std */
    SglSource ***sources;
    size_t *n_sources, *cap_sources;
} SemaOptions;

/* What lowering needs after a clean check. */
typedef struct {
    SglTypes types;
    SemaModule **modules;            /* imports first, the root module last */
    uint32_t n_modules;
    SemaSym *main;                   /* `fn main` of the root module, or NULL */
} SemaResult;

/* Checks `program` (the parsed root file `src`) and everything it imports.
 * Returns true when no error was found (warnings allowed). On any result the
 * tree is annotated as far as checking got; diagnostics are in diags. The
 * result (types, symbols, values) lives in arena; `res` is caller storage.
 * Never aborts; allocation failure is reported as an "out of memory" error. */
bool sema_check(AstNode *program, const SglSource *src, SglArena *arena, SglDiags *diags,
                const SemaOptions *opt, SemaResult *res);

#endif
