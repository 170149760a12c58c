/* cli.h -- the `sglc` driver: subcommands and a small argument parser.
 *
 * The driver is the top of the stack: it calls the frontend to compile, the
 * backend to run programs, and the runtime engine directly for generate,
 * tokenize and bench. Each subcommand lives in cmd_<name>.c and returns the
 * process exit status: 0 success, 1 failure (diagnostics printed), 2 usage.
 */
#ifndef SGL_CLI_H
#define SGL_CLI_H

#include <stdbool.h>
#include <stdio.h>

typedef struct {
    const char *name;
    const char *summary;
    int (*fn)(int argc, char **argv);  /* argv[0] is the subcommand name */
} SglCommand;

int cmd_check(int argc, char **argv);  /* cmd_check.c */
int cmd_tokenize(int argc, char **argv);  /* cmd_tokenize.c */
int cmd_generate(int argc, char **argv);  /* cmd_generate.c */
int cmd_bench(int argc, char **argv);     /* cmd_bench.c */
int cmd_bench_program(int argc, char **argv);  /* cmd_bench_program.c: `sglc bench program` */
int cmd_bench_offline(int argc, char **argv);  /* cmd_bench_offline.c: `sglc bench offline` */
int cmd_run(int argc, char **argv);       /* cmd_run.c */
int cmd_build(int argc, char **argv);     /* cmd_build.c */
int cmd_repl(int argc, char **argv);      /* cmd_repl.c */
int cmd_serve(int argc, char **argv);     /* cmd_serve.c */
int cmd_router(int argc, char **argv);    /* cmd_router.c */
int cmd_serve_dp(int argc, char **argv);  /* cmd_router.c: `sglc serve --dp N` */

#include "backend/run_main.h"
/* cmd_run.c: FILE through the frontend, lowering and the passes (o may turn
 * prefix_hoist/forkjoin off); diagnostics on stderr, NULL on any error. On
 * success the caller owns the program (ir_program_free). */
IrProgram *cli_compile_program(const char *file, const SglRunLoadOpts *o);

/* Argument cursor. Usage: while (args_more(&a)) { if (args_flag(&a, "--json"))
 * ...; else if (args_str(&a, "--model", &dir)) ...; else return args_unknown(&a); }
 * then `if (a.bad) return 2;`. Errors are printed as `sglc CMD: ...`. */
typedef struct {
    int argc;
    char **argv;
    int i;
    const char *cmd;
    bool bad;            /* a usage error was printed */
} SglArgs;

void args_init(SglArgs *a, int argc, char **argv);
bool args_more(const SglArgs *a);
/* The current word is a positional argument (does not start with '-', or is "-"). */
bool args_positional(SglArgs *a, const char **val);
bool args_flag(SglArgs *a, const char *name);
/* "--name VALUE" or "--name=VALUE". */
bool args_str(SglArgs *a, const char *name, const char **val);
bool args_long(SglArgs *a, const char *name, long lo, long hi, long *val);
bool args_double(SglArgs *a, const char *name, double lo, double hi, double *val);
/* Prints "unknown option" for the current word, returns 2. */
int args_unknown(SglArgs *a);
/* Prints "sglc CMD: msg" and marks a.bad; returns 2. */
int args_usage_error(SglArgs *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* True when argv holds -h or --help. */
bool args_wants_help(int argc, char **argv);

/* The whole of f (or of the file at path), byte-exact plus a terminating
 * NUL not counted in *len; malloc'd, owned by the caller. NULL when it
 * cannot be opened or read (errno says why) or memory runs out. */
char *cli_read_stream(FILE *f, size_t *len);
char *cli_read_file(const char *path, size_t *len);

#endif
