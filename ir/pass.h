/* pass.h -- the IR pass manager: an ordered list of {name, fn}.
 *
 * Pipeline place: after lowering (frontend/lower.h), before execution.
 * ir_passes_run runs every enabled pass in table order on one program,
 * verifying the graph after lowering and after each pass when
 * `verify` is set (the CLI and test builds always set it), and dumping the
 * IR (ir_print) after the pass named by `dump_after`. Passes rewrite the
 * program in place; they never fail on a valid program except for
 * allocation failure.
 * ORDER IR_PASS: fold, prefix_hoist, forkjoin (the constraint pass of
 * ir/fsm slots in after forkjoin).
 */
#ifndef SGL_IR_PASS_H
#define SGL_IR_PASS_H

#include <stdbool.h>
#include <stdio.h>

#include "ir/ir.h"

/* A pass returns false only when it could not finish (out of memory); it
 * may then have changed the program partially (p->oom is set). */
typedef bool (*IrPassFn)(IrProgram *p);

typedef struct {
    const char *name;           /* "fold" */
    const char *summary;        /* one line for --help */
    IrPassFn fn;
} IrPass;

extern const IrPass ir_pass_table[];   /* terminated by {NULL, NULL, NULL} */

#define IR_PASS_MAX_DISABLED 16

typedef struct {
    const char *dump_after;     /* NULL, "lower" (before any pass), a pass name, or "all" */
    FILE *dump;                 /* where dumps go (stdout when NULL) */
    const char *disabled[IR_PASS_MAX_DISABLED];  /* pass names not to run */
    unsigned n_disabled;
    bool verify;                /* ir_verify after lowering and after every pass */
    FILE *err;                  /* verifier messages (stderr when NULL) */
} IrPassOptions;

/* True when `name` is a pass in ir_pass_table ("lower" and "all" are not). */
bool ir_pass_known(const char *name);
/* Runs the enabled passes in order. Returns false when a pass ran out of
 * memory or a verification failed (then the messages, prefixed with the
 * stage name, are on opt->err and the program must not be executed). */
bool ir_passes_run(IrProgram *p, const IrPassOptions *opt);

/* The passes (pass_fold.c, pass_prefix_hoist.c, pass_forkjoin.c). */
bool ir_pass_fold(IrProgram *p);
bool ir_pass_prefix_hoist(IrProgram *p);
bool ir_pass_forkjoin(IrProgram *p);
bool ir_pass_constraint(IrProgram *p);   /* pass_constraint.c */

#endif
