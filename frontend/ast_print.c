/* ast_print.c -- the stable AST dump (`sglc check --emit=ast`, golden tests).
 *
 * One node per line, two spaces of indent per level, children below their
 * parent, the node's start position as `@line:col` at the end. Type
 * expressions print inline (`list[str]`). Strings print with C-like escapes so
 * the dump is plain ASCII-safe text apart from non-ASCII characters, which are
 * printed as they are. The format is a contract of the golden tests: change
 * it only together with tests/golden/ast/ (run_ast_golden.sh --update).
 * Recursion depth is bounded by SGL_MAX_TREE_DEPTH (ast.h).
 */
#include <stdlib.h>
#include <string.h>

#include "frontend/ast.h"

static void print_node(FILE *f, const AstNode *n, int depth);

static void indent(FILE *f, int depth)
{
    for (int i = 0; i < depth; i++)
        fputs("  ", f);
}

static void pos(FILE *f, SglLoc loc)
{
    if (!loc.src) {
        fputc('\n', f);
        return;
    }
    uint32_t line, col;
    sgl_source_line_col(loc.src, loc.off, &line, &col);
    fprintf(f, " @%u:%u\n", line, col);
}

static void quoted(FILE *f, AstStr s)
{
    fputc('"', f);
    for (uint32_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.s[i];
        switch (c) {
        case '\n': fputs("\\n", f); break;
        case '\t': fputs("\\t", f); break;
        case '\r': fputs("\\r", f); break;
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        default:
            if (c < 0x20 || c == 0x7F)
                fprintf(f, "\\u{%X}", c);
            else
                fputc(c, f);
        }
    }
    fputc('"', f);
}

static void name(FILE *f, AstStr s)
{
    fputs(s.s ? s.s : "?", f);
}

static void type_inline(FILE *f, const AstNode *t)
{
    if (!t) {
        fputs("?", f);
        return;
    }
    switch (t->kind) {
    case AST_TYPE_NAME:
        name(f, t->tname.name);
        break;
    case AST_TYPE_LIST:
        fputs("list[", f);
        type_inline(f, t->tlist.elem);
        fputs("]", f);
        break;
    case AST_TYPE_RECORD:
        fputs("{", f);
        for (uint32_t i = 0; t->trecord.fields && i < t->trecord.fields->n; i++) {
            const AstNode *fd = t->trecord.fields->items[i];
            fputs(i ? ", " : "", f);
            if (fd) {
                name(f, fd->decl.name);
                fputs(": ", f);
                type_inline(f, fd->decl.type);
            }
        }
        fputs("}", f);
        break;
    default:
        fputs("<error>", f);
    }
}

static void opt_type(FILE *f, const AstNode *t)
{
    if (t) {
        fputs(": ", f);
        type_inline(f, t);
    }
}

static void signature(FILE *f, const AstNode *n)
{
    name(f, n->fn.name);
    fputc('(', f);
    for (uint32_t i = 0; n->fn.params && i < n->fn.params->n; i++) {
        const AstNode *p = n->fn.params->items[i];
        fputs(i ? ", " : "", f);
        if (p) {
            name(f, p->decl.name);
            fputs(": ", f);
            type_inline(f, p->decl.type);
        }
    }
    fputc(')', f);
    if (n->fn.ret) {
        fputs(" -> ", f);
        type_inline(f, n->fn.ret);
    }
}

/* Shortest form that reads back to the same double: plain decimals for
 * ordinary magnitudes (100.0, 0.25), "%g" exponents otherwise (1e+300). */
