/* lexer.re -- the .sgl lexer (re2c; generated into lexer.c at build time).
 *
 * Input: one SglSource (its NUL sentinel lets re2c check bounds only on NUL
 * bytes; a NUL before the end is an error, never the end). Output: tokens for
 * parser.y with byte-span locations. All state lives in SglLexer (parse.h).
 * Modes: the top of lx->open decides whether we scan code or string text; a
 * string is delivered as STR_BEGIN, STR_TEXT chunks, INTERP_BEGIN expr-tokens
 * INTERP_END, ..., STR_END. Automatic semicolons (docs/language.md section 1)
 * are added by sgl_lex around the raw scanners.
 * Every scanner has an explicit end-of-input rule ($) and a catch-all (*):
 * invalid UTF-8, NUL bytes and stray characters become diagnostics, and
 * scanning goes on. In partial mode (REPL) input that ends inside a string,
 * comment or open bracket yields TOK_NEED_MORE instead of an error.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/parse.h"

/*!re2c
    re2c:define:YYCTYPE = "unsigned char";
    re2c:define:YYCURSOR = "lx->cur";
    re2c:define:YYLIMIT = "lx->lim";
    re2c:define:YYMARKER = "lx->mar";
    re2c:yyfill:enable = 0;
    re2c:eof = 0;

    u8_2 = [\xc2-\xdf][\x80-\xbf];
    u8_3 = "\xe0"[\xa0-\xbf][\x80-\xbf] | [\xe1-\xec\xee\xef][\x80-\xbf]{2}
         | "\xed"[\x80-\x9f][\x80-\xbf];
    u8_4 = "\xf0"[\x90-\xbf][\x80-\xbf]{2} | [\xf1-\xf3][\x80-\xbf]{3}
         | "\xf4"[\x80-\x8f][\x80-\xbf]{2};
    u8_multi = u8_2 | u8_3 | u8_4;
    ident = [a-zA-Z_][a-zA-Z0-9_]*;
    digits = [0-9]+;
    exponent = [eE] [+-]? digits;
*/

static uint32_t off_of(const SglLexer *lx, const unsigned char *p)
{
    return (uint32_t)(p - (const unsigned char *)lx->src->text);
}

static SglLoc span(const SglLexer *lx, const unsigned char *a, const unsigned char *b)
{
    return sgl_loc(lx->src, off_of(lx, a), (uint32_t)(b - a));
}

const char *sgl_token_keyword(int tok)
{
    switch (tok) {
    case TOK_FN: return "fn";
    case TOK_FORK: return "fork";
    case TOK_IF: return "if";
    case TOK_ELSE: return "else";
    case TOK_FOR: return "for";
    case TOK_WHILE: return "while";
    case TOK_CAPTURE: return "capture";
    case TOK_SYSTEM: return "system";
    case TOK_USER: return "user";
    case TOK_ASSISTANT: return "assistant";
    case TOK_TYPE: return "type";
    default: return "{";
    }
}

static bool opens_block(int tok)
{
    switch (tok) {
    case TOK_FN: case TOK_FORK: case TOK_IF: case TOK_ELSE: case TOK_FOR: case TOK_WHILE:
    case TOK_CAPTURE: case TOK_SYSTEM: case TOK_USER: case TOK_ASSISTANT: case TOK_TYPE:
        return true;
    default:
        return false;
    }
}

void sgl_lexer_init(SglLexer *lx, const SglSource *src, AstBuilder *b, SglDiags *diags,
                    bool partial)
{
    memset(lx, 0, sizeof *lx);
    lx->src = src;
    lx->b = b;
    lx->diags = diags;
    lx->partial = partial;
    lx->cur = (const unsigned char *)src->text;
    lx->lim = lx->cur + src->len;
    lx->last = ';';
    if (src->len >= 3 && memcmp(src->text, "\xEF\xBB\xBF", 3) == 0)
        lx->cur += 3; /* a UTF-8 byte-order mark at the very start is ignored */
}

void sgl_lexer_deinit(SglLexer *lx)
{
    free(lx->buf);
    lx->buf = NULL;
    lx->buf_len = lx->buf_cap = 0;
}

static char top(const SglLexer *lx)
{
    return lx->depth ? lx->open[lx->depth - 1].kind : 0;
}

