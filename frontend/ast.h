/* ast.h -- the .sgl abstract syntax tree (the contract between parser and sema).
 *
 * The parser (parser.y) builds the tree with the ast_* constructors below, one
 * call per grammar action; the checker (sema.c) reads it and fills the two
 * annotation slots every node carries (`type`, `sym`); lower.c reads it again.
 * Ownership: every node, list and string lives in the compilation's SglArena
 * (see compile.h) and dies with it; nothing in the tree is freed on its own.
 * Invariants: every node has a loc inside its source; identifier strings
 * (AstStr of names) are interned, so equal names have equal `.s` pointers; tree
 * height is bounded by SGL_MAX_TREE_DEPTH (a deeper subtree is replaced by an
 * AST_ERROR node after a diagnostic), so recursive walkers cannot overflow.
 * AST_ERROR appears only in trees whose parse reported errors; sema never runs
 * on those. Lists (AstList) are arrays, never NULL in a clean tree.
 * ORDER AST_KIND: ast_kind_name() in ast.c follows this enum.
 */
#ifndef SGL_AST_H
#define SGL_AST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "frontend/arena.h"
#include "frontend/diag.h"
#include "frontend/source.h"

#define SGL_MAX_TREE_DEPTH 1000    /* height of any subtree */
#define SGL_MAX_AST_NODES 1000000u /* nodes per compilation */
#define SGL_MAX_IDENT_LEN 255      /* bytes */

typedef struct AstNode AstNode;
struct AstType;                    /* resolved type: defined by sema */

/* A byte string in the arena, NUL-terminated; `len` excludes the NUL. Never
 * contains a NUL byte (the lexer rejects NUL and \u{0}). */
typedef struct {
    const char *s;
    uint32_t len;
} AstStr;

/* A growable array of nodes (arena storage). */
typedef struct {
    AstNode **items;
    uint32_t n, cap;
} AstList;

typedef enum {
    AST_ERROR,        /* placeholder after a reported error */
    /* declarations */
    AST_PROGRAM,      /* prog.decls */
    AST_IMPORT,       /* import.path */
    AST_CONST,        /* decl: name, type?, value */
    AST_TYPEDEF,      /* decl: name, type (AST_TYPE_*) */
    AST_EXTERN,       /* fn: name, params, ret?, lib */
    AST_FN,           /* fn: name, params, ret?, body */
    AST_PARAM,        /* decl: name, type */
    /* type expressions (syntax; sema resolves them into struct AstType) */
    AST_TYPE_NAME,    /* tname.name: str, int, float, bool, or a declared type */
    AST_TYPE_LIST,    /* tlist.elem: list[elem] */
    AST_TYPE_RECORD,  /* trecord.fields: AST_FIELD_DECL (decl: name, type) */
    AST_FIELD_DECL,
    /* statements */
    AST_BLOCK,        /* block.stmts */
    AST_LET,          /* decl: name, type?, value */
    AST_ASSIGN,       /* assign: target, op, value */
    AST_IF,           /* if_: cond, then, els? (AST_BLOCK or AST_IF) */
    AST_FOR,          /* loop: name, iter, body */
    AST_WHILE,        /* loop: cond (in iter), body; name.s == NULL */
    AST_BREAK,
    AST_CONTINUE,
    AST_RETURN,       /* ret.value? */
    AST_EXPR_STMT,    /* expr_stmt.expr: appended when str */
    AST_GEN,          /* gen: name, type?, options (AST_OPTION) */
    AST_SELECT,       /* gen: name, options; type == NULL */
    AST_OPTION,       /* option: name, value */
    AST_FORK,         /* fork: name? (list form), iter (list or count), body, join */
    AST_CAPTURE,      /* capture: name, body */
    AST_ROLE,         /* role: role, body */
    /* expressions */
    AST_NAME,         /* name.name */
    AST_INT,          /* ival */
    AST_FLOAT,        /* fval */
    AST_BOOL,         /* bval */
    AST_STRING,       /* string.parts: AST_STR_TEXT or expressions; triple */
    AST_STR_TEXT,     /* text.text: decoded literal text */
    AST_LIST,         /* list.items */
    AST_RECORD,       /* record.fields: AST_FIELD_INIT */
    AST_FIELD_INIT,   /* option: name, value */
    AST_UNARY,        /* unary: op, operand */
    AST_BINARY,       /* binary: op, lhs, rhs */
    AST_RANGE,        /* binary: lhs..rhs, op == AST_OP_RANGE */
    AST_CALL,         /* call: name, args */
    AST_INDEX,        /* index: base, index */
    AST_FIELD,        /* field: base, name */
    AST_KIND_COUNT_
} AstKind;

