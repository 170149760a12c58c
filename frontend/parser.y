/* parser.y -- the .sgl grammar (Bison: pure, push, locations, custom errors, LAC).
 *
 * Input: tokens from sgl_lex (lexer.re), pushed one at a time by sgl_parse
 * below, so a REPL can feed a line at a time. Output: an AST_PROGRAM built by
 * one-line ast_* calls (ast.c); all values live in the arena, which is why no
 * %destructor is needed (the arena frees everything, whatever happens).
 * Errors: syntax errors are reported by yyreport_syntax_error ("expected ')'
 * or ',' before 'fork'") and recovered at statement and declaration level
 * (`stmts error ';'`, `'{' stmts error '}'`, `decls error ';'`), so one run
 * reports several. Statements are separated by `;`, which the lexer inserts
 * at line ends (docs/language.md section 1). Conflicts: none (precedence
 * declarations resolve the expression grammar); the build fails otherwise.
 */
%require "3.8"
%define api.pure full
%define api.push-pull push
%define api.prefix {sglyy}
%define api.token.prefix {TOK_}
%define api.location.type {SglLoc}
%define parse.error custom
%define parse.lac full
%locations
%param {SglParser *p}
%expect 0

%code requires {
#include "frontend/ast.h"
typedef struct SglParser SglParser;
}

%code {
#include <string.h>
#include "frontend/parse.h"

#define YYMAXDEPTH 10000
/* A rule's location spans its first to its last symbol; an empty rule sits,
 * with length 0, at the end of the previous symbol. */
#define YYLLOC_DEFAULT(Cur, Rhs, N) do {                                       \
        if (N) (Cur) = sgl_loc_span(YYRHSLOC(Rhs, 1), YYRHSLOC(Rhs, N));       \
        else (Cur) = sgl_loc(YYRHSLOC(Rhs, 0).src,                             \
                             YYRHSLOC(Rhs, 0).off + YYRHSLOC(Rhs, 0).len, 0);   \
    } while (0)
static void sglyyerror(SglLoc *loc, SglParser *p, const char *msg);
#define B (&p->b)
}

%union {
    AstIdent ident;
    int64_t ival;
    double fval;
    AstStr str;
    bool triple;
    AstNode *node;
    AstList *list;
    AstRole role;
}

%token <ident> IDENT "identifier"
%token <ival> INT "integer"
%token <fval> FLOAT "float"
%token <triple> STR_BEGIN "string"
%token <str> STR_TEXT "string text"
%token STR_END "end of string"
%token INTERP_BEGIN "'{' in string"
%token INTERP_END "'}' in string"
%token NEED_MORE "incomplete input"
%token AND "'and'" ASSISTANT "'assistant'" BREAK "'break'" CAPTURE "'capture'"
       CONST "'const'" CONTINUE "'continue'" ELSE "'else'" EXTERN "'extern'"
       FALSE "'false'" FN "'fn'" FOR "'for'" FORK "'fork'" FROM "'from'" GEN "'gen'"
       IF "'if'" IMPORT "'import'" IN "'in'" JOIN "'join'" LET "'let'" NOT "'not'"
       OR "'or'" RETURN "'return'" SELECT "'select'" SYSTEM "'system'" TRUE "'true'"
       TYPE "'type'" USER "'user'" WHILE "'while'"
%token EQ "'=='" NE "'!='" LE "'<='" GE "'>='" PLUSEQ "'+='" DOTDOT "'..'" ARROW "'->'"

%type <node> decl type type_or_record record_type param field_decl block stmt if_stmt
%type <node> fork_stmt expr postfix primary string opt_type_ann opt_ret option field_init
%type <list> decls params param_list field_decls field_decl_list stmts options
%type <list> option_list args arg_list field_inits field_init_list str_parts
%type <role> role

%left OR
%left AND
%precedence NOT
%nonassoc EQ NE '<' LE '>' GE
%nonassoc DOTDOT
%left '+' '-'
%left '*' '/' '%'
%precedence UMINUS

