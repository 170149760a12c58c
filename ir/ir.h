/* ir.h -- the dataflow IR: IrProgram / IrFunc / IrRegion / IrNode.
 *
 * Pipeline place: checked AST --(frontend/lower.c)--> IrProgram --(passes,
 * ir/pass.h)--> interpreter / AOT (backend/). One IrFunc per .sgl `fn`.
 * A function body is a tree of structured regions: an IrRegion is an ordered
 * list of nodes; IF/FOR/WHILE/FORK own child regions. Values are SSA: a node
 * with a non-NULL `type` (not void) defines the value `%id`; operands
 * (`args`) point at their defining nodes, which come earlier in the same
 * region or in an enclosing one (never inside a sibling or child region).
 * Mutable variables are local slots (LOAD/STORE), so loops need no phis.
 * The prompt state is implicit: every function frame and every fork branch
 * has exactly one current prompt state, read and written by the state ops
 * (APPEND, GEN, SELECT, ROLE_*, CAPTURE_*, TEXT, PREFILL, FORK) in region
 * order. A fresh call starts with an empty state.
 * Ownership: an IrProgram owns everything reachable from it (one arena plus
 * node arrays); nothing in it is freed alone. It does not point into the
 * frontend: locations carry their own file name, so it outlives compilation.
 * ORDER IR_OP: ir_op_name() in ir.c follows the enum.  ir_verify() checks
 * every invariant written here (ir_verify.c).
 */
#ifndef SGL_IR_H
#define SGL_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define IR_NO_SLOT UINT32_MAX
#define IR_MAX_FUNCS 65536      /* functions + externs per program */
#define IR_MAX_NODES 4000000u   /* nodes per program */

/* ------------------------------------------------------------ types */
typedef enum { IR_TY_VOID, IR_TY_STR, IR_TY_INT, IR_TY_FLOAT, IR_TY_BOOL, IR_TY_LIST,
               IR_TY_RECORD, IR_TY_COUNT_ } IrTyKind;   /* ORDER IR_TY: ir_type_name */
typedef struct IrType IrType;
typedef struct { const char *name; const IrType *type; } IrField;
struct IrType {                 /* interned per program: equal types, equal pointers */
    IrTyKind kind;
    const IrType *elem;         /* LIST */
    const char *name;           /* RECORD: declared name */
    const IrField *fields;      /* RECORD: (n_fields), declaration order */
    uint32_t n_fields;
};

/* A constant value (CONST, gen constraints). Kind follows type->kind. */
typedef struct IrConst IrConst;
struct IrConst {
    const IrType *type;
    int64_t i;                  /* INT */
    double f;                   /* FLOAT */
    bool b;                     /* BOOL */
    const char *s;              /* STR: NUL-terminated, len bytes (no NUL inside) */
    uint32_t len;
    const IrConst *const *items;  /* LIST elements; RECORD fields in type order */
    uint32_t n_items;
};

/* Source location, self-contained (the file name is the program's copy). */
typedef struct { const char *file; uint32_t line, col, off, len; } IrLoc;

