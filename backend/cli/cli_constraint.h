/* cli_constraint.h -- the output-constraint flags that `sglc generate` and
 * `sglc bench one-batch` share.
 *
 *   --regex RE               the output must fully match RE (ir/fsm dialect)
 *   --json-schema FILE|JSON  the output must be JSON valid against the schema
 *                            (a file name, or the schema text when it starts
 *                            with '{')
 *
 * Both become one minimized byte DFA (ir/fsm); the caller turns it into a
 * per-request SglConstraint with tokmask_constraint_new (runtime/tokmask.h).
 */
#ifndef SGL_CLI_CONSTRAINT_H
#define SGL_CLI_CONSTRAINT_H

#include "runtime/dfa.h"

#define CLI_CONSTRAINT_HELP                                                               \
    "  --regex RE               the output must fully match RE (ir/fsm regex dialect)\n"  \
    "  --json-schema FILE|JSON  the output must be JSON valid against the schema\n"       \
    "                           (a file name, or the schema text when it starts with '{')\n"

/* Compiles exactly one of regex / schema (the other NULL) into a DFA. On
 * success the caller owns the result (sgl_dfa_free). NULL after printing
 * "sglc CMD: --regex: why" (or --json-schema: an unreadable file, a bad
 * pattern or schema, a constraint no output can satisfy) on stderr. */
SglDfa *cli_compile_output_constraint(const char *cmd, const char *regex, const char *schema);

#endif