/* Pushes an open bracket/string; past SGL_MAX_NESTING the parse stops. */
static void push_open(SglLexer *lx, char kind, const unsigned char *at)
{
    if (lx->depth == SGL_MAX_NESTING) {
        if (!lx->fatal)
            sgl_diag_error(lx->diags, span(lx, at, at + 1),
                           "nesting too deep: more than %d open brackets, blocks and strings",
                           SGL_MAX_NESTING);
        lx->fatal = true;
        return;
    }
    SglOpen *o = &lx->open[lx->depth++];
    o->kind = kind;
    o->kw = kind == '{' ? lx->last_kw : 0;
    o->off = off_of(lx, at);
}

static void pop_if(SglLexer *lx, char kind)
{
    if (top(lx) == kind)
        lx->depth--;
}

/* A newline ends a statement only at block level (not inside ( [ or {expr}). */
static void note_newline(SglLexer *lx)
{
    char t = top(lx);
    if (t == 0 || t == '{')
        lx->newline = true;
}

/* Reports the byte at lx->tok as unexpected; skips the continuation bytes of
 * a broken UTF-8 sequence so one bad character gives one diagnostic. */
static void bad_byte(SglLexer *lx, const char *where)
{
    unsigned c = *lx->tok;
    SglLoc loc = span(lx, lx->tok, lx->tok + 1);
    if (c == 0)
        sgl_diag_error(lx->diags, loc, "NUL byte%s", where);
    else if (c >= 0x80)
        sgl_diag_error(lx->diags, loc, "invalid UTF-8 byte 0x%02X%s", c, where);
    else if (c < 0x20 || c == 0x7F)
        sgl_diag_error(lx->diags, loc, "unexpected control character 0x%02X%s", c, where);
    else
        sgl_diag_error(lx->diags, loc, "unexpected character '%c'%s", (char)c, where);
    while (c >= 0x80 && lx->cur < lx->lim && (*lx->cur & 0xC0) == 0x80)
        lx->cur++;
}

static void skip_line_comment(SglLexer *lx)
{
    for (;;) {
        lx->tok = lx->cur;
        /*!re2c
            "\n"                 { note_newline(lx); return; }
            [^\x00\n\x80-\xff]+  { continue; }
            u8_multi             { continue; }
            $                    { return; }
            *                    { bad_byte(lx, " in comment"); continue; }
        */
    }
}

/* Returns false when the input ended inside the comment in partial mode. */
static bool skip_block_comment(SglLexer *lx)
{
    const unsigned char *open = lx->tok;
    for (;;) {
        lx->tok = lx->cur;
        /*!re2c
            "*" "/"              { return true; }
            "\n"                 { note_newline(lx); continue; }
            [^\x00\n*\x80-\xff]+ { continue; }
            "*"                  { continue; }
            u8_multi             { continue; }
            $                    {
                if (lx->partial)
                    return false;
                sgl_diag_error(lx->diags, span(lx, open, open + 2), "unterminated comment");
                return true;
            }
            *                    { bad_byte(lx, " in comment"); continue; }
        */
    }
}

/* Appends to the string scratch buffer, enforcing the literal size limit. */
static void put(SglLexer *lx, const void *p, size_t n)
{
    if (lx->str_too_long || lx->b->oom)
        return;
    if (lx->str_bytes + n > SGL_MAX_STRING_BYTES) {
        const SglOpen *o = &lx->open[lx->depth - 1];
        sgl_diag_error(lx->diags, sgl_loc(lx->src, o->off, 1),
                       "string literal longer than the limit of %u bytes", SGL_MAX_STRING_BYTES);
        lx->str_too_long = true;
        return;
    }
    if (lx->buf_len + n > lx->buf_cap) {
        uint32_t cap = lx->buf_cap ? lx->buf_cap : 256;
        while (cap < lx->buf_len + n)
            cap *= 2;
        char *nb = realloc(lx->buf, cap);
        if (!nb) {
            lx->fatal = true;
            sgl_diag_error(lx->diags, span(lx, lx->tok, lx->cur), "out of memory");
            return;
        }
        lx->buf = nb;
        lx->buf_cap = cap;
    }
    memcpy(lx->buf + lx->buf_len, p, n);
    lx->buf_len += (uint32_t)n;
    lx->str_bytes += (uint32_t)n;
}