/* ------------------------------------------------------------ ops */
/* Every op's contract.  "state" is the implicit prompt state (file comment).
 *
 * IR op: CONST        in: -                      out: value
 *   The constant `cnst`.
 * IR op: LOAD         in: -                      out: value
 *   The value of local slot `slot` (params are slots 0..n_params-1).
 * IR op: STORE        in: value                  out: -
 *   slot `slot` := value. Lists/records have value semantics (copy on write).
 * IR op: UNOP         in: x                      out: value
 *   `aop` IR_ARITH_NEG (int: overflow is a runtime error) or IR_ARITH_NOT.
 * IR op: BINOP        in: a, b                   out: value
 *   `aop` = IrArith. Operands have equal types (lowering inserts BUILTIN
 *   float where int meets float). + on str/list concatenates; int / and %
 *   truncate toward zero; /0, %0 and int overflow are runtime errors;
 *   AND/OR here are strict (lowering uses IF for short-circuit when the
 *   right side could fail).  EQ/NE: deep equality of any type.
 * IR op: CONCAT       in: v1..vn                 out: str
 *   String interpolation: concatenation of str(vi) (str verbatim, int
 *   decimal, float shortest round-trip, bool true/false, list/record JSON).
 * IR op: LIST         in: v1..vn                 out: list[T]   (type given)
 * IR op: RECORD       in: f1..fn (type order)    out: record
 * IR op: INDEX        in: xs, i                  out: elem / str
 *   xs[i] of a list (str indexing is not in the language); out of range is
 *   a runtime error at `loc`.
 * IR op: FIELD        in: r                      out: field `index` of r
 * IR op: SET_INDEX    in: xs, i, v               out: xs with [i] := v
 * IR op: SET_FIELD    in: r, v                   out: r with field `index` := v
 * IR op: BUILTIN      in: args                   out: value
 *   Built-in function `aop` (IrBuiltin; docs/language.md section 6). META
 *   and TEXT are separate ops below.
 * IR op: META         in: -                      out: record (meta type)
 *   meta(NAME): the meta info of the GEN/SELECT that last stored slot `slot`.
 * IR op: TEXT         in: state                  out: str
 *   text(): the current prompt state as plain text.
 * IR op: APPEND       in: state, text            out: state'
 *   Appends the str operand to the prompt state.
 * IR op: GEN          in: state, option values   out: state', value
 *   One generation request on the current state, sampling options
 *   `gen->keys[k]` = args[k] (defaults from the command line), constraint
 *   `gen->con` (data; `con.fsm` is attached by the constraint pass). The
 *   output text is appended and parsed into `type` (str, or the typed
 *   value; a list of `n` samples when gen->has_n -- then nothing is appended).
 *   `name` is the variable (for meta, vars and streaming).
 * IR op: SELECT       in: state, choices          out: state', str
 *   Scores every choice (list[str] operand) as a continuation of the state
 *   with `aop` = IrSelectMethod; appends and returns the winner. The state
 *   is prefilled once and shared by all choices.
 * IR op: ROLE_BEGIN   in: state                  out: state'      (role `aop`)
 * IR op: ROLE_END     in: state                  out: state'
 *   The chat template's start/end markers of role `aop` (IrRole). Pairs are
 *   balanced within one region.
 * IR op: CAPTURE_BEGIN in: state                 out: int mark
 * IR op: CAPTURE_END   in: state, mark           out: str
 *   The text appended to the state since the matching CAPTURE_BEGIN (same
 *   region); `slot` names the capture variable (informational).
 * IR op: CALL         in: args                   out: value (or none: void)
 *   Runs function `index` on a fresh empty prompt state. Without IR_F_ASYNC
 *   the caller waits for the result. With IR_F_ASYNC (pass forkjoin) the
 *   call is only started; its value is a future that only AWAIT may read,
 *   and calls with the same nonzero `group` are issued together.
 * IR op: AWAIT        in: an IR_F_ASYNC CALL      out: its value
 *   Waits for the call. Every async call is awaited exactly once, later in
 *   its own region, before any node that ends or may leave the region
 *   (BREAK/CONTINUE/RETURN, or a region-owning node containing one), so
 *   every path that started it also awaits it.
 * IR op: EXTERN_CALL  in: args                   out: value (or none)
 *   The C function `externs[index]` (libffi), synchronous.
 * IR op: IF           in: bool                   regions: then, else
 * IR op: FOR          in: list | lo, hi (ints)   regions: body
 *   Binds slot `slot` to each element (or each int lo <= i < hi) in order.
 * IR op: WHILE        regions: cond, body
 *   Runs cond; its last node is a bool value; while true, runs body.
 * IR op: BREAK / CONTINUE   innermost FOR/WHILE (never across a FORK).
 * IR op: RETURN       in: value?                 ends the function.
 * IR op: FORK         in: list | count (int)     regions: body
 *   One branch per element (slot `slot` bound to it; IR_NO_SLOT for a
 *   count) or per count; each branch runs `body` on a copy of the state and
 *   of the locals. Afterwards, for each gather pair, slot `to` := list of
 *   the branches' final `from` values, in branch order; with `aop` ==
 *   IR_JOIN_CONCAT each branch's appended text is appended in order. With
 *   IR_F_PARALLEL (pass forkjoin) the branches are in flight at once (one
 *   batch); without, they run one after another with the same result.
 * IR op: PREFILL      in: state (unless FRESH)   out: -
 *   Cache warming, no effect on the state or on results: issue a
 *   prefill-only request (max_new_tokens 0) for state + `prefix` rendered
 *   (roles through the chat template). IR_F_FRESH: from an empty state
 *   (these live in IrProgram.init and run once at start-up, before main's
 *   arguments are known). The executor need not wait for it; it should
 *   prefill only up to the last token boundary that later text cannot
 *   change (e.g. drop the final token of the tokenized prefix).
 */
