/* jsonschema.h -- JSON Schema -> regex (and -> DFA through regex.h).
 *
 * Supported: type (object, array, string, integer, number, boolean, null, or
 * a list of them), enum, const, properties + required (keys in the order
 * written; optional properties may be absent), additionalProperties (absent
 * or false: no other keys), items, minItems, maxItems, minLength, maxLength,
 * pattern, format (date, time, date-time, email, uuid), anyOf, $ref to
 * "#/$defs/NAME" or "#/definitions/NAME" (expanded inline; recursion stops at
 * a depth limit with a diagnostic). Annotations (title, description,
 * examples, default, $schema, $id, $comment, $defs, definitions, ...) are
 * ignored. Any other keyword is an error naming it and its JSON Pointer.
 *
 * Output text is JSON that jansson parses. Whitespace policy (no whitespace
 * anywhere except as chosen here, never around brackets):
 *   JSON_WS_SPACE (default)  ", " between items and ": " after keys, exactly
 *                            (Python json.dumps); fully forced, so
 *                            jump-forward covers keys and punctuation
 *   JSON_WS_COMPACT          no whitespace at all
 *   JSON_WS_FLEXIBLE         an optional single space after ',' and ':'
 * enum/const values are written as jansson dumps them (SPACE style, or
 * compact for the other policies). Integers have at most 18 digits and
 * number exponents at most 2 digits, so every output fits int64 / double.
 * Strings: any code point except '"', '\\' and controls, or the escapes
 * \" \\ \/ \b \f \n \r \t \uXXXX (not a surrogate, not NUL). A pattern is
 * matched against the raw text between the quotes and must not be able to
 * produce '"', '\\' or control characters; unanchored sides get any string
 * text, as JSON Schema's search semantics say.
 */
#ifndef SGL_IR_FSM_JSONSCHEMA_H
#define SGL_IR_FSM_JSONSCHEMA_H

#include <jansson.h>

#include "ir/fsm/regex.h"

typedef enum { JSON_WS_SPACE = 0, JSON_WS_COMPACT, JSON_WS_FLEXIBLE } JsonWs;

#define JSONSCHEMA_MAX_DEPTH 64        /* schema nesting */
#define JSONSCHEMA_DEFAULT_REF_DEPTH 8 /* nested $ref expansions */
#define JSONSCHEMA_MAX_REGEX_BYTES (1 << 20)  /* the generated regex */

typedef struct {
    JsonWs ws;
    int32_t max_ref_depth;     /* <= 0: JSONSCHEMA_DEFAULT_REF_DEPTH */
} JsonSchemaOpts;

/* schema (borrowed) -> *regex (malloc'd, owned by the caller) in the
 * dialect of regex.h. opts may be NULL. SGL_E_INVAL: unsupported keyword,
 * bad value or unsatisfiable schema (err->msg names the keyword and its
 * JSON Pointer, e.g. "jsonschema: unsupported keyword 'minimum' at
 * #/properties/age"); SGL_E_NOMEM. On failure *regex is NULL. */
SglStatus jsonschema_to_regex(const json_t *schema, const JsonSchemaOpts *opts, char **regex,
                              FsmErr *err);

/* The same from JSON text (parse errors give line and column). */
SglStatus jsonschema_text_to_regex(const char *text, size_t len, const JsonSchemaOpts *opts,
                                   char **regex, FsmErr *err);

/* Schema -> regex -> minimized DFA. On SGL_OK *out is owned by the caller. */
SglStatus jsonschema_compile(const json_t *schema, const JsonSchemaOpts *opts,
                             const RegexLimits *lim, SglDfa **out, FsmErr *err);

#endif
