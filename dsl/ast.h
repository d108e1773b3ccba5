/* ast.h — the syntax tree of a .cnn file, as the parser builds it.
 *
 * The tree is deliberately untyped: `a + b` is the same node whether it adds
 * two tensors or two integers, and `(conv(8, 3) -> relu)` is the same node
 * whether it is a tensor expression or a group of stages after `->`. The
 * expander (compiler/expand.c) gives each node its meaning from where it
 * stands. All nodes live in the compilation's arena.
 */
#ifndef CNNC_AST_H
#define CNNC_AST_H

#include "../compiler/base.h"

typedef struct Expr Expr;

typedef enum ExprKind {
    EX_INT,     /* 32                       ival                         */
    EX_REAL,    /* 0.5, 1e-5, .25           rval                         */
    EX_NAME,    /* x, same, relu            name (a bare layer name is a
                                             call with no arguments)      */
    EX_CALL,    /* f(args)                  name, args (Arg *)           */
    EX_NEG,     /* -a                       lhs                          */
    EX_BINOP,   /* a + b, a - b, a * b, a / b   op ('+' '-' '*' '/'), lhs, rhs */
    EX_TUPLE,   /* (a, b, ...)              items (Expr *)               */
    EX_CHAIN,   /* head -> s1 -> s2 ...     items: head, then the stages  */
    EX_REPEAT,  /* stage * N after '->'     lhs (the stage), rhs (N)     */
} ExprKind;

typedef struct Arg {
    const char *name;   /* NULL for a positional argument */
    Loc loc;            /* of the name, or of the value when positional */
    Expr *value;
} Arg;

struct Expr {
    ExprKind kind;
    Loc loc;            /* the token that names it: the callee, the operator */
    bool paren;         /* written inside parentheses */
    int64_t ival;
    double rval;
    const char *name;
    int op;
    Expr *lhs, *rhs;
    Vec args;           /* Arg *, for EX_CALL */
    Vec items;          /* Expr *, for EX_TUPLE and EX_CHAIN */
};

typedef struct Ident {
    const char *name;
    Loc loc;
} Ident;

typedef enum StmtKind {
    ST_INPUT,   /* input NAME: [d0, d1, ...]   name, dims (Expr *)   */
    ST_BIND,    /* NAME = EXPR                 name, value           */
    ST_OUTPUT,  /* output A, B                 outputs (Ident *)     */
    ST_RETURN,  /* return EXPR                 value                 */
} StmtKind;

typedef struct Stmt {
    StmtKind kind;
    Loc loc;            /* of the keyword, or of the bound name */
    const char *name;
    Expr *value;
    Vec dims;
    Vec outputs;
} Stmt;

typedef struct Param {
    const char *name;
    Loc loc;
    Expr *def;          /* the default, or NULL */
} Param;

typedef enum DefKind { DEF_NETWORK, DEF_BLOCK } DefKind;

typedef struct Def {
    DefKind kind;
    const char *name;
    Loc loc;            /* of the name */
    Loc end;            /* of the closing brace */
    Vec params;         /* Param *, blocks only */
    Vec stmts;          /* Stmt * */
} Def;

typedef struct Program {
    Vec defs;           /* Def *, in file order */
} Program;

/* ---- parser.y -----------------------------------------------------------
 * Parses `len` bytes of `src` (which may hold any bytes, NULs included).
 * Syntax errors go to `diags`; the returned program holds every definition
 * that parsed. Returns NULL only when nothing could be parsed at all. */
Program *parse_program(Arena *arena, Diags *diags, const char *src, size_t len);

#endif
