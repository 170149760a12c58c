/* test_sema.c -- the semantic checker: annotations for lowering (types,
 * symbols, folded constants, gather), imports (relative, std, diamond,
 * cycle), error accumulation, literal-offset mapping for regex/JSON errors,
 * robustness on hand-built trees with NULL and AST_ERROR children, and the
 * arena's fail-the-Nth-allocation mode walked over the whole checker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "frontend/parse.h"
#include "frontend/sema_int.h"

/* One parse + check of `text` named `name`, with its own arena and sources. */
typedef struct {
    SglSource *src;
    SglArena arena;
    SglDiags diags;
    AstNode *prog;
    SemaResult res;
    SglSource **sources;
    size_t n_sources, cap_sources;
    bool ok;
} Checked;

static Checked *check_named(const char *name, const char *text, const char *stdlib)
{
    Checked *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->src = sgl_source_new(name, text, strlen(text));
    assert_non_null(c->src);
    sgl_arena_init(&c->arena);
    sgl_diags_init(&c->diags, 0);
    c->prog = sgl_parse(c->src, &c->arena, &c->diags, false, NULL);
    assert_non_null(c->prog);
    assert_int_equal(c->diags.n_errors, 0);
    SemaOptions opt = {stdlib, &c->sources, &c->n_sources, &c->cap_sources};
    c->ok = sema_check(c->prog, c->src, &c->arena, &c->diags, &opt, &c->res);
    return c;
}

static Checked *check(const char *text)
{
    return check_named("t.sgl", text, NULL);
}

static void checked_free(Checked *c)
{
    for (size_t i = 0; i < c->n_sources; i++)
        sgl_source_free(c->sources[i]);
    free(c->sources);
    sgl_diags_deinit(&c->diags);
    sgl_arena_deinit(&c->arena);
    sgl_source_free(c->src);
    free(c);
}

static char *render(const SglDiags *d)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    sgl_diags_render(d, f);
    fclose(f);
    return buf;
}

static const char *ty(const AstType *t, char *buf)
{
    return type_name(t, buf, TNAME_CAP);
}

/* The top-level declaration named `name`. */
static AstNode *decl(AstNode *prog, const char *name)
{
    for (uint32_t i = 0; i < prog->prog.decls->n; i++) {
        AstNode *d = prog->prog.decls->items[i];
        AstStr n = d->kind == AST_FN || d->kind == AST_EXTERN ? d->fn.name : d->decl.name;
        if (d->kind != AST_IMPORT && n.s && strcmp(n.s, name) == 0)
            return d;
    }
    fail_msg("no declaration %s", name);
    return NULL;
}

static AstNode *stmt(AstNode *fn, uint32_t i)
{
    assert_true(i < fn->fn.body->block.stmts->n);
    return fn->fn.body->block.stmts->items[i];
}

