/* parser.y — the grammar of the .cnn language (DSL.md, "Structure" and
 * "Expressions"). It builds the untyped tree of ast.h; meaning comes later.
 *
 * Newlines are white space and `;` is an empty statement, so statements are
 * simply juxtaposed: the grammar stays LALR(1) because no statement can
 * start with a token that could continue an expression.
 *
 * Error recovery is per definition: after a syntax error the parser skips to
 * the next `}` and goes on with the next network or block, so every broken
 * definition is reported once and no error follows from another.
 */
%define api.pure full
%define api.location.type {Loc}
%define parse.error custom
%define parse.lac full
%locations
%param {yyscan_t scanner}
%parse-param {ParseCtx *ctx}

%code requires {
#include "ast.h"

typedef void *yyscan_t;

/* What the lexer and the parser share for one parse. */
typedef struct ParseCtx {
    Arena *arena;
    Diags *diags;
    Program *program;
    int line, col;        /* where the lexer is */
    const char *tok;      /* the text of the last token, for messages */
    int tok_len;
} ParseCtx;

#define YYLLOC_DEFAULT(Cur, Rhs, N) \
    do { (Cur) = (N) ? YYRHSLOC(Rhs, 1) : YYRHSLOC(Rhs, 0); } while (0)
}

%code provides {
int yylex(YYSTYPE *lval, Loc *lloc, yyscan_t scanner);
int yylex_init_extra(ParseCtx *extra, yyscan_t *scanner);
int yylex_destroy(yyscan_t scanner);
}

%code {
#include <string.h>

/* Nesting deeper than this is no network anyone writes; stopping here
 * keeps the parser's stack and the expander's recursion small. */
#define YYMAXDEPTH 1000

static Expr *new_expr(ParseCtx *ctx, ExprKind kind, Loc loc) {
    Expr *e = arena_alloc(ctx->arena, sizeof *e);
    e->kind = kind;
    e->loc = loc;
    return e;
}

static Expr *binop(ParseCtx *ctx, int op, Loc loc, Expr *l, Expr *r) {
    Expr *e = new_expr(ctx, EX_BINOP, loc);
    e->op = op;
    e->lhs = l;
    e->rhs = r;
    return e;
}

/* Bison calls this only when its stack passes YYMAXDEPTH (syntax errors go
 * to yyreport_syntax_error), so the message is about nesting. */
static void yyerror(Loc *loc, yyscan_t scanner, ParseCtx *ctx,
                    const char *msg) {
    (void)scanner;
    if (!strcmp(msg, "memory exhausted"))
        diag_error(ctx->diags, *loc, "expressions nest too deeply");
    else
        diag_error(ctx->diags, *loc, "%s", msg);
}
}

%union {
    int64_t ival;
    double rval;
    const char *str;
    Expr *expr;
    Arg *arg;
    Stmt *stmt;
    Def *def;
    Param *param;
    Vec vec;
}

%token <ival> INT "integer"
%token <rval> REAL "number"
%token <str> IDENT "name"
%token NETWORK "'network'" BLOCK "'block'" INPUT "'input'"
%token OUTPUT "'output'" RETURN "'return'" ARROW "'->'"
%token END 0 "end of file"

%type <expr> expr sum prod unary postfix stage callee count
%type <arg> arg
%type <stmt> stmt
%type <def> def
%type <param> param
%type <vec> stmts params args arglist exprs outputs

%%

program
    : %empty
    | program def           { if ($2) vec_push(ctx->arena, &ctx->program->defs, $2); }
    ;

def
    : NETWORK IDENT '{' stmts '}' {
          $$ = arena_alloc(ctx->arena, sizeof *$$);
          $$->kind = DEF_NETWORK; $$->name = $2; $$->loc = @2;
          $$->stmts = $4; $$->end = @5;
      }
    | BLOCK IDENT '(' params ')' '{' stmts '}' {
          $$ = arena_alloc(ctx->arena, sizeof *$$);
          $$->kind = DEF_BLOCK; $$->name = $2; $$->loc = @2;
          $$->params = $4; $$->stmts = $7; $$->end = @8;
      }
    | error '}'             { $$ = NULL; yyerrok; }
    ;

params
    : %empty                { $$ = (Vec){0}; }
    | param                 { $$ = (Vec){0}; vec_push(ctx->arena, &$$, $1); }
    | params ',' param      { $$ = $1; vec_push(ctx->arena, &$$, $3); }
    ;

