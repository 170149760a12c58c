/* cmd_check.c -- `sglc check [--emit=ast] FILE`: parse and check a program.
 *
 * Exit status: 0 clean (the AST dump, if asked for, on stdout), 1 when the
 * program has errors (rendered diagnostics on stderr), 2 for usage errors.
 * Any input, however broken, ends in one of these; nothing here aborts.
 */
#include <stdio.h>
#include <string.h>

#include "backend/cli/cli.h"
#include "frontend/compile.h"

static void check_usage(FILE *f)
{
    fprintf(f, "usage: sglc check [--emit=ast] FILE.sgl\n\n"
               "Parses and checks a .sgl program (FILE '-' reads stdin).\n"
               "Exit status: 0 clean, 1 errors (diagnostics on stderr), 2 usage.\n\n"
               "options:\n"
               "  --emit=ast   print the syntax tree on stdout when the program is clean\n"
               "  -h, --help   this help\n");
}

int cmd_check(int argc, char **argv)
{
    SglArgs a;
    const char *file = NULL, *emit = NULL;
    if (args_wants_help(argc, argv)) {
        check_usage(stdout);
        return 0;
    }
    args_init(&a, argc, argv);
    while (args_more(&a)) {
        const char *pos = NULL;
        if (args_str(&a, "--emit", &emit))
            continue;
        if (args_positional(&a, &pos)) {
            if (file)
                return args_usage_error(&a, "only one FILE may be given");
            file = pos;
            continue;
        }
        return args_unknown(&a);
    }
    if (a.bad)
        return 2;
    if (!file)
        return args_usage_error(&a, "missing FILE");
    if (emit && strcmp(emit, "ast") != 0)
        return args_usage_error(&a, "unknown --emit kind '%s' (expected 'ast')", emit);

    SglCompile c;
    sgl_compile_init(&c);
    bool ok = sgl_compile_file(&c, file);
    sgl_diags_render(&c.diags, stderr);
    if (ok && emit)
        ast_print(stdout, c.program);
    sgl_compile_deinit(&c);
    if (fflush(stdout) != 0)
        ok = false;
    return ok ? 0 : 1;
}
