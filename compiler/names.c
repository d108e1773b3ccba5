/* names.c — the name checks DSL.md asks of every definition in a file,
 * whether or not the selected network uses it:
 *   - definitions: unique names, not a layer's name; a network somewhere;
 *   - bindings: not a layer's or block's name; used before they are bound?
 *     never used at all?
 *   - calls: a known layer or block, with arguments it has;
 *   - statements: input/output in networks, one final return in blocks;
 *   - blocks: never calling themselves, directly or through others.
 * Shapes and values are the expander's business; this pass only needs
 * the syntax tree.
 */
#include "ir.h"

#include <string.h>

typedef struct Binding {
    const char *name;
    Loc loc;
    enum { B_VALUE, B_INPUT, B_PARAM } kind;
    bool used;
    const Stmt *output;  /* the `output` statement that names it, if any */
} Binding;

typedef struct Names {
    Program *prog;
    Diags *d;
    Arena *a;
    const Def *def;     /* the definition being checked */
    Vec bound;          /* Binding *, in order */
    Map latest;         /* name -> its latest Binding: what a use sees */
    Map blocks;         /* name -> the first block of that name */
    Map params;         /* block name -> a Map of its parameters' names */
    int depth;          /* of check_expr's recursion */
    bool too_deep;      /* that was reported, in this definition */
    Vec calls;          /* the blocks `def` calls: CallRef * */
    Vec early;          /* names used before they are bound (const char *):
                           their later bindings are not "never used" */
} Names;

typedef struct CallRef {
    const Def *callee;
    Loc loc;
} CallRef;

const Def *find_def(Program *prog, const char *name, DefKind kind) {
    for (int i = 0; i < prog->defs.len; i++) {
        const Def *d = prog->defs.items[i];
        if (d->kind == kind && strcmp(d->name, name) == 0)
            return d;
    }
    return NULL;
}

/* ---- "did you mean" ------------------------------------------------------ */

