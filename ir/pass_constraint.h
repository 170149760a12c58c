/* pass_constraint.h -- constraint -> FSM at compile time (pass "constraint").
 *
 * Every GEN node with a constraint (regex, JSON schema, typed output, or
 * choices, which become a trie-shaped regex) gets a minimized byte DFA
 * (runtime/dfa.h) attached as IrConstraint.fsm; the program frees it
 * (IrProgram.fsm_free). The executor uses the attached DFA instead of
 * compiling at run time. A constraint that does not compile is left without
 * one (the checker reports bad constraints before lowering; the executor
 * reports it again at run time if it is reached).
 */
#ifndef SGL_IR_PASS_CONSTRAINT_H
#define SGL_IR_PASS_CONSTRAINT_H

#include <stdio.h>

#include "ir/fsm/regex.h"
#include "ir/ir.h"

/* The constraint c as a DFA. SGL_OK: *out owned by the caller. SGL_E_INVAL
 * (err says why: bad regex or schema, unsatisfiable type), SGL_E_UNSUPPORTED
 * (a size limit), SGL_E_NOMEM. IR_CON_NONE gives SGL_E_INVAL. */
SglStatus ir_constraint_compile(const IrConstraint *c, SglDfa **out, FsmErr *err);
/* The constraint c as regex text in the ir/fsm dialect (what a remote server
 * is sent). SGL_OK: *out malloc'd, owned by the caller; errors as above. */
SglStatus ir_constraint_regex(const IrConstraint *c, char **out, FsmErr *err);
/* One line per constrained GEN node of p (after the pass): location, kind,
 * DFA states, and the forced strings jump-forward will append (the
 * maximal runs of sgl_dfa_forced, at most 32 shown). */
void ir_fsm_print(FILE *f, const IrProgram *p);
const char *ir_con_kind_name(IrConKind k);

#endif