static void put_utf8(SglLexer *lx, uint32_t cp)
{
    unsigned char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp, n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | cp >> 6), b[1] = (unsigned char)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | cp >> 12), b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F)), n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | cp >> 18), b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    put(lx, b, n);
}

/* \u{HEX}: 1 to 6 digits, a scalar value other than 0. */
static void put_escape_u(SglLexer *lx)
{
    const unsigned char *d = lx->tok + 3, *e = lx->cur - 1;
    uint32_t cp = 0;
    bool ok = e - d <= 6;
    for (const unsigned char *q = d; ok && q < e; q++)
        cp = cp * 16 + (uint32_t)(*q <= '9' ? *q - '0' : (*q | 0x20) - 'a' + 10);
    if (!ok || cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        sgl_diag_error(lx->diags, span(lx, lx->tok, lx->cur),
                       "invalid code point in \\u{...} escape (1 to 6 hex digits, "
                       "not 0, not a surrogate, at most 10FFFF)");
        return;
    }
    put_utf8(lx, cp);
}

/* Hands the decoded chunk to the parser as STR_TEXT. */
static int text_token(SglLexer *lx, SGLYYSTYPE *val)
{
    val->str = ast_strdup(lx->b, lx->buf, lx->buf_len);
    lx->buf_len = 0;
    return TOK_STR_TEXT;
}

/* Closes the current string: pops it and returns STR_END. */
static int end_string(SglLexer *lx)
{
    lx->depth--;
    return TOK_STR_END;
}

/* Scans string text from lx->cur (the top of lx->open is '"' or 'T'). */
static int scan_string(SglLexer *lx, SGLYYSTYPE *val, const unsigned char **start)
{
    bool triple = top(lx) == 'T';
    lx->buf_len = 0;
    *start = lx->cur;
    for (;;) {
        lx->tok = lx->cur;
        /*!re2c
            "\\n"   { put(lx, "\n", 1); continue; }
            "\\t"   { put(lx, "\t", 1); continue; }
            "\\r"   { put(lx, "\r", 1); continue; }
            "\\\""  { put(lx, "\"", 1); continue; }
            "\\\\"  { put(lx, "\\", 1); continue; }
            "\\u{" [0-9a-fA-F]+ "}" { put_escape_u(lx); continue; }
            "\\"    {
                sgl_diag_error(lx->diags, span(lx, lx->tok, lx->cur + (lx->cur < lx->lim)),
                               "invalid escape sequence (use \\n \\t \\r \\\" \\\\ \\u{...}, "
                               "or {{ and }} for braces)");
                continue;
            }
            "{{"    { put(lx, "{", 1); continue; }
            "}}"    { put(lx, "}", 1); continue; }
            "}"     {
                sgl_diag_error(lx->diags, span(lx, lx->tok, lx->cur),
                               "single '}' in string (write '}}' for a literal brace)");
                continue;
            }
            "{"     {
                if (lx->buf_len) {
                    lx->cur = lx->tok;
                    return text_token(lx, val);
                }
                *start = lx->tok;
                push_open(lx, 'i', lx->tok);
                return TOK_INTERP_BEGIN;
            }
            "\"\"\"" {
                if (!triple)
                    lx->cur = lx->tok + 1;
                if (lx->buf_len) {
                    lx->cur = lx->tok;
                    return text_token(lx, val);
                }
                *start = lx->tok;
                return end_string(lx);
            }
            "\""    {
                if (triple) {
                    put(lx, "\"", 1);
                    continue;
                }
                if (lx->buf_len) {
                    lx->cur = lx->tok;
                    return text_token(lx, val);
                }
                *start = lx->tok;
                return end_string(lx);
            }
            "\n"    {
                if (triple) {
                    put(lx, "\n", 1);
                    continue;
                }
                lx->cur = lx->tok;
                if (lx->buf_len)
                    return text_token(lx, val);
                const SglOpen *o = &lx->open[lx->depth - 1];
                sgl_diag_error(lx->diags, sgl_loc(lx->src, o->off, 1),
                               "unterminated string (a \"...\" string ends on its line; "
                               "use \\n or \"\"\"...\"\"\")");
                *start = lx->tok;
                return end_string(lx);
            }
            [^\x00\n"\\{}\x80-\xff]+ { put(lx, lx->tok, (size_t)(lx->cur - lx->tok)); continue; }
            u8_multi+ { put(lx, lx->tok, (size_t)(lx->cur - lx->tok)); continue; }
            $       {
                if (lx->buf_len)
                    return text_token(lx, val);
                if (lx->partial) {
                    lx->need_more = true;
                    return TOK_NEED_MORE;
                }
                const SglOpen *o = &lx->open[lx->depth - 1];
                sgl_diag_error(lx->diags, sgl_loc(lx->src, o->off, triple ? 3 : 1),
                               "unterminated string");
                *start = lx->tok;
                return end_string(lx);
            }
            *       { bad_byte(lx, " in string"); continue; }
        */
    }
}

