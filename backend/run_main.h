/* run_main.h -- the run command line, shared by `sglc run` and the program
 * binaries `sglc build` makes.
 *
 *   CMD [FILE.sgl] [--model DIR] [--arg NAME=VALUE]... [--json] [--stream]
 *       [--batch IN.jsonl [--out OUT.jsonl] [--parallel N]] [sampling and
 *       engine options: see `sglc run --help`]
 *
 * The caller says where the program comes from (SglRunMain.load): cmd_run.c
 * compiles FILE.sgl; a built binary returns the IrProgram embedded in it as
 * static data (no compiler work at start-up). From there on both follow the
 * same code: engine, main's parameters, runs, output, exit status (0 ok,
 * 1 compile/model/runtime error, 2 usage).
 */
#ifndef SGL_RUN_MAIN_H
#define SGL_RUN_MAIN_H

#include <stdbool.h>
#include <stddef.h>

#include "ir/ir.h"
#include "runtime/engine.h"

struct SglExec;   /* backend/interp.h */

typedef struct {
    bool no_prefix_hoist, no_parallel;   /* --no-prefix-hoist, --no-parallel */
} SglRunLoadOpts;

typedef struct {
    const char *cmd;            /* message prefix: "sglc run", or the binary's argv[0] */
    bool takes_file;            /* a FILE.sgl positional is required (sglc run) */
    /* The program to run (file: the positional, NULL for a binary), or NULL
     * after printing why. The result must be verified and frozen. */
    IrProgram *(*load)(void *user, const char *file, const SglRunLoadOpts *o);
    void *user;
    bool owns_program;          /* ir_program_free the loaded program at the end */
    const char *model_default;  /* --model when neither --model nor $SGL_MODEL is given */
    /* Optional check of the opened engine's model (a built binary compares
     * its tokenizer hash); false + msg stops the run with exit 1. */
    bool (*check_model)(void *user, SglEngine *e, const char *model_dir, char *msg, size_t cap);
    /* Optional, after the executor is made on an engine (a built binary
     * loads its token tables into x->tokreg); false + msg: exit 1. */
    bool (*prepare_exec)(void *user, struct SglExec *x, const char *model_dir, char *msg,
                         size_t cap);
} SglRunMain;

/* Parses argv (argv[0] is the command name) and runs; returns the exit status. */
int sgl_run_main(const SglRunMain *m, int argc, char **argv);

/* The built-in demo model (byte-level tokenizer, small Llama config; load it
 * with SGL_LOAD_DUMMY): writes its files into the existing directory dir /
 * removes them and dir. */
bool sgl_demo_model_write(const char *dir);
void sgl_demo_model_remove(const char *dir);

#endif
