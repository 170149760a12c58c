/* types.h -- resolved .sgl types (what sema writes into AstNode.type).
 *
 * A type is a struct AstType in the compilation's arena. The primitive types
 * and the poison type exist once per compilation (SglTypes); list types are
 * hash-consed (each type remembers its list type), so two list types are
 * equal exactly when their pointers are;
 * record types are nominal (one AstType per `type R = {...}` declaration).
 * TY_ERROR is the poison type: an expression whose check already produced a
 * diagnostic has it, and every rule accepts it silently, so one mistake gives
 * one message. TY_VOID is the "result" of a call to a function without a
 * return type; it is never the type of a variable.
 * ORDER TY_KIND: type_kind_name() in types.c follows this enum.
 */
#ifndef SGL_TYPES_H
#define SGL_TYPES_H

#include <stdbool.h>
#include <stddef.h>

#include "frontend/ast.h"

typedef enum { TY_ERROR, TY_VOID, TY_STR, TY_INT, TY_FLOAT, TY_BOOL, TY_LIST, TY_RECORD,
               TY_KIND_COUNT_ } TyKind;

typedef struct AstType AstType;

typedef struct {
    AstStr name;              /* interned */
    SglLoc loc;               /* the field's declaration (no src for built-ins) */
    AstType *type;
} TyField;

struct AstType {
    TyKind kind;
    AstType *elem;            /* TY_LIST: element type */
    AstStr name;              /* TY_RECORD: declared name */
    SglLoc loc;               /* TY_RECORD: the declaration's name */
    TyField *fields;          /* TY_RECORD: in declaration order */
    uint32_t n_fields;
    uint32_t depth;           /* 0 for scalars; 1 + deepest component otherwise */
    AstType *list_of;         /* list[this], once made (hash-consing, types.c) */
};

/* One compilation's type universe; caller-provided storage, borrows arena. */
typedef struct {
    SglArena *arena;
    AstType *t_error, *t_void, *t_str, *t_int, *t_float, *t_bool;
    AstType *meta;            /* the record returned by meta() */
} SglTypes;

/* false on allocation failure (then nothing else may be used). */
bool types_init(SglTypes *ts, SglArena *arena);
/* list[elem]; the same pointer for the same elem. NULL on allocation failure. */
AstType *types_list(SglTypes *ts, AstType *elem);
/* A new record type with room for n_fields (filled by the caller). */
AstType *types_record(SglTypes *ts, AstStr name, SglLoc loc, uint32_t n_fields);

const char *type_kind_name(TyKind k);
/* "list[City]"; writes at most cap bytes (NUL included), returns buf. */
const char *type_name(const AstType *t, char *buf, size_t cap);
/* Field by interned name, or NULL. */
const TyField *type_field(const AstType *record, AstStr name);

/* True when a value of type `from` can be used where `to` is expected: equal
 * types, int -> float, and anything involving TY_ERROR. */
bool type_assignable(const AstType *to, const AstType *from);
bool type_is_error(const AstType *t);      /* NULL counts as error */
bool type_is_numeric(const AstType *t);    /* int or float */
/* True when t contains a record or list at any depth (not a scalar). */
bool type_is_scalar(const AstType *t);

#endif