static int edit_distance(const char *s, const char *t) {
    size_t n = strlen(s), m = strlen(t);
    if (n > 40 || m > 40)
        return 99;
    int row[41];
    for (size_t j = 0; j <= m; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int up = row[j];
            int best = diag + (s[i - 1] != t[j - 1]);
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[m];
}

/* Keeps `cand` as the suggestion if it is the closest so far and close
 * enough to be a plausible typo. */
static void consider(const char *name, const char *cand, const char **best,
                     int *best_d) {
    int dist = edit_distance(name, cand);
    int limit = strlen(name) <= 3 ? 1 : 2;
    if (dist > 0 && dist <= limit && dist < *best_d) {
        *best = cand;
        *best_d = dist;
    }
}

static const char *hint(Arena *a, const char *best) {
    return best ? arena_printf(a, "; did you mean '%s'?", best) : "";
}

static const char *suggest_callee(Names *x, const char *name) {
    const char *best = NULL;
    int best_d = 99;
    for (int i = 0; i < layer_count(); i++) {
        const LayerInfo *li = layer_at(i);
        if (li->op == OP_ADD)
            continue;
        consider(name, li->name, &best, &best_d);
    }
    for (int i = 0; i < x->prog->defs.len; i++) {
        const Def *d = x->prog->defs.items[i];
        if (d->kind == DEF_BLOCK)
            consider(name, d->name, &best, &best_d);
    }
    return hint(x->a, best);
}

/* The suggested binding counts as used: it is most likely the one meant,
 * and "never used" would only repeat the typo. */
static const char *suggest_value(Names *x, const char *name) {
    const char *best = NULL;
    int best_d = 99;
    for (int i = 0; i < x->bound.len; i++)
        consider(name, ((Binding *)x->bound.items[i])->name, &best, &best_d);
    for (int i = 0; best && i < x->bound.len; i++) {
        Binding *b = x->bound.items[i];
        if (!strcmp(b->name, best))
            b->used = true;
    }
    return hint(x->a, best);
}

/* ---- scopes ------------------------------------------------------------- */

static Binding *lookup(Names *x, const char *name) {
    return map_get(&x->latest, name);
}

static const Def *block_named(Names *x, const char *name) {
    return map_get(&x->blocks, name);
}

/* Does block `blk` have a parameter `name`? One map per block, made on
 * first use, so a call's named arguments cost no search each. */
static bool has_param(Names *x, const Def *blk, const char *name) {
    Map *m = map_get(&x->params, blk->name);
    if (!m) {
        m = arena_alloc(x->a, sizeof *m);
        for (int k = 0; k < blk->params.len; k++) {
            Param *p = blk->params.items[k];
            map_put(x->a, m, p->name, p);
        }
        map_put(x->a, &x->params, blk->name, m);
    }
    return map_get(m, name) != NULL;
}

static bool is_callable(Names *x, const char *name) {
    return layer_find(name) || block_named(x, name);
}

/* Is `name` bound by a statement of the current definition? */
static bool bound_anywhere(Names *x, const char *name) {
    for (int i = 0; i < x->def->stmts.len; i++) {
        const Stmt *s = x->def->stmts.items[i];
        if ((s->kind == ST_BIND || s->kind == ST_INPUT) &&
            strcmp(s->name, name) == 0)
            return true;
    }
    return false;
}

static void bind(Names *x, const char *name, Loc loc, int kind) {
    Binding *prev = lookup(x, name);
    if (prev && kind == B_INPUT) {
        diag_error(x->d, loc, "'%s' is already %s on line %d; an input needs a "
                   "name of its own", name, prev->kind == B_INPUT ? "an input"
                   : "bound", prev->loc.line);
        prev->used = true;   /* no "never used" as well */
    } else if (layer_find(name)) {
        diag_error(x->d, loc, "'%s' is a layer; a value needs another name",
                   name);
    } else if (block_named(x, name)) {
        diag_error(x->d, loc, "'%s' is a block; a value needs another name",
                   name);
    }
    Binding *b = arena_alloc(x->a, sizeof *b);
    b->name = name;
    b->loc = loc;
    b->kind = kind;
    vec_push(x->a, &x->bound, b);
    map_put(x->a, &x->latest, name, b);
}

/* ---- expressions ------------------------------------------------------------ */

static void check_expr(Names *x, const Expr *e);

static void check_value_name(Names *x, const char *name, Loc loc) {
    Binding *b = lookup(x, name);
    if (b) {
        b->used = true;
    } else if (x->d->too_many) {
        /* nothing more is printed: skip the searches below */
    } else if (is_callable(x, name) || is_symbol(name)) {
        /* a bare call, or an argument value such as `same` */
    } else if (bound_anywhere(x, name)) {
        diag_error(x->d, loc, "'%s' is used before it is bound", name);
        vec_push(x->a, &x->early, (void *)name);
    } else {
        diag_error(x->d, loc, "'%s' is not defined%s", name,
                   suggest_value(x, name));
    }
}

/* `pad_mode=mirror`: an unknown name given to an argument that takes one
 * of a few fixed names is better reported as a bad choice than as an
 * undefined name. Returns true if it reported (or accepted) the value. */
static bool check_choice(Names *x, const LayerInfo *li, const ArgSpec *spec,
                         const Expr *v) {
    const char *choices = spec->type == ARG_BOOL ? "true or false"
        : spec->type == ARG_PADMODE ? "zeros, reflect, replicate or circular"
        : spec->type == ARG_PAD ? "an integer, a pair or 'same'"
        : NULL;
    if (!choices || v->kind != EX_NAME || lookup(x, v->name) ||
        is_callable(x, v->name) || is_symbol(v->name))
        return false;
    diag_error(x->d, v->loc, "%s's '%s' must be %s, got '%s'", li->name,
               spec->name, choices, v->name);
    return true;
}

static void check_call(Names *x, const Expr *e) {
    const LayerInfo *li = layer_find(e->name);
    const Def *blk = block_named(x, e->name);
    Binding *value = lookup(x, e->name);
    if (value) {
        value->used = true;   /* no "never used" after this error */
        diag_error(x->d, e->loc, "'%s' is a value, not a layer or block",
                   e->name);
    } else if (!li && !blk && !x->d->too_many) {
        diag_error(x->d, e->loc, "unknown layer or block '%s'%s", e->name,
                   suggest_callee(x, e->name));
    }
    if (blk) {
        CallRef *r = arena_alloc(x->a, sizeof *r);
        r->callee = blk;
        r->loc = e->loc;
        vec_push(x->a, &x->calls, r);
    }
    for (int i = 0; i < e->args.len; i++) {
        const Arg *arg = e->args.items[i];
        if (arg->name && li && !layer_arg(li, arg->name)) {
            const char *best = NULL;
            int best_d = 99;
            for (int k = 0; k < layer_nargs(li); k++)
                consider(arg->name, li->args[k].name, &best, &best_d);
            diag_error(x->d, arg->loc, "%s has no argument '%s'%s", li->name,
                       arg->name, hint(x->a, best));
        } else if (arg->name && blk && !li) {
            if (!has_param(x, blk, arg->name))
                diag_error(x->d, arg->loc, "block '%s' has no parameter '%s'",
                           blk->name, arg->name);
        }
        if (!li || !arg->name || !layer_arg(li, arg->name) ||
            !check_choice(x, li, layer_arg(li, arg->name), arg->value))
            check_expr(x, arg->value);
    }
}

/* A stage after '->' is a call or a group of stages: a bare name there is a
 * layer or block, never a value. */
static void check_stage(Names *x, const Expr *e) {
    switch (e->kind) {
    case EX_NAME: {
        Binding *value = lookup(x, e->name);
        if (value) {
            value->used = true;
            diag_error(x->d, e->loc, "'%s' is a value, not a layer or block: "
                       "a stage after '->' must be a call or a group", e->name);
        } else {
            check_call(x, e);
        }
        break;
    }
    case EX_CHAIN:
        for (int i = 0; i < e->items.len; i++)
            check_stage(x, e->items.items[i]);
        break;
    case EX_REPEAT:
        check_stage(x, e->lhs);
        check_expr(x, e->rhs);
        break;
    case EX_BINOP:
        if (e->op == '*') {
            check_stage(x, e->lhs);   /* `(... -> relu) * 2` inside a group */
            check_expr(x, e->rhs);
            break;
        }
        check_expr(x, e);
        break;
    default:
        check_expr(x, e);
        break;
    }
}

static void check_expr_inner(Names *x, const Expr *e);

/* `x + x + x + ...` parses into a tree as deep as the sum is long (the
 * parser's own stack stays flat), so the walk is bounded here rather than
 * by the C stack. The expander allows less (MAX_DEPTH in expand.c). */
enum { MAX_EXPR_DEPTH = 1000 };

static void check_expr(Names *x, const Expr *e) {
    if (x->depth >= MAX_EXPR_DEPTH) {
        if (!x->too_deep)
            diag_error(x->d, e->loc, "expressions nest too deeply");
        x->too_deep = true;
        return;
    }
    x->depth++;
    check_expr_inner(x, e);
    x->depth--;
}

static void check_expr_inner(Names *x, const Expr *e) {
    switch (e->kind) {
    case EX_INT:
    case EX_REAL:
        break;
    case EX_NAME:
        check_value_name(x, e->name, e->loc);
        if (is_callable(x, e->name))
            check_call(x, e);   /* a bare call: records block calls */
        break;
    case EX_CALL:
        check_call(x, e);
        break;
    case EX_NEG:
        check_expr(x, e->lhs);
        break;
    case EX_BINOP:
    case EX_REPEAT:
        check_expr(x, e->lhs);
        check_expr(x, e->rhs);
        break;
    case EX_TUPLE:
        for (int i = 0; i < e->items.len; i++)
            check_expr(x, e->items.items[i]);
        break;
    case EX_CHAIN:
        check_expr(x, e->items.items[0]);
        for (int i = 1; i < e->items.len; i++)
            check_stage(x, e->items.items[i]);
        break;
    }
}

/* ---- statements and definitions ------------------------------------------- */

static void check_stmt(Names *x, const Stmt *s, bool last) {
    bool network = x->def->kind == DEF_NETWORK;
    switch (s->kind) {
    case ST_INPUT:
        if (!network)
            diag_error(x->d, s->loc, "'input' belongs in a network; a block "
                       "receives its tensor as its first parameter");
        for (int i = 0; i < s->dims.len; i++)
            check_expr(x, s->dims.items[i]);
        bind(x, s->name, s->loc, B_INPUT);
        break;
    case ST_BIND:
        check_expr(x, s->value);
        bind(x, s->name, s->loc, B_VALUE);
        break;
    case ST_OUTPUT:
        if (!network)
            diag_error(x->d, s->loc, "'output' belongs in a network; a block "
                       "ends with 'return'");
        for (int i = 0; i < s->outputs.len; i++) {
            const Ident *id = s->outputs.items[i];
            check_value_name(x, id->name, id->loc);
            Binding *b = lookup(x, id->name);
            if (b && b->output == s)
                diag_error(x->d, id->loc, "'%s' is already an output",
                           id->name);
            else if (b)
                b->output = s;
        }
        break;
    case ST_RETURN:
        if (network)
            diag_error(x->d, s->loc, "'return' belongs in a block; a network "
                       "names its results with 'output'");
        else if (!last)
            diag_error(x->d, s->loc, "'return' must be the last statement of "
                       "block '%s'", x->def->name);
        check_expr(x, s->value);
        break;
    }
}

static bool used_early(Names *x, const char *name) {
    for (int i = 0; i < x->early.len; i++)
        if (!strcmp(x->early.items[i], name))
            return true;
    return false;
}

static void report_unused(Names *x) {
    for (int i = 0; i < x->bound.len; i++) {
        const Binding *b = x->bound.items[i];
        if (b->used || used_early(x, b->name))
            continue;
        if (b->kind == B_VALUE)
            diag_error(x->d, b->loc, "value '%s' is never used", b->name);
        else if (b->kind == B_INPUT)
            diag_warning(x->d, b->loc, "input '%s' is never used", b->name);
        else
            diag_warning(x->d, b->loc, "parameter '%s' of block '%s' is never used",
                         b->name, x->def->name);
    }
}

static void check_def(Names *x, const Def *def) {
    x->def = def;
    x->bound = (Vec){0};
    x->latest = (Map){0};
    x->too_deep = false;
    x->calls = (Vec){0};
    x->early = (Vec){0};
    if (def->kind == DEF_BLOCK && def->params.len == 0)
        diag_error(x->d, def->loc, "block '%s' needs a first parameter: the "
                   "tensor it is applied to", def->name);
    for (int i = 0; i < def->params.len; i++) {
        const Param *p = def->params.items[i];
        if (p->def)
            check_expr(x, p->def);
        bool twice = lookup(x, p->name) != NULL;   /* only params so far */
        if (twice)   /* not bound again: no "never used" for the first */
            diag_error(x->d, p->loc, "parameter '%s' appears twice", p->name);
        else
            bind(x, p->name, p->loc, B_PARAM);
    }
    bool has_input = false, has_output = false, has_return = false;
    for (int i = 0; i < def->stmts.len; i++) {
        const Stmt *s = def->stmts.items[i];
        check_stmt(x, s, i == def->stmts.len - 1);
        has_input |= s->kind == ST_INPUT;
        has_output |= s->kind == ST_OUTPUT;
        has_return |= s->kind == ST_RETURN;
    }
    if (def->kind == DEF_NETWORK && !has_input)
        diag_error(x->d, def->loc, "network '%s' has no input", def->name);
    /* A 'return' in a network or an 'output' in a block was reported above
     * as the likely mix-up; no second error for the missing one. */
    if (def->kind == DEF_NETWORK && !has_output && !has_return)
        diag_error(x->d, def->end, "network '%s' has no output", def->name);
    if (def->kind == DEF_BLOCK && !has_return && !has_output)
        diag_error(x->d, def->end, "block '%s' ends without 'return'", def->name);
    /* Without a result nothing is used yet; "never used" would only repeat
     * that. */
    if (def->kind == DEF_NETWORK ? has_output : has_return)
        report_unused(x);
}

/* ---- blocks that call themselves ------------------------------------------- */

typedef struct BlockCalls {
    const Def *def;
    Vec calls;          /* CallRef * */
    int color;          /* 0 unvisited, 1 on the path, 2 done */
} BlockCalls;

/* Depth-first search from `root`, with an explicit stack so that a chain
 * of thousands of blocks cannot overflow the C stack; `path` holds the
 * blocks on the current call path and `next` how many of each one's calls
 * have been followed. A call to a block already on the path closes a
 * cycle. `all` maps a block's name to its BlockCalls. */
static void find_cycles(Names *x, const Map *all, BlockCalls *root) {
    Vec path = {0}, next = {0};
    root->color = 1;
    vec_push(x->a, &path, root);
    vec_push(x->a, &next, (void *)(intptr_t)0);
    while (path.len > 0) {
        BlockCalls *b = path.items[path.len - 1];
        int i = (int)(intptr_t)next.items[next.len - 1];
        if (i == b->calls.len) {
            b->color = 2;
            path.len--;
            next.len--;
            continue;
        }
        next.items[next.len - 1] = (void *)(intptr_t)(i + 1);
        const CallRef *r = b->calls.items[i];
        BlockCalls *callee = map_get(all, r->callee->name);
        if (!callee || callee->color == 2)
            continue;
        if (callee->color == 0) {
            callee->color = 1;
            vec_push(x->a, &path, callee);
            vec_push(x->a, &next, (void *)(intptr_t)0);
        } else if (x->d->too_many) {
            /* nothing more is printed */
        } else if (callee == b) {
            diag_error(x->d, r->loc, "block '%s' calls itself", b->def->name);
        } else {
            const char *through = "";
            int start = path.len - 1;
            while (start > 0 && path.items[start] != callee)
                start--;
            int n = path.len - start - 1;   /* blocks between; a long list is cut */
            for (int k = start + 1; k < path.len; k++) {
                int j = k - start - 1;
                if (n > 8 && j == 4)
                    through = arena_printf(x->a, "%s, ... %d more", through, n - 6);
                if (n > 8 && j >= 4 && j < n - 2)
                    continue;
                through = arena_printf(x->a, "%s%s'%s'", through, j ? ", " : "",
                                       ((BlockCalls *)path.items[k])->def->name);
            }
            diag_error(x->d, r->loc, "block '%s' calls itself through %s",
                       callee->def->name, through);
        }
    }
}

/* ---- the pass ------------------------------------------------------------------ */

bool check_names(Program *prog, Diags *d) {
    int errors_before = d->errors;
    Names x = {.prog = prog, .d = d, .a = d->arena};
    Map defs = {0};       /* name -> the first definition of that name */
    for (int i = 0; i < prog->defs.len; i++) {
        Def *def = prog->defs.items[i];
        if (!map_get(&defs, def->name))
            map_put(x.a, &defs, def->name, def);
        if (def->kind == DEF_BLOCK && !map_get(&x.blocks, def->name))
            map_put(x.a, &x.blocks, def->name, def);
    }
    Vec all = {0};        /* BlockCalls *, in file order */
    Map calls = {0};      /* block name -> its BlockCalls */
    bool any_network = false;
    for (int i = 0; i < prog->defs.len && !d->too_many; i++) {
        const Def *def = prog->defs.items[i];
        any_network |= def->kind == DEF_NETWORK;
        if (layer_find(def->name))
            diag_error(d, def->loc, "'%s' is a layer; a %s needs another name",
                       def->name, def->kind == DEF_BLOCK ? "block" : "network");
        /* a network's name is its files' and functions' prefix: cnnrt.h
         * and cnnrt_train.h, and the cnnrt_ functions, are the runtime's */
        if (def->kind == DEF_NETWORK && !strncmp(def->name, "cnnrt", 5) &&
            (def->name[5] == 0 || def->name[5] == '_'))
            diag_error(d, def->loc, "'%s': names 'cnnrt' and 'cnnrt_...' are the runtime's "
                       "(cnnrt.h, cnnrt_train.h); a network needs another name", def->name);
        const Def *first = map_get(&defs, def->name);
        if (first != def)
            diag_error(d, def->loc, "'%s' is already defined on line %d",
                       def->name, first->loc.line);
        check_def(&x, def);
        if (def->kind == DEF_BLOCK) {
            BlockCalls *b = arena_alloc(x.a, sizeof *b);
            b->def = def;
            b->calls = x.calls;
            vec_push(x.a, &all, b);
            if (block_named(&x, def->name) == def)
                map_put(x.a, &calls, def->name, b);
        }
    }
    if (!any_network && !d->too_many)
        diag_error(d, (Loc){0, 0}, "the file defines no network");
    for (int i = 0; i < all.len; i++) {
        BlockCalls *b = all.items[i];
        if (b->color == 0)
            find_cycles(&x, &calls, b);
    }
    return d->errors == errors_before;
}

const Def *select_network(Program *prog, const char *name, Diags *d) {
    const Def *last = NULL;
    for (int i = 0; i < prog->defs.len; i++) {
        const Def *def = prog->defs.items[i];
        if (def->kind != DEF_NETWORK)
            continue;
        if (name && !strcmp(def->name, name))
            return def;
        last = def;
    }
    if (!name)
        return last;
    const char *list = "";
    for (int i = 0; i < prog->defs.len; i++) {
        const Def *def = prog->defs.items[i];
        if (def->kind == DEF_NETWORK)
            list = arena_printf(d->arena, "%s%s'%s'", list, *list ? ", " : "",
                                def->name);
    }
    diag_error(d, (Loc){0, 0}, "no network named '%s' (the file defines %s)",
               name, *list ? list : "none");
    return NULL;
}
