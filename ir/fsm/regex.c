/* regex.c -- pattern -> AST -> Thompson NFA -> subset DFA -> minimized DFA.
 *
 * The parser is a recursive descent over the pattern bytes with all state in
 * a Parser struct; it builds a small AST in growable arrays (nodes refer to
 * each other by index). Code-point classes are sorted, merged range lists;
 * the NFA compiler turns each into UTF-8 byte-range sequences, so the NFA,
 * DFA and everything after work on bytes only. Every limit is checked and
 * reported with its value. One cleanup path per function; the caller of
 * regex_compile owns nothing on failure.
 */
#include "ir/fsm/regex.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CP_MAX 0x10FFFFu
#define REP_INF (-1)

/* ---- growable arrays -------------------------------------------------- */

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t nc = *cap ? *cap : 16;
    while (nc < need)
        nc *= 2;
    void *q = realloc(*p, nc * elem);
    if (!q)
        return false;
    *p = q;
    *cap = nc;
    return true;
}

/* ---- AST ---------------------------------------------------------------- */

typedef enum { RX_EMPTY, RX_CLASS, RX_CAT, RX_ALT, RX_REP } RxKind;

typedef struct { uint32_t lo, hi; } CpRange;

typedef struct {
    RxKind kind;
    int32_t child;        /* CAT/ALT: first child; REP: the repeated node */
    int32_t next;         /* next sibling in a CAT/ALT list, -1 at the end */
    int32_t min, max;     /* REP; max = REP_INF for unbounded */
    int32_t r_off, r_n;   /* CLASS: ranges[r_off .. r_off + r_n) */
} RxNode;

typedef struct {
    const uint8_t *s;
    size_t len, pos;
    int depth;
    RxNode *nodes;
    size_t n_nodes, cap_nodes;
    CpRange *ranges;
    size_t n_ranges, cap_ranges;
    CpRange *tmp;          /* class under construction */
    size_t n_tmp, cap_tmp;
    SglStatus st;
    FsmErr *err;
} Parser;