param
    : IDENT                 { $$ = arena_alloc(ctx->arena, sizeof *$$); $$->name = $1; $$->loc = @1; }
    | IDENT '=' expr        { $$ = arena_alloc(ctx->arena, sizeof *$$); $$->name = $1; $$->loc = @1; $$->def = $3; }
    ;

stmts
    : %empty                { $$ = (Vec){0}; }
    | stmts stmt            { $$ = $1; if ($2) vec_push(ctx->arena, &$$, $2); }
    ;

stmt
    : ';'                   { $$ = NULL; }
    | IDENT '=' expr {
          $$ = arena_alloc(ctx->arena, sizeof *$$);
          $$->kind = ST_BIND; $$->loc = @1; $$->name = $1; $$->value = $3;
      }
    | INPUT IDENT ':' '[' exprs ']' {
          $$ = arena_alloc(ctx->arena, sizeof *$$);
          $$->kind = ST_INPUT; $$->loc = @2; $$->name = $2; $$->dims = $5;
      }
    | OUTPUT outputs {
          $$ = arena_alloc(ctx->arena, sizeof *$$);
          $$->kind = ST_OUTPUT; $$->loc = @1; $$->outputs = $2;
      }
    | RETURN expr {
          $$ = arena_alloc(ctx->arena, sizeof *$$);
          $$->kind = ST_RETURN; $$->loc = @1; $$->value = $2;
      }
    ;

outputs
    : IDENT {
          Ident *id = arena_alloc(ctx->arena, sizeof *id);
          id->name = $1; id->loc = @1;
          $$ = (Vec){0}; vec_push(ctx->arena, &$$, id);
      }
    | outputs ',' IDENT {
          Ident *id = arena_alloc(ctx->arena, sizeof *id);
          id->name = $3; id->loc = @3;
          $$ = $1; vec_push(ctx->arena, &$$, id);
      }
    ;

/* `->` binds loosest. A chain is kept flat (head, stage, stage, ...) so a
 * long chain is a list, not a deep tree. */
expr
    : sum
    | expr ARROW stage {
          if ($1->kind == EX_CHAIN && !$1->paren) {
              $$ = $1;
          } else {
              $$ = new_expr(ctx, EX_CHAIN, @2);
              vec_push(ctx->arena, &$$->items, $1);
          }
          vec_push(ctx->arena, &$$->items, $3);
      }
    ;

/* A stage is a call, a bare name or a parenthesised group, optionally
 * repeated: `-> conv(8, 3) * 2`, `-> (conv(8, 3) -> relu) * 3`. */
stage
    : callee
    | callee '*' count      { $$ = new_expr(ctx, EX_REPEAT, @2); $$->lhs = $1; $$->rhs = $3; }
    ;

callee
    : IDENT                 { $$ = new_expr(ctx, EX_NAME, @1); $$->name = $1; }
    | IDENT '(' args ')'    { $$ = new_expr(ctx, EX_CALL, @1); $$->name = $1; $$->args = $3; }
    | '(' expr ')'          { $$ = $2; $$->paren = true; }
    ;

count
    : INT                   { $$ = new_expr(ctx, EX_INT, @1); $$->ival = $1; }
    | IDENT                 { $$ = new_expr(ctx, EX_NAME, @1); $$->name = $1; }
    | '(' expr ')'          { $$ = $2; $$->paren = true; }
    ;

sum
    : prod
    | sum '+' prod          { $$ = binop(ctx, '+', @2, $1, $3); }
    | sum '-' prod          { $$ = binop(ctx, '-', @2, $1, $3); }
    ;

prod
    : unary
    | prod '*' unary        { $$ = binop(ctx, '*', @2, $1, $3); }
    | prod '/' unary        { $$ = binop(ctx, '/', @2, $1, $3); }
    ;

unary
    : postfix
    | '-' unary             { $$ = new_expr(ctx, EX_NEG, @1); $$->lhs = $2; }
    ;

postfix
    : INT                   { $$ = new_expr(ctx, EX_INT, @1); $$->ival = $1; }
    | REAL                  { $$ = new_expr(ctx, EX_REAL, @1); $$->rval = $1; }
    | IDENT                 { $$ = new_expr(ctx, EX_NAME, @1); $$->name = $1; }
    | IDENT '(' args ')'    { $$ = new_expr(ctx, EX_CALL, @1); $$->name = $1; $$->args = $3; }
    | '(' expr ')'          { $$ = $2; $$->paren = true; }
    | '(' expr ',' exprs ')' {
          $$ = new_expr(ctx, EX_TUPLE, @1);
          vec_push(ctx->arena, &$$->items, $2);
          for (int i = 0; i < $4.len; i++)
              vec_push(ctx->arena, &$$->items, $4.items[i]);
      }
    ;