typedef enum {  /* ORDER AST_OP: ast_op_name() */
    AST_OP_NONE, AST_OP_ADD, AST_OP_SUB, AST_OP_MUL, AST_OP_DIV, AST_OP_MOD,
    AST_OP_EQ, AST_OP_NE, AST_OP_LT, AST_OP_LE, AST_OP_GT, AST_OP_GE,
    AST_OP_AND, AST_OP_OR, AST_OP_NOT, AST_OP_NEG, AST_OP_RANGE, AST_OP_COUNT_
} AstOp;

typedef enum { AST_ROLE_SYSTEM, AST_ROLE_USER, AST_ROLE_ASSISTANT } AstRole;
typedef enum { AST_JOIN_GATHER, AST_JOIN_CONCAT } AstJoin;

struct AstNode {
    AstKind kind;
    uint32_t height;          /* 1 + max child height */
    SglLoc loc;               /* the whole construct */
    struct AstType *type;     /* filled by sema: the value's type (NULL before) */
    void *sym;                /* filled by sema: the symbol a name resolves to */
    union {
        struct { AstList *decls; } prog;
        struct { AstStr path; SglLoc path_loc; } import;
        struct { AstStr name; SglLoc name_loc; AstNode *type, *value; } decl;
        struct { AstStr name; SglLoc name_loc; AstList *params; AstNode *ret, *body;
                 AstStr lib; SglLoc lib_loc; } fn;
        struct { AstStr name; } tname;
        struct { AstNode *elem; } tlist;
        struct { AstList *fields; } trecord;
        struct { AstList *stmts; } block;
        struct { AstNode *target; AstOp op; AstNode *value; } assign;
        struct { AstNode *cond, *then, *els; } if_;
        struct { AstStr name; SglLoc name_loc; AstNode *iter, *body; } loop;
        struct { AstNode *value; } ret;
        struct { AstNode *expr; } expr_stmt;
        struct { AstStr name; SglLoc name_loc; AstNode *type; AstList *options; } gen;
        struct { AstStr name; SglLoc name_loc; AstNode *value; } option;
        struct { AstStr name; SglLoc name_loc; AstNode *iter, *body; AstJoin join;
                 SglLoc join_loc; } fork;
        struct { AstStr name; SglLoc name_loc; AstNode *body; } capture;
        struct { AstRole role; AstNode *body; } role;
        struct { AstStr name; } name;
        int64_t ival;
        double fval;
        bool bval;
        struct { AstList *parts; bool triple; } string;
        struct { AstStr text; } text;
        struct { AstList *items; } list;
        struct { AstList *fields; } record;
        struct { AstOp op; AstNode *operand; } unary;
        struct { AstOp op; AstNode *lhs, *rhs; } binary;
        struct { AstStr name; SglLoc name_loc; AstList *args; } call;
        struct { AstNode *base, *index; } index;
        struct { AstNode *base; AstStr name; SglLoc name_loc; } field;
    };
};

const char *ast_kind_name(AstKind k);    /* "fork"; never NULL */
const char *ast_op_name(AstOp op);       /* "+", "and", ".."; never NULL */
const char *ast_role_name(AstRole r);    /* "user"; never NULL */

/* The stable, indented dump used by `sglc check --emit=ast` and the golden
 * tests (ast_print.c). Locations print as line:col-line:col. */
void ast_print(FILE *f, const AstNode *program);

/* ---- construction (used by parser.y's one-line actions and by tests) ---- */

/* An identifier token: interned name plus its location. */
typedef struct {
    AstStr name;
    SglLoc loc;
} AstIdent;

/* Construction context. Caller-provided storage; borrows arena and diags.
 * After an allocation failure `oom` is set, one "out of memory" diagnostic is
 * recorded, and every constructor returns NULL (NULL children are accepted
 * everywhere, so actions need no checks). */
typedef struct {
    SglArena *arena;
    SglDiags *diags;
    uint32_t n_nodes;
    bool oom, depth_reported, nodes_reported;
    AstStr *intern;           /* open-addressing table in the arena */
    uint32_t intern_cap, intern_n;
} AstBuilder;

void ast_builder_init(AstBuilder *b, SglArena *arena, SglDiags *diags);
/* Interned copy of s[0..len) (equal names -> equal pointers); .s NULL on OOM. */
AstStr ast_intern(AstBuilder *b, const char *s, size_t len);
/* Plain (not interned) arena copy. */
AstStr ast_strdup(AstBuilder *b, const char *s, size_t len);

