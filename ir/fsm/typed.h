/* typed.h -- typed output (gen x: T) and choices -> regex.
 *
 * A type lowers to the JSON Schema it stands for and then through
 * jsonschema.h, so typed output and JSON schemas share one machinery:
 *   int -> integer, float -> number, bool -> boolean, str -> string (a JSON
 *   string literal, quotes included), list[T] -> array of T,
 *   record {name: T, ...} -> object with every field required, in order.
 * choices lower to an alternation of escaped literals, which the DFA turns
 * into a trie (shared prefixes merged by minimization). Parsing generated
 * text back into a typed value belongs to the executor (the text is JSON).
 */
#ifndef SGL_IR_FSM_TYPED_H
#define SGL_IR_FSM_TYPED_H

#include <jansson.h>

#include "ir/fsm/jsonschema.h"

typedef enum { TYPED_INT, TYPED_FLOAT, TYPED_BOOL, TYPED_STR, TYPED_LIST, TYPED_RECORD } TypedKind;

typedef struct TypedType TypedType;
struct TypedType {
    TypedKind kind;
    const TypedType *elem;             /* LIST: element type */
    int32_t n_fields;                  /* RECORD */
    const char *const *names;          /* RECORD: (n_fields) field names */
    const TypedType *const *fields;    /* RECORD: (n_fields) field types */
};

#define TYPED_MAX_DEPTH 32

/* The equivalent JSON Schema; *out (a new reference) owned by the caller.
 * SGL_E_INVAL: nesting deeper than TYPED_MAX_DEPTH, an empty or duplicate
 * field name, a NULL element type. */
SglStatus typed_to_schema(const TypedType *t, json_t **out, FsmErr *err);
/* typed_to_schema then jsonschema_to_regex; *regex owned by the caller. */
SglStatus typed_to_regex(const TypedType *t, const JsonSchemaOpts *opts, char **regex,
                         FsmErr *err);
/* Exactly one of the n (>= 1) non-empty choices, verbatim. */
SglStatus typed_choices_regex(const char *const *choices, int32_t n, char **regex, FsmErr *err);

#endif