static void test_annotations(void **state)
{
    (void)state;
    char b[TNAME_CAP];
    Checked *c = check("const N = 2 + 3 * 4\n"
                       "const S = \"a{N}b{[1, 2]}{1.5}{true}\"\n"
                       "const F: float = N\n"
                       "const G: list[float] = [1, 2.5]\n"
                       "const H = \"{F} {G} {[\"a\\n\\u{8}\"]}\"\n"
                       "const E = \"{1e15} {1e16} {0.0001} {0.00001}\"\n"
                       "type City = { name: str, pop: int }\n"
                       "fn city(doc: str) -> City {\n"
                       "    assistant { gen info: City(max_tokens: 64, temperature: 0) }\n"
                       "    return info\n"
                       "}\n"
                       "fn main(doc: str, xs: list[str]) {\n"
                       "    let c = city(doc)\n"
                       "    fork x in xs {\n"
                       "        gen a(max_tokens: 4)\n"
                       "        let k = len(x)\n"
                       "    }\n"
                       "    gen many: int(n: 3)\n"
                       "    \"{c.name} {a[0]} {k[1] + many[2]}\"\n"
                       "}\n");
    assert_true(c->ok);
    assert_int_equal(c->diags.n_errors, 0);
    AstNode *n = decl(c->prog, "N"), *s = decl(c->prog, "S"), *f = decl(c->prog, "F");
    SemaSym *ns = n->sym;
    assert_non_null(ns);
    assert_int_equal(ns->kind, SYM_CONST);
    assert_non_null(ns->value);
    assert_int_equal(ns->value->kind, SEMA_VAL_INT);
    assert_int_equal(ns->value->i, 14);
    const SemaValue *sv = ((SemaSym *)s->sym)->value;
    assert_non_null(sv);
    assert_string_equal(sv->s.s, "a14b[1,2]1.5true");
    assert_string_equal(ty(f->type, b), "float");
    /* int widened to float in the folded value, as the runtime would */
    const SemaValue *fv = ((SemaSym *)f->sym)->value;
    assert_int_equal(fv->kind, SEMA_VAL_FLOAT);
    assert_true(fv->f == 14.0);
    const SemaValue *hv = ((SemaSym *)decl(c->prog, "H")->sym)->value;
    assert_non_null(hv);
    assert_string_equal(hv->s.s, "14.0 [1.0,2.5] [\"a\\n\\b\"]");
    /* folded floats print as the runtime prints them (Python repr layout) */
    const SemaValue *ev = ((SemaSym *)decl(c->prog, "E")->sym)->value;
    assert_string_equal(ev->s.s, "1000000000000000.0 1e+16 0.0001 1e-05");
    /* fn signature and the record type */
    AstNode *cf = decl(c->prog, "city");
    SemaSym *cs = cf->sym;
    assert_int_equal(cs->kind, SYM_FN);
    assert_string_equal(ty(cs->type, b), "City");
    assert_int_equal(cs->n_params, 1);
    assert_string_equal(ty(cs->params[0], b), "str");
    /* role blocks do not open a scope: `info` is visible after assistant {} */
    AstNode *ret = stmt(cf, 1);
    assert_int_equal(ret->kind, AST_RETURN);
    SemaSym *info = ret->ret.value->sym;
    assert_non_null(info);
    assert_int_equal(info->local, LOCAL_GEN);
    AstNode *gen = stmt(cf, 0)->role.body->block.stmts->items[0];
    assert_ptr_equal(gen->sym, info);
    AstNode *opt = gen->gen.options->items[1];
    assert_non_null(opt->sym); /* folded option value */
    assert_int_equal(((SemaValue *)opt->sym)->i, 0);
    /* main: gather makes list[str] and list[int]; n: 3 makes list[int] */
    AstNode *mf = decl(c->prog, "main");
    assert_ptr_equal(c->res.main, mf->sym);
    AstNode *fork = stmt(mf, 1);
    assert_int_equal(fork->kind, AST_FORK);
    assert_string_equal(ty(fork->type, b), "str");
    AstNode *ga = fork->fork.body->block.stmts->items[0];
    SemaSym *gs = ga->sym;
    assert_non_null(gs->gather);
    assert_int_equal(gs->gather->local, LOCAL_GATHER);
    assert_string_equal(ty(gs->gather->type, b), "list[str]");
    AstNode *many = stmt(mf, 2);
    assert_string_equal(ty(many->type, b), "list[int]");
    AstNode *text = stmt(mf, 3)->expr_stmt.expr;
    assert_string_equal(ty(text->type, b), "str");
    AstNode *sum = text->string.parts->items[4];
    assert_int_equal(sum->kind, AST_BINARY);
    assert_string_equal(ty(sum->type, b), "int");
    assert_ptr_equal(sum->binary.lhs->index.base->sym,
                     ((SemaSym *)fork->fork.body->block.stmts->items[1]->sym)->gather);
    /* locals have distinct slots; params come first */
    assert_int_equal(((SemaSym *)mf->fn.params->items[0]->sym)->slot, 0);
    assert_int_equal(((SemaSym *)mf->fn.params->items[1]->sym)->slot, 1);
    assert_true(((SemaSym *)mf->sym)->n_locals >= 7);
    assert_int_equal(c->res.n_modules, 1);
    checked_free(c);
}

/* Every error in a file is reported, in source order, and the message
 * count is exact (no cascades from poisoned expressions). */