%%

program: decls                      { p->program = ast_program(B, sgl_loc(p->lx.src, 0, 0), $1); } ;

decls: %empty                       { $$ = ast_list_new(B); }
     | decls ';'                    { $$ = $1; }
     | decls decl ';'               { $$ = ast_list_push(B, $1, $2); }
     | decls error ';'              { $$ = $1; }
     ;

decl: IMPORT string                 { $$ = ast_import(B, @$, $2); }
    | CONST IDENT opt_type_ann '=' expr { $$ = ast_const(B, @$, $2, $3, $5); }
    | TYPE IDENT '=' type_or_record { $$ = ast_typedef(B, @$, $2, $4); }
    | EXTERN FN IDENT '(' params ')' opt_ret FROM string
                                    { $$ = ast_extern(B, @$, $3, $5, $7, $9); }
    | FN IDENT '(' params ')' opt_ret block { $$ = ast_fn(B, @$, $2, $4, $6, $7); }
    ;

opt_type_ann: %empty                { $$ = NULL; }
            | ':' type              { $$ = $2; }
            ;
opt_ret: %empty                     { $$ = NULL; }
       | ARROW type                 { $$ = $2; }
       ;

params: %empty                      { $$ = ast_list_new(B); }
      | param_list                  { $$ = $1; }
      | param_list ','              { $$ = $1; }
      ;
param_list: param                   { $$ = ast_list_push(B, ast_list_new(B), $1); }
          | param_list ',' param    { $$ = ast_list_push(B, $1, $3); }
          ;
param: IDENT ':' type               { $$ = ast_param(B, @$, $1, $3); } ;

type: IDENT                         { $$ = ast_type_name(B, @$, $1); }
    | IDENT '[' type ']'            { $$ = ast_type_generic(B, @$, $1, $3); }
    ;
type_or_record: type                { $$ = $1; }
              | record_type         { $$ = $1; }
              ;
record_type: '{' field_decls '}'    { $$ = ast_type_record(B, @$, $2); } ;
field_decls: %empty                 { $$ = ast_list_new(B); }
           | field_decl_list        { $$ = $1; }
           | field_decl_list sep    { $$ = $1; }
           ;
field_decl_list: field_decl         { $$ = ast_list_push(B, ast_list_new(B), $1); }
               | field_decl_list sep field_decl { $$ = ast_list_push(B, $1, $3); }
               ;
field_decl: IDENT ':' type          { $$ = ast_field_decl(B, @$, $1, $3); } ;
sep: ',' | ';' ;

block: '{' stmts '}'                { $$ = ast_block(B, @$, $2); }
     | '{' stmts error '}'          { $$ = ast_block(B, @$, $2); }
     ;
stmts: %empty                       { $$ = ast_list_new(B); }
     | stmts ';'                    { $$ = $1; }
     | stmts stmt ';'               { $$ = ast_list_push(B, $1, $2); }
     | stmts error ';'              { $$ = $1; }
     ;

stmt: LET IDENT opt_type_ann '=' expr { $$ = ast_let(B, @$, $2, $3, $5); }
    | expr '=' expr                 { $$ = ast_assign(B, @$, $1, AST_OP_NONE, $3); }
    | expr PLUSEQ expr              { $$ = ast_assign(B, @$, $1, AST_OP_ADD, $3); }
    | if_stmt                       { $$ = $1; }
    | FOR IDENT IN expr block       { $$ = ast_for(B, @$, $2, $4, $5); }
    | WHILE expr block              { $$ = ast_while(B, @$, $2, $3); }
    | BREAK                         { $$ = ast_jump(B, @$, AST_BREAK); }
    | CONTINUE                      { $$ = ast_jump(B, @$, AST_CONTINUE); }
    | RETURN                        { $$ = ast_return(B, @$, NULL); }
    | RETURN expr                   { $$ = ast_return(B, @$, $2); }
    | GEN IDENT opt_type_ann        { $$ = ast_gen(B, @$, $2, $3, NULL); }
    | GEN IDENT opt_type_ann options { $$ = ast_gen(B, @$, $2, $3, $4); }
    | SELECT IDENT options          { $$ = ast_select(B, @$, $2, $3); }
    | SELECT IDENT FROM expr        { $$ = ast_select_from(B, @$, $2, @3, $4); }
    | fork_stmt                     { $$ = $1; }
    | fork_stmt JOIN IDENT          { $$ = ast_fork_join(B, @$, $1, $3); }
    | CAPTURE IDENT block           { $$ = ast_capture(B, @$, $2, $3); }
    | role block                    { $$ = ast_role(B, @$, $1, $2); }
    | expr                          { $$ = ast_expr_stmt(B, @$, $1); }
    ;

