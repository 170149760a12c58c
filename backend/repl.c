/* repl.c -- the `sglc repl` session (see repl.h for the model).
 *
 * Text is kept in growable Bufs. A turn's program is synthesized as source
 * text and compiled like any file, so the REPL adds no second semantics:
 *
 *   <declarations so far>
 *   fn main() {
 *   "<the prompt state so far, escaped>"
 *   let v: T = parse_json("<v's value as JSON, escaped>")      one per variable
 *   if true {
 *   <the input>
 *   }
 *   }
 *
 * The inner block lets an input re-declare a session variable (shadowing);
 * its slots are main's, so every name it binds comes back in the run's vars.
 * Streaming skips the re-appended state: the stream FILE drops that many
 * bytes first (a fopencookie filter), so only the new text is echoed.
 */
#include "backend/repl.h"

#include <stdlib.h>
#include <string.h>

#define REPL_NAME "<repl>"

typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} Buf;

static void buf_add(Buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void buf_puts(Buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_clear(Buf *b)
{
    b->len = 0;
    b->oom = false;
    if (b->s)
        b->s[0] = '\0';
}

static void buf_free(Buf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

/* Length of a valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
    if (c >= 0xF5 || k == 0 || k > n)
        return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] >= 0x90))
        return 0;
    return k;
}

/* s as the body of a .sgl "..." literal: escapes, {{ }}, control characters
 * as \u{..}; invalid UTF-8 (which a literal may not hold) becomes U+FFFD. */
static void buf_sgl_string(Buf *b, const char *s, size_t n)
{
    buf_puts(b, "\"");
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        char tmp[16];
        if (c >= 0x80) {
            size_t k = utf8_len((const unsigned char *)s + i, n - i);
            if (k) {
                buf_add(b, s + i, k);
                i += k;
            } else {
                buf_puts(b, "\\u{FFFD}");
                i++;
            }
            continue;
        }
        switch (c) {
        case '"': buf_puts(b, "\\\""); break;
        case '\\': buf_puts(b, "\\\\"); break;
        case '{': buf_puts(b, "{{"); break;
        case '}': buf_puts(b, "}}"); break;
        case '\n': buf_puts(b, "\\n"); break;
        case '\t': buf_puts(b, "\\t"); break;
        case '\r': buf_puts(b, "\\r"); break;
        default:
            if (c < 0x20 || c == 0x7f) {
                if (c) {
                    snprintf(tmp, sizeof tmp, "\\u{%X}", c);
                    buf_puts(b, tmp);
                }
            } else {
                buf_add(b, (const char *)&c, 1);
            }
        }
        i++;
    }
    buf_puts(b, "\"");
}

typedef struct {
    char *name, *type, *json;    /* owned */
} Var;

typedef struct {
    IrProgram *p;
    SglExec *x;
} Turn;

struct SglRepl {
    SglReplOpts o;
    Buf decls;                   /* accepted declarations */
    Buf history;                 /* accepted statements, for :save */
    Buf pending;                 /* the input so far */
    Buf state;                   /* the prompt state */
    Var *vars;
    uint32_t n_vars;
    Turn *turns;                 /* every turn's program and executor (freed at the end) */
    uint32_t n_turns, cap_turns;
    const IrProgram *last;       /* the latest turn's program (:ir) */
    SglRunCounters last_c;
    int64_t n_runs;
};

static void vars_clear(SglRepl *r)
{
    for (uint32_t i = 0; i < r->n_vars; i++) {
        free(r->vars[i].name);
        free(r->vars[i].type);
        free(r->vars[i].json);
    }
    free(r->vars);
    r->vars = NULL;
    r->n_vars = 0;
}

SglRepl *sgl_repl_new(const SglReplOpts *o)
{
    SglRepl *r = calloc(1, sizeof *r);
    if (r)
        r->o = *o;
    return r;
}

void sgl_repl_free(SglRepl *r)
{
    if (!r)
        return;
    for (uint32_t i = 0; i < r->n_turns; i++) {
        sgl_exec_free(r->turns[i].x);
        ir_program_free(r->turns[i].p);
    }
    free(r->turns);
    vars_clear(r);
    buf_free(&r->decls);
    buf_free(&r->history);
    buf_free(&r->pending);
    buf_free(&r->state);
    free(r);
}

/* ------------------------------------------------------------ streaming */

typedef struct {
    FILE *out;
    size_t skip;                 /* bytes still to drop (the re-appended state) */
} Skip;

static ssize_t skip_write(void *cookie, const char *buf, size_t n)
{
    Skip *s = cookie;
    size_t drop = n < s->skip ? n : s->skip;
    s->skip -= drop;
    if (n > drop) {
        fwrite(buf + drop, 1, n - drop, s->out);
        fflush(s->out);
    }
    return (ssize_t)n;
}

/* ------------------------------------------------------------ turns */

static bool starts_decl(const char *s)
{
    static const char *const kw[] = {"fn", "type", "const", "extern", "import"};
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++) {
        size_t n = strlen(kw[i]);
        if (strncmp(s, kw[i], n) == 0 && (s[n] == ' ' || s[n] == '\t' || s[n] == '\n'))
            return true;
    }
    return false;
}

/* s starts with `fn main()` (no parameters) and a `{`: the opening brace. */
static const char *starts_main(const char *s)
{
    s += strspn(s, " \t\r\n");
    if (strncmp(s, "fn", 2) != 0)
        return NULL;
    s += 2;
    s += strspn(s, " \t");
    if (strncmp(s, "main", 4) != 0)
        return NULL;
    s += 4;
    s += strspn(s, " \t");
    if (*s++ != '(')
        return NULL;
    s += strspn(s, " \t");
    if (*s++ != ')')
        return NULL;
    s += strspn(s, " \t");
    return *s == '{' ? s : NULL;
}

/* The body of `fn main() { BODY }` in s (malloc'd), when s is one with its
 * final `}` the last non-blank character; else NULL. */
static char *main_body(const char *s)
{
    const char *open = starts_main(s);
    if (!open)
        return NULL;
    size_t n = strlen(s);
    while (n > 0 && strchr(" \t\r\n", s[n - 1]))
        n--;
    if (n == 0 || s[n - 1] != '}' || s + n - 1 <= open)
        return NULL;
    return strndup(open + 1, (size_t)(s + n - 1 - (open + 1)));
}

/* The turn program around input, without its closing part; or, with
 * `closing`, only that part (appended after the former). */
static void build_program(SglRepl *r, Buf *b, const char *input, bool decl, bool closing)
{
    if (closing) {
        buf_puts(b, decl ? "\nfn main() {\n}\n" : "\n}\n}\n");
        return;
    }
    buf_add(b, r->decls.s ? r->decls.s : "", r->decls.len);
    if (decl) {
        buf_puts(b, input);
        return;
    }
    buf_puts(b, "fn main() {\n");
    if (r->state.len) {
        buf_sgl_string(b, r->state.s, r->state.len);
        buf_puts(b, "\n");
    }
    for (uint32_t i = 0; i < r->n_vars; i++) {
        buf_puts(b, "let ");
        buf_puts(b, r->vars[i].name);
        buf_puts(b, ": ");
        buf_puts(b, r->vars[i].type);
        buf_puts(b, " = parse_json(");
        buf_sgl_string(b, r->vars[i].json, strlen(r->vars[i].json));
        buf_puts(b, ")\n");
    }
    buf_puts(b, "if true {\n");
    buf_puts(b, input);
}

/* Session variables := the run's variables of main (types from its slots). */
static void take_vars(SglRepl *r, const IrFunc *fn, json_t *vars)
{
    vars_clear(r);
    size_t n = json_object_size(vars);
    if (!n || !(r->vars = calloc(n, sizeof *r->vars)))
        return;
    const char *key;
    json_t *v;
    json_object_foreach(vars, key, v) {
        const IrType *t = NULL;
        for (uint32_t k = 0; k < fn->n_slots; k++)
            if (fn->slots[k].name && strcmp(fn->slots[k].name, key) == 0)
                t = fn->slots[k].type;
        char tb[256];
        /* meta records have no name in the language: they stay behind */
        if (!t || (t->kind == IR_TY_RECORD && strcmp(t->name ? t->name : "", "meta") == 0))
            continue;
        Var *d = &r->vars[r->n_vars];
        d->name = strdup(key);
        d->type = strdup(ir_type_name(t, tb, sizeof tb));
        d->json = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
        if (!d->name || !d->type || !d->json) {
            free(d->name);
            free(d->type);
            free(d->json);
            continue;
        }
        r->n_vars++;
    }
}

static bool keep_turn(SglRepl *r, IrProgram *p, SglExec *x)
{
    if (r->n_turns == r->cap_turns) {
        uint32_t nc = r->cap_turns ? r->cap_turns * 2 : 16;
        Turn *nt = realloc(r->turns, nc * sizeof *nt);
        if (!nt)
            return false;
        r->turns = nt;
        r->cap_turns = nc;
    }
    r->turns[r->n_turns++] = (Turn){p, x};
    return true;
}

/* Runs one compiled turn; on success the session takes its state and vars. */
static void run_turn(SglRepl *r, IrProgram *p, const char *input)
{
    FILE *out = r->o.out;
    SglExecOpts xo = r->o.xo;
    Skip sk = {out, r->state.len};
    FILE *stream = NULL;
    if (r->o.stream) {
        cookie_io_functions_t io = {.write = skip_write};
        if ((stream = fopencookie(&sk, "w", io)))
            setvbuf(stream, NULL, _IONBF, 0);
    }
    xo.stream = stream;
    SglExec *x = NULL;
    char msg[1024];
    if (!sgl_exec_new(p, r->o.engine, r->o.tmpl, &xo, &x, msg, sizeof msg)) {
        fprintf(r->o.err, "%s\n", msg);
        ir_program_free(p);
        if (stream)
            fclose(stream);
        return;
    }
    if (!keep_turn(r, p, x)) {
        fprintf(r->o.err, "out of memory\n");
        sgl_exec_free(x);
        ir_program_free(p);
        if (stream)
            fclose(stream);
        return;
    }
    r->last = p;
    sgl_exec_warm(x);
    SglRunResult res;
    bool ok = sgl_exec_run_main(x, NULL, &res);
    if (stream)
        fclose(stream);
    r->last_c = res.c;
    r->n_runs++;
    if (!ok) {
        if (r->o.stream)
            fputc('\n', out);
        fprintf(r->o.err, "%s\n", res.error ? res.error : "runtime error");
        fprintf(r->o.err, "(the state and variables are unchanged)\n");
    } else {
        if (!r->o.stream && res.len > r->state.len)
            fwrite(res.text + r->state.len, 1, res.len - r->state.len, out);
        if (res.len > r->state.len && res.text[res.len - 1] != '\n')
            fputc('\n', out);
        buf_clear(&r->state);
        buf_add(&r->state, res.text, res.len);
        take_vars(r, p->funcs[p->main], res.vars);
        buf_puts(&r->history, input);
        fprintf(out, "[prompt %lld tokens, %lld cached; %lld generated; %lld requests]\n",
                (long long)res.c.prompt_tokens, (long long)res.c.cached_tokens,
                (long long)res.c.completion_tokens, (long long)res.c.requests);
    }
    fflush(out);
    sgl_run_result_free(&res);
}

/* Writes rendered diagnostics with lines counted from the input's first
 * line (`input:1:5:`, gutter `1 |`); lines before it (earlier declarations,
 * the re-appended state) are named `session:` and keep their numbers. */
static void put_diags(FILE *f, const char *d, size_t len, uint32_t line0)
{
    const char *end = d + len;
    while (d < end) {
        const char *nl = memchr(d, '\n', (size_t)(end - d));
        size_t n = nl ? (size_t)(nl - d) + 1 : (size_t)(end - d);
        size_t pre = strlen(REPL_NAME);
        char *rest;
        if (n > pre + 1 && strncmp(d, REPL_NAME, pre) == 0 && d[pre] == ':') {
            unsigned long line = strtoul(d + pre + 1, &rest, 10);
            if (line > line0)
                fprintf(f, "input:%lu", line - line0);
            else
                fprintf(f, "session:%lu", line);
            fwrite(rest, 1, n - (size_t)(rest - d), f);
        } else {
            size_t sp = strspn(d, " ");
            unsigned long line = strtoul(d + sp, &rest, 10);
            if (rest > d + sp && rest < d + n && strncmp(rest, " |", 2) == 0 && line > line0) {
                char num[32];
                int w = snprintf(num, sizeof num, "%lu", line - line0);
                int width = (int)(rest - d);
                fprintf(f, "%*s%s", width > w ? width - w : 0, "", num);
                fwrite(rest, 1, n - (size_t)(rest - d), f);
            } else {
                fwrite(d, 1, n, f);
            }
        }
        d += n;
    }
}

/* The pending input is complete or wrong: compile it and act. MORE when it
 * is only unfinished (see repl.h); force: an empty line, show errors anyway. */
static SglReplStatus submit(SglRepl *r, bool force)
{
    bool decl = starts_decl(r->pending.s);
    const char *input = r->pending.s;
    char *body = NULL;
    Buf src = {0};
    char *diag = NULL;
    size_t diag_len = 0, err_off = 0;
    FILE *df = open_memstream(&diag, &diag_len);
    IrProgram *p = NULL;
    SglReplStatus st = SGL_REPL_DONE;
    if (!df) {
        fprintf(r->o.err, "out of memory\n");
        goto out;
    }
    if (decl && (body = main_body(r->pending.s))) {
        /* `fn main() { ... }` (a :save'd session): its body runs as one turn */
        decl = false;
        input = body;
    } else if (decl && starts_main(r->pending.s)) {
        st = SGL_REPL_MORE;     /* its closing brace has not come yet */
        goto out;
    }
    build_program(r, &src, "", decl, false);
    uint32_t line0 = 0;     /* lines before the input */
    for (size_t i = 0; i < src.len; i++)
        line0 += src.s[i] == '\n';
    buf_puts(&src, input);
    size_t input_end = src.len;
    build_program(r, &src, "", decl, true);    /* only the closing part */
    if (src.oom) {
        fprintf(r->o.err, "out of memory\n");
        goto out;
    }
    SglReplCompileRc rc = r->o.cc.compile(r->o.cc.user, REPL_NAME, src.s, src.len, df, &p, &err_off);
    fflush(df);
    if (rc == SGL_RC_INCOMPLETE || (rc == SGL_RC_ERROR && err_off >= input_end && !force)) {
        st = SGL_REPL_MORE;
        goto out;
    }
    if (rc != SGL_RC_OK) {
        put_diags(r->o.err, diag, diag_len, line0);
        fprintf(r->o.err, "(nothing was run; the state and variables are unchanged)\n");
        goto out;
    }
    if (decl) {
        buf_add(&r->decls, r->pending.s, r->pending.len);
        ir_program_free(p);
        fprintf(r->o.out, "[declared]\n");
        goto out;
    }
    run_turn(r, p, input);
out:
    if (df)
        fclose(df);
    free(diag);
    free(body);
    buf_free(&src);
    if (st != SGL_REPL_MORE)
        buf_clear(&r->pending);
    return st;
}

/* ------------------------------------------------------------ commands */

static void cmd_help(FILE *f)
{
    fputs("Enter statements (they run at once, appending to the prompt state) or declarations\n"
          "(fn, type, const, extern, import: kept for later input). An input continues over\n"
          "several lines until it is complete (open blocks, brackets and strings wait).\n"
          "  :help          this text\n"
          "  :state         print the prompt state\n"
          "  :vars          the variables and their values\n"
          "  :ir            the IR of the last turn\n"
          "  :stats         cache hit rate, cached tokens, the last turn's tokens\n"
          "  :reset         clear the prompt state, the variables and the declarations\n"
          "  :load FILE     read FILE as if typed (a `fn main()` runs its body as one turn)\n"
          "  :save FILE     write the session as a program (declarations + fn main)\n"
          "  :quit          leave (also Ctrl-D)\n", f);
}

static void cmd_save(SglRepl *r, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(r->o.err, "cannot write '%s'\n", path);
        return;
    }
    fwrite(r->decls.s ? r->decls.s : "", 1, r->decls.len, f);
    fputs("fn main() {\n", f);
    fwrite(r->history.s ? r->history.s : "", 1, r->history.len, f);
    fputs("}\n", f);
    if (fclose(f) != 0)
        fprintf(r->o.err, "cannot write '%s'\n", path);
    else
        fprintf(r->o.out, "saved to %s\n", path);
}