static int32_t fail_at(Parser *p, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the first error; the column is 1-based. Returns -1 for chaining. */
static int32_t fail_at(Parser *p, size_t off, const char *fmt, ...)
{
    if (p->st != SGL_OK)
        return -1;
    p->st = SGL_E_INVAL;
    if (p->err) {
        char what[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        p->err->col = (int32_t)off + 1;
        snprintf(p->err->msg, sizeof p->err->msg, "regex: %s at column %d", what,
                 (int)off + 1);
    }
    return -1;
}

static int32_t nomem(Parser *p)
{
    if (p->st == SGL_OK) {
        p->st = SGL_E_NOMEM;
        if (p->err) {
            p->err->col = 0;
            snprintf(p->err->msg, sizeof p->err->msg, "regex: out of memory");
        }
    }
    return -1;
}

static int32_t new_node(Parser *p, RxKind kind)
{
    if (!grow((void **)&p->nodes, &p->cap_nodes, p->n_nodes + 1, sizeof *p->nodes))
        return nomem(p);
    RxNode *n = &p->nodes[p->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->child = n->next = -1;
    return (int32_t)p->n_nodes++;
}

static bool tmp_add(Parser *p, uint32_t lo, uint32_t hi)
{
    if (!grow((void **)&p->tmp, &p->cap_tmp, p->n_tmp + 1, sizeof *p->tmp)) {
        nomem(p);
        return false;
    }
    p->tmp[p->n_tmp++] = (CpRange){lo, hi};
    return true;
}

static int cmp_range(const void *a, const void *b)
{
    const CpRange *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Turns tmp into a CLASS node: sorted, merged, optionally complemented over
 * [0, CP_MAX]. Surrogates stay in the ranges; the UTF-8 expansion drops them. */
static int32_t class_from_tmp(Parser *p, bool negate)
{
    qsort(p->tmp, p->n_tmp, sizeof *p->tmp, cmp_range);
    size_t m = 0;
    for (size_t i = 0; i < p->n_tmp; i++) {
        if (m && p->tmp[i].lo <= p->tmp[m - 1].hi + 1) {
            if (p->tmp[i].hi > p->tmp[m - 1].hi)
                p->tmp[m - 1].hi = p->tmp[i].hi;
        } else {
            p->tmp[m++] = p->tmp[i];
        }
    }
    p->n_tmp = m;
    int32_t id = new_node(p, RX_CLASS);
    if (id < 0)
        return -1;
    size_t need = p->n_ranges + m + 1;
    if (!grow((void **)&p->ranges, &p->cap_ranges, need, sizeof *p->ranges))
        return nomem(p);
    size_t off = p->n_ranges;
    if (!negate) {
        memcpy(p->ranges + off, p->tmp, m * sizeof *p->tmp);
        p->n_ranges += m;
    } else {
        uint32_t next = 0;
        for (size_t i = 0; i < m; i++) {
            if (p->tmp[i].lo > next)
                p->ranges[p->n_ranges++] = (CpRange){next, p->tmp[i].lo - 1};
            next = p->tmp[i].hi + 1;
        }
        if (next <= CP_MAX)
            p->ranges[p->n_ranges++] = (CpRange){next, CP_MAX};
    }
    p->nodes[id].r_off = (int32_t)off;
    p->nodes[id].r_n = (int32_t)(p->n_ranges - off);
    p->n_tmp = 0;
    return id;
}

/* Decodes one UTF-8 code point of the pattern at p->pos; -1 (error set) for
 * malformed UTF-8. */
static int64_t pat_cp(Parser *p)
{
    const uint8_t *s = p->s + p->pos;
    size_t left = p->len - p->pos;
    uint32_t c = s[0];
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || (size_t)n > left)
        return fail_at(p, p->pos, "invalid UTF-8 in pattern");
    if (n > 1)
        c &= 0x3Fu >> (n - 1);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return fail_at(p, p->pos, "invalid UTF-8 in pattern");
        c = (c << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min_of[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min_of[n] || c > CP_MAX || (c >= 0xD800 && c <= 0xDFFF))
        return fail_at(p, p->pos, "invalid UTF-8 in pattern");
    p->pos += (size_t)n;
    return c;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads up to max_digits hex digits (at least one) or, with braces, {H..}. */
static int64_t parse_hex(Parser *p, size_t esc_off, int max_digits, bool braces_ok)
{
    uint32_t v = 0;
    if (braces_ok && p->pos < p->len && p->s[p->pos] == '{') {
        size_t i = p->pos + 1, nd = 0;
        while (i < p->len && hexval(p->s[i]) >= 0) {
            if (v <= CP_MAX)
                v = v * 16 + (uint32_t)hexval(p->s[i]);
            i++, nd++;
        }
        if (nd == 0 || i >= p->len || p->s[i] != '}')
            return fail_at(p, esc_off, "malformed \\%c{...} escape", p->s[esc_off + 1]);
        p->pos = i + 1;
    } else {
        int nd = 0;
        while (nd < max_digits && p->pos < p->len && hexval(p->s[p->pos]) >= 0) {
            v = v * 16 + (uint32_t)hexval(p->s[p->pos]);
            p->pos++, nd++;
        }
        if (nd == 0 || (max_digits == 4 && nd != 4))
            return fail_at(p, esc_off, "malformed \\%c escape", p->s[esc_off + 1]);
    }
    if (v > CP_MAX || (v >= 0xD800 && v <= 0xDFFF))
        return fail_at(p, esc_off, "code point out of range");
    return v;
}

/* Class escapes \d \w \s and their negations, as PCRE2 without UCP. */
static bool add_class_escape(Parser *p, uint8_t c, bool *negated)
{
    *negated = c == 'D' || c == 'W' || c == 'S';
    switch (c | 0x20) {
    case 'd':
        return tmp_add(p, '0', '9');
    case 'w':
        return tmp_add(p, '0', '9') && tmp_add(p, 'A', 'Z') && tmp_add(p, '_', '_') &&
               tmp_add(p, 'a', 'z');
    case 's':
        return tmp_add(p, '\t', '\r') && tmp_add(p, ' ', ' ');
    default:
        return false;
    }
}

static bool is_class_escape(uint8_t c)
{
    return c == 'd' || c == 'D' || c == 'w' || c == 'W' || c == 's' || c == 'S';
}

/* escape := '\' (n|r|t|f|e|a | x HH | x{H+} | u HHHH | u{H+} | punct)
 * Called with p->pos at the backslash, for escapes that denote one code
 * point (class escapes are handled by the callers). */
static int64_t parse_cp_escape(Parser *p)
{
    size_t off = p->pos;
    if (off + 1 >= p->len)
        return fail_at(p, off, "trailing backslash");
    uint8_t c = p->s[off + 1];
    p->pos = off + 2;
    switch (c) {
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'f': return '\f';
    case 'e': return 0x1B;
    case 'a': return 0x07;
    case 'x': return parse_hex(p, off, 2, true);
    case 'u': return parse_hex(p, off, 4, true);
    default: break;
    }
    if (c >= 0x80) {
        p->pos = off + 1;
        return pat_cp(p);
    }
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return fail_at(p, off, "unsupported escape '\\%c'", c);
    if (c < 0x20 || c == 0x7F)
        return fail_at(p, off, "escaped control character");
    return c;
}

/* class := '[' '^'? ']'? (item | item '-' item)* ']' */
static int32_t parse_class(Parser *p)
{
    size_t open = p->pos++;
    bool negate = false;
    if (p->pos < p->len && p->s[p->pos] == '^')
        negate = true, p->pos++;
    bool first = true;
    p->n_tmp = 0;
    for (;;) {
        if (p->pos >= p->len)
            return fail_at(p, open, "missing ']' for the class opened here");
        uint8_t c = p->s[p->pos];
        if (c == ']' && !first)
            break;
        first = false;
        size_t item_off = p->pos;
        int64_t lo;
        if (c == '[' && p->pos + 1 < p->len &&
            (p->s[p->pos + 1] == ':' || p->s[p->pos + 1] == '.' || p->s[p->pos + 1] == '='))
            return fail_at(p, item_off, "POSIX class syntax '[%c' is not supported",
                           p->s[p->pos + 1]);
        if (c == '\\' && p->pos + 1 < p->len && is_class_escape(p->s[p->pos + 1])) {
            bool neg;
            size_t mark = p->n_tmp;
            add_class_escape(p, p->s[p->pos + 1], &neg);
            if (p->st != SGL_OK)
                return -1;
            p->pos += 2;
            if (neg) {
                /* complement the ranges just added, in place */
                size_t n = p->n_tmp - mark;
                CpRange tmp[8];
                memcpy(tmp, p->tmp + mark, n * sizeof *tmp);
                p->n_tmp = mark;
                uint32_t next = 0;
                for (size_t i = 0; i < n; i++) {
                    if (tmp[i].lo > next && !tmp_add(p, next, tmp[i].lo - 1))
                        return -1;
                    next = tmp[i].hi + 1;
                }
                if (!tmp_add(p, next, CP_MAX))
                    return -1;
            }
            if (p->pos + 1 < p->len && p->s[p->pos] == '-' && p->s[p->pos + 1] != ']')
                return fail_at(p, p->pos, "invalid range in class (\\%c cannot be an endpoint)",
                               p->s[item_off + 1]);
            continue;
        }
        lo = c == '\\' ? parse_cp_escape(p) : pat_cp(p);
        if (lo < 0)
            return -1;
        int64_t hi = lo;
        if (p->pos + 1 < p->len && p->s[p->pos] == '-' && p->s[p->pos + 1] != ']') {
            size_t dash = p->pos++;
            if (p->s[p->pos] == '\\' && p->pos + 1 < p->len && is_class_escape(p->s[p->pos + 1]))
                return fail_at(p, dash, "invalid range in class (\\%c cannot be an endpoint)",
                               p->s[p->pos + 1]);
            if (p->s[p->pos] == '[' && p->pos + 1 < p->len && p->s[p->pos + 1] == ':')
                return fail_at(p, p->pos, "POSIX class syntax '[:' is not supported");
            hi = p->s[p->pos] == '\\' ? parse_cp_escape(p) : pat_cp(p);
            if (hi < 0)
                return -1;
            if (hi < lo)
                return fail_at(p, item_off, "range out of order in class");
        }
        if (!tmp_add(p, (uint32_t)lo, (uint32_t)hi))
            return -1;
    }
    p->pos++; /* ']' */
    return class_from_tmp(p, negate);
}

static int32_t parse_alt(Parser *p);

/* Parses a decimal count for {m,n}; -2 when there are no digits. */
static int64_t parse_count(Parser *p, size_t *i)
{
    int64_t v = 0;
    size_t start = *i;
    while (*i < p->len && p->s[*i] >= '0' && p->s[*i] <= '9') {
        if (v <= 1000000)
            v = v * 10 + (p->s[*i] - '0');
        (*i)++;
    }
    return *i == start ? -2 : v;
}

/* Is there a quantifier {m}, {m,}, {m,n} at p->pos? (PCRE2 10.42 rules:
 * anything else starting with '{' is a literal.) */
static bool brace_quant(Parser *p, int64_t *min, int64_t *max, size_t *end)
{
    size_t i = p->pos + 1;
    int64_t m = parse_count(p, &i), n;
    if (m == -2)
        return false;
    if (i < p->len && p->s[i] == '}') {
        n = m;
    } else if (i < p->len && p->s[i] == ',') {
        i++;
        n = parse_count(p, &i);
        if (n == -2)
            n = REP_INF;
        if (i >= p->len || p->s[i] != '}')
            return false;
    } else {
        return false;
    }
    *min = m;
    *max = n;
    *end = i + 1;
    return true;
}

static bool at_quant(Parser *p)
{
    if (p->pos >= p->len)
        return false;
    uint8_t c = p->s[p->pos];
    int64_t a, b;
    size_t e;
    return c == '*' || c == '+' || c == '?' || (c == '{' && brace_quant(p, &a, &b, &e));
}

/* atom := '(' ('?:' | '?<' name '>' | '?P<' name '>')? alt ')' | class | '.'
 *       | escape | literal */
static int32_t parse_atom(Parser *p)
{
    size_t off = p->pos;
    uint8_t c = p->s[off];
    if (c == '(') {
        if (++p->depth > REGEX_MAX_DEPTH)
            return fail_at(p, off, "group nesting deeper than %d", REGEX_MAX_DEPTH);
        p->pos++;
        if (p->pos < p->len && p->s[p->pos] == '?') {
            size_t q = p->pos + 1;
            if (q < p->len && p->s[q] == ':') {
                p->pos = q + 1;
            } else if (q < p->len && (p->s[q] == '<' || (p->s[q] == 'P' && q + 1 < p->len &&
                                                         p->s[q + 1] == '<'))) {
                size_t i = q + (p->s[q] == 'P' ? 2 : 1), n0 = i;
                while (i < p->len && (p->s[i] == '_' || (p->s[i] >= '0' && p->s[i] <= '9') ||
                                      ((p->s[i] | 0x20) >= 'a' && (p->s[i] | 0x20) <= 'z')))
                    i++;
                if (i == n0 || i >= p->len || p->s[i] != '>' || (p->s[n0] >= '0' && p->s[n0] <= '9'))
                    return fail_at(p, off, "unsupported group syntax (lookbehind or bad group name)");
                p->pos = i + 1;
            } else {
                return fail_at(p, off, "unsupported group syntax '(?%c'",
                               q < p->len ? p->s[q] : ' ');
            }
        }
        int32_t inner = parse_alt(p);
        if (inner < 0)
            return -1;
        if (p->pos >= p->len || p->s[p->pos] != ')')
            return fail_at(p, off, "missing ')' for the group opened here");
        p->pos++;
        p->depth--;
        return inner;
    }
    p->n_tmp = 0;
    if (c == '[')
        return parse_class(p);
    if (c == '.') {
        p->pos++;
        if (!tmp_add(p, '\n', '\n'))
            return -1;
        return class_from_tmp(p, true);
    }
    if (c == '\\' && off + 1 < p->len && is_class_escape(p->s[off + 1])) {
        bool neg;
        if (!add_class_escape(p, p->s[off + 1], &neg))
            return -1;
        p->pos += 2;
        return class_from_tmp(p, neg);
    }
    if (c == '^' || c == '$') {
        if ((c == '^' && off == 0) || (c == '$' && off + 1 == p->len && p->depth == 0)) {
            p->pos++;
            return new_node(p, RX_EMPTY);
        }
        return fail_at(p, off, "anchor '%c' is only supported at the %s of the pattern", c,
                       c == '^' ? "start" : "end");
    }
    int64_t cp = c == '\\' ? parse_cp_escape(p) : pat_cp(p);
    if (cp < 0)
        return -1;
    if (!tmp_add(p, (uint32_t)cp, (uint32_t)cp))
        return -1;
    return class_from_tmp(p, false);
}

/* repeat := atom (('*' | '+' | '?' | '{' m (',' n?)? '}') '?'?)* */
static int32_t parse_repeat(Parser *p)
{
    if (at_quant(p))
        return fail_at(p, p->pos, "nothing to repeat before '%c'", p->s[p->pos]);
    int32_t atom = parse_atom(p);
    if (atom < 0)
        return -1;
    while (at_quant(p)) {
        size_t qoff = p->pos;
        uint8_t c = p->s[p->pos];
        int64_t min = 0, max = REP_INF;
        size_t end = p->pos + 1;
        if (c == '+')
            min = 1;
        else if (c == '?')
            max = 1;
        else if (c == '{')
            brace_quant(p, &min, &max, &end);
        if (min > REGEX_MAX_REPEAT || max > REGEX_MAX_REPEAT)
            return fail_at(p, qoff, "repetition count %lld exceeds the limit %d",
                           (long long)(max > min ? max : min), REGEX_MAX_REPEAT);
        if (max != REP_INF && max < min)
            return fail_at(p, qoff, "repetition range {%lld,%lld} out of order",
                           (long long)min, (long long)max);
        p->pos = end;
        if (p->pos < p->len && p->s[p->pos] == '?') {
            p->pos++;
        } else if (p->pos < p->len && p->s[p->pos] == '+') {
            return fail_at(p, p->pos, "possessive quantifiers are not supported");
        }
        if (at_quant(p))
            return fail_at(p, p->pos, "nothing to repeat before '%c'", p->s[p->pos]);
        int32_t rep = new_node(p, RX_REP);
        if (rep < 0)
            return -1;
        p->nodes[rep].child = atom;
        p->nodes[rep].min = (int32_t)min;
        p->nodes[rep].max = (int32_t)max;
        atom = rep;
    }
    return atom;
}

/* concat := repeat* */
static int32_t parse_concat(Parser *p)
{
    int32_t cat = new_node(p, RX_CAT), last = -1;
    if (cat < 0)
        return -1;
    while (p->pos < p->len && p->s[p->pos] != '|' && p->s[p->pos] != ')') {
        int32_t r = parse_repeat(p);
        if (r < 0)
            return -1;
        if (last < 0)
            p->nodes[cat].child = r;
        else
            p->nodes[last].next = r;
        last = r;
    }
    return cat;
}

/* alt := concat ('|' concat)* */
static int32_t parse_alt(Parser *p)
{
    int32_t alt = new_node(p, RX_ALT), last = -1;
    if (alt < 0)
        return -1;
    for (;;) {
        int32_t c = parse_concat(p);
        if (c < 0)
            return -1;
        if (last < 0)
            p->nodes[alt].child = c;
        else
            p->nodes[last].next = c;
        last = c;
        if (p->pos < p->len && p->s[p->pos] == '|') {
            p->pos++;
            continue;
        }
        return alt;
    }
}

static int32_t parse_pattern(Parser *p)
{
    int32_t root = parse_alt(p);
    if (root >= 0 && p->pos < p->len) /* only a ')' stops parse_alt early */
        return fail_at(p, p->pos, "unbalanced ')'");
    return root;
}

static void parser_deinit(Parser *p)
{
    free(p->nodes);
    free(p->ranges);
    free(p->tmp);
}

SglStatus regex_check(const char *pat, size_t len, FsmErr *err)
{
    Parser p = {.s = (const uint8_t *)pat, .len = len, .err = err};
    if (err)
        err->col = 0, err->msg[0] = '\0';
    parse_pattern(&p);
    parser_deinit(&p);
    return p.st;
}

/* ---- NFA ----------------------------------------------------------------- */

/* An edge on bytes lo..hi, or an epsilon edge when lo < 0. */
typedef struct { int32_t from, to; int16_t lo, hi; } NfaEdge;

typedef struct {
    int32_t n_states, max_states;
    NfaEdge *edges;
    size_t n_edges, cap_edges;
    const Parser *ast;
    SglStatus st;
    FsmErr *err;
} Nfa;

static int32_t nfa_state(Nfa *n)
{
    if (n->n_states >= n->max_states) {
        if (n->st == SGL_OK) {
            n->st = SGL_E_UNSUPPORTED;
            if (n->err) {
                n->err->col = 0;
                snprintf(n->err->msg, sizeof n->err->msg,
                         "regex: more than %d NFA states after expanding repetitions "
                         "(pattern too large)", n->max_states);
            }
        }
        return -1;
    }
    return n->n_states++;
}

static bool nfa_edge(Nfa *n, int32_t from, int32_t to, int lo, int hi)
{
    if (!grow((void **)&n->edges, &n->cap_edges, n->n_edges + 1, sizeof *n->edges)) {
        if (n->st == SGL_OK) {
            n->st = SGL_E_NOMEM;
            if (n->err)
                n->err->col = 0, snprintf(n->err->msg, sizeof n->err->msg, "regex: out of memory");
        }
        return false;
    }
    n->edges[n->n_edges++] = (NfaEdge){from, to, (int16_t)lo, (int16_t)hi};
    return true;
}

static int utf8_len(uint32_t c)
{
    return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
}

static void utf8_enc(uint32_t c, uint8_t *b)
{
    int n = utf8_len(c);
    if (n == 1) {
        b[0] = (uint8_t)c;
        return;
    }
    for (int i = n - 1; i > 0; i--) {
        b[i] = (uint8_t)(0x80 | (c & 0x3F));
        c >>= 6;
    }
    b[0] = (uint8_t)((0xF00u >> n) | c);
}

/* Emits byte-range sequences for code points lo..hi (no surrogates) between
 * NFA states s and e: the range is split until every byte position spans a
 * contiguous byte range (the classic UTF-8 range decomposition). */
static bool utf8_ranges(Nfa *n, uint32_t lo, uint32_t hi, int32_t s, int32_t e)
{
    if (lo > hi)
        return true;
    if (lo < 0xE000 && hi >= 0xD800) { /* cut out the surrogates */
        return (lo >= 0xD800 || utf8_ranges(n, lo, 0xD7FF, s, e)) &&
               (hi <= 0xDFFF || utf8_ranges(n, 0xE000, hi, s, e));
    }
    static const uint32_t bounds[3] = {0x7F, 0x7FF, 0xFFFF};
    for (int i = 0; i < 3; i++)
        if (lo <= bounds[i] && hi > bounds[i])
            return utf8_ranges(n, lo, bounds[i], s, e) && utf8_ranges(n, bounds[i] + 1, hi, s, e);
    int len = utf8_len(lo);
    for (int i = 1; i < len; i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if ((lo & m) != 0)
                return utf8_ranges(n, lo, lo | m, s, e) && utf8_ranges(n, (lo | m) + 1, hi, s, e);
            if ((hi & m) != m)
                return utf8_ranges(n, lo, (hi & ~m) - 1, s, e) && utf8_ranges(n, hi & ~m, hi, s, e);
        }
    }
    uint8_t a[4], b[4];
    utf8_enc(lo, a);
    utf8_enc(hi, b);
    int32_t prev = s;
    for (int i = 0; i < len; i++) {
        int32_t next = i + 1 == len ? e : nfa_state(n);
        if (next < 0 || !nfa_edge(n, prev, next, a[i], b[i]))
            return false;
        prev = next;
    }
    return true;
}

/* Compiles AST node id into a fragment from *s to *e (fresh states). The
 * recursion depth is bounded by the parser's nesting limit. */
static bool nfa_compile(Nfa *n, int32_t id, int32_t *s, int32_t *e)
{
    const RxNode *nd = &n->ast->nodes[id];
    switch (nd->kind) {
    case RX_EMPTY:
        *s = *e = nfa_state(n);
        return *s >= 0;
    case RX_CLASS: {
        *s = nfa_state(n);
        *e = nfa_state(n);
        if (*s < 0 || *e < 0)
            return false;
        for (int32_t i = 0; i < nd->r_n; i++) {
            CpRange r = n->ast->ranges[nd->r_off + i];
            if (!utf8_ranges(n, r.lo, r.hi, *s, *e))
                return false;
        }
        return true;
    }
    case RX_CAT: {
        if (nd->child < 0) {
            *s = *e = nfa_state(n);
            return *s >= 0;
        }
        if (!nfa_compile(n, nd->child, s, e))
            return false;
        for (int32_t c = n->ast->nodes[nd->child].next; c >= 0; c = n->ast->nodes[c].next) {
            int32_t cs, ce;
            if (!nfa_compile(n, c, &cs, &ce) || !nfa_edge(n, *e, cs, -1, -1))
                return false;
            *e = ce;
        }
        return true;
    }
    case RX_ALT: {
        if (n->ast->nodes[nd->child].next < 0)
            return nfa_compile(n, nd->child, s, e);
        *s = nfa_state(n);
        *e = nfa_state(n);
        if (*s < 0 || *e < 0)
            return false;
        for (int32_t c = nd->child; c >= 0; c = n->ast->nodes[c].next) {
            int32_t cs, ce;
            if (!nfa_compile(n, c, &cs, &ce) || !nfa_edge(n, *s, cs, -1, -1) ||
                !nfa_edge(n, ce, *e, -1, -1))
                return false;
        }
        return true;
    }
    case RX_REP: {
        int32_t cur = nfa_state(n), cs, ce;
        if (cur < 0)
            return false;
        *s = cur;
        for (int32_t i = 0; i < nd->min; i++) {
            if (!nfa_compile(n, nd->child, &cs, &ce) || !nfa_edge(n, cur, cs, -1, -1))
                return false;
            cur = ce;
        }
        if (nd->max == REP_INF) {
            int32_t q = nfa_state(n);
            if (q < 0 || !nfa_edge(n, cur, q, -1, -1) || !nfa_compile(n, nd->child, &cs, &ce) ||
                !nfa_edge(n, q, cs, -1, -1) || !nfa_edge(n, ce, q, -1, -1))
                return false;
            cur = q;
        } else {
            for (int32_t i = nd->min; i < nd->max; i++) {
                int32_t next = nfa_state(n);
                if (next < 0 || !nfa_compile(n, nd->child, &cs, &ce) ||
                    !nfa_edge(n, cur, cs, -1, -1) || !nfa_edge(n, cur, next, -1, -1) ||
                    !nfa_edge(n, ce, next, -1, -1))
                    return false;
                cur = next;
            }
        }
        *e = cur;
        return true;
    }
    }
    return false;
}

/* ---- subset construction --------------------------------------------------- */

typedef struct {
    /* NFA in CSR form */
    int32_t n_nfa, final;
    int32_t *eps_off, *eps_to;           /* (n_nfa + 1), (n_eps) */
    int32_t *byte_off;                   /* (n_nfa + 1) */
    NfaEdge *byte_edges;                 /* (n_byte) sorted by from */
    uint8_t cls[256];
    int32_t n_classes;
    /* closure scratch */
    uint32_t *mark;                      /* (n_nfa) generation stamps */
    uint32_t gen;
    int32_t *stack;                      /* (n_nfa) */
    /* DFA states: sets of kernel NFA states */
    int32_t *pool;
    size_t n_pool, cap_pool;
    size_t *set_off;                     /* (n_dfa + 1) */
    size_t cap_set_off;
    int32_t n_dfa, max_dfa;
    int32_t *trans;                      /* (n_dfa, n_classes) */
    size_t cap_trans;
    uint8_t *accept;
    size_t cap_accept;
    int32_t *table;                      /* open addressing: dfa id or -1 */
    size_t table_cap;
    SglStatus st;
    FsmErr *err;
} Subset;

static uint64_t hash_set(const int32_t *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint32_t)s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

static bool subset_fail(Subset *S, SglStatus st, const char *msg)
{
    if (S->st == SGL_OK) {
        S->st = st;
        if (S->err)
            S->err->col = 0, snprintf(S->err->msg, sizeof S->err->msg, "%s", msg);
    }
    return false;
}

/* Epsilon closure of seeds[0..n) appended to the pool as a sorted kernel
 * (states with byte edges, plus the final state). Returns the kernel size. */
static size_t closure(Subset *S, const int32_t *seeds, size_t n)
{
    if (++S->gen == 0) {
        memset(S->mark, 0, (size_t)S->n_nfa * sizeof *S->mark);
        S->gen = 1;
    }
    size_t top = 0, start = S->n_pool;
    for (size_t i = 0; i < n; i++)
        if (S->mark[seeds[i]] != S->gen) {
            S->mark[seeds[i]] = S->gen;
            S->stack[top++] = seeds[i];
        }
    while (top) {
        int32_t u = S->stack[--top];
        if (S->byte_off[u + 1] > S->byte_off[u] || u == S->final) {
            if (!grow((void **)&S->pool, &S->cap_pool, S->n_pool + 1, sizeof *S->pool))
                return subset_fail(S, SGL_E_NOMEM, "regex: out of memory"), 0;
            S->pool[S->n_pool++] = u;
        }
        for (int32_t j = S->eps_off[u]; j < S->eps_off[u + 1]; j++) {
            int32_t v = S->eps_to[j];
            if (S->mark[v] != S->gen) {
                S->mark[v] = S->gen;
                S->stack[top++] = v;
            }
        }
    }
    int32_t *set = S->pool + start;
    size_t n_set = S->n_pool - start;
    if (n_set > 24) {
        qsort(set, n_set, sizeof *set, cmp_i32);
    } else { /* kernels are usually tiny: insertion sort */
        for (size_t i = 1; i < n_set; i++) {
            int32_t x = set[i];
            size_t j = i;
            for (; j > 0 && set[j - 1] > x; j--)
                set[j] = set[j - 1];
            set[j] = x;
        }
    }
    return n_set;
}

static bool table_rehash(Subset *S)
{
    size_t cap = S->table_cap ? S->table_cap * 2 : 1024;
    int32_t *t = malloc(cap * sizeof *t);
    if (!t)
        return subset_fail(S, SGL_E_NOMEM, "regex: out of memory");
    memset(t, 0xff, cap * sizeof *t);
    for (int32_t d = 0; d < S->n_dfa; d++) {
        size_t h = hash_set(S->pool + S->set_off[d], S->set_off[d + 1] - S->set_off[d]) & (cap - 1);
        while (t[h] >= 0)
            h = (h + 1) & (cap - 1);
        t[h] = d;
    }
    free(S->table);
    S->table = t;
    S->table_cap = cap;
    return true;
}

/* The DFA state for the kernel just appended at pool[start..n_pool): an
 * existing one (the pool is rolled back) or a new one. -1 on failure. */
static int32_t intern_set(Subset *S, size_t start)
{
    size_t n = S->n_pool - start;
    const int32_t *set = S->pool + start;
    size_t h = hash_set(set, n) & (S->table_cap - 1);
    for (; S->table[h] >= 0; h = (h + 1) & (S->table_cap - 1)) {
        int32_t d = S->table[h];
        size_t dn = S->set_off[d + 1] - S->set_off[d];
        if (dn == n && memcmp(S->pool + S->set_off[d], set, n * sizeof *set) == 0) {
            S->n_pool = start;
            return d;
        }
    }
    if (S->n_dfa >= S->max_dfa) {
        char msg[160];
        snprintf(msg, sizeof msg, "regex: more than %d DFA states (pattern too complex)",
                 S->max_dfa);
        subset_fail(S, SGL_E_UNSUPPORTED, msg);
        return -1;
    }
    int32_t d = S->n_dfa;
    size_t k = (size_t)S->n_classes;
    if (!grow((void **)&S->set_off, &S->cap_set_off, (size_t)d + 2, sizeof *S->set_off) ||
        !grow((void **)&S->trans, &S->cap_trans, ((size_t)d + 1) * k, sizeof *S->trans) ||
        !grow((void **)&S->accept, &S->cap_accept, (size_t)d + 1, 1)) {
        subset_fail(S, SGL_E_NOMEM, "regex: out of memory");
        return -1;
    }
    S->table[h] = d;
    S->set_off[d + 1] = S->n_pool;
    S->accept[d] = n > 0 && bsearch(&S->final, set, n, sizeof *set, cmp_i32) != NULL;
    memset(S->trans + (size_t)d * k, 0xff, k * sizeof *S->trans);
    S->n_dfa++;
    if ((size_t)S->n_dfa * 2 > S->table_cap && !table_rehash(S))
        return -1;
    return d;
}

static void subset_deinit(Subset *S)
{
    free(S->eps_off);
    free(S->eps_to);
    free(S->byte_off);
    free(S->byte_edges);
    free(S->mark);
    free(S->stack);
    free(S->pool);
    free(S->set_off);
    free(S->trans);
    free(S->accept);
    free(S->table);
}

/* Builds the CSR form and byte classes of the NFA. */
static bool subset_prepare(Subset *S, const Nfa *n)
{
    size_t nn = (size_t)n->n_states, n_eps = 0, n_byte = 0;
    S->n_nfa = n->n_states;
    S->eps_off = calloc(nn + 1, sizeof *S->eps_off);
    S->byte_off = calloc(nn + 1, sizeof *S->byte_off);
    S->mark = calloc(nn, sizeof *S->mark);
    S->stack = malloc(nn * sizeof *S->stack);
    for (size_t i = 0; i < n->n_edges; i++) {
        if (n->edges[i].lo < 0)
            n_eps++;
        else
            n_byte++;
    }
    S->eps_to = malloc((n_eps + 1) * sizeof *S->eps_to);
    S->byte_edges = malloc((n_byte + 1) * sizeof *S->byte_edges);
    if (!S->eps_off || !S->byte_off || !S->mark || !S->stack || !S->eps_to || !S->byte_edges)
        return subset_fail(S, SGL_E_NOMEM, "regex: out of memory");
    for (size_t i = 0; i < n->n_edges; i++)
        (n->edges[i].lo < 0 ? S->eps_off : S->byte_off)[n->edges[i].from + 1]++;
    for (size_t i = 0; i < nn; i++) {
        S->eps_off[i + 1] += S->eps_off[i];
        S->byte_off[i + 1] += S->byte_off[i];
    }
    int32_t *ef = calloc(nn + 1, sizeof *ef), *bf = calloc(nn + 1, sizeof *bf);
    if (!ef || !bf) {
        free(ef);
        free(bf);
        return subset_fail(S, SGL_E_NOMEM, "regex: out of memory");
    }
    uint8_t cut[257] = {0};
    for (size_t i = 0; i < n->n_edges; i++) {
        const NfaEdge *e = &n->edges[i];
        if (e->lo < 0) {
            S->eps_to[S->eps_off[e->from] + ef[e->from]++] = e->to;
        } else {
            S->byte_edges[S->byte_off[e->from] + bf[e->from]++] = *e;
            cut[e->lo] = 1;
            cut[e->hi + 1] = 1;
        }
    }
    free(ef);
    free(bf);
    int32_t c = 0;
    for (int b = 0; b < 256; b++) {
        if (b > 0 && cut[b])
            c++;
        S->cls[b] = (uint8_t)c;
    }
    S->n_classes = c + 1;
    return true;
}

/* The subset construction proper; DFA state 0 is the start. */
static bool subset_run(Subset *S, int32_t nfa_start)
{
    size_t k = (size_t)S->n_classes;
    int32_t *bucket_n = NULL, *bucket_off = NULL, *items = NULL;
    size_t cap_items = 0;
    bool ok = false;
    bucket_n = calloc(k + 1, sizeof *bucket_n);
    bucket_off = calloc(k + 1, sizeof *bucket_off);
    if (!bucket_n || !bucket_off || !table_rehash(S) ||
        !grow((void **)&S->set_off, &S->cap_set_off, 1, sizeof *S->set_off)) {
        subset_fail(S, SGL_E_NOMEM, "regex: out of memory");
        goto out;
    }
    S->set_off[0] = 0;
    closure(S, &nfa_start, 1);
    if (S->st != SGL_OK || intern_set(S, 0) < 0)
        goto out;
    for (int32_t d = 0; d < S->n_dfa; d++) {
        /* count, then place (class, target) pairs per class */
        memset(bucket_n, 0, (k + 1) * sizeof *bucket_n);
        size_t total = 0;
        for (size_t i = S->set_off[d]; i < S->set_off[d + 1]; i++) {
            int32_t u = S->pool[i];
            for (int32_t j = S->byte_off[u]; j < S->byte_off[u + 1]; j++) {
                const NfaEdge *e = &S->byte_edges[j];
                for (int c = S->cls[e->lo]; c <= S->cls[e->hi]; c++)
                    bucket_n[c]++, total++;
            }
        }
        if (!grow((void **)&items, &cap_items, total + 1, sizeof *items)) {
            subset_fail(S, SGL_E_NOMEM, "regex: out of memory");
            goto out;
        }
        bucket_off[0] = 0;
        for (size_t c = 0; c < k; c++)
            bucket_off[c + 1] = bucket_off[c] + bucket_n[c];
        memset(bucket_n, 0, (k + 1) * sizeof *bucket_n);
        for (size_t i = S->set_off[d]; i < S->set_off[d + 1]; i++) {
            int32_t u = S->pool[i];
            for (int32_t j = S->byte_off[u]; j < S->byte_off[u + 1]; j++) {
                const NfaEdge *e = &S->byte_edges[j];
                for (int c = S->cls[e->lo]; c <= S->cls[e->hi]; c++)
                    items[bucket_off[c] + bucket_n[c]++] = e->to;
            }
        }
        for (size_t c = 0; c < k; c++) {
            if (bucket_n[c] == 0)
                continue;
            /* neighbouring classes covered by the same edges have identical
             * buckets (edges are visited in the same order): reuse */
            if (c > 0 && bucket_n[c] == bucket_n[c - 1] &&
                memcmp(items + bucket_off[c], items + bucket_off[c - 1],
                       (size_t)bucket_n[c] * sizeof *items) == 0) {
                S->trans[(size_t)d * k + c] = S->trans[(size_t)d * k + c - 1];
                continue;
            }
            size_t start = S->n_pool;
            closure(S, items + bucket_off[c], (size_t)bucket_n[c]);
            if (S->st != SGL_OK)
                goto out;
            int32_t t = intern_set(S, start);
            if (t < 0)
                goto out;
            S->trans[(size_t)d * k + c] = t;
        }
    }
    ok = true;
out:
    free(bucket_n);
    free(bucket_off);
    free(items);
    return ok;
}

/* ---- minimization ----------------------------------------------------------- */

/* Prunes states that cannot reach an accepting state, minimizes with
 * Hopcroft's algorithm (a sink stands for "dead" so the automaton is total),
 * renumbers in BFS order from the start and merges identical byte-class
 * columns. n, k, trans, accept: the subset DFA with start 0. */
static SglStatus minimize(int32_t n, int32_t k, const int32_t *trans, const uint8_t *accept,
                          const uint8_t cls[256], SglDfa **out)
{
    SglStatus st = SGL_E_NOMEM;
    int32_t N = n + 1, sink = n; /* states 0..n-1 plus the sink */
    size_t nk = (size_t)N * (size_t)k;
    int32_t *live_id = NULL, *rev_off = NULL, *rev_s = NULL, *rev_c = NULL, *fill = NULL,
            *queue = NULL, *elems = NULL, *loc = NULL, *blk = NULL, *bfirst = NULL,
            *bend = NULL, *bmark = NULL, *work = NULL, *pairs_s = NULL, *pairs_c = NULL,
            *cnt = NULL, *sorted = NULL, *touched = NULL, *newid = NULL, *order = NULL,
            *colmap = NULL;
    uint8_t *live = NULL;
    uint64_t *colhash = NULL;
    SglDfa *d = NULL;
    *out = NULL;

    /* 1. liveness: backward reachability from accepting states */
    rev_off = calloc((size_t)N + 1, sizeof *rev_off);
    rev_s = malloc((nk + 1) * sizeof *rev_s);
    rev_c = malloc((nk + 1) * sizeof *rev_c);
    fill = calloc((size_t)N + 1, sizeof *fill);
    live = calloc((size_t)N, 1);
    queue = malloc((size_t)N * sizeof *queue);
    if (!rev_off || !rev_s || !rev_c || !fill || !live || !queue)
        goto out;
    for (size_t i = 0; i < (size_t)n * (size_t)k; i++)
        if (trans[i] >= 0)
            rev_off[trans[i] + 1]++;
    for (int32_t s = 0; s < N; s++)
        rev_off[s + 1] += rev_off[s];
    for (int32_t s = 0; s < n; s++)
        for (int32_t c = 0; c < k; c++) {
            int32_t t = trans[(size_t)s * k + c];
            if (t >= 0) {
                rev_s[rev_off[t] + fill[t]] = s;
                rev_c[rev_off[t] + fill[t]++] = c;
            }
        }
    int32_t qh = 0, qt = 0;
    for (int32_t s = 0; s < n; s++)
        if (accept[s])
            live[s] = 1, queue[qt++] = s;
    while (qh < qt) {
        int32_t t = queue[qh++];
        for (int32_t j = rev_off[t]; j < rev_off[t + 1]; j++)
            if (!live[rev_s[j]])
                live[rev_s[j]] = 1, queue[qt++] = rev_s[j];
    }
    if (!live[0]) { /* empty language */
        d = sgl_dfa_new(1, 1);
        if (!d)
            goto out;
        d->start = 0;
        sgl_dfa_finish(d);
        *out = d;
        d = NULL;
        st = SGL_OK;
        goto out;
    }

    /* 2. the total automaton over live states + sink: reverse edges again
     * (dead targets redirected to the sink) */
    live_id = malloc((size_t)N * sizeof *live_id);
    if (!live_id)
        goto out;
    for (int32_t s = 0; s < n; s++)
        live_id[s] = live[s] ? s : sink;
    live_id[sink] = sink;
    memset(rev_off, 0, ((size_t)N + 1) * sizeof *rev_off);
    memset(fill, 0, ((size_t)N + 1) * sizeof *fill);
#define TR(s, c) ((s) == sink || !live[s] ? sink : (trans[(size_t)(s) * k + (c)] < 0 ? sink : live_id[trans[(size_t)(s) * k + (c)]]))
    for (int32_t s = 0; s < N; s++)
        if (s == sink || live[s])
            for (int32_t c = 0; c < k; c++)
                rev_off[TR(s, c) + 1]++;
    for (int32_t s = 0; s < N; s++)
        rev_off[s + 1] += rev_off[s];
    for (int32_t s = 0; s < N; s++)
        if (s == sink || live[s])
            for (int32_t c = 0; c < k; c++) {
                int32_t t = TR(s, c);
                rev_s[rev_off[t] + fill[t]] = s;
                rev_c[rev_off[t] + fill[t]++] = c;
            }

    /* 3. Hopcroft. Blocks are ranges of elems; bmark counts marked elements
     * moved to the front of a block. The split-off part is always the
     * smaller one, so pushing it is correct whether or not the old block is
     * still waiting. */
    elems = malloc((size_t)N * sizeof *elems);
    loc = malloc((size_t)N * sizeof *loc);
    blk = malloc((size_t)N * sizeof *blk);
    bfirst = malloc((size_t)N * sizeof *bfirst);
    bend = malloc((size_t)N * sizeof *bend);
    bmark = calloc((size_t)N, sizeof *bmark);
    work = malloc(((size_t)N + 2) * sizeof *work);
    cnt = calloc((size_t)k + 1, sizeof *cnt);
    touched = malloc((size_t)N * sizeof *touched);
    pairs_s = malloc((nk + 1) * sizeof *pairs_s);
    pairs_c = malloc((nk + 1) * sizeof *pairs_c);
    sorted = malloc((nk + 1) * sizeof *sorted);
    if (!elems || !loc || !blk || !bfirst || !bend || !bmark || !work || !cnt || !touched ||
        !pairs_s || !pairs_c || !sorted)
        goto out;
    int32_t n_el = 0, n_blocks = 0, n_work = 0;
    for (int pass = 1; pass >= 0; pass--) { /* accepting block, then the rest */
        int32_t first = n_el;
        for (int32_t s = 0; s < N; s++)
            if ((s == sink || live[s]) && (s != sink && accept[s]) == pass) {
                loc[s] = n_el;
                elems[n_el++] = s;
                blk[s] = n_blocks;
            }
        if (n_el > first) {
            bfirst[n_blocks] = first;
            bend[n_blocks] = n_el;
            work[n_work++] = n_blocks++;
        }
    }
    while (n_work) {
        int32_t B = work[--n_work];
        /* predecessors of B, grouped by class (counting sort) */
        size_t np = 0;
        for (int32_t i = bfirst[B]; i < bend[B]; i++) {
            int32_t t = elems[i];
            for (int32_t j = rev_off[t]; j < rev_off[t + 1]; j++) {
                pairs_s[np] = rev_s[j];
                pairs_c[np++] = rev_c[j];
            }
        }
        memset(cnt, 0, ((size_t)k + 1) * sizeof *cnt);
        for (size_t i = 0; i < np; i++)
            cnt[pairs_c[i] + 1]++;
        for (int32_t c = 0; c < k; c++)
            cnt[c + 1] += cnt[c];
        for (size_t i = 0; i < np; i++)
            sorted[cnt[pairs_c[i]]++] = pairs_s[i];
        size_t g0 = 0;
        for (int32_t c = 0; c < k; c++) {
            size_t g1 = (size_t)cnt[c]; /* after placement cnt[c] is the end of group c */
            int32_t n_touched = 0;
            for (size_t i = g0; i < g1; i++) {
                int32_t s = sorted[i], b = blk[s];
                int32_t j = bfirst[b] + bmark[b];
                if (loc[s] < j)
                    continue; /* already marked */
                if (bmark[b] == 0)
                    touched[n_touched++] = b;
                int32_t other = elems[j];
                elems[j] = s;
                elems[loc[s]] = other;
                loc[other] = loc[s];
                loc[s] = j;
                bmark[b]++;
            }
            for (int32_t i = 0; i < n_touched; i++) {
                int32_t b = touched[i], m = bmark[b], size = bend[b] - bfirst[b];
                bmark[b] = 0;
                if (m == size)
                    continue;
                int32_t nb = n_blocks++;
                if (m <= size - m) {
                    bfirst[nb] = bfirst[b];
                    bend[nb] = bfirst[b] + m;
                    bfirst[b] += m;
                } else {
                    bfirst[nb] = bfirst[b] + m;
                    bend[nb] = bend[b];
                    bend[b] = bfirst[b] + m;
                }
                for (int32_t e = bfirst[nb]; e < bend[nb]; e++)
                    blk[elems[e]] = nb;
                work[n_work++] = nb;
            }
            g0 = g1;
        }
    }

    /* 4. renumber blocks in BFS order from the start; the sink's block is dead */
    newid = malloc((size_t)n_blocks * sizeof *newid);
    order = malloc((size_t)n_blocks * sizeof *order);
    if (!newid || !order)
        goto out;
    for (int32_t b = 0; b < n_blocks; b++)
        newid[b] = -1;
    int32_t dead_b = blk[sink], n_new = 0;
    newid[blk[0]] = n_new;
    order[n_new++] = blk[0];
    for (int32_t i = 0; i < n_new; i++) {
        int32_t rep = elems[bfirst[order[i]]];
        for (int32_t c = 0; c < k; c++) {
            int32_t tb = blk[TR(rep, c)];
            if (tb != dead_b && newid[tb] < 0) {
                newid[tb] = n_new;
                order[n_new++] = tb;
            }
        }
    }

    /* 5. merge identical columns into byte classes (hash first, then compare) */
    colmap = malloc((size_t)k * sizeof *colmap);
    colhash = malloc((size_t)k * sizeof *colhash);
    if (!colmap || !colhash)
        goto out;
    int32_t n_cols = 0;
    for (int32_t c = 0; c < k; c++) {
        uint64_t h = 0xcbf29ce484222325ull;
        for (int32_t i = 0; i < n_new; i++)
            h = (h ^ (uint32_t)blk[TR(elems[bfirst[order[i]]], c)]) * 0x100000001b3ull;
        colhash[c] = h;
        colmap[c] = -1;
        for (int32_t c2 = 0; c2 < c && colmap[c] < 0; c2++) {
            if (colhash[c2] != h)
                continue;
            bool same = true;
            for (int32_t i = 0; i < n_new && same; i++) {
                int32_t rep = elems[bfirst[order[i]]];
                same = blk[TR(rep, c)] == blk[TR(rep, c2)];
            }
            if (same)
                colmap[c] = colmap[c2];
        }
        if (colmap[c] < 0)
            colmap[c] = n_cols++;
    }
    d = sgl_dfa_new(n_new, n_cols);
    if (!d)
        goto out;
    d->start = 0;
    for (int b = 0; b < 256; b++)
        d->byte_class[b] = (uint8_t)colmap[cls[b]];
    for (int32_t i = 0; i < n_new; i++) {
        int32_t rep = elems[bfirst[order[i]]];
        d->accept[i] = accept[rep];
        for (int32_t c = 0; c < k; c++) {
            int32_t tb = blk[TR(rep, c)];
            d->trans[(size_t)i * n_cols + colmap[c]] = tb == dead_b ? -1 : newid[tb];
        }
    }
#undef TR
    sgl_dfa_finish(d);
    *out = d;
    d = NULL;
    st = SGL_OK;
out:
    sgl_dfa_free(d);
    free(live_id);
    free(rev_off);
    free(rev_s);
    free(rev_c);
    free(fill);
    free(live);
    free(queue);
    free(elems);
    free(loc);
    free(blk);
    free(bfirst);
    free(bend);
    free(bmark);
    free(work);
    free(cnt);
    free(touched);
    free(pairs_s);
    free(pairs_c);
    free(sorted);
    free(newid);
    free(order);
    free(colmap);
    free(colhash);
    return st;
}

SglStatus regex_compile(const char *pat, size_t len, const RegexLimits *lim, SglDfa **out,
                        RegexStats *stats, FsmErr *err)
{
    Parser p = {.s = (const uint8_t *)pat, .len = len, .err = err};
    Nfa n = {.ast = &p, .err = err};
    Subset S = {.err = err};
    SglStatus st;
    *out = NULL;
    if (err)
        err->col = 0, err->msg[0] = '\0';
    if (stats)
        memset(stats, 0, sizeof *stats);
    n.max_states = lim && lim->max_nfa_states > 0 ? lim->max_nfa_states : REGEX_DEFAULT_MAX_NFA;
    S.max_dfa = lim && lim->max_dfa_states > 0 ? lim->max_dfa_states : REGEX_DEFAULT_MAX_DFA;

    int32_t root = parse_pattern(&p);
    if ((st = p.st) != SGL_OK)
        goto out;
    int32_t ns, ne;
    if (!nfa_compile(&n, root, &ns, &ne)) {
        st = n.st != SGL_OK ? n.st : SGL_E_NOMEM;
        goto out;
    }
    S.final = ne;
    if (!subset_prepare(&S, &n) || !subset_run(&S, ns)) {
        st = S.st;
        goto out;
    }
    st = minimize(S.n_dfa, S.n_classes, S.trans, S.accept, S.cls, out);
    if (st != SGL_OK) {
        if (err)
            err->col = 0, snprintf(err->msg, sizeof err->msg, "regex: out of memory");
        goto out;
    }
    if (stats) {
        stats->nfa_states = n.n_states;
        stats->dfa_states = S.n_dfa;
        stats->min_states = (*out)->n_states;
        stats->n_classes = (*out)->n_classes;
    }
out:
    subset_deinit(&S);
    free(n.edges);
    parser_deinit(&p);
    return st;
}

SglStatus regex_escape_append(char **buf, size_t *buf_len, size_t *buf_cap, const char *s,
                              size_t len)
{
    size_t need = *buf_len + 2 * len + 1;
    if (!grow((void **)buf, buf_cap, need, 1))
        return SGL_E_NOMEM;
    char *o = *buf + *buf_len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (strchr("\\.^$|?*+()[]{}-/", c) && c != '\0') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20 || c == 0x7F) {
            /* control bytes: \xHH (needs 4 bytes, so make room) */
            size_t used = (size_t)(o - *buf);
            if (!grow((void **)buf, buf_cap, used + 4 + 2 * (len - i) + 1, 1))
                return SGL_E_NOMEM;
            o = *buf + used;
            o += sprintf(o, "\\x%02X", c);
        } else {
            *o++ = (char)c;
        }
    }
    *o = '\0';
    *buf_len = (size_t)(o - *buf);
    return SGL_OK;
}