AstList *ast_list_new(AstBuilder *b);
AstList *ast_list_push(AstBuilder *b, AstList *l, AstNode *n); /* returns l */

AstNode *ast_error(AstBuilder *b, SglLoc loc);
AstNode *ast_program(AstBuilder *b, SglLoc loc, AstList *decls);
AstNode *ast_import(AstBuilder *b, SglLoc loc, AstNode *path_string);
AstNode *ast_const(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *type, AstNode *value);
AstNode *ast_typedef(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *type);
AstNode *ast_extern(AstBuilder *b, SglLoc loc, AstIdent name, AstList *params, AstNode *ret,
                    AstNode *lib_string);
AstNode *ast_fn(AstBuilder *b, SglLoc loc, AstIdent name, AstList *params, AstNode *ret,
                AstNode *body);
AstNode *ast_param(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *type);
AstNode *ast_type_name(AstBuilder *b, SglLoc loc, AstIdent name);
/* NAME[arg]: only list[T] exists; other names get a diagnostic. */
AstNode *ast_type_generic(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *arg);
AstNode *ast_type_record(AstBuilder *b, SglLoc loc, AstList *fields);
AstNode *ast_field_decl(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *type);

AstNode *ast_block(AstBuilder *b, SglLoc loc, AstList *stmts);
AstNode *ast_let(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *type, AstNode *value);
/* target must be a name, index or field expression (else a diagnostic). */
AstNode *ast_assign(AstBuilder *b, SglLoc loc, AstNode *target, AstOp op, AstNode *value);
AstNode *ast_if(AstBuilder *b, SglLoc loc, AstNode *cond, AstNode *then, AstNode *els);
AstNode *ast_for(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *iter, AstNode *body);
AstNode *ast_while(AstBuilder *b, SglLoc loc, AstNode *cond, AstNode *body);
AstNode *ast_jump(AstBuilder *b, SglLoc loc, AstKind kind); /* AST_BREAK/AST_CONTINUE */
AstNode *ast_return(AstBuilder *b, SglLoc loc, AstNode *value);
AstNode *ast_expr_stmt(AstBuilder *b, SglLoc loc, AstNode *expr);
AstNode *ast_gen(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *type, AstList *options);
AstNode *ast_select(AstBuilder *b, SglLoc loc, AstIdent name, AstList *options);
/* `select NAME from EXPR` == `select NAME(choices: EXPR)`. */
AstNode *ast_select_from(AstBuilder *b, SglLoc loc, AstIdent name, SglLoc from_loc,
                         AstNode *choices);
AstNode *ast_option(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *value);
/* name.name.s == NULL for the count form `fork N { }`. */
AstNode *ast_fork(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *iter, AstNode *body);
/* `join MODE` after a fork: gather or concat (else a diagnostic). */
AstNode *ast_fork_join(AstBuilder *b, SglLoc loc, AstNode *fork, AstIdent mode);
AstNode *ast_capture(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *body);
AstNode *ast_role(AstBuilder *b, SglLoc loc, AstRole role, AstNode *body);

AstNode *ast_name(AstBuilder *b, SglLoc loc, AstIdent name);
AstNode *ast_int(AstBuilder *b, SglLoc loc, int64_t v);
AstNode *ast_float(AstBuilder *b, SglLoc loc, double v);
AstNode *ast_bool(AstBuilder *b, SglLoc loc, bool v);
AstNode *ast_string(AstBuilder *b, SglLoc loc, AstList *parts, bool triple);
AstNode *ast_str_text(AstBuilder *b, SglLoc loc, AstStr text);
AstNode *ast_list(AstBuilder *b, SglLoc loc, AstList *items);
AstNode *ast_record(AstBuilder *b, SglLoc loc, AstList *fields);
AstNode *ast_field_init(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *value);
AstNode *ast_unary(AstBuilder *b, SglLoc loc, AstOp op, AstNode *operand);
AstNode *ast_binary(AstBuilder *b, SglLoc loc, AstOp op, AstNode *lhs, AstNode *rhs);
AstNode *ast_range(AstBuilder *b, SglLoc loc, AstNode *lo, AstNode *hi);
AstNode *ast_call(AstBuilder *b, SglLoc loc, AstIdent name, AstList *args);
AstNode *ast_index(AstBuilder *b, SglLoc loc, AstNode *base, AstNode *index);
AstNode *ast_field(AstBuilder *b, SglLoc loc, AstNode *base, AstIdent name);

/* AST_CONTRACT_READY */
#endif
