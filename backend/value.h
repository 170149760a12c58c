/* value.h -- runtime values of .sgl programs: str, int, float, bool, list, record.
 *
 * A Value is immutable once built and reference-counted (atomic counts, so
 * branches running on different threads can share one). val_ref/val_unref
 * are the only lifecycle: whoever holds a pointer holds one reference and
 * drops it with val_unref. Constructors return a new reference (NULL only on
 * allocation failure). "Mutation" (xs[i] = v, r.f = v) builds a new value, so
 * the language's value semantics hold without copying on every assignment.
 * Record values point to their ValType (field names); types are owned by the
 * program and must outlive every value built from them.
 * Text rendering (str(), interpolation) and JSON conversion (--json, --arg,
 * --batch, parse_json, to_json) live here too.
 */
#ifndef SGL_VALUE_H
#define SGL_VALUE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { VAL_VOID, VAL_STR, VAL_INT, VAL_FLOAT, VAL_BOOL, VAL_LIST, VAL_RECORD } ValKind;

/* A static type, as the checker resolved it (built by the executor from the
 * IR's types; owned by whoever built it). */
typedef struct ValType ValType;
struct ValType {
    ValKind kind;
    const ValType *elem;             /* LIST */
    const char *name;                /* RECORD: declared name (may be NULL) */
    int32_t n_fields;                /* RECORD */
    const char *const *names;        /* RECORD: (n_fields) */
    const ValType *const *fields;    /* RECORD: (n_fields) */
};

typedef struct Value Value;
struct Value {
    int refs;                        /* atomic */
    ValKind kind;
    union {
        struct { char *s; size_t len; } str;      /* owned, NUL-terminated */
        int64_t i;
        double f;
        bool b;
        struct { Value **items; uint32_t n; } list;                  /* owned refs */
        struct { const ValType *type; Value **fields; } rec;         /* (type->n_fields) refs */
    };
};

Value *val_ref(Value *v);            /* NULL-safe; returns v */
void val_unref(Value *v);            /* NULL-safe */

Value *val_void(void);
Value *val_str(const char *s, size_t len);     /* copies */
Value *val_str_take(char *s, size_t len);      /* takes malloc'd s (NUL at s[len]); frees it on failure */
Value *val_int(int64_t i);
Value *val_float(double f);
Value *val_bool(bool b);
/* A list of n items; items[] are references the list takes over (even on
 * failure, when they are released). items may be NULL when n == 0. */
Value *val_list_take(Value **items, uint32_t n);
/* A record of type t; fields[] (t->n_fields references) are taken over. */
Value *val_record_take(const ValType *t, Value **fields);

/* Structural equality and ordering (<, ==, > as -1, 0, 1) for int/float/str. */
bool val_equal(const Value *a, const Value *b);
int val_compare(const Value *a, const Value *b);

/* str(v): text as interpolation renders it (ints in decimal, floats in
 * shortest round-trip form with a ".0" when integral, bools, lists and
 * records as compact JSON). malloc'd, owned by the caller; NULL on OOM. */
char *val_to_text(const Value *v, size_t *len);
/* to_json(v): compact JSON text (strings quoted, floats as in str()). */
char *val_to_json_text(const Value *v, size_t *len);

/* JSON value (new reference), records as objects in field order. */
json_t *val_to_json(const Value *v);
/* JSON -> a value of type t. false with msg (e.g. "at $.landmarks[2]: expected
 * a string") when it does not fit; *out is then NULL. */
bool val_from_json(const json_t *j, const ValType *t, Value **out, char *msg, size_t cap);

/* parse_int/parse_float semantics: surrounding ASCII whitespace stripped,
 * the rest must be a whole number (int64) / a float. false with msg. */
bool val_parse_int(const char *s, size_t len, int64_t *out, char *msg, size_t cap);
bool val_parse_float(const char *s, size_t len, double *out, char *msg, size_t cap);
/* A command-line argument (--arg NAME=VALUE): str as is; int, float, bool
 * parsed; lists and records from JSON text. */
bool val_from_arg(const char *text, size_t len, const ValType *t, Value **out, char *msg,
                  size_t cap);

#endif