typedef enum {  /* ORDER IR_OP */
    IR_OP_CONST, IR_OP_LOAD, IR_OP_STORE, IR_OP_UNOP, IR_OP_BINOP, IR_OP_CONCAT,
    IR_OP_LIST, IR_OP_RECORD, IR_OP_INDEX, IR_OP_FIELD, IR_OP_SET_INDEX, IR_OP_SET_FIELD,
    IR_OP_BUILTIN, IR_OP_META, IR_OP_TEXT, IR_OP_APPEND, IR_OP_GEN, IR_OP_SELECT,
    IR_OP_ROLE_BEGIN, IR_OP_ROLE_END, IR_OP_CAPTURE_BEGIN, IR_OP_CAPTURE_END,
    IR_OP_CALL, IR_OP_AWAIT, IR_OP_EXTERN_CALL, IR_OP_IF, IR_OP_FOR, IR_OP_WHILE,
    IR_OP_BREAK, IR_OP_CONTINUE, IR_OP_RETURN, IR_OP_FORK, IR_OP_PREFILL, IR_OP_COUNT_
} IrOp;

typedef enum {  /* ORDER IR_ARITH: ir_arith_name */
    IR_ARITH_ADD, IR_ARITH_SUB, IR_ARITH_MUL, IR_ARITH_DIV, IR_ARITH_MOD, IR_ARITH_EQ,
    IR_ARITH_NE, IR_ARITH_LT, IR_ARITH_LE, IR_ARITH_GT, IR_ARITH_GE, IR_ARITH_AND,
    IR_ARITH_OR, IR_ARITH_NOT, IR_ARITH_NEG, IR_ARITH_COUNT_
} IrArith;

typedef enum {  /* ORDER IR_BI: ir_builtin_name; same names as the language's */
    IR_BI_LEN, IR_BI_STRIP, IR_BI_LOWER, IR_BI_UPPER, IR_BI_SPLIT, IR_BI_JOIN, IR_BI_REPLACE,
    IR_BI_CONTAINS, IR_BI_FIND, IR_BI_INDEX, IR_BI_SLICE, IR_BI_APPEND, IR_BI_RANGE,
    IR_BI_FORMAT, IR_BI_PARSE_INT, IR_BI_PARSE_FLOAT, IR_BI_PARSE_JSON, IR_BI_TO_JSON,
    IR_BI_STR, IR_BI_INT, IR_BI_FLOAT, IR_BI_MIN, IR_BI_MAX, IR_BI_ABS, IR_BI_COUNT_
} IrBuiltin;

typedef enum { IR_ROLE_SYSTEM, IR_ROLE_USER, IR_ROLE_ASSISTANT } IrRole;
typedef enum { IR_JOIN_GATHER, IR_JOIN_CONCAT } IrJoin;
typedef enum { IR_SEL_TOKEN_LENGTH_NORMALIZED, IR_SEL_GREEDY_TOKEN,
               IR_SEL_UNCONDITIONAL_LIKELIHOOD_NORMALIZED } IrSelectMethod;

/* GEN sampling options (args[k] is the value of keys[k]). ORDER IR_GEN_KEY */
typedef enum {
    IR_GEN_MAX_TOKENS, IR_GEN_MIN_TOKENS, IR_GEN_STOP /* str or list[str] */,
    IR_GEN_STOP_TOKEN_IDS, IR_GEN_TEMPERATURE, IR_GEN_TOP_P, IR_GEN_TOP_K, IR_GEN_MIN_P,
    IR_GEN_FREQUENCY_PENALTY, IR_GEN_PRESENCE_PENALTY, IR_GEN_REPETITION_PENALTY,
    IR_GEN_IGNORE_EOS, IR_GEN_SEED, IR_GEN_N, IR_GEN_KEY_COUNT_
} IrGenKey;