if_stmt: IF expr block              { $$ = ast_if(B, @$, $2, $3, NULL); }
       | IF expr block ELSE block   { $$ = ast_if(B, @$, $2, $3, $5); }
       | IF expr block ELSE if_stmt { $$ = ast_if(B, @$, $2, $3, $5); }
       ;

fork_stmt: FORK IDENT IN expr block { $$ = ast_fork(B, @$, $2, $4, $5); }
         | FORK expr block          { $$ = ast_fork(B, @$, (AstIdent){{NULL, 0}, @1}, $2, $3); }
         ;

role: SYSTEM                        { $$ = AST_ROLE_SYSTEM; }
    | USER                          { $$ = AST_ROLE_USER; }
    | ASSISTANT                     { $$ = AST_ROLE_ASSISTANT; }
    ;

options: '(' option_list ')'        { $$ = $2; } ;
option_list: %empty                 { $$ = ast_list_new(B); }
           | option                 { $$ = ast_list_push(B, ast_list_new(B), $1); }
           | option_list ',' option { $$ = ast_list_push(B, $1, $3); }
           | option_list ','        { $$ = $1; }
           ;
option: IDENT ':' expr              { $$ = ast_option(B, @$, $1, $3); } ;

expr: expr OR expr                  { $$ = ast_binary(B, @$, AST_OP_OR, $1, $3); }
    | expr AND expr                 { $$ = ast_binary(B, @$, AST_OP_AND, $1, $3); }
    | NOT expr                      { $$ = ast_unary(B, @$, AST_OP_NOT, $2); }
    | expr EQ expr                  { $$ = ast_binary(B, @$, AST_OP_EQ, $1, $3); }
    | expr NE expr                  { $$ = ast_binary(B, @$, AST_OP_NE, $1, $3); }
    | expr '<' expr                 { $$ = ast_binary(B, @$, AST_OP_LT, $1, $3); }
    | expr LE expr                  { $$ = ast_binary(B, @$, AST_OP_LE, $1, $3); }
    | expr '>' expr                 { $$ = ast_binary(B, @$, AST_OP_GT, $1, $3); }
    | expr GE expr                  { $$ = ast_binary(B, @$, AST_OP_GE, $1, $3); }
    | expr DOTDOT expr              { $$ = ast_range(B, @$, $1, $3); }
    | expr '+' expr                 { $$ = ast_binary(B, @$, AST_OP_ADD, $1, $3); }
    | expr '-' expr                 { $$ = ast_binary(B, @$, AST_OP_SUB, $1, $3); }
    | expr '*' expr                 { $$ = ast_binary(B, @$, AST_OP_MUL, $1, $3); }
    | expr '/' expr                 { $$ = ast_binary(B, @$, AST_OP_DIV, $1, $3); }
    | expr '%' expr                 { $$ = ast_binary(B, @$, AST_OP_MOD, $1, $3); }
    | '-' expr %prec UMINUS         { $$ = ast_unary(B, @$, AST_OP_NEG, $2); }
    | postfix                       { $$ = $1; }
    ;

postfix: primary                    { $$ = $1; }
       | postfix '[' expr ']'       { $$ = ast_index(B, @$, $1, $3); }
       | postfix '.' IDENT          { $$ = ast_field(B, @$, $1, $3); }
       ;