static void test_all_errors_reported(void **state)
{
    (void)state;
    Checked *c = check("fn main(q: str) {\n"
                       "    let n: int = \"x\"\n"         /* 1 */
                       "    let m = n + undefined_a\n"     /* 2 (no cascade on m) */
                       "    \"{m + 1}\"\n"
                       "    gen a(max_tokens: 0)\n"        /* 3 */
                       "    break\n"                       /* 4 */
                       "    select s from q\n"             /* 5 */
                       "    \"{nope(1)}\"\n"               /* 6 */
                       "}\n");
    assert_false(c->ok);
    assert_int_equal(c->diags.n_errors, 6);
    char *r = render(&c->diags);
    const char *order[] = {"t.sgl:2:", "t.sgl:3:", "t.sgl:5:", "t.sgl:6:", "t.sgl:7:",
                           "t.sgl:8:"};
    const char *at = r;
    for (size_t i = 0; i < 6; i++) {
        const char *p = strstr(at, order[i]);
        assert_non_null(p);
        at = p;
    }
    free(r);
    checked_free(c);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Relative and std imports, a diamond (d loaded once), modules in dependency
 * order with the root last, and names resolving into the defining module. */
static void test_imports(void **state)
{
    (void)state;
    char dir[] = "/tmp/sgl_sema_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p[512], std[512], root[512];
    snprintf(std, sizeof std, "%s/std", dir);
    assert_int_equal(mkdir(std, 0700), 0);
    snprintf(p, sizeof p, "%s/b.sgl", dir);
    write_file(p, "import \"d\"\nfn fb() -> str {\n    return fd()\n}\n");
    snprintf(p, sizeof p, "%s/std/c.sgl", dir);
    write_file(p, "import \"../d.sgl\"\nconst C = 3\n");
    snprintf(p, sizeof p, "%s/d.sgl", dir);
    write_file(p, "fn fd() -> str {\n    return \"d\"\n}\n");
    snprintf(root, sizeof root, "%s/a.sgl", dir);
    Checked *c = check_named(root, "import \"b\"\nimport \"std/c\"\n"
                                   "fn main() {\n    \"{fb()} {C}\"\n}\n", std);
    char *r = render(&c->diags);
    assert_string_equal(r, "");
    free(r);
    assert_true(c->ok);
    assert_int_equal(c->res.n_modules, 4);
    assert_int_equal(c->n_sources, 3);
    assert_ptr_equal(c->res.modules[3]->program, c->prog);
    assert_non_null(strstr(c->res.modules[0]->path, "d.sgl"));
    AstNode *mf = decl(c->prog, "main");
    AstNode *call = stmt(mf, 0)->expr_stmt.expr->string.parts->items[0];
    SemaSym *fb = call->sym;
    assert_int_equal(fb->kind, SYM_FN);
    assert_non_null(strstr(fb->module->path, "b.sgl"));
    checked_free(c);

    /* a module importing itself through another is a cycle, reported once */
    snprintf(p, sizeof p, "%s/x.sgl", dir);
    write_file(p, "import \"y\"\n");
    snprintf(p, sizeof p, "%s/y.sgl", dir);
    write_file(p, "import \"x\"\n");
    snprintf(root, sizeof root, "%s/x.sgl", dir);
    c = check_named(root, "import \"y\"\n", std);
    assert_false(c->ok);
    assert_int_equal(c->diags.n_errors, 1);
    assert_non_null(strstr(c->diags.items[0].msg, "import cycle"));
    checked_free(c);
    const char *files[] = {"b.sgl", "std/c.sgl", "d.sgl", "x.sgl", "y.sgl", "std", ""};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        remove(p);
    }
}

/* Decoded offsets inside a literal map back to the right source column
 * through escapes, \u{...} and doubled braces. */
static void test_literal_loc(void **state)
{
    (void)state;
    Checked *c = check("const R = \"a\\\\d\\u{e9}{{x(\"\n");
    /* decoded: a \ d é(2 bytes) { x (  -> offsets 0 1 2 3 5 6 7 */
    AstNode *lit = decl(c->prog, "R")->decl.value;
    uint32_t col[] = {12, 13, 15, 16, 22, 24, 25};
    uint32_t off[] = {0, 1, 2, 3, 5, 6, 7};
    for (size_t i = 0; i < 7; i++) {
        SglLoc l = sema_literal_loc(lit, off[i]);
        uint32_t line, cc;
        sgl_source_line_col(l.src, l.off, &line, &cc);
        assert_int_equal(line, 1);
        assert_int_equal(cc, col[i]);
    }
    checked_free(c);
    /* and PCRE2's error offset lands on the unmatched '(' column's end */
    c = check("fn main() {\n    gen x(regex: \"\\\\d+(\")\n}\n");
    assert_int_equal(c->diags.n_errors, 1);
    char *r = render(&c->diags);
    assert_non_null(strstr(r, "t.sgl:2:24: error: invalid regex: missing closing parenthesis"));
    free(r);
    checked_free(c);
}

/* Hand-built trees with NULL and AST_ERROR children (what the constructors
 * produce after out-of-memory) must be checked without crashing. */
