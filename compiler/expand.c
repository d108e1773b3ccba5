/* expand.c — from the syntax tree of one network to the graph IR.
 *
 * Evaluation follows DSL.md's canonical order exactly: statements top to
 * bottom, each expression left to right, a layer's arguments before the
 * layer, a block call expanded in place, a repeated stage N times. Nodes are
 * appended to the graph in the order they are made, so the node order *is*
 * the canonical parameter order.
 *
 * Values are untyped until here: the same `+` adds integers inside an
 * argument and tensors in a residual connection. Names were checked by
 * names.c, so a missing name here only means an error was already shown.
 */
#include "ir.h"

#include <string.h>

typedef enum ValueKind {
    V_ERROR,    /* an error was reported; stay quiet about what follows */
    V_INT, V_REAL, V_TENSOR, V_TUPLE,
    V_SYMBOL,   /* same, true, zeros, ... */
} ValueKind;

typedef struct Value {
    ValueKind kind;
    Loc loc;
    int64_t i;
    double r;
    Node *node;          /* V_TENSOR */
    const char *desc;    /* V_TENSOR: how to name it in messages */
    const char *sym;     /* V_SYMBOL */
    Vec items;           /* V_TUPLE: Value * */
} Value;

typedef struct Var {
    const char *name;
    Value *value;
    struct Var *next;    /* older bindings */
} Var;

typedef struct Counter {
    const char *name;
    int count;
} Counter;


/* A network body or one expanded block call. */
typedef struct Scope {
    Var *vars;
    Map var_map;             /* name -> its latest Var */
    const char *prefix;      /* "" or "basic2." — prepended to node names */
    Vec counters;            /* Counter *: conv1, conv2, ... within this scope */
    Map counter_map;         /* name -> its Counter */
    const CallSite *site;
} Scope;

/* The node names and block prefixes handed out so far (a hash set). */

typedef struct Expander {
    Program *prog;
    Arena *a;
    Diags *d;
    Graph *g;
    int depth;               /* recursion guard */
    int64_t steps;           /* work guard: expressions and stages evaluated */
    Map blocks;              /* name -> the block of that name */
    Map params;              /* block name -> Map: parameter name -> index + 1 */
    bool stop;               /* too many nodes: give up at once */
    Map names;               /* every node name, to keep them unique */
} Expander;

enum { MAX_DEPTH = 400 };
/* Blocks that add no layer can still be repeated and nested without end
 * (`-> id * 1000000000000`, or blocks that each call the next twice). A
 * real network takes a few steps (expressions and stages evaluated) per
 * layer it makes; the expansion stops when it has taken STEPS_PER_LAYER
 * times more than the layers made so far (plus some slack), which also
 * bounds it by MAX_NODES. */
enum { STEPS_PER_LAYER = 64, STEPS_SLACK = 1024 };
/* Notes for at most this many enclosing block calls; deeper ones are
 * summed up in one line. */
enum { MAX_NOTES = 8 };

static Value *eval(Expander *x, Scope *s, const Expr *e);
static Value *apply_stage(Expander *x, Scope *s, const Expr *e, Value *in);

/* ---- values --------------------------------------------------------------- */

static Value *new_value(Expander *x, ValueKind kind, Loc loc) {
    Value *v = arena_alloc(x->a, sizeof *v);
    v->kind = kind;
    v->loc = loc;
    return v;
}

static Value *error_value(Expander *x, Loc loc) {
    return new_value(x, V_ERROR, loc);
}

static const char *kind_name(const Value *v) {
    switch (v->kind) {
    case V_INT: return "an integer";
    case V_REAL: return "a real number";
    case V_TENSOR: return "a tensor";
    case V_TUPLE: return "a tuple";
    case V_SYMBOL: return "a name";
    default: return "an error";
    }
}

/* A value as a message shows it: "3", "'same'", "a real number (0.5)". */
static const char *describe(Expander *x, const Value *v) {
    switch (v->kind) {
    case V_INT: return arena_printf(x->a, "%lld", (long long)v->i);
    case V_REAL: return arena_printf(x->a, "a real number (%g)", v->r);
    case V_SYMBOL: return arena_printf(x->a, "'%s'", v->sym);
    default: return kind_name(v);
    }
}

