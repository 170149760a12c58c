/* main.c -- `sglc`: dispatch to subcommands.
 *
 * Exit status contract: 0 success, 1 failure (diagnostics on stderr), 2 usage.
 */
#include <stdio.h>
#include <string.h>

#include "backend/cli/cli.h"

#ifndef SGLC_VERSION
#define SGLC_VERSION "unknown"
#endif

/* One line per subcommand, in the order `sglc --help` lists them. */
static const SglCommand commands[] = {
    {"check", "parse and check a .sgl program (--emit=ast prints its syntax tree)", cmd_check},
    {"run", "compile and run a .sgl program's main (--json, --batch, --stream)", cmd_run},
    {"tokenize", "print the token ids of a text (--json adds the decoded text)", cmd_tokenize},
    {"generate", "generate a completion of a prompt with the engine (--json for ids and meta)", cmd_generate},
    {"bench", "engine benchmarks (one-batch latency, offline throughput, program ablations)", cmd_bench},
    {"build", "compile a .sgl program into an executable (-o PROG [--model DIR])", cmd_build},
    {"repl", "interactive prompting: statements run as entered on one prompt state (:help)", cmd_repl},
    {"serve", "serve a model over HTTP (SGLang native + OpenAI APIs, /metrics)", cmd_serve},
    {"router", "route HTTP requests over several `sglc serve` workers (cache-aware)", cmd_router},
    {NULL, NULL, NULL},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: sglc [--version] [--help] COMMAND [ARGS]\n\n"
               "sglc compiles and runs structured LLM programs (.sgl).\n\ncommands:\n");
    for (const SglCommand *c = commands; c->name; c++)
        fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fprintf(f, "\n'sglc COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("sglc %s\n", SGLC_VERSION);
        return 0;
    }
    for (const SglCommand *c = commands; c->name; c++)
        if (strcmp(argv[1], c->name) == 0)
            return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "sglc: unknown command '%s' (see 'sglc --help')\n", argv[1]);
    return 2;
}