static void test_broken_trees(void **state)
{
    (void)state;
    SglSource *src = sgl_source_new("b.sgl", "fn main() {}\n", 13);
    SglArena arena;
    SglDiags diags;
    sgl_arena_init(&arena);
    sgl_diags_init(&diags, 0);
    AstBuilder b;
    ast_builder_init(&b, &arena, &diags);
    SglLoc l = sgl_loc(src, 0, 2);
    AstIdent name = {ast_intern(&b, "main", 4), l};
    AstIdent x = {ast_intern(&b, "x", 1), l};
    AstList *stmts = ast_list_new(&b);
    ast_list_push(&b, stmts, ast_let(&b, l, x, NULL, ast_binary(&b, l, AST_OP_ADD, NULL,
                                                                  ast_error(&b, l))));
    ast_list_push(&b, stmts, ast_gen(&b, l, x, ast_error(&b, l), NULL));
    ast_list_push(&b, stmts, ast_fork(&b, l, x, NULL, NULL));
    ast_list_push(&b, stmts, ast_expr_stmt(&b, l, ast_call(&b, l, name, ast_list_new(&b))));
    ast_list_push(&b, stmts, ast_if(&b, l, ast_error(&b, l), NULL, NULL));
    ast_list_push(&b, stmts, ast_for(&b, l, x, NULL, NULL));
    ast_list_push(&b, stmts, ast_assign(&b, l, ast_error(&b, l), AST_OP_ADD, NULL));
    ast_list_push(&b, stmts, ast_return(&b, l, ast_field(&b, l, NULL, x)));
    ast_list_push(&b, stmts, NULL);
    AstList *decls = ast_list_new(&b);
    ast_list_push(&b, decls, ast_fn(&b, l, name, ast_list_new(&b), NULL,
                                    ast_block(&b, l, stmts)));
    ast_list_push(&b, decls, ast_fn(&b, l, x, NULL, ast_error(&b, l), NULL));
    ast_list_push(&b, decls, ast_const(&b, l, name, NULL, NULL));
    ast_list_push(&b, decls, ast_typedef(&b, l, x, NULL));
    ast_list_push(&b, decls, ast_import(&b, l, NULL));
    ast_list_push(&b, decls, ast_error(&b, l));
    ast_list_push(&b, decls, NULL);
    AstNode *prog = ast_program(&b, l, decls);
    assert_non_null(prog);
    SemaResult res;
    sema_check(prog, src, &arena, &diags, NULL, &res);
    assert_true(diags.n_errors > 0);
    sema_check(NULL, src, &arena, &diags, NULL, &res);
    sgl_diags_deinit(&diags);
    sgl_arena_deinit(&arena);
    sgl_source_free(src);
}

/* Fails the Nth arena allocation of the checker for every N: never a crash,
 * and a failed run always reports at least one error. */
static void test_alloc_failure(void **state)
{
    (void)state;
    const char *text = "const D = [\"a\", \"b\"]\ntype R = { a: str, b: list[int] }\n"
                       "fn f(x: str) -> R {\n    fork d in D {\n        gen g(max_tokens: 2)\n"
                       "    }\n    gen r: R(max_tokens: 8)\n    return r\n}\n"
                       "fn main() {\n    \"{f(\"q\").a} {D[0]}\"\n"
                       "    gen j(json_schema: \"{{\\\"type\\\": \\\"object\\\"}}\")\n}\n";
    SglSource *src = sgl_source_new("f.sgl", text, strlen(text));
    uint64_t total = 0;
    for (uint64_t n = 1;; n++) {
        SglArena arena;
        SglDiags diags;
        sgl_arena_init(&arena);
        sgl_diags_init(&diags, 0);
        AstNode *prog = sgl_parse(src, &arena, &diags, false, NULL);
        assert_non_null(prog);
        assert_int_equal(diags.n_errors, 0);
        uint64_t before = arena.n_allocs;
        sgl_arena_fail_at(&arena, n);
        SemaResult res;
        bool ok = sema_check(prog, src, &arena, &diags, NULL, &res);
        uint64_t used = arena.n_allocs - before;
        if (!ok)
            assert_true(diags.n_errors > 0);
        sgl_diags_deinit(&diags);
        sgl_arena_deinit(&arena);
        if (ok && used < n) {
            total = n;
            break;
        }
        assert_true(n < 100000);
    }
    assert_true(total > 20);
    sgl_source_free(src);
}

/* A program using every construct correctly (tests/unit/sema_valid.sgl)
 * checks clean: guards against false positives. */
static void test_valid_program(void **state)
{
    (void)state;
    const char *root = getenv("SGL_SOURCE_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/unit/sema_valid.sgl", root ? root : ".");
    char err[256];
    SglSource *src = sgl_source_read_file(path, err, sizeof err);
    assert_non_null(src);
    char *text = strndup(src->text, src->len);
    sgl_source_free(src);
    Checked *c = check_named(path, text, NULL);
    char *r = render(&c->diags);
    assert_string_equal(r, "");
    free(r);
    assert_true(c->ok);
    assert_non_null(c->res.main);
    assert_int_equal(c->res.main->n_params, 5);
    checked_free(c);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_annotations),
        cmocka_unit_test(test_all_errors_reported),
        cmocka_unit_test(test_imports),
        cmocka_unit_test(test_literal_loc),
        cmocka_unit_test(test_broken_trees),
        cmocka_unit_test(test_alloc_failure),
        cmocka_unit_test(test_valid_program),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