/* Scans raw string text (r"..." or r"""..."""): no escapes, no interpolation. */
static int scan_raw(SglLexer *lx, SGLYYSTYPE *val, const unsigned char **start)
{
    bool triple = top(lx) == 'Q';
    lx->buf_len = 0;
    *start = lx->cur;
    for (;;) {
        lx->tok = lx->cur;
        /*!re2c
            "\"\"\"" {
                if (!triple)
                    lx->cur = lx->tok + 1;
                if (lx->buf_len) {
                    lx->cur = lx->tok;
                    return text_token(lx, val);
                }
                *start = lx->tok;
                return end_string(lx);
            }
            "\""    {
                if (triple) {
                    put(lx, "\"", 1);
                    continue;
                }
                if (lx->buf_len) {
                    lx->cur = lx->tok;
                    return text_token(lx, val);
                }
                *start = lx->tok;
                return end_string(lx);
            }
            "\n"    {
                if (triple) {
                    put(lx, "\n", 1);
                    continue;
                }
                lx->cur = lx->tok;
                if (lx->buf_len)
                    return text_token(lx, val);
                const SglOpen *o = &lx->open[lx->depth - 1];
                sgl_diag_error(lx->diags, sgl_loc(lx->src, o->off, 2),
                               "unterminated raw string (an r\"...\" string ends on its line; "
                               "use r\"\"\"...\"\"\")");
                *start = lx->tok;
                return end_string(lx);
            }
            [^\x00\n"\x80-\xff]+ { put(lx, lx->tok, (size_t)(lx->cur - lx->tok)); continue; }
            u8_multi+ { put(lx, lx->tok, (size_t)(lx->cur - lx->tok)); continue; }
            $       {
                if (lx->buf_len)
                    return text_token(lx, val);
                if (lx->partial) {
                    lx->need_more = true;
                    return TOK_NEED_MORE;
                }
                const SglOpen *o = &lx->open[lx->depth - 1];
                sgl_diag_error(lx->diags, sgl_loc(lx->src, o->off, triple ? 4 : 2),
                               "unterminated raw string");
                *start = lx->tok;
                return end_string(lx);
            }
            *       { bad_byte(lx, " in string"); continue; }
        */
    }
}

/* Decimal int literal with overflow check (value 0 after an error). */
static int int_token(SglLexer *lx, SGLYYSTYPE *val)
{
    uint64_t v = 0;
    for (const unsigned char *p = lx->tok; p < lx->cur; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10) {
            sgl_diag_error(lx->diags, span(lx, lx->tok, lx->cur),
                           "integer literal too large (the maximum is %lld)", (long long)INT64_MAX);
            v = 0;
            break;
        }
        v = v * 10 + d;
    }
    val->ival = (int64_t)v;
    return TOK_INT;
}

static int float_token(SglLexer *lx, SGLYYSTYPE *val)
{
    char small[64];
    size_t n = (size_t)(lx->cur - lx->tok);
    char *s = n < sizeof small ? small : malloc(n + 1);
    val->fval = 0;
    if (!s) {
        sgl_diag_error(lx->diags, span(lx, lx->tok, lx->cur), "out of memory");
        lx->fatal = true;
        return TOK_FLOAT;
    }
    memcpy(s, lx->tok, n);
    s[n] = '\0';
    errno = 0;
    double d = strtod(s, NULL);
    if (s != small)
        free(s);
    if (isinf(d) || (errno == ERANGE && fabs(d) > 1.0))
        sgl_diag_error(lx->diags, span(lx, lx->tok, lx->cur), "float literal out of range");
    else
        val->fval = d;
    return TOK_FLOAT;
}