primary: IDENT                      { $$ = ast_name(B, @$, $1); }
       | IDENT '(' args ')'         { $$ = ast_call(B, @$, $1, $3); }
       | JOIN '(' args ')'          { $$ = ast_call(B, @$, (AstIdent){ast_intern(B, "join", 4), @1}, $3); }
       | INT                        { $$ = ast_int(B, @$, $1); }
       | FLOAT                      { $$ = ast_float(B, @$, $1); }
       | TRUE                       { $$ = ast_bool(B, @$, true); }
       | FALSE                      { $$ = ast_bool(B, @$, false); }
       | string                     { $$ = $1; }
       | '(' expr ')'               { $$ = $2; }
       | '[' args ']'               { $$ = ast_list(B, @$, $2); }
       | '{' field_inits '}'        { $$ = ast_record(B, @$, $2); }
       ;

args: %empty                        { $$ = ast_list_new(B); }
    | arg_list                      { $$ = $1; }
    | arg_list ','                  { $$ = $1; }
    ;
arg_list: expr                      { $$ = ast_list_push(B, ast_list_new(B), $1); }
        | arg_list ',' expr         { $$ = ast_list_push(B, $1, $3); }
        ;

field_inits: %empty                 { $$ = ast_list_new(B); }
           | field_init_list        { $$ = $1; }
           | field_init_list sep    { $$ = $1; }
           ;
field_init_list: field_init         { $$ = ast_list_push(B, ast_list_new(B), $1); }
               | field_init_list sep field_init { $$ = ast_list_push(B, $1, $3); }
               ;
field_init: IDENT ':' expr          { $$ = ast_field_init(B, @$, $1, $3); } ;

string: STR_BEGIN str_parts STR_END { $$ = ast_string(B, @$, $2, $1); } ;
str_parts: %empty                   { $$ = ast_list_new(B); }
         | str_parts STR_TEXT       { $$ = ast_list_push(B, $1, ast_str_text(B, @2, $2)); }
         | str_parts INTERP_BEGIN expr INTERP_END { $$ = ast_list_push(B, $1, $3); }
         ;

%%

static bool sym_is(yysymbol_kind_t k, const char *name)
{
    return strcmp(yysymbol_name(k), name) == 0;
}

/* Display name of a token for messages; the implicit `;` reads as a line end. */
static const char *tok_name(SglParser *p, yysymbol_kind_t k, bool is_lookahead)
{
    if (k == YYSYMBOL_YYEOF)
        return "end of input";
    if (sym_is(k, "';'") && is_lookahead && p->lx.last_implicit)
        return "end of line";
    if (sym_is(k, "';'"))
        return "newline";
    return yysymbol_name(k);
}

/* Tokens that can start an expression or a statement; a long expected list
 * that contains them is summarized as "expression"/"statement". */
static bool starts_expr(yysymbol_kind_t k)
{
    switch (k) {
    case YYSYMBOL_IDENT: case YYSYMBOL_INT: case YYSYMBOL_FLOAT: case YYSYMBOL_STR_BEGIN:
    case YYSYMBOL_TRUE: case YYSYMBOL_FALSE: case YYSYMBOL_NOT: case YYSYMBOL_JOIN:
        return true;
    default:
        return sym_is(k, "'('") || sym_is(k, "'['") || sym_is(k, "'{'") || sym_is(k, "'-'");
    }
}

static bool starts_stmt(yysymbol_kind_t k)
{
    switch (k) {
    case YYSYMBOL_LET: case YYSYMBOL_IF: case YYSYMBOL_FOR: case YYSYMBOL_WHILE:
    case YYSYMBOL_BREAK: case YYSYMBOL_CONTINUE: case YYSYMBOL_RETURN: case YYSYMBOL_GEN:
    case YYSYMBOL_SELECT: case YYSYMBOL_FORK: case YYSYMBOL_CAPTURE: case YYSYMBOL_SYSTEM:
    case YYSYMBOL_USER: case YYSYMBOL_ASSISTANT:
        return true;
    default:
        return false;
    }
}

