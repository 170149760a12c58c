/* regex.h -- regular expressions to minimized byte-level DFAs.
 *
 * Pipeline: pattern -> AST (recursive descent) -> Thompson NFA over bytes
 * (code-point classes become UTF-8 byte sequences) -> DFA by subset
 * construction over byte classes -> dead states pruned -> Hopcroft
 * minimization -> SglDfa (runtime/dfa.h). Semantics are full-match: the DFA
 * accepts a byte string iff the whole string matches, as PCRE2 with
 * PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED does (invalid UTF-8 never
 * matches).
 *
 * Dialect: literals (any UTF-8 text); escapes \n \r \t \f \e \a, \xHH,
 * \x{H..}, \u{H..}, \uHHHH, \ + any ASCII punctuation; classes \d \w \s \D
 * \W \S (ASCII, as PCRE2 without UCP), [...], [^...], ranges; '.' (any code
 * point but '\n'); '|'; groups (...), (?:...), (?<name>...), (?P<name>...);
 * quantifiers ? * + {m} {m,} {m,n} (a lazy '?' suffix is accepted and changes
 * nothing under full-match semantics); '{' that does not start a quantifier is
 * a literal ("{,n}" too, as in PCRE2 10.42). '^' first and '$' last in the
 * pattern are accepted and ignored. Columns in errors are 1-based bytes.
 * Everything else (backreferences, lookaround, \b, \p{..}, possessive
 * quantifiers, POSIX classes, inline flags) is an error naming the construct.
 */
#ifndef SGL_IR_FSM_REGEX_H
#define SGL_IR_FSM_REGEX_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/dfa.h"
#include "runtime/status.h"

#define REGEX_MAX_REPEAT 1000          /* largest m or n in {m,n} */
#define REGEX_MAX_DEPTH 200            /* group nesting */
#define REGEX_DEFAULT_MAX_NFA 500000   /* NFA states after expanding repeats */
#define REGEX_DEFAULT_MAX_DFA 100000   /* DFA states before minimization */

/* An error of the constraint compilers (regex, JSON schema, typed output). */
typedef struct {
    int32_t col;      /* 1-based byte column in the pattern; 0 when not tied to one */
    char msg[512];    /* one line, e.g. "regex: unbalanced ')' at column 7" */
} FsmErr;

typedef struct {
    int32_t max_nfa_states;   /* <= 0: REGEX_DEFAULT_MAX_NFA */
    int32_t max_dfa_states;   /* <= 0: REGEX_DEFAULT_MAX_DFA */
} RegexLimits;

/* What the compilation did (for tests and --emit=fsm). */
typedef struct {
    int32_t nfa_states;
    int32_t dfa_states;       /* subset construction, before minimization */
    int32_t min_states;       /* the result */
    int32_t n_classes;        /* byte classes of the result */
} RegexStats;

/* Compiles pat[0..len). lim and stats may be NULL. On SGL_OK *out (owned by
 * the caller) is minimized, passes sgl_dfa_check and has its hash set; an
 * unsatisfiable pattern gives a DFA for which sgl_dfa_is_empty is true.
 * SGL_E_INVAL: syntax error or unsupported construct (err->col set);
 * SGL_E_UNSUPPORTED: a size limit was exceeded (message gives the limit);
 * SGL_E_NOMEM. On failure *out is NULL and nothing leaks. */
SglStatus regex_compile(const char *pat, size_t len, const RegexLimits *lim, SglDfa **out,
                        RegexStats *stats, FsmErr *err);

/* Syntax check only (no automaton is built): SGL_OK or SGL_E_INVAL. */
SglStatus regex_check(const char *pat, size_t len, FsmErr *err);

/* Appends s[0..len) to *buf as a regex matching exactly that text (every
 * metacharacter escaped). *buf is malloc'd/realloc'd; *buf_len and *buf_cap
 * track it. SGL_E_NOMEM leaves the old buffer valid. */
SglStatus regex_escape_append(char **buf, size_t *buf_len, size_t *buf_cap, const char *s,
                              size_t len);

#endif