static int ident_token(SglLexer *lx, SGLYYSTYPE *val)
{
    size_t n = (size_t)(lx->cur - lx->tok);
    if (n > SGL_MAX_IDENT_LEN)
        sgl_diag_error(lx->diags, span(lx, lx->tok, lx->cur),
                       "identifier longer than the limit of %d bytes", SGL_MAX_IDENT_LEN);
    val->ident.name = ast_intern(lx->b, (const char *)lx->tok, n);
    val->ident.loc = span(lx, lx->tok, lx->cur);
    return TOK_IDENT;
}

static int open_string(SglLexer *lx, SGLYYSTYPE *val, bool triple, bool raw)
{
    push_open(lx, raw ? (triple ? 'Q' : 'R') : (triple ? 'T' : '"'), lx->tok);
    lx->str_bytes = 0;
    lx->str_too_long = false;
    val->triple = triple;
    if (triple && lx->cur[0] == '\n')
        lx->cur++;
    else if (triple && lx->cur[0] == '\r' && lx->cur[1] == '\n')
        lx->cur += 2;
    return TOK_STR_BEGIN;
}

/* Scans one code token; *start is set to its first byte. */
static int scan_code(SglLexer *lx, SGLYYSTYPE *val, const unsigned char **start)
{
    for (;;) {
        lx->tok = lx->cur;
        *start = lx->tok;
        /*!re2c
            [ \t\r]+    { continue; }
            "\n"        { note_newline(lx); continue; }
            "//"        { skip_line_comment(lx); continue; }
            "/*"        {
                if (!skip_block_comment(lx)) {
                    lx->need_more = true;
                    return TOK_NEED_MORE;
                }
                continue;
            }
            "and"       { return TOK_AND; }
            "assistant" { return TOK_ASSISTANT; }
            "break"     { return TOK_BREAK; }
            "capture"   { return TOK_CAPTURE; }
            "const"     { return TOK_CONST; }
            "continue"  { return TOK_CONTINUE; }
            "else"      { return TOK_ELSE; }
            "extern"    { return TOK_EXTERN; }
            "false"     { return TOK_FALSE; }
            "fn"        { return TOK_FN; }
            "for"       { return TOK_FOR; }
            "fork"      { return TOK_FORK; }
            "from"      { return TOK_FROM; }
            "gen"       { return TOK_GEN; }
            "if"        { return TOK_IF; }
            "import"    { return TOK_IMPORT; }
            "in"        { return TOK_IN; }
            "join"      { return TOK_JOIN; }
            "let"       { return TOK_LET; }
            "not"       { return TOK_NOT; }
            "or"        { return TOK_OR; }
            "return"    { return TOK_RETURN; }
            "select"    { return TOK_SELECT; }
            "system"    { return TOK_SYSTEM; }
            "true"      { return TOK_TRUE; }
            "type"      { return TOK_TYPE; }
            "user"      { return TOK_USER; }
            "while"     { return TOK_WHILE; }
            ident       { return ident_token(lx, val); }
            digits      { return int_token(lx, val); }
            digits "." digits exponent? | digits exponent { return float_token(lx, val); }
            "\"\"\""    { return open_string(lx, val, true, false); }
            "\""        { return open_string(lx, val, false, false); }
            "r\"\"\""   { return open_string(lx, val, true, true); }
            "r\""       { return open_string(lx, val, false, true); }
            "=="        { return TOK_EQ; }
            "!="        { return TOK_NE; }
            "<="        { return TOK_LE; }
            ">="        { return TOK_GE; }
            "+="        { return TOK_PLUSEQ; }
            ".."        { return TOK_DOTDOT; }
            "->"        { return TOK_ARROW; }
            "("         { push_open(lx, '(', lx->tok); return '('; }
            "["         { push_open(lx, '[', lx->tok); return '['; }
            "{"         { push_open(lx, '{', lx->tok); return '{'; }
            ")"         { pop_if(lx, '('); return ')'; }
            "]"         { pop_if(lx, '['); return ']'; }
            "}"         {
                if (top(lx) == 'i') {
                    lx->depth--;
                    return TOK_INTERP_END;
                }
                pop_if(lx, '{');
                return '}';
            }
            [-+*/%<>=,:.;] { return *lx->tok; }
            $           {
                if (lx->partial && lx->depth > 0) {
                    lx->need_more = true;
                    return TOK_NEED_MORE;
                }
                return TOK_YYEOF;
            }
            u8_multi    {
                uint32_t cp = 0;
                sgl_utf8_decode(lx->tok, (size_t)(lx->cur - lx->tok), &cp);
                sgl_diag_error(lx->diags, span(lx, lx->tok, lx->cur),
                               "unexpected character U+%04X '%.*s' (non-ASCII text is "
                               "allowed only in strings and comments)",
                               (unsigned)cp, (int)(lx->cur - lx->tok), (const char *)lx->tok);
                return TOK_SGLYYerror;
            }
            *           { bad_byte(lx, ""); return TOK_SGLYYerror; }
        */
    }
}