/* Tokens that only continue an expression (binary operators, postfix); they
 * are left out of "expected ..." lists, which would otherwise always be long. */
static bool continues_expr(yysymbol_kind_t k)
{
    switch (k) {
    case YYSYMBOL_OR: case YYSYMBOL_AND: case YYSYMBOL_EQ: case YYSYMBOL_NE: case YYSYMBOL_LE:
    case YYSYMBOL_GE: case YYSYMBOL_DOTDOT:
        return true;
    default:
        return sym_is(k, "'<'") || sym_is(k, "'>'") || sym_is(k, "'+'") || sym_is(k, "'-'") ||
               sym_is(k, "'*'") || sym_is(k, "'/'") || sym_is(k, "'%'") || sym_is(k, "'['") ||
               sym_is(k, "'.'") || sym_is(k, "'('");
    }
}

/* "expected ')' or ',' before 'fork'", listing at most 6 alternatives. A
 * lexer error token (YYerror) is never reported twice. At end of input, or
 * when a closer is expected, a note points at the innermost open bracket. */
static int yyreport_syntax_error(const yypcontext_t *ctx, SglParser *p)
{
    enum { MAX_SHOWN = 6, MAX_EXP = 64 };
    yysymbol_kind_t exp[MAX_EXP], shown[MAX_SHOWN + 2];
    yysymbol_kind_t tok = yypcontext_token(ctx);
    int n = yypcontext_expected_tokens(ctx, exp, MAX_EXP);
    int n_shown = 0, n_expr = 0, n_stmt = 0, n_other = 0;
    bool closer = false;
    char msg[512];
    size_t len = 0;
    if (tok == YYSYMBOL_YYerror || n < 0)
        return 0;
    bool at_eof = tok == YYSYMBOL_YYEOF ||
                  (p->lx.last_implicit && p->lx.has_pending && p->lx.pend_tok == TOK_YYEOF);
    if (at_eof && p->lx.partial) {
        p->eof_in_partial = true; /* a REPL asks for another line */
        return 0;
    }
    for (int i = 0; i < n; i++) {
        n_expr += starts_expr(exp[i]);
        n_stmt += starts_stmt(exp[i]);
        n_other += !continues_expr(exp[i]);
        closer |= sym_is(exp[i], "'}'") || sym_is(exp[i], "')'") || sym_is(exp[i], "']'");
    }
    bool group_expr = n_expr >= 4, group_stmt = n_stmt >= 4;
    if (group_stmt)
        shown[n_shown++] = YYSYMBOL_stmt;
    else if (group_expr)
        shown[n_shown++] = YYSYMBOL_expr;
    for (int i = 0; i < n && n_shown <= MAX_SHOWN; i++) {
        if ((group_expr && starts_expr(exp[i])) || (group_stmt && starts_stmt(exp[i])))
            continue;
        if (!group_expr && n_other > 0 && continues_expr(exp[i]))
            continue;
        shown[n_shown++] = exp[i];
    }
    const char *tname = tok_name(p, tok, true);
    if (n_shown == 0 || n_shown > MAX_SHOWN) {
        len = (size_t)snprintf(msg, sizeof msg, "unexpected %s", tname);
    } else {
        len = (size_t)snprintf(msg, sizeof msg, "expected ");
        for (int i = 0; i < n_shown && len < sizeof msg; i++) {
            const char *name = shown[i] == YYSYMBOL_stmt ? "statement"
                               : shown[i] == YYSYMBOL_expr ? "expression"
                                                           : tok_name(p, shown[i], false);
            len += (size_t)snprintf(msg + len, sizeof msg - len, "%s%s",
                                    i == 0 ? "" : i == n_shown - 1 ? " or " : ", ", name);
        }
        if (len < sizeof msg)
            snprintf(msg + len, sizeof msg - len, "%s%s",
                     tok == YYSYMBOL_YYEOF ? " at " : " before ", tname);
    }
    SglDiag *d = sgl_diag_error(p->diags, *yypcontext_location(ctx), "%s", msg);
    if (tok == YYSYMBOL_IDENT && p->lx.prev == TOK_JOIN && !p->lx.has_pending)
        sgl_diag_note(p->diags, d, sgl_loc(NULL, 0, 0),
                      "`join MODE` must follow the fork's closing `}` on the same line");
    bool decl_kw = tok == YYSYMBOL_FN || tok == YYSYMBOL_EXTERN || tok == YYSYMBOL_TYPE ||
                   tok == YYSYMBOL_CONST || tok == YYSYMBOL_IMPORT;
    /* the innermost bracket opened before the lookahead (which may itself be one) */
    uint32_t depth = p->lx.depth;
    if (depth > 0 && !p->lx.has_pending &&
        (sym_is(tok, "'('") || sym_is(tok, "'['") || sym_is(tok, "'{'") ||
         tok == YYSYMBOL_STR_BEGIN || tok == YYSYMBOL_INTERP_BEGIN))
        depth--;
    const SglOpen *o = depth > 0 ? &p->lx.open[depth - 1] : NULL;
    if (decl_kw && !o && p->lx.has_dropped)
        o = &p->lx.dropped;
    p->lx.has_dropped = false;
    if ((tok == YYSYMBOL_YYEOF || closer || decl_kw) && o) {
        uint32_t line, col;
        sgl_source_line_col(p->lx.src, o->off, &line, &col);
        SglLoc at = sgl_loc(p->lx.src, o->off, 1);
        if (o->kind == '{' && o->kw)
            sgl_diag_note(p->diags, d, at, "to close `%s` block opened at line %u",
                          sgl_token_keyword(o->kw), line);
        else if (strchr("\"TRQi", o->kind))
            sgl_diag_note(p->diags, d, at, "inside the string opened at line %u", line);
        else
            sgl_diag_note(p->diags, d, at, "to close '%c' opened at line %u", o->kind, line);
    }
    return 0;
}

