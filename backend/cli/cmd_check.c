/* cmd_check.c -- `sglc check [--emit=ast|ir|fsm] FILE`: parse and check a program.
 *
 * With --emit=ir (or --dump-after=STAGE) the checked program is also lowered
 * to IR (frontend/lower.h) and run through the passes (ir/pass.h), verified
 * after every stage; --no-pass=NAME (repeatable) skips a pass. --emit=fsm
 * prints each constraint's DFA after the passes (ir/pass_constraint.h).
 *
 * Exit status: 0 clean (the AST dump, if asked for, on stdout), 1 when the
 * program has errors (rendered diagnostics on stderr), 2 for usage errors.
 * Any input, however broken, ends in one of these; nothing here aborts.
 */
#include <stdio.h>
#include <string.h>

#include "backend/cli/cli.h"
#include "frontend/compile.h"
#include "frontend/lower.h"
#include "ir/pass.h"
#include "ir/pass_constraint.h"

static void check_usage(FILE *f)
{
    fprintf(f, "usage: sglc check [--emit=ast|ir|fsm] [--dump-after=STAGE] [--no-pass=NAME]... "
               "FILE.sgl\n\n"
               "Parses and checks a .sgl program (FILE '-' reads stdin).\n"
               "Exit status: 0 clean, 1 errors (diagnostics on stderr), 2 usage.\n\n"
               "options:\n"
               "  --emit=ast   print the syntax tree on stdout when the program is clean\n"
               "  --emit=ir    print the IR after all passes (lowered, optimized, verified)\n"
               "  --emit=fsm   per constraint: location, kind, DFA states, forced strings\n"
               "  --dump-after=STAGE  print the IR after STAGE instead: lower, a pass, or all\n"
               "  --no-pass=NAME      skip a pass (repeatable)\n"
               "  -h, --help   this help\n\n"
               "passes, in order:\n");
    for (const IrPass *ps = ir_pass_table; ps->name; ps++)
        fprintf(f, "  %-13s %s\n", ps->name, ps->summary);
}

/* Lowers the checked program and runs the passes; prints per `opt`. */
static bool emit_ir(SglCompile *c, IrPassOptions *opt, bool print_final, bool fsm)
{
    IrProgram *p = sgl_lower(c->program, &c->diags);
    if (!p)
        return false;          /* the reason is in c->diags */
    opt->verify = true;
    bool ok = ir_passes_run(p, opt);
    if (ok && fsm)
        ir_fsm_print(stdout, p);
    else if (ok && print_final)
        ir_print(stdout, p);
    ir_program_free(p);
    return ok;
}

int cmd_check(int argc, char **argv)
{
    SglArgs a;
    const char *file = NULL, *emit = NULL, *np = NULL;
    IrPassOptions po = {0};
    if (args_wants_help(argc, argv)) {
        check_usage(stdout);
        return 0;
    }
    args_init(&a, argc, argv);
    while (args_more(&a)) {
        const char *pos = NULL;
        if (args_str(&a, "--emit", &emit))
            continue;
        if (args_str(&a, "--dump-after", &po.dump_after))
            continue;
        if (args_str(&a, "--no-pass", &np)) {
            if (!ir_pass_known(np))
                return args_usage_error(&a, "unknown pass '%s' (see --help)", np);
            if (po.n_disabled < IR_PASS_MAX_DISABLED)
                po.disabled[po.n_disabled++] = np;
            continue;
        }
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
    bool fsm = emit && strcmp(emit, "fsm") == 0;
    if (emit && strcmp(emit, "ast") != 0 && strcmp(emit, "ir") != 0 && !fsm)
        return args_usage_error(&a, "unknown --emit kind '%s' (expected 'ast', 'ir' or 'fsm')", emit);
    if (po.dump_after && strcmp(po.dump_after, "lower") != 0 &&
        strcmp(po.dump_after, "all") != 0 && !ir_pass_known(po.dump_after))
        return args_usage_error(&a, "unknown --dump-after stage '%s' (see --help)",
                                po.dump_after);
    bool want_ir = (emit && strcmp(emit, "ir") == 0) || po.dump_after || fsm;

    SglCompile c;
    sgl_compile_init(&c);
    bool ok = sgl_compile_file(&c, file);
    if (ok && emit && strcmp(emit, "ast") == 0)
        ast_print(stdout, c.program);
    if (ok && want_ir)
        ok = emit_ir(&c, &po, !po.dump_after, fsm);
    sgl_diags_render(&c.diags, stderr);
    sgl_compile_deinit(&c);
    if (fflush(stdout) != 0)
        ok = false;
    return ok ? 0 : 1;
}