static void cmd_stats(SglRepl *r)
{
    SglEngineStats st = sgl_engine_stats(r->o.engine);
    fprintf(r->o.out,
            "engine: cache hit rate %.1f%%, cached tokens %lld, prefill tokens %lld, decode tokens "
            "%lld, requests %lld\n",
            st.cache_hit_rate * 100.0, (long long)st.cached_tokens, (long long)st.prefill_tokens,
            (long long)st.decode_tokens, (long long)st.requests_finished);
    fprintf(r->o.out, "last turn: prompt tokens %lld, cached tokens %lld, generated %lld, requests %lld "
                      "(%lld turns run)\n",
            (long long)r->last_c.prompt_tokens, (long long)r->last_c.cached_tokens,
            (long long)r->last_c.completion_tokens, (long long)r->last_c.requests,
            (long long)r->n_runs);
}

static SglReplStatus command(SglRepl *r, const char *line)
{
    FILE *out = r->o.out;
    char name[32] = "";
    const char *arg = line + 1;
    size_t n = strcspn(arg, " \t");
    if (n < sizeof name)
        memcpy(name, arg, n);
    arg += n;
    while (*arg == ' ' || *arg == '\t')
        arg++;
    if (strcmp(name, "help") == 0 || strcmp(name, "h") == 0) {
        cmd_help(out);
    } else if (strcmp(name, "quit") == 0 || strcmp(name, "q") == 0) {
        return SGL_REPL_QUIT;
    } else if (strcmp(name, "state") == 0) {
        fwrite(r->state.s ? r->state.s : "", 1, r->state.len, out);
        if (r->state.len == 0 || r->state.s[r->state.len - 1] != '\n')
            fputc('\n', out);
    } else if (strcmp(name, "vars") == 0) {
        if (!r->n_vars)
            fputs("(no variables)\n", out);
        for (uint32_t i = 0; i < r->n_vars; i++)
            fprintf(out, "%s: %s = %s\n", r->vars[i].name, r->vars[i].type, r->vars[i].json);
    } else if (strcmp(name, "ir") == 0) {
        if (r->last)
            ir_print(out, r->last);
        else
            fputs("(no turn has run yet)\n", out);
    } else if (strcmp(name, "stats") == 0) {
        cmd_stats(r);
    } else if (strcmp(name, "reset") == 0) {
        buf_clear(&r->state);
        buf_clear(&r->history);
        buf_clear(&r->decls);
        vars_clear(r);
        fputs("state, variables and declarations cleared\n", out);
    } else if (strcmp(name, "load") == 0 && *arg) {
        sgl_repl_load(r, arg);
    } else if (strcmp(name, "save") == 0 && *arg) {
        cmd_save(r, arg);
    } else {
        fprintf(r->o.err, "unknown command '%s' (:help lists them)\n", line);
    }
    fflush(out);
    return SGL_REPL_DONE;
}

