/* pass.c -- the pass table and the pass manager loop (see pass.h). */
#include "ir/pass.h"

#include <string.h>

const IrPass ir_pass_table[] = {  /* ORDER IR_PASS */
    {"fold", "constant folding, interpolation simplification, adjacent appends merged",
     ir_pass_fold},
    {"prefix_hoist", "constant prompt prefixes prefilled at start-up and before forks",
     ir_pass_prefix_hoist},
    {"forkjoin", "parallel fork branches, async calls awaited at first use, call groups",
     ir_pass_forkjoin},
    {"constraint", "every gen constraint compiled to a DFA (sglc check --emit=fsm)", ir_pass_constraint},
    {NULL, NULL, NULL},
};

bool ir_pass_known(const char *name)
{
    for (const IrPass *ps = ir_pass_table; ps->name; ps++)
        if (strcmp(ps->name, name) == 0)
            return true;
    return false;
}

static bool disabled(const IrPassOptions *o, const char *name)
{
    for (unsigned i = 0; i < o->n_disabled && i < IR_PASS_MAX_DISABLED; i++)
        if (o->disabled[i] && strcmp(o->disabled[i], name) == 0)
            return true;
    return false;
}

static bool after(IrProgram *p, const IrPassOptions *o, const char *stage)
{
    FILE *err = o->err ? o->err : stderr;
    if (o->verify && !ir_verify(p, NULL)) {
        fprintf(err, "IR verification failed after %s:\n", stage);
        ir_verify(p, err);
        return false;
    }
    if (o->dump_after && (strcmp(o->dump_after, stage) == 0 || strcmp(o->dump_after, "all") == 0)) {
        FILE *d = o->dump ? o->dump : stdout;
        if (strcmp(o->dump_after, "all") == 0)
            fprintf(d, ";; after %s\n", stage);
        ir_print(d, p);
    }
    return true;
}

bool ir_passes_run(IrProgram *p, const IrPassOptions *o)
{
    if (!after(p, o, "lower"))
        return false;
    for (const IrPass *ps = ir_pass_table; ps->name; ps++) {
        if (disabled(o, ps->name))
            continue;
        if (!ps->fn(p) || p->oom) {
            fprintf(o->err ? o->err : stderr, "pass %s: out of memory\n", ps->name);
            return false;
        }
        if (!after(p, o, ps->name))
            return false;
    }
    return true;
}