typedef enum { IR_CON_NONE, IR_CON_REGEX, IR_CON_JSON_SCHEMA, IR_CON_TYPE, IR_CON_CHOICES,
               IR_CON_COUNT_ } IrConKind;
typedef struct {
    IrConKind kind;
    const char *text;           /* REGEX pattern / JSON_SCHEMA text */
    uint32_t len;
    const IrType *type;         /* TYPE: the output type (not str) */
    const IrConst *choices;     /* CHOICES: list[str] constant */
    void *fsm;                  /* attached by the constraint pass; freed by IrProgram.fsm_free */
} IrConstraint;

typedef struct {
    IrGenKey *keys;             /* (n_args of the node) */
    IrConstraint con;
    bool has_n;                 /* `n:` given: the result is a list of samples */
} IrGenInfo;

/* PREFILL payload: text and role markers, rendered by the executor. */
typedef enum { IR_SEG_TEXT, IR_SEG_ROLE_BEGIN, IR_SEG_ROLE_END } IrSegKind;
typedef struct { IrSegKind kind; IrRole role; const char *text; uint32_t len; } IrSeg;
typedef struct { IrSeg *segs; uint32_t n_segs; uint32_t n_bytes; /* of text */ } IrPrefix;

typedef struct { uint32_t from, to; } IrGather;   /* FORK: branch slot -> list slot */

/* node flags */
#define IR_F_ASYNC    0x1u      /* CALL: started, awaited later (AWAIT) */
#define IR_F_PARALLEL 0x2u      /* FORK: branches in flight at once */
#define IR_F_FRESH    0x4u      /* PREFILL: from an empty state */
#define IR_F_HOISTED  0x8u      /* PREFILL inserted by pass prefix_hoist */

typedef struct IrNode IrNode;
typedef struct { IrNode **nodes; uint32_t n, cap; } IrRegion;

struct IrNode {
    IrOp op;
    uint32_t id;                /* unique in its function, < IrFunc.n_ids; value %id */
    const IrType *type;         /* result; NULL or void: defines no value */
    IrNode **args;              /* operands (defining nodes) */
    uint32_t n_args;
    IrRegion *regions;          /* child regions (see ops) */
    uint32_t n_regions;
    IrLoc loc;                  /* the statement/expression it came from */
    uint32_t flags;             /* IR_F_* */
    uint32_t group;             /* nonzero: parallel group (pass forkjoin), unique per program */
    int aop;                    /* IrArith / IrBuiltin / IrRole / IrJoin / IrSelectMethod */
    uint32_t slot;              /* LOAD/STORE/META/FOR/FORK/CAPTURE_END; else IR_NO_SLOT */
    uint32_t index;             /* FIELD/SET_FIELD field; CALL func; EXTERN_CALL extern */
    const IrConst *cnst;        /* CONST */
    const char *name;           /* GEN/SELECT variable name */
    IrGenInfo *gen;             /* GEN */
    IrPrefix *prefix;           /* PREFILL */
    IrGather *gather;           /* FORK: (n_gather) */
    uint32_t n_gather;
};

typedef enum { IR_SLOT_PARAM, IR_SLOT_LET, IR_SLOT_GEN, IR_SLOT_SELECT, IR_SLOT_CAPTURE,
               IR_SLOT_FOR, IR_SLOT_FORK_VAR, IR_SLOT_GATHER, IR_SLOT_TEMP } IrSlotKind;
typedef struct { const char *name; const IrType *type; IrSlotKind kind; } IrSlot;

typedef struct {
    const char *name;
    const IrType *ret;          /* void type when none */
    uint32_t n_params;          /* slots 0..n_params-1 */
    IrSlot *slots;              /* (n_slots) */
    uint32_t n_slots;
    IrRegion body;
    uint32_t n_ids;             /* node ids are < n_ids */
    IrLoc loc;
    uint32_t cap_slots;         /* room in `slots` (ir_slot_add doubles it) */
} IrFunc;

