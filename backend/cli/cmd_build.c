/* cmd_build.c -- `sglc build`: compile a .sgl program into an executable.
 *
 *   sglc build FILE.sgl -o PROG [--model DIR] [--emit-c FILE.c]
 *
 * Compiles FILE (frontend, lowering, every pass), writes the IR as C
 * (backend/aot.h) and links it with the system C compiler against this
 * build's sglc libraries. `./PROG --help` lists main's parameters and
 * `./PROG --model DIR --arg ...` behaves like `sglc run FILE.sgl --model DIR
 * --arg ...` (backend/run_main.h). With --model the binary defaults to that
 * model and refuses, at start, a model whose tokenizer vocabulary differs;
 * the constraint token tables of that tokenizer are precomputed and embedded
 * (sizes reported on stderr; one over --max-table-kib is left out and
 * computed at run time).
 * --emit-c writes the C file there and keeps it (otherwise it is a temporary
 * file next to PROG, removed afterwards). Exit: 0 ok, 1 error, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/aot.h"
#include "backend/cli/cli.h"

static void help(FILE *f)
{
    fprintf(f, "usage: sglc build FILE.sgl -o PROG [--model DIR [--max-table-kib N]] [--emit-c FILE.c]\n\n"
               "Compiles FILE.sgl into the executable PROG (the program's IR as C, linked by the\n"
               "system C compiler -- $CC, else cc -- against sglc's libraries).\n"
               "PROG takes the options of `sglc run` without FILE; `PROG --help` lists them\n"
               "and main's parameters.\n\n"
               "  -o PROG             the executable to write\n"
               "  --model DIR         the model PROG runs by default; its tokenizer is checked at\n"
               "                      start (a model with another vocabulary is refused); the\n"
               "                      constraints' token tables for its tokenizer are embedded\n"
               "  --max-table-kib N   leave out (compute at run time) a constraint's token tables\n"
               "                      larger than N KiB (default 65536)\n"
               "  --emit-c FILE.c     also keep the generated C file\n\n"
               "Libraries and headers come from the build sglc was made in; override with\n"
               "$SGLC_LIB_DIR (a meson build directory) and $SGLC_INCLUDE_DIR (source root).\n");
}

int cmd_build(int argc, char **argv)
{
    if (args_wants_help(argc, argv)) {
        help(stdout);
        return 0;
    }
    SglArgs a;
    const char *file = NULL, *out = NULL, *model = NULL, *emit_c = NULL, *sv;
    long cap_kib = 65536;
    args_init(&a, argc, argv);
    while (args_more(&a)) {
        if (args_str(&a, "-o", &out) || args_str(&a, "--model", &model) ||
            args_str(&a, "--emit-c", &emit_c) ||
            args_long(&a, "--max-table-kib", 1, 1L << 30, &cap_kib))
            ;
        else if (args_positional(&a, &sv)) {
            if (file)
                return args_usage_error(&a, "only one program file, got '%s' and '%s'", file, sv);
            file = sv;
        } else
            return args_unknown(&a);
    }
    if (a.bad)
        return 2;
    if (!file)
        return args_usage_error(&a, "missing FILE.sgl (see 'sglc build --help')");
    if (!out)
        return args_usage_error(&a, "missing -o PROG");
    int rc = 1;
    IrProgram *p = NULL;
    SglTokenizer *tok = NULL;
    FILE *cf = NULL;
    char cpath[4200] = "", msg[1024], *model_abs = NULL;
    SglAotOpts ao = {.source_name = file};
    SglRunLoadOpts lo = {0};
    if (!(p = cli_compile_program(file, &lo)))
        goto out;
    if (p->main < 0) {
        fprintf(stderr, "%s: error: the program has no `main` function to build\n", file);
        goto out;
    }
    if (model) {
        SglErr err = {{0}};
        if (sgl_tokenizer_load(model, &tok, &err) != SGL_OK) {
            fprintf(stderr, "sglc build: --model %s: %s\n", model, err.msg);
            goto out;
        }
        if (!sgl_aot_vocab_hash(tok, &ao.vocab_hash, msg, sizeof msg)) {
            fprintf(stderr, "sglc build: --model %s: %s\n", model, msg);
            goto out;
        }
        if (!(model_abs = realpath(model, NULL))) {
            fprintf(stderr, "sglc build: --model %s: cannot resolve the path\n", model);
            goto out;
        }
        ao.model_dir = model_abs;
        ao.tok = tok;
        ao.table_cap_bytes = (size_t)cap_kib << 10;
        ao.notes = stderr;
    }
    if (emit_c) {
        snprintf(cpath, sizeof cpath, "%s", emit_c);
        cf = fopen(cpath, "w");
    } else {
        snprintf(cpath, sizeof cpath, "%s.sglc-XXXXXX.c", out);
        int fd = mkstemps(cpath, 2);
        cf = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (fd >= 0 && !cf)
            close(fd);
    }
    if (!cf) {
        fprintf(stderr, "sglc build: cannot write the C file %s\n", cpath);
        cpath[0] = '\0';
        goto out;
    }
    bool ok = sgl_aot_emit(p, &ao, cf, msg, sizeof msg);
    if (fclose(cf) != 0 && ok) {
        ok = false;
        snprintf(msg, sizeof msg, "cannot write the C file %s", cpath);
    }
    if (!ok) {
        fprintf(stderr, "sglc build: %s\n", msg);
        goto out;
    }
    if (!sgl_aot_link(cpath, out, msg, sizeof msg)) {
        fprintf(stderr, "sglc build: %s\n", msg);
        goto out;
    }
    rc = 0;
out:
    if (cpath[0] && !emit_c)
        unlink(cpath);
    free(model_abs);
    sgl_tokenizer_free(tok);
    ir_program_free(p);
    return rc;
}