static void print_float(FILE *f, double v)
{
    char buf[400];
    double a = v < 0 ? -v : v;
    if (a == 0 || (a >= 1e-4 && a < 1e15)) {
        for (int prec = 1; prec <= 20; prec++) {
            snprintf(buf, sizeof buf, "%.*f", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    }
    fputs(buf, f);
    if (!strpbrk(buf, ".eEni"))
        fputs(".0", f);
}

static void list(FILE *f, const AstList *l, int depth)
{
    for (uint32_t i = 0; l && i < l->n; i++)
        print_node(f, l->items[i], depth);
}

static void print_node(FILE *f, const AstNode *n, int depth)
{
    indent(f, depth);
    if (!n) {
        fputs("<null>\n", f);
        return;
    }
    const char *k = ast_kind_name(n->kind);
    int d = depth + 1;
    switch (n->kind) {
    case AST_PROGRAM:
        fputs("program", f), pos(f, n->loc), list(f, n->prog.decls, d);
        break;
    case AST_IMPORT:
        fputs("import ", f), quoted(f, n->import.path), pos(f, n->loc);
        break;
    case AST_CONST: case AST_LET:
        fprintf(f, "%s ", k), name(f, n->decl.name), opt_type(f, n->decl.type), pos(f, n->loc);
        print_node(f, n->decl.value, d);
        break;
    case AST_TYPEDEF:
        fputs("type ", f), name(f, n->decl.name), fputs(" = ", f);
        type_inline(f, n->decl.type), pos(f, n->loc);
        break;
    case AST_PARAM: case AST_FIELD_DECL:
        fprintf(f, "%s ", k), name(f, n->decl.name), opt_type(f, n->decl.type), pos(f, n->loc);
        break;
    case AST_TYPE_NAME: case AST_TYPE_LIST: case AST_TYPE_RECORD:
        fputs("type ", f), type_inline(f, n), pos(f, n->loc);
        break;
    case AST_EXTERN:
        fputs("extern ", f), signature(f, n), fputs(" from ", f), quoted(f, n->fn.lib);
        pos(f, n->loc);
        break;
    case AST_FN:
        fputs("fn ", f), signature(f, n), pos(f, n->loc), print_node(f, n->fn.body, d);
        break;
    case AST_BLOCK:
        fputs("block", f), pos(f, n->loc), list(f, n->block.stmts, d);
        break;
    case AST_ASSIGN:
        fprintf(f, "assign %s=", ast_op_name(n->assign.op)), pos(f, n->loc);
        print_node(f, n->assign.target, d), print_node(f, n->assign.value, d);
        break;
    case AST_IF:
        fputs("if", f), pos(f, n->loc);
        print_node(f, n->if_.cond, d), print_node(f, n->if_.then, d);
        if (n->if_.els) {
            indent(f, d), fputs("else\n", f);
            print_node(f, n->if_.els, d + 1);
        }
        break;
    case AST_FOR:
        fputs("for ", f), name(f, n->loop.name), pos(f, n->loc);
        print_node(f, n->loop.iter, d), print_node(f, n->loop.body, d);
        break;
    case AST_WHILE:
        fputs("while", f), pos(f, n->loc);
        print_node(f, n->loop.iter, d), print_node(f, n->loop.body, d);
        break;
    case AST_BREAK: case AST_CONTINUE: case AST_ERROR:
        fputs(k, f), pos(f, n->loc);
        break;
    case AST_RETURN:
        fputs("return", f), pos(f, n->loc);
        if (n->ret.value)
            print_node(f, n->ret.value, d);
        break;
    case AST_EXPR_STMT:
        fputs("expr", f), pos(f, n->loc), print_node(f, n->expr_stmt.expr, d);
        break;
    case AST_GEN: case AST_SELECT:
        fprintf(f, "%s ", k), name(f, n->gen.name), opt_type(f, n->gen.type), pos(f, n->loc);
        list(f, n->gen.options, d);
        break;
    case AST_OPTION: case AST_FIELD_INIT:
        fprintf(f, "%s ", k), name(f, n->option.name), pos(f, n->loc);
        print_node(f, n->option.value, d);
        break;
    case AST_FORK:
        fputs("fork", f);
        if (n->fork.name.s)
            fputs(" ", f), name(f, n->fork.name);
        else
            fputs(" count", f);
        fputs(n->fork.join == AST_JOIN_CONCAT ? " join=concat" : " join=gather", f);
        pos(f, n->loc);
        print_node(f, n->fork.iter, d), print_node(f, n->fork.body, d);
        break;
    case AST_CAPTURE:
        fputs("capture ", f), name(f, n->capture.name), pos(f, n->loc);
        print_node(f, n->capture.body, d);
        break;
    case AST_ROLE:
        fprintf(f, "role %s", ast_role_name(n->role.role)), pos(f, n->loc);
        print_node(f, n->role.body, d);
        break;
    case AST_NAME:
        fputs("name ", f), name(f, n->name.name), pos(f, n->loc);
        break;
    case AST_INT:
        fprintf(f, "int %lld", (long long)n->ival), pos(f, n->loc);
        break;
    case AST_FLOAT:
        fputs("float ", f), print_float(f, n->fval), pos(f, n->loc);
        break;
    case AST_BOOL:
        fprintf(f, "bool %s", n->bval ? "true" : "false"), pos(f, n->loc);
        break;
    case AST_STRING:
        fputs(n->string.triple ? "string triple" : "string", f), pos(f, n->loc);
        list(f, n->string.parts, d);
        break;
    case AST_STR_TEXT:
        fputs("text ", f), quoted(f, n->text.text), pos(f, n->loc);
        break;
    case AST_LIST:
        fputs("list", f), pos(f, n->loc), list(f, n->list.items, d);
        break;
    case AST_RECORD:
        fputs("record", f), pos(f, n->loc), list(f, n->record.fields, d);
        break;
    case AST_UNARY:
        fprintf(f, "unary %s", ast_op_name(n->unary.op)), pos(f, n->loc);
        print_node(f, n->unary.operand, d);
        break;
    case AST_BINARY: case AST_RANGE:
        if (n->kind == AST_RANGE)
            fputs("range", f), pos(f, n->loc);
        else
            fprintf(f, "binary %s", ast_op_name(n->binary.op)), pos(f, n->loc);
        print_node(f, n->binary.lhs, d), print_node(f, n->binary.rhs, d);
        break;
    case AST_CALL:
        fputs("call ", f), name(f, n->call.name), pos(f, n->loc), list(f, n->call.args, d);
        break;
    case AST_INDEX:
        fputs("index", f), pos(f, n->loc);
        print_node(f, n->index.base, d), print_node(f, n->index.index, d);
        break;
    case AST_FIELD:
        fputs("field .", f), name(f, n->field.name), pos(f, n->loc);
        print_node(f, n->field.base, d);
        break;
    case AST_KIND_COUNT_:
        fputs("?\n", f);
        break;
    }
}

void ast_print(FILE *f, const AstNode *program)
{
    print_node(f, program, 0);
}