typedef struct {
    const char *name, *lib;     /* symbol, dlopen name */
    const IrType **params;      /* (n_params) */
    uint32_t n_params;
    const IrType *ret;
    IrLoc loc;
} IrExtern;

typedef struct IrArenaChunk IrArenaChunk;
typedef struct {
    IrFunc **funcs;             /* (n_funcs) root fns in source order, then imported fns calls reach */
    uint32_t n_funcs, cap_funcs;
    IrExtern *externs;          /* (n_externs) */
    uint32_t n_externs, cap_externs;
    int32_t main;               /* index of `main` in funcs, or -1 */
    IrFunc *init;               /* NULL, or start-up PREFILLs (pass prefix_hoist) */
    const IrType *t_void, *t_str, *t_int, *t_float, *t_bool, *t_meta;
    IrType **types;             /* interned list/record types (n_types) */
    uint32_t n_types, cap_types;
    uint32_t next_group;        /* next IrNode.group to hand out (starts at 1) */
    uint32_t n_nodes;
    void (*fsm_free)(void *);   /* frees IrConstraint.fsm handles (may stay NULL) */
    IrArenaChunk *arena;        /* owned */
    bool oom;                   /* an allocation failed: the program is incomplete */
} IrProgram;

/* ---- lifecycle and building (ir.c). Allocation failure sets p->oom and
 * returns NULL; callers check p->oom once at the end. ---- */
IrProgram *ir_program_new(void);
void ir_program_free(IrProgram *p);            /* NULL is fine */
void *ir_alloc(IrProgram *p, size_t n);        /* zeroed, program lifetime */
const char *ir_strdup(IrProgram *p, const char *s, size_t len);
const IrType *ir_type_list(IrProgram *p, const IrType *elem);
IrType *ir_type_record(IrProgram *p, const char *name, uint32_t n_fields); /* fill fields */
IrFunc *ir_func_new(IrProgram *p, const char *name, uint32_t n_params, uint32_t n_slots);
uint32_t ir_extern_add(IrProgram *p, const IrExtern *e);   /* index, or UINT32_MAX */
/* A node with n_args operands and n_regions empty regions, not yet placed. */
IrNode *ir_node_new(IrProgram *p, IrFunc *f, IrOp op, const IrType *type, uint32_t n_args,
                    uint32_t n_regions, IrLoc loc);
bool ir_region_insert(IrProgram *p, IrRegion *r, uint32_t at, IrNode *n);
bool ir_region_push(IrProgram *p, IrRegion *r, IrNode *n);
void ir_region_remove(IrRegion *r, uint32_t at);
uint32_t ir_slot_add(IrProgram *p, IrFunc *f, const char *name, const IrType *t, IrSlotKind k);
IrConst *ir_const_new(IrProgram *p, const IrType *t);

/* ---- queries ---- */
bool ir_has_value(const IrNode *n);            /* type non-NULL and not void */
bool ir_op_touches_state(IrOp op);             /* reads or writes the prompt state */
bool ir_op_is_terminator(IrOp op);             /* BREAK, CONTINUE, RETURN */
const char *ir_op_name(IrOp op);               /* "GEN"; never NULL */
const char *ir_arith_name(IrArith a);          /* "add" */
const char *ir_builtin_name(IrBuiltin b);      /* "len" */
int ir_builtin_find(const char *name);         /* IrBuiltin or -1 */
const char *ir_gen_key_name(IrGenKey k);       /* "max_tokens" */
const char *ir_role_name(IrRole r);            /* "user" */
const char *ir_select_method_name(IrSelectMethod m);
const char *ir_type_name(const IrType *t, char *buf, size_t cap);  /* "list[str]" */
bool ir_const_equal(const IrConst *a, const IrConst *b);

/* ---- printer (ir_print.c): stable text, the golden format ---- */
void ir_print(FILE *f, const IrProgram *p);
void ir_print_func(FILE *f, const IrProgram *p, const IrFunc *fn);

/* ---- verifier (ir_verify.c): true when every invariant holds; otherwise
 * writes one line per problem ("func: %id OP: message") to err (may be NULL)
 * and returns false. Never aborts, whatever the graph. ---- */
bool ir_verify(const IrProgram *p, FILE *err);

/* IR_CONTRACT_READY */
#endif