/* Only reached for Bison's own failures: the parser stack limit. */
static void sglyyerror(SglLoc *loc, SglParser *p, const char *msg)
{
    if (strstr(msg, "exhausted"))
        sgl_diag_error(p->diags, *loc,
                       "input nested too deeply: parser stack limit of %d exceeded", YYMAXDEPTH);
    else
        sgl_diag_error(p->diags, *loc, "%s", msg);
    p->lx.fatal = true;
}

AstNode *sgl_parse(const SglSource *src, SglArena *arena, SglDiags *diags, bool partial,
                   bool *incomplete)
{
    SglParser p;
    memset(&p, 0, sizeof p);
    p.diags = diags;
    ast_builder_init(&p.b, arena, diags);
    sgl_lexer_init(&p.lx, src, &p.b, diags, partial);
    yypstate *ps = yypstate_new();
    int status = YYPUSH_MORE;
    bool cut = ps == NULL;
    if (!ps)
        sgl_diag_error(diags, sgl_loc(src, 0, 0), "out of memory");
    while (status == YYPUSH_MORE && ps) {
        SGLYYSTYPE val;
        SglLoc loc;
        memset(&val, 0, sizeof val);
        int tok = sgl_lex(&p.lx, &val, &loc);
        if (tok == TOK_NEED_MORE || p.lx.fatal || p.b.oom || diags->n_errors > diags->max_errors) {
            cut = true;
            break;
        }
        status = yypush_parse(ps, tok, &val, &loc, &p);
        if (p.lx.fatal || p.b.oom) {
            cut = true;
            break;
        }
    }
    if (incomplete)
        *incomplete = partial && (p.lx.need_more || p.eof_in_partial);
    if (ps)
        yypstate_delete(ps);
    sgl_lexer_deinit(&p.lx);
    return cut ? NULL : p.program;
}
