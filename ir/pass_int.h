/* pass_int.h -- helpers shared by the passes in ir/ (not for other folders).
 *
 * ir_fold_eval is the one constant evaluator: pass_fold uses it to rewrite
 * nodes, pass_prefix_hoist to evaluate the leading text of a function
 * symbolically. It folds only what cannot fail at run time and whose text
 * form is unambiguous (str/int/bool; floats are never turned into text
 * here, so the executor's float formatting stays the only one).
 */
#ifndef SGL_IR_PASS_INT_H
#define SGL_IR_PASS_INT_H

#include "ir/ir.h"

#define IR_FOLD_MAX_TEXT (1u << 20)   /* bytes of one folded string */

/* The value of node n given constant operands vals[0..n->n_args) (all
 * non-NULL), or NULL when n is not foldable (or would fail at run time). */
const IrConst *ir_fold_eval(IrProgram *p, const IrNode *n, const IrConst *const *vals);
/* The interpolation text of c (str, int, bool only) into (*s, *len); false
 * otherwise. The text lives in the program arena. */
bool ir_const_text(IrProgram *p, const IrConst *c, const char **s, uint32_t *len);
/* A str constant holding a[0..alen) + b[0..blen). NULL on OOM / limit. */
IrConst *ir_const_str2(IrProgram *p, const char *a, uint32_t alen, const char *b,
                       uint32_t blen);
/* Replaces operand `old` by `new` in r->nodes[from..] and their regions. */
void ir_replace_uses(IrRegion *r, uint32_t from, const IrNode *old, IrNode *new);
/* True when node n (or a node in its regions) has `def` as an operand. */
bool ir_node_uses(const IrNode *n, const IrNode *def);
/* True when n is, or contains, BREAK/CONTINUE/RETURN. */
bool ir_node_exits(const IrNode *n);

#endif
