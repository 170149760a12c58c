/* lower.h -- checked AST -> IrProgram (pipeline step 4, docs/language.md).
 *
 * Runs after a clean sema_check: reads the annotations sema left on the tree
 * (node->type, node->sym, folded SemaValues) and emits one IrFunc per `fn`
 * reachable from the root module (its own fns in source order, then imported
 * fns that calls reach) and one IrExtern per extern used. Locals keep the
 * slot numbers sema gave them; lowering adds temp slots for short-circuit
 * `and`/`or`. This is the one frontend file that includes ir/ (the
 * dependency direction is frontend -> ir).
 */
#ifndef SGL_LOWER_H
#define SGL_LOWER_H

#include "frontend/ast.h"
#include "frontend/diag.h"
#include "ir/ir.h"

/* Lowers the checked root AST_PROGRAM. On success returns a new program;
 * ownership passes to the caller (ir_program_free). On failure (out of
 * memory, IR limits, a tree sema did not accept) returns NULL after adding
 * an error to diags. Never aborts. */
IrProgram *sgl_lower(const AstNode *program, SglDiags *diags);

#endif