/* ------------------------------------------------------------ input */

SglReplStatus sgl_repl_feed(SglRepl *r, const char *line)
{
    if (r->pending.len == 0) {
        const char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == ':')
            return command(r, s);
        if (*s == '\0' || (s[0] == '/' && s[1] == '/'))
            return SGL_REPL_DONE;    /* nothing to run: a blank or comment line */
    }
    bool force = line[strspn(line, " \t")] == '\0';
    buf_puts(&r->pending, line);
    buf_puts(&r->pending, "\n");
    if (r->pending.oom) {
        fprintf(r->o.err, "out of memory\n");
        buf_clear(&r->pending);
        return SGL_REPL_DONE;
    }
    return submit(r, force);
}

bool sgl_repl_load(SglRepl *r, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(r->o.err, "cannot read '%s'\n", path);
        return false;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    SglReplStatus st = SGL_REPL_DONE;
    while ((n = getline(&line, &cap, f)) >= 0 && st != SGL_REPL_QUIT) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        st = sgl_repl_feed(r, line);
    }
    free(line);
    fclose(f);
    if (st == SGL_REPL_MORE) {
        fprintf(r->o.err, "%s: the file ends inside an incomplete input (dropped)\n", path);
        buf_clear(&r->pending);
        return false;
    }
    return true;
}