exprs
    : expr                  { $$ = (Vec){0}; vec_push(ctx->arena, &$$, $1); }
    | exprs ',' expr        { $$ = $1; vec_push(ctx->arena, &$$, $3); }
    ;

args
    : %empty                { $$ = (Vec){0}; }
    | arglist
    ;

arglist
    : arg                   { $$ = (Vec){0}; vec_push(ctx->arena, &$$, $1); }
    | arglist ',' arg       { $$ = $1; vec_push(ctx->arena, &$$, $3); }
    ;

arg
    : expr                  { $$ = arena_alloc(ctx->arena, sizeof *$$); $$->loc = $1->loc; $$->value = $1; }
    | IDENT '=' expr        { $$ = arena_alloc(ctx->arena, sizeof *$$); $$->loc = @1; $$->name = $1; $$->value = $3; }
    ;

%%

#include <string.h>
#include "lexer.h"

/* The token as the user wrote it, for "unexpected ..." messages. */
static const char *token_text(yysymbol_kind_t sym) {
    switch (sym) {
    case YYSYMBOL_YYEOF: return "end of file";
    default: return yysymbol_name(sym);
    }
}

/* Syntax errors in the user's terms: what was found, what could stand
 * there, and for the one mistake everybody makes, how to write it. */
static int yyreport_syntax_error(const yypcontext_t *pc, yyscan_t scanner,
                                 ParseCtx *ctx) {
    (void)scanner;
    enum { MAX_LISTED = 4 };
    yysymbol_kind_t expected[YYNTOKENS];
    int n = yypcontext_expected_tokens(pc, expected, YYNTOKENS);
    yysymbol_kind_t got = yypcontext_token(pc);
    const Loc *loc = yypcontext_location(pc);

    bool arrow_ok = false;
    for (int i = 0; i < n; i++)
        arrow_ok |= expected[i] == YYSYMBOL_ARROW;
    const char *got_name = yysymbol_name(got);
    bool plus = !strcmp(got_name, "'+'"), minus = !strcmp(got_name, "'-'");
    if ((plus || minus) && arrow_ok) {
        diag_error(ctx->diags, *loc,
                   "a stage after '->' must be a call or a group; "
                   "put the chain in parentheses, as in '(x -> relu) %c y'",
                   plus ? '+' : '-');
        return 0;
    }

    bool brace_ok = false;
    for (int i = 0; i < n; i++)
        brace_ok |= !strcmp(yysymbol_name(expected[i]), "'}'");
    if (got == YYSYMBOL_YYEOF && brace_ok) {
        diag_error(ctx->diags, *loc, "unexpected end of file: a '}' is missing");
        return 0;
    }

    /* "expected end of file, 'network' or 'block'" reads oddly: drop the
     * end of file when something else could stand there. */
    if (n > 1) {
        int kept = 0;
        for (int i = 0; i < n; i++)
            if (expected[i] != YYSYMBOL_YYEOF)
                expected[kept++] = expected[i];
        n = kept;
    }

    char buf[256] = "";
    if (n > 0 && n <= MAX_LISTED) {
        size_t len = (size_t)snprintf(buf, sizeof buf, ", expected ");
        for (int i = 0; i < n && len < sizeof buf; i++)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s",
                                    i == 0 ? "" : i == n - 1 ? " or " : ", ",
                                    token_text(expected[i]));
    }
    if (got == YYSYMBOL_IDENT || got == YYSYMBOL_INT || got == YYSYMBOL_REAL)
        diag_error(ctx->diags, *loc, "unexpected %s '%.*s'%s", token_text(got),
                   ctx->tok_len > 40 ? 40 : ctx->tok_len, ctx->tok, buf);
    else
        diag_error(ctx->diags, *loc, "unexpected %s%s", token_text(got), buf);
    return 0;
}

Program *parse_program(Arena *arena, Diags *diags, const char *src, size_t len) {
    ParseCtx ctx = {.arena = arena, .diags = diags, .line = 1, .col = 1};
    ctx.program = arena_alloc(arena, sizeof *ctx.program);
    yyscan_t scanner;
    if (yylex_init_extra(&ctx, &scanner) != 0) {
        diag_error(diags, (Loc){0, 0}, "cannot start the lexer");
        return NULL;
    }
    YY_BUFFER_STATE buf = yy_scan_bytes(src, (int)len, scanner);
    yyparse(scanner, &ctx);
    yy_delete_buffer(buf, scanner);
    yylex_destroy(scanner);
    return ctx.program;
}
