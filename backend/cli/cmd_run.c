/* cmd_run.c -- `sglc run`: compile a .sgl program and run its `main`.
 *
 *   sglc run FILE.sgl [--model DIR] [--arg NAME=VALUE | --arg NAME=@FILE]...
 *            [--temperature T] [--max-tokens N] [--top-p P] [--top-k K] [--min-p P]
 *            [--max-tokens-cap N] [--seed S] [--json] [--stream] [--batch IN.jsonl [--out OUT.jsonl]
 *            [--parallel N]] [--chat-template NAME] [--no-prefix-hoist]
 *            [--no-parallel] [--disable-radix-cache] [--schedule-policy P]
 *            [--load-format auto|dummy] [--threads N] [--stats] [--step-log FILE]
 *
 * Pipeline: frontend (compile.h) -> lower -> passes (ir/pass.h), here; then
 * the run command line shared with built binaries (backend/run_main.h):
 * engine -> interpreter (backend/interp.h). Prints main's final prompt
 * state, or with --json one object {"text", "vars", "return", "meta"};
 * --batch prints one such object per input line, in input order. Without
 * --model and $SGL_MODEL a built-in random-weight demo model is used (a
 * notice says its text is meaningless). Exit: 0 ok, 1 compile/model/runtime
 * error, 2 usage.
 */
#include <stdio.h>

#include "backend/cli/cli.h"
#include "backend/run_main.h"
#include "frontend/compile.h"
#include "frontend/lower.h"
#include "ir/pass.h"

/* Compiles FILE through every stage and the passes (the options may turn
 * prefix_hoist / forkjoin off); diagnostics go to stderr. */
IrProgram *cli_compile_program(const char *file, const SglRunLoadOpts *o)
{
    SglCompile c;
    IrProgram *p = NULL;
    sgl_compile_init(&c);
    if (!sgl_compile_file(&c, file)) {
        sgl_diags_render(&c.diags, stderr);
        goto out;
    }
    if (!(p = sgl_lower(c.program, &c.diags))) {
        sgl_diags_render(&c.diags, stderr);
        goto out;
    }
    IrPassOptions po = {.verify = true, .err = stderr};
    if (o->no_prefix_hoist)
        po.disabled[po.n_disabled++] = "prefix_hoist";
    if (o->no_parallel)
        po.disabled[po.n_disabled++] = "forkjoin";
    if (!ir_passes_run(p, &po)) {
        ir_program_free(p);
        p = NULL;
    }
out:
    sgl_compile_deinit(&c);
    return p;
}

static IrProgram *load_file(void *user, const char *file, const SglRunLoadOpts *o)
{
    (void)user;
    return cli_compile_program(file, o);
}

int cmd_run(int argc, char **argv)
{
    SglRunMain m = {.cmd = "sglc run", .takes_file = true, .load = load_file,
                    .owns_program = true};
    return sgl_run_main(&m, argc, argv);
}