/* Reports an error at `loc`, with the block calls that led there. */
static void expand_error(Expander *x, Scope *s, Loc loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void expand_error(Expander *x, Scope *s, Loc loc, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    diag_error(x->d, loc, "%s", msg);
    int shown = 0;
    for (const CallSite *c = s->site; c; c = c->parent) {
        if (shown++ < MAX_NOTES) {
            diag_note(x->d, c->loc, "in block '%s' called here", c->block);
            continue;
        }
        int more = 0;
        for (; c; c = c->parent)
            more++;
        diag_note(x->d, (Loc){0, 0}, "and %d more enclosing block calls", more);
        break;
    }
}

static const Def *block_named(Expander *x, const char *name) {
    return map_get(&x->blocks, name);
}

/* The position of block `blk`'s parameter `name`, or -1. One map per
 * block, made on first use, so named arguments cost no search each. */
static int param_index(Expander *x, const Def *blk, const char *name) {
    Map *m = map_get(&x->params, blk->name);
    if (!m) {
        m = arena_alloc(x->a, sizeof *m);
        for (int k = blk->params.len - 1; k >= 0; k--)   /* the first wins */
            map_put(x->a, m, ((Param *)blk->params.items[k])->name,
                    (void *)(intptr_t)(k + 1));
        map_put(x->a, &x->params, blk->name, m);
    }
    return (int)(intptr_t)map_get(m, name) - 1;
}

static Var *find_var(Scope *s, const char *name) {
    return map_get(&s->var_map, name);
}

static void set_var(Expander *x, Scope *s, const char *name, Value *value) {
    Var *v = arena_alloc(x->a, sizeof *v);
    v->name = name;
    v->value = value;
    v->next = s->vars;
    s->vars = v;
    map_put(x->a, &s->var_map, name, v);
}

/* ---- nodes --------------------------------------------------------------- */

static int next_count(Expander *x, Scope *s, const char *name) {
    Counter *c = map_get(&s->counter_map, name);
    if (c)
        return ++c->count;
    c = arena_alloc(x->a, sizeof *c);
    c->name = name;
    c->count = 1;
    vec_push(x->a, &s->counters, c);
    map_put(x->a, &s->counter_map, name, c);
    return 1;
}

/* ---- unique names ---------------------------------------------------------- */

static bool name_taken(const Map *names, const char *name) {
    return map_get(names, name) != NULL;
}

static void name_add(Arena *a, Map *names, const char *name) {
    map_put(a, names, name, (void *)name);
}

/* prefix + base + count + suffix ("layer2.conv3", "basic2."), unless that
 * is taken: "relu61" is both the 61st relu and the first relu6, "a11." the
 * 11th call of block a and the first of block a1, and an input may be named
 * "conv1". The later one then gets "relu_61", "a1_1.", "conv_1". */
static const char *unique_name(Expander *x, const char *prefix,
                               const char *base, int count, const char *suffix) {
    const char *name = arena_printf(x->a, "%s%s%d%s", prefix, base, count, suffix);
    const char *sep = "_";
    while (name_taken(&x->names, name)) {
        name = arena_printf(x->a, "%s%s%s%d%s", prefix, base, sep, count, suffix);
        sep = arena_printf(x->a, "%s_", sep);
    }
    name_add(x->a, &x->names, name);
    return name;
}

static Node *new_node(Expander *x, Scope *s, OpKind op, Loc loc) {
    if (x->g->nodes.len >= MAX_NODES) {
        expand_error(x, s, loc, "the network expands to more than %d layers",
                     MAX_NODES);
        x->stop = true;
        return NULL;
    }
    Node *n = arena_alloc(x->a, sizeof *n);
    n->op = op;
    n->layer = layer_info(op);
    n->loc = loc;
    n->site = s->site;
    n->id = x->g->nodes.len;
    const char *base = op == OP_ADD ? "add" : n->layer ? n->layer->name : "input";
    int count = next_count(x, s, base);
    /* an input's name is the one declared, reserved before expansion */
    n->name = op == OP_INPUT ? base : unique_name(x, s->prefix, base, count, "");
    vec_push(x->a, &x->g->nodes, n);
    return n;
}

static void add_input(Expander *x, Node *n, Value *v) {
    vec_push(x->a, &n->inputs, v->node);
    vec_push(x->a, &n->input_desc, (void *)v->desc);
    v->node->users++;
}

static Value *tensor_value(Expander *x, Node *n, const char *desc) {
    Value *v = new_value(x, V_TENSOR, n->loc);
    v->node = n;
    v->desc = desc;
    return v;
}

/* ---- integer arithmetic ------------------------------------------------------ */

static Value *arith(Expander *x, Scope *s, const Expr *e, Value *l, Value *r) {
    if (l->kind == V_ERROR || r->kind == V_ERROR)
        return error_value(x, e->loc);
    if (l->kind == V_TENSOR && r->kind == V_TENSOR) {
        if (e->op != '+') {
            expand_error(x, s, e->loc, "tensors combine only with '+' "
                         "(element-wise sum), not '%c'", e->op);
            return error_value(x, e->loc);
        }
        Node *n = new_node(x, s, OP_ADD, e->loc);
        if (!n)
            return error_value(x, e->loc);
        add_input(x, n, l);
        add_input(x, n, r);
        return tensor_value(x, n, "the sum");
    }
    if (l->kind != V_INT || r->kind != V_INT) {
        expand_error(x, s, e->loc, "'%c' needs two tensors or two integers, "
                     "got %s and %s", e->op, kind_name(l), kind_name(r));
        return error_value(x, e->loc);
    }
    int64_t a = l->i, b = r->i, out = 0;
    bool ok = true;
    switch (e->op) {
    case '+': ok = add_ok(a, b, &out); break;
    case '-': ok = !__builtin_sub_overflow(a, b, &out); break;
    case '*': ok = mul_ok(a, b, &out); break;
    case '/':
        if (b == 0) {
            expand_error(x, s, e->loc, "division by zero");
            return error_value(x, e->loc);
        }
        ok = !(a == INT64_MIN && b == -1);
        if (ok) {
            out = a / b;              /* rounds toward zero ... */
            if (a % b != 0 && (a < 0) != (b < 0))
                out--;                /* ... DSL.md rounds down */
        }
        break;
    }
    if (!ok) {
        expand_error(x, s, e->loc, "integer overflow in '%c'", e->op);
        return error_value(x, e->loc);
    }
    Value *v = new_value(x, V_INT, e->loc);
    v->i = out;
    return v;
}

/* ---- layer calls ------------------------------------------------------------- */

typedef struct CallArg {
    const char *name;    /* NULL when positional */
    Loc loc;
    Value *value;
} CallArg;

/* Converts one argument value to the type its spec asks for and stores it
 * in the node's Attrs. */
static bool set_arg(Expander *x, Scope *s, Node *n, const ArgSpec *spec,
                    const CallArg *arg) {
    const Value *v = arg->value;
    char *field = (char *)&n->a + spec->offset;
    const char *lname = n->layer->name;
    if (v->kind == V_ERROR)
        return false;
    switch (spec->type) {
    case ARG_INT:
    case ARG_PAIR:
    case ARG_PAD: {
        if (spec->type == ARG_PAD && v->kind == V_SYMBOL && !strcmp(v->sym, "same")) {
            n->a.pad_same = true;
            return true;
        }
        const Value *parts[2] = {v, v};
        if (v->kind == V_TUPLE && spec->type != ARG_INT) {
            if (v->items.len != 2) {
                expand_error(x, s, arg->loc, "%s's '%s' takes one integer or "
                             "a pair (h, w), got %d values", lname, spec->name,
                             v->items.len);
                return false;
            }
            parts[0] = v->items.items[0];
            parts[1] = v->items.items[1];
        }
        int64_t got[2];
        for (int i = 0; i < 2; i++) {
            const Value *p = parts[i];
            if (p->kind != V_INT && p != v) {   /* one of a pair */
                expand_error(x, s, arg->loc, "%s's '%s' pair must hold two integers, got %s%s",
                             lname, spec->name, describe(x, p),
                             p->kind == V_SYMBOL && !strcmp(p->sym, "same")
                                 ? " ('same' stands alone: pad=same)" : "");
                return false;
            }
            if (p->kind != V_INT) {
                expand_error(x, s, arg->loc, "%s's '%s' must be %s, got %s",
                             lname, spec->name,
                             spec->type == ARG_INT ? "an integer"
                             : spec->type == ARG_PAD ? "an integer, a pair or 'same'"
                                                     : "an integer or a pair",
                             describe(x, p));
                return false;
            }
            if (p->i < spec->min) {
                expand_error(x, s, arg->loc, "%s's '%s' must be at least %lld, "
                             "got %lld", lname, spec->name, (long long)spec->min,
                             (long long)p->i);
                return false;
            }
            got[i] = p->i;
        }
        int64_t *dst = (int64_t *)field;
        dst[0] = got[0];
        if (spec->type != ARG_INT)
            dst[1] = got[1];
        return true;
    }
    case ARG_REAL:
        if (v->kind == V_INT) {
            *(double *)field = (double)v->i;
            return true;
        }
        if (v->kind == V_REAL) {
            *(double *)field = v->r;
            return true;
        }
        expand_error(x, s, arg->loc, "%s's '%s' must be a number, got %s",
                     lname, spec->name, describe(x, v));
        return false;
    case ARG_BOOL:
        if (v->kind == V_SYMBOL && (!strcmp(v->sym, "true") || !strcmp(v->sym, "false"))) {
            *(bool *)field = !strcmp(v->sym, "true");
            return true;
        }
        expand_error(x, s, arg->loc, "%s's '%s' must be true or false, got %s",
                     lname, spec->name, describe(x, v));
        return false;
    case ARG_PADMODE: {
        static const char *const modes[] = {"zeros", "reflect", "replicate", "circular"};
        for (int i = 0; i < 4 && v->kind == V_SYMBOL; i++)
            if (!strcmp(v->sym, modes[i])) {
                *(PadMode *)field = (PadMode)i;
                return true;
            }
        expand_error(x, s, arg->loc, "%s's '%s' must be zeros, reflect, "
                     "replicate or circular, got %s", lname, spec->name,
                     describe(x, v));
        return false;
    }
    }
    return false;
}

static void set_default(Node *n, const ArgSpec *spec) {
    char *field = (char *)&n->a + spec->offset;
    switch (spec->type) {
    case ARG_INT:
        *(int64_t *)field = (int64_t)spec->def;
        break;
    case ARG_PAIR:
    case ARG_PAD: {
        int64_t *p = (int64_t *)field;
        p[0] = spec->def_is_kernel ? n->a.kernel[0] : (int64_t)spec->def;
        p[1] = spec->def_is_kernel ? n->a.kernel[1] : (int64_t)spec->def;
        break;
    }
    case ARG_REAL:
        *(double *)field = spec->def;
        break;
    case ARG_BOOL:
        *(bool *)field = spec->def != 0;
        break;
    case ARG_PADMODE:
        *(PadMode *)field = (PadMode)(int)spec->def;
        break;
    }
}

/* "kernel, stride, pad": a layer's arguments after its tensor. */
static const char *arg_list(Expander *x, const LayerInfo *li) {
    const char *list = "";
    for (int k = 0; k < layer_nargs(li); k++)
        list = arena_printf(x->a, "%s%s%s", list, k ? ", " : "", li->args[k].name);
    return list;
}

static Value *call_layer(Expander *x, Scope *s, const LayerInfo *li, Loc loc,
                         CallArg *args, int nargs) {
    /* The tensors: every positional argument for concat, else the first. */
    int ntensors = 0;
    bool broken = false;
    while (ntensors < nargs && !args[ntensors].name &&
           (li->variadic || ntensors == 0)) {
        Value *v = args[ntensors].value;
        if (v->kind == V_ERROR) {
            broken = true;
        } else if (v->kind != V_TENSOR) {
            expand_error(x, s, args[ntensors].loc, "%s applies to a tensor, "
                         "but this is %s", li->name, kind_name(v));
            return error_value(x, loc);
        }
        ntensors++;
    }
    if (ntensors == 0) {
        expand_error(x, s, loc, "%s needs a tensor to apply to: write "
                     "'x -> %s' or '%s(x, ...)'", li->name, li->name, li->name);
        return error_value(x, loc);
    }

    /* The other arguments, matched to the table's specs. */
    const CallArg *given[MAX_ARGS] = {0};
    int nspecs = layer_nargs(li), pos = 0;
    for (int i = ntensors; i < nargs; i++) {
        const CallArg *arg = &args[i];
        int k;
        if (arg->name) {
            for (k = 0; k < nspecs && strcmp(li->args[k].name, arg->name); k++)
                ;
            if (k == nspecs)
                return error_value(x, loc);   /* names.c reported it */
        } else {
            if (i > 0 && args[i - 1].name) {
                expand_error(x, s, arg->loc, "a positional argument cannot "
                             "follow a named one");
                return error_value(x, loc);
            }
            k = pos++;
            if (k >= nspecs) {
                if (li->variadic || nspecs == 0)
                    expand_error(x, s, arg->loc, "%s takes only %s", li->name,
                                 li->variadic ? "tensors" : "the tensor it "
                                 "applies to");
                else
                    expand_error(x, s, arg->loc, "too many arguments for %s: "
                                 "after the tensor it takes %s", li->name,
                                 arg_list(x, li));
                return error_value(x, loc);
            }
        }
        if (given[k]) {
            expand_error(x, s, arg->loc, "%s's '%s' is given twice", li->name,
                         li->args[k].name);
            return error_value(x, loc);
        }
        given[k] = arg;
    }
    for (int k = 0; k < nspecs; k++)
        if (li->args[k].required && !given[k]) {
            expand_error(x, s, loc, "%s needs its '%s' argument", li->name,
                         li->args[k].name);
            return error_value(x, loc);
        }
    if (broken)
        return error_value(x, loc);

    Node *n = new_node(x, s, li->op, loc);
    if (!n)
        return error_value(x, loc);
    bool ok = true;
    for (int k = 0; k < nspecs; k++)   /* in table order: stride may default to kernel */
        if (given[k])
            ok &= set_arg(x, s, n, &li->args[k], given[k]);
        else
            set_default(n, &li->args[k]);
    for (int i = 0; i < ntensors; i++)
        add_input(x, n, args[i].value);
    if (!ok) {
        n->bad = true;   /* an argument error was shown; no shape errors after it */
        return error_value(x, loc);
    }
    return tensor_value(x, n, arena_printf(x->a, "the output of %s", li->name));
}

/* ---- block calls ------------------------------------------------------------- */

static Value *run_body(Expander *x, Scope *s, const Def *def);

/* "x, ch, stride": what a block takes, for messages. */
static const char *param_list(Expander *x, const Def *blk) {
    const char *list = "";
    for (int k = 0; k < blk->params.len; k++)
        list = arena_printf(x->a, "%s%s%s", list, k ? ", " : "",
                            ((Param *)blk->params.items[k])->name);
    return list;
}

static Value *call_block(Expander *x, Scope *s, const Def *blk, Loc loc,
                         CallArg *args, int nargs) {
    int nparams = blk->params.len;
    Value **bound = arena_alloc(x->a, sizeof(Value *) * (size_t)(nparams + 1));
    int pos = 0;
    for (int i = 0; i < nargs; i++) {
        int k = 0;
        if (args[i].name) {
            k = param_index(x, blk, args[i].name);
            if (k < 0)
                return error_value(x, loc);   /* names.c reported it */
        } else {
            if (i > 0 && args[i - 1].name) {
                expand_error(x, s, args[i].loc, "a positional argument cannot "
                             "follow a named one");
                return error_value(x, loc);
            }
            k = pos++;
            if (k >= nparams) {
                expand_error(x, s, args[i].loc, "too many arguments for block "
                             "'%s': it takes %s", blk->name, param_list(x, blk));
                return error_value(x, loc);
            }
        }
        if (bound[k]) {
            expand_error(x, s, args[i].loc, "parameter '%s' of block '%s' is "
                         "given twice", ((Param *)blk->params.items[k])->name,
                         blk->name);
            return error_value(x, loc);
        }
        bound[k] = args[i].value;
    }

    CallSite *site = arena_alloc(x->a, sizeof *site);
    site->block = blk->name;
    site->loc = loc;
    site->parent = s->site;
    Scope inner = {.site = site};
    inner.prefix = unique_name(x, s->prefix, blk->name,
                               next_count(x, s, blk->name), ".");
    for (int k = 0; k < nparams; k++) {
        const Param *p = blk->params.items[k];
        Value *v = bound[k];
        if (!v && p->def) {
            v = eval(x, &inner, p->def);   /* defaults see earlier params */
        } else if (!v) {
            expand_error(x, s, loc, "block '%s' needs its '%s' argument",
                         blk->name, p->name);
            return error_value(x, loc);
        }
        set_var(x, &inner, p->name, v);
    }
    Value *out = run_body(x, &inner, blk);
    if (out->kind == V_TENSOR) {
        Value *copy = tensor_value(x, out->node,
                                   arena_printf(x->a, "the output of block '%s'",
                                                blk->name));
        return copy;
    }
    return out;
}

/* Calls the layer or block `name`; `piped` is the tensor before `->`, if
 * any, which becomes the first positional argument. */
static Value *call(Expander *x, Scope *s, const char *name, Loc loc,
                   const Vec *arg_exprs, Value *piped) {
    int n = arg_exprs->len + (piped ? 1 : 0);
    CallArg *args = arena_alloc(x->a, sizeof(CallArg) * (size_t)(n + 1));
    int k = 0;
    if (piped)
        args[k++] = (CallArg){NULL, piped->loc, piped};
    for (int i = 0; i < arg_exprs->len && !x->stop; i++) {
        const Arg *arg = arg_exprs->items[i];
        args[k++] = (CallArg){arg->name, arg->loc, eval(x, s, arg->value)};
    }
    if (x->stop)
        return error_value(x, loc);
    const LayerInfo *li = layer_find(name);
    if (li)
        return call_layer(x, s, li, loc, args, n);
    const Def *blk = block_named(x, name);
    if (blk)
        return call_block(x, s, blk, loc, args, n);
    return error_value(x, loc);
}

/* ---- expressions ---------------------------------------------------------- */

static Value *eval_inner(Expander *x, Scope *s, const Expr *e) {
    switch (e->kind) {
    case EX_INT: {
        Value *v = new_value(x, V_INT, e->loc);
        v->i = e->ival;
        return v;
    }
    case EX_REAL: {
        Value *v = new_value(x, V_REAL, e->loc);
        v->r = e->rval;
        return v;
    }
    case EX_NAME: {
        Var *var = find_var(s, e->name);
        if (var) {
            Value *v = var->value;
            if (v->kind == V_TENSOR) {
                Value *named = tensor_value(x, v->node,
                                            arena_printf(x->a, "'%s'", e->name));
                named->loc = e->loc;
                return named;
            }
            return v;
        }
        if (layer_find(e->name) || block_named(x, e->name)) {
            expand_error(x, s, e->loc, "'%s' needs a tensor to apply to: "
                         "write 'x -> %s' or '%s(x)'", e->name, e->name, e->name);
            return error_value(x, e->loc);
        }
        if (is_symbol(e->name)) {
            Value *v = new_value(x, V_SYMBOL, e->loc);
            v->sym = e->name;
            return v;
        }
        return error_value(x, e->loc);
    }
    case EX_CALL:
        return call(x, s, e->name, e->loc, &e->args, NULL);
    case EX_NEG: {
        Value *in = eval(x, s, e->lhs);
        if (in->kind == V_ERROR)
            return in;
        Value *v = new_value(x, in->kind, e->loc);
        if (in->kind == V_INT && in->i == INT64_MIN) {
            expand_error(x, s, e->loc, "integer overflow in '-'");
            return error_value(x, e->loc);
        } else if (in->kind == V_INT) {
            v->i = -in->i;
        } else if (in->kind == V_REAL) {
            v->r = -in->r;
        } else {
            expand_error(x, s, e->loc, "'-' applies to a number, not %s",
                         kind_name(in));
            return error_value(x, e->loc);
        }
        return v;
    }
    case EX_BINOP: {
        Value *l = eval(x, s, e->lhs);
        Value *r = eval(x, s, e->rhs);
        return arith(x, s, e, l, r);
    }
    case EX_TUPLE: {
        Value *v = new_value(x, V_TUPLE, e->loc);
        for (int i = 0; i < e->items.len; i++) {
            Value *item = eval(x, s, e->items.items[i]);
            if (item->kind == V_ERROR)
                return item;
            vec_push(x->a, &v->items, item);
        }
        return v;
    }
    case EX_CHAIN: {
        Value *v = eval(x, s, e->items.items[0]);
        if (v->kind != V_TENSOR && v->kind != V_ERROR) {
            expand_error(x, s, v->loc, "'->' passes a tensor along, but this "
                         "is %s", kind_name(v));
            v = error_value(x, e->loc);
        }
        for (int i = 1; i < e->items.len && !x->stop; i++)
            v = apply_stage(x, s, e->items.items[i], v);
        return v;
    }
    case EX_REPEAT:
        /* only made after '->', where apply_stage handles it */
        break;
    }
    expand_error(x, s, e->loc, "'*' repeats a stage only after '->'");
    return error_value(x, e->loc);
}

/* The work guard of eval() and apply_stage(): false, after an error, once
 * the steps outrun the layers made (STEPS_PER_LAYER). */
static bool step(Expander *x, Scope *s, Loc loc) {
    int64_t layers = x->g->nodes.len;
    if (++x->steps <= STEPS_PER_LAYER * (layers + STEPS_SLACK))
        return true;
    expand_error(x, s, loc, "the expansion stops: blocks and repeats make "
                 "%lld calls and stages but add almost no layers",
                 (long long)x->steps);
    x->stop = true;
    return false;
}

static Value *eval(Expander *x, Scope *s, const Expr *e) {
    if (x->stop || !step(x, s, e->loc))
        return error_value(x, e->loc);
    if (++x->depth > MAX_DEPTH) {
        expand_error(x, s, e->loc, "expressions and block calls nest too deeply");
        x->stop = true;
        x->depth--;
        return error_value(x, e->loc);
    }
    Value *v = eval_inner(x, s, e);
    x->depth--;
    return v;
}

/* ---- stages after '->' ---------------------------------------------------- */

static Value *repeat(Expander *x, Scope *s, const Expr *stage, const Expr *count,
                     Value *in) {
    Value *n = eval(x, s, count);
    if (n->kind == V_ERROR)
        return n;
    if (n->kind != V_INT || n->i < 1) {
        expand_error(x, s, count->loc, "a stage repeats a whole number of "
                     "times, at least 1; got %s", describe(x, n));
        return error_value(x, count->loc);
    }
    if (n->i > MAX_NODES) {   /* more than any network could hold */
        expand_error(x, s, count->loc, "a stage repeats at most %d times, "
                     "got %lld", MAX_NODES, (long long)n->i);
        return error_value(x, count->loc);
    }
    for (int64_t i = 0; i < n->i && !x->stop; i++)
        in = apply_stage(x, s, stage, in);
    return in;
}

static Value *apply_stage_inner(Expander *x, Scope *s, const Expr *e, Value *in) {
    switch (e->kind) {
    case EX_NAME:
        if (find_var(s, e->name)) {
            expand_error(x, s, e->loc, "'%s' is a value, not a layer or block: "
                         "a stage after '->' must be a call or a group", e->name);
            return error_value(x, e->loc);
        }
        return call(x, s, e->name, e->loc, &e->args, in);
    case EX_CALL:
        return call(x, s, e->name, e->loc, &e->args, in);
    case EX_CHAIN:
        for (int i = 0; i < e->items.len && !x->stop; i++)
            in = apply_stage(x, s, e->items.items[i], in);
        return in;
    case EX_REPEAT:
        return repeat(x, s, e->lhs, e->rhs, in);
    case EX_BINOP:
        /* inside a group: `((conv(8, 3) -> relu) * 2 -> maxpool(2))` */
        if (e->op == '*')
            return repeat(x, s, e->lhs, e->rhs, in);
        break;
    default:
        break;
    }
    expand_error(x, s, e->loc, "a stage after '->' must be a call or a group, "
                 "as in '-> relu' or '-> (conv(8, 3) -> relu)'");
    return error_value(x, e->loc);
}

static Value *apply_stage(Expander *x, Scope *s, const Expr *e, Value *in) {
    if (x->stop || !step(x, s, e->loc))
        return error_value(x, e->loc);
    if (++x->depth > MAX_DEPTH) {
        expand_error(x, s, e->loc, "expressions and block calls nest too deeply");
        x->stop = true;
        x->depth--;
        return error_value(x, e->loc);
    }
    Value *v = apply_stage_inner(x, s, e, in);
    x->depth--;
    return v;
}

/* ---- statements --------------------------------------------------------- */

static void declare_input(Expander *x, Scope *s, const Stmt *st) {
    Shape shape = {0};
    bool ok = true;
    if (st->dims.len != 1 && st->dims.len != 3) {
        expand_error(x, s, st->loc, "an input is [N] or [C, H, W], but '%s' "
                     "has %d dimensions", st->name, st->dims.len);
        ok = false;
    }
    for (int i = 0; i < st->dims.len && ok; i++) {
        const Expr *de = st->dims.items[i];
        Value *v = eval(x, s, de);
        if (v->kind == V_ERROR) {
            ok = false;
        } else if (v->kind != V_INT || v->i < 1) {
            expand_error(x, s, de->loc, "a dimension is an integer of at "
                         "least 1, got %s", describe(x, v));
            ok = false;
        } else {
            shape.d[i] = v->i;
        }
    }
    shape.rank = st->dims.len;
    Node *n = new_node(x, s, OP_INPUT, st->loc);
    if (!n)
        return;
    n->name = st->name;
    n->shape = ok ? shape : (Shape){0};
    n->bad = !ok;
    vec_push(x->a, &x->g->inputs, n);
    set_var(x, s, st->name, tensor_value(x, n, arena_printf(x->a, "'%s'", st->name)));
}

static void declare_outputs(Expander *x, Scope *s, const Stmt *st) {
    for (int i = 0; i < st->outputs.len; i++) {
        const Ident *id = st->outputs.items[i];
        Var *var = find_var(s, id->name);
        if (!var || var->value->kind == V_ERROR)
            continue;
        if (var->value->kind != V_TENSOR) {
            expand_error(x, s, id->loc, "output '%s' is %s, not a tensor",
                         id->name, kind_name(var->value));
            continue;
        }
        int dup = -1;
        for (int k = 0; k < x->g->outputs.len; k++)
            if (x->g->outputs.items[k] == var->value->node)
                dup = k;
        if (dup >= 0) {
            /* one tensor cannot fill two output buffers */
            expand_error(x, s, id->loc, "output '%s' is the same tensor as output '%s'",
                         id->name, (const char *)x->g->output_names.items[dup]);
            continue;
        }
        var->value->node->users++;
        vec_push(x->a, &x->g->outputs, var->value->node);
        vec_push(x->a, &x->g->output_names, (void *)id->name);
    }
}

/* Runs a network's or block's statements; a block's value is its return. */
static Value *run_body(Expander *x, Scope *s, const Def *def) {
    for (int i = 0; i < def->stmts.len && !x->stop; i++) {
        const Stmt *st = def->stmts.items[i];
        switch (st->kind) {
        case ST_INPUT:
            declare_input(x, s, st);
            break;
        case ST_BIND:
            set_var(x, s, st->name, eval(x, s, st->value));
            break;
        case ST_OUTPUT:
            declare_outputs(x, s, st);
            break;
        case ST_RETURN:
            return eval(x, s, st->value);
        }
    }
    return error_value(x, def->end);
}

Graph *expand_network(Program *prog, const Def *net, Arena *a, Diags *d) {
    int errors_before = d->errors;
    Graph *g = arena_alloc(a, sizeof *g);
    g->name = net->name;
    g->def = net;
    Expander x = {.prog = prog, .a = a, .d = d, .g = g};
    for (int i = prog->defs.len - 1; i >= 0; i--) {   /* the first one wins */
        Def *def = prog->defs.items[i];
        if (def->kind == DEF_BLOCK)
            map_put(a, &x.blocks, def->name, def);
    }
    for (int i = 0; i < net->stmts.len; i++) {
        const Stmt *st = net->stmts.items[i];
        if (st->kind == ST_INPUT && !name_taken(&x.names, st->name))
            name_add(a, &x.names, st->name);
    }
    Scope top = {.prefix = ""};
    run_body(&x, &top, net);
    return d->errors == errors_before ? g : NULL;
}