static bool can_end_stmt(int tok)
{
    switch (tok) {
    case TOK_IDENT: case TOK_INT: case TOK_FLOAT: case TOK_STR_END: case TOK_TRUE:
    case TOK_FALSE: case ')': case ']': case '}': case TOK_BREAK: case TOK_CONTINUE:
    case TOK_RETURN:
        return true;
    default:
        return false;
    }
}

/* `fn`, `extern`, `import`, `const` and `type` only start declarations, which
 * live at top level. Seeing one inside open brackets means a bracket was left
 * open by mistake: the bracket stack is reset (remembering the innermost entry
 * for the parser's note) and a statement end is implied, so the parser's
 * error recovery resynchronizes on the declaration. */
static void reset_at_declaration(SglLexer *lx, int tok)
{
    if (lx->depth == 0)
        return;
    if (tok != TOK_FN && tok != TOK_EXTERN && tok != TOK_IMPORT && tok != TOK_CONST &&
        tok != TOK_TYPE)
        return;
    if (tok == TOK_FN && lx->last == TOK_EXTERN)
        return;
    for (uint32_t i = 0; i < lx->depth; i++)
        if (strchr("\"TRQi", lx->open[i].kind))
            return;
    lx->dropped = lx->open[lx->depth - 1];
    lx->has_dropped = true;
    lx->depth = 0;
    lx->newline = true;
}

/* Records the delivered token for the `;` rule and block-keyword notes. */
static int deliver(SglLexer *lx, int tok, SglLoc loc)
{
    lx->prev = lx->last;
    lx->last = tok;
    lx->last_end = loc.off + loc.len;
    if (opens_block(tok))
        lx->last_kw = tok;
    else if (tok == ';' || tok == '{')
        lx->last_kw = 0;
    return tok;
}

int sgl_lex(SglLexer *lx, SGLYYSTYPE *val, SglLoc *loc)
{
    if (lx->has_pending) {
        lx->has_pending = false;
        lx->last_implicit = false;
        *val = lx->pend_val;
        *loc = lx->pend_loc;
        return deliver(lx, lx->pend_tok, *loc);
    }
    const unsigned char *start = lx->cur;
    char t = top(lx);
    int tok = (t == '"' || t == 'T') ? scan_string(lx, val, &start)
              : (t == 'R' || t == 'Q') ? scan_raw(lx, val, &start)
                                       : scan_code(lx, val, &start);
    *loc = span(lx, start, lx->cur);
    reset_at_declaration(lx, tok);
    bool is_newline = lx->newline;
    lx->newline = false;
    lx->last_implicit = false;
    if (tok != TOK_NEED_MORE && can_end_stmt(lx->last) &&
        ((is_newline && tok != TOK_ELSE) || tok == '}' || tok == TOK_YYEOF)) {
        lx->has_pending = true;
        lx->pend_tok = tok;
        lx->pend_val = *val;
        lx->pend_loc = *loc;
        lx->last_implicit = true;
        *loc = sgl_loc(lx->src, lx->last_end, 0);
        return deliver(lx, ';', *loc);
    }
    return deliver(lx, tok, *loc);
}
