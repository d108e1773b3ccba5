/* emit_train.c — the training half of the generated file (`build --train`):
 *
 *   NAME_param_table       every parameter tensor, for libcnnrt's
 *                          initialisers, optimisers and checkpoints
 *   NAME_train_forward()   the forward pass as training runs it: batch norm
 *                          on batch statistics (running statistics updated),
 *                          dropout masks from a seed; every activation the
 *                          backward pass needs is kept in the arena
 *   NAME_backward()        d loss / d parameters, in canonical order, from
 *                          d loss / d outputs, walking the layers in reverse
 *
 * Training works on the canonical parameter vector directly; for the scalar
 * target the packed layout is the canonical one except for batch norm,
 * which training does not fold.
 */
#include "emit.h"

#include <string.h>

static long long ll(int64_t v) { return (long long)v; }

/* ---- where things live in the training arena -------------------------------- */

static const char *at(Emit *e, const Buffer *b) {
    return arena_printf(e->a, "A + %lld", ll(b->offset / 4));
}

/* A node's activation: its arena buffer, or for a network input (and a
 * flatten of one) the caller's buffer. */
static const char *act(Emit *e, const Node *n) {
    if (n->train->act)
        return at(e, n->train->act);
    while (n->op == OP_FLATTEN)
        n = n->inputs.items[0];
    return arena_printf(e->a, "in_%s", n->name);
}

/* ---- kernels ---------------------------------------------------------------- */

static void emit_back_signature(Emit *e, const BackSig *b) {
    const Node *n = b->n;
    P(e, "static %svoid %s_backward(", simd_target(e->opt->target) ? "CNN_SIMD " : "",
      e->fn[n->id]);
    for (int k = 0; k < n->inputs.len && b->x; k++)
        P(e, "const float *x%d, ", k);
    if (b->y)
        P(e, "const float *y, ");
    if (b->aux)
        P(e, "const float *aux, ");
    P(e, "const float *dy, ");
    for (int k = 0; k < n->inputs.len; k++)
        if (b->dx[k])
            P(e, "float *dx%d, ", k);
    if (b->w)
        P(e, "const float *w, ");
    if (b->gw)
        P(e, "float *gw, ");
    if (b->s)
        P(e, "float *s, ");
    P(e, "int batch) {\n");
}

/* Backward kernels in reverse order, and the training forward kernels of
 * the layers that behave differently in training (bn, dropout). */
void emit_training_kernels(Emit *e) {
    Graph *g = e->g;
    bool *written = arena_alloc(e->a, sizeof(bool) * (size_t)(g->nodes.len + 1));
    for (int i = 0; i < g->outputs.len; i++)
        written[((Node *)g->outputs.items[i])->id] = true;
    e->back = arena_alloc(e->a, sizeof(BackSig) * (size_t)(g->nodes.len + 1));
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        if (n->op == OP_BN) {
            emit_kernel_comment(e, n, "training: batch statistics; running statistics updated");
            P(e, "static void %s_train(const float *x0, float *y, float *w, float *aux, "
                 "int batch) {\n", e->fn[n->id]);
            emit_bn_train(e, n);
            P(e, "}\n\n");
        } else if (n->op == OP_DROPOUT) {
            emit_kernel_comment(e, n, "training: inverted dropout with a seeded mask");
            P(e, "static void %s_train(const float *x0, float *y, float *aux, int batch, "
                 "unsigned long long seed, int on) {\n", e->fn[n->id]);
            emit_dropout_train(e, n);
            P(e, "}\n\n");
        }
    }
    for (int i = g->nodes.len - 1; i >= 0; i--) {
        const Node *n = g->nodes.items[i];
        if (n->op == OP_INPUT || !n->train->grad)
            continue;
        BackSig b = back_signature(n, written, e->a);
        e->back[i] = b;
        if (!back_needed(&b))
            continue;
        Node *bx = simd_target(e->opt->target) && n->op == OP_CONV && b.dx[0]
                 ? simd_dx_node(e, n) : NULL;
        if (bx) {
            /* with lanes it runs on one sample inside a lane, and the
             * lanes are shared out among the threads: no threads of its own */
            const BuildOptions *opt = e->opt;
            BuildOptions serial = *opt;
            serial.openmp = opt->openmp && n->train->lanes == 1;
            e->opt = &serial;
            emit_kernel_comment(e, bx, simd_schedule(e, bx));
            P(e, "static CNN_SIMD void %s_dx(const float *restrict x0, float *restrict y, "
                 "const float *restrict w, %sint batch) {\n", e->fn[n->id],
              simd_kernel_scratch(e->opt->target, bx, 1) > 0 ? "float *restrict s, " : "");
            emit_simd_kernel(e, bx);
            P(e, "}\n\n");
            e->opt = opt;
        }
        emit_backward_lane(e, &b);
        emit_kernel_comment(e, n, backward_schedule(e, &b));
        emit_back_signature(e, &b);
        emit_backward_kernel(e, &b);
        P(e, "}\n\n");
        for (int k = 0; k < n->inputs.len; k++)
            if (b.dx[k])
                written[((Node *)n->inputs.items[k])->id] = true;
    }
    e->need_copy = true;
}

/* ---- the parameter table ------------------------------------------------------- */

static const char *param_kind(const Node *n, const ParamTensor *p) {
    if (n->op == OP_BN)
        return !strcmp(p->name, "gamma") ? "CNNRT_GAMMA"
             : !strcmp(p->name, "beta") ? "CNNRT_BETA"
             : !strcmp(p->name, "running_mean") ? "CNNRT_RUNNING_MEAN"
                                                : "CNNRT_RUNNING_VAR";
    if (n->op == OP_PRELU)
        return "CNNRT_PRELU_ALPHA";
    if (n->op == OP_BIAS)
        return "CNNRT_LEARNED_BIAS";
    return !strcmp(p->name, "weight") ? "CNNRT_WEIGHT" : "CNNRT_BIAS";
}

/* Inputs feeding one output, which PyTorch's default initialisers scale by. */
static int64_t fan_in(const Node *n) {
    Shape in = in_shape_of(n, 0);
    switch (n->op) {
    case OP_CONV: return in.d[0] / n->a.groups * n->a.kernel[0] * n->a.kernel[1];
    case OP_LOCAL: return in.d[0] * n->a.kernel[0] * n->a.kernel[1];
    case OP_DENSE: return shape_elems(in);
    default: return 0;
    }
}

static int param_tensor_count(const Graph *g) {
    int count = 0;
    for (int i = 0; i < g->nodes.len; i++)
        count += ((Node *)g->nodes.items[i])->nparams;
    return count;
}

static void emit_param_table(Emit *e, FILE *o) {
    const Graph *g = e->g;
    int count = param_tensor_count(g);
    fprintf(o, "/* Every parameter tensor, in canonical order, for libcnnrt. */\n");
    fprintf(o, "const CnnrtParam %s_param_table[%d] = {\n", g->name, count ? count : 1);
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        for (int k = 0; k < n->nparams; k++) {
            const ParamTensor *p = &n->params[k];
            fprintf(o, "    {\"%s\", \"%s\", %s, %lld, %lld, %lld, %d},\n", n->name, p->name,
                    param_kind(n, p), ll(p->offset), ll(p->count), ll(fan_in(n)),
                    p->learnable ? 1 : 0);
        }
    }
    if (!count)
        fprintf(o, "    {\"\", \"\", CNNRT_WEIGHT, 0, 0, 0, 0},\n");
    fprintf(o, "};\n\n");
}

/* ---- entry points ------------------------------------------------------------ */

static void io_params(FILE *o, const Graph *g, const char *out_prefix, bool out_const) {
    for (int i = 0; i < g->inputs.len; i++)
        fprintf(o, "const float *in_%s, ", ((Node *)g->inputs.items[i])->name);
    for (int i = 0; i < g->outputs.len; i++)
        fprintf(o, "%sfloat *%s_%s, ", out_const ? "const " : "", out_prefix,
                (const char *)g->output_names.items[i]);
}

static void void_io(FILE *o, const Graph *g, const char *out_prefix) {
    for (int i = 0; i < g->inputs.len; i++)
        fprintf(o, "    (void)in_%s;\n", ((Node *)g->inputs.items[i])->name);
    for (int i = 0; i < g->outputs.len; i++)
        fprintf(o, "    (void)%s_%s;\n", out_prefix, (const char *)g->output_names.items[i]);
}

static void checks(Emit *e, FILE *o, const Graph *g) {
    fprintf(o, "    float *A = (float *)arena; /* offsets count floats */\n");
    if (e->train_plan->buffers.len == 0)   /* inputs straight to outputs */
        fprintf(o, "    (void)A;\n");
    fprintf(o, "    if (batch < 1 || batch > %s_BATCH)\n        return 1;\n", g->name);
    fprintf(o, "    if ((uintptr_t)arena %% 64 != 0 || !arena)\n        return 2;\n");
}

static void emit_train_forward(Emit *e, FILE *o) {
    const Graph *g = e->g;
    fprintf(o, "/* The forward pass as training runs it, on `batch` samples; keeps what\n"
               " * NAME_backward needs in the arena (%s_TRAIN_ARENA_BYTES). Updates the\n"
               " * batch-norm running statistics in params. dropout: 0 turns it off. */\n",
            g->name);
    fprintf(o, "int %s_train_forward(float *params, ", g->name);
    io_params(o, g, "out", false);
    fprintf(o, "int batch, void *arena, unsigned long long seed, int dropout) {\n");
    checks(e, o, g);
    fprintf(o, "    (void)params;\n    (void)seed;\n    (void)dropout;\n");
    void_io(o, g, "out");
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        const char *fn = e->tfn[n->id];
        if (n->op == OP_INPUT || n->op == OP_FLATTEN)
            continue;
        const char *x = act(e, n->inputs.items[0]);
        if (n->op == OP_BN) {
            fprintf(o, "    %s_train(%s, %s, params + %lld, %s, batch);\n", fn, x,
                    act(e, n), ll(n->params[0].offset), at(e, n->train->aux));
        } else if (n->op == OP_DROPOUT) {
            fprintf(o, "    %s_train(%s, %s, %s, batch, seed, dropout);\n", fn, x,
                    act(e, n), at(e, n->train->aux));
        } else if (simd_target(e->opt->target) && simd_packs_for_training(n)) {
            /* the weights in the order the kernel training runs reads them
             * (Winograd's transformed ones where the layer takes it), after
             * the kernel's own scratch */
            Target t = e->opt->target;
            int64_t s = simd_kernel_scratch(t, n, e->opt->batch);
            int64_t per = n->params[0].count / n->a.units;
            const char *packed = arena_printf(e->a, "%s + %lld", at(e, n->train->fscratch), ll(s));
            const char *bias = n->a.bias ? arena_printf(e->a, "params + %lld",
                                                        ll(n->params[0].offset + n->a.units * per))
                                         : "NULL";
            if (n->winograd)   /* transformed for the Winograd kernel (winograd.c) */
                fprintf(o, "    cnn_pack_wino%s(params + %lld, %s, NULL, 0.0, %s, %lld, %lld, "
                        "%d);\n", n->winograd == 4 ? "4" : "", ll(n->params[0].offset), bias,
                        packed, ll(n->a.units), ll(in_shape_of(n, 0).d[0]), wino_mr(t, n));
            else
                fprintf(o, "    cnn_pack_conv(params + %lld, %s, NULL, 0.0, %s, %lld, %lld, %lld, "
                        "%d);\n", ll(n->params[0].offset), bias, packed, ll(n->a.units),
                        ll(per), ll(n->a.groups), simd_conv_mr(t, n));
            fprintf(o, "    %s(", fn);
            for (int k = 0; k < n->inputs.len; k++)
                fprintf(o, "%s, ", act(e, n->inputs.items[k]));
            fprintf(o, "%s, %s, ", act(e, n), packed);
            if (s > 0)
                fprintf(o, "%s, ", at(e, n->train->fscratch));
            fprintf(o, "batch);\n");
        } else {
            fprintf(o, "    %s(", fn);
            for (int k = 0; k < n->inputs.len; k++)
                fprintf(o, "%s, ", act(e, n->inputs.items[k]));
            fprintf(o, "%s, ", act(e, n));
            if (n->nparams)
                fprintf(o, "params + %lld, ", ll(n->params[0].offset));
            if (n->train->fscratch)
                fprintf(o, "%s, ", at(e, n->train->fscratch));
            fprintf(o, "batch);\n");
        }
    }
    for (int i = 0; i < g->outputs.len; i++) {
        const Node *n = g->outputs.items[i];
        fprintf(o, "    cnn_copy(%s, out_%s, (ptrdiff_t)batch * %lld);\n", act(e, n),
                (const char *)g->output_names.items[i], ll(shape_elems(n->shape)));
    }
    fprintf(o, "    return 0;\n}\n\n");
}

static void emit_backward_entry(Emit *e, FILE *o) {
    const Graph *g = e->g;
    fprintf(o, "/* d loss / d params (canonical order, %s_PARAM_COUNT floats; zero for\n"
               " * batch-norm running statistics) from d loss / d outputs, after\n"
               " * %s_train_forward on the same inputs and arena. */\n", g->name, g->name);
    fprintf(o, "int %s_backward(const float *params, ", g->name);
    io_params(o, g, "dout", true);
    fprintf(o, "float *grads, int batch, void *arena) {\n");
    checks(e, o, g);
    fprintf(o, "    (void)params;\n");
    if (g->param_count == 0)
        fprintf(o, "    (void)grads;\n");
    void_io(o, g, "dout");
    for (int i = 0; i < g->outputs.len; i++) {
        const Node *n = g->outputs.items[i];
        if (n->train->grad)
            fprintf(o, "    cnn_copy(dout_%s, %s, (ptrdiff_t)batch * %lld);\n",
                    (const char *)g->output_names.items[i], at(e, n->train->grad),
                    ll(shape_elems(n->shape)));
    }
    for (int i = g->nodes.len - 1; i >= 0; i--) {
        const Node *n = g->nodes.items[i];
        const BackSig *b = &e->back[i];
        bool runs = n->op != OP_INPUT && n->train->grad && back_needed(b);
        if (!runs) {
            if (n->nparams)   /* no path to an output: its gradient is zero */
                fprintf(o, "    for (int i = 0; i < %lld; i++)\n        grads[%lld + i] = 0.0f;\n",
                        ll(n->param_count), ll(n->params[0].offset));
            continue;
        }
        fprintf(o, "    %s_backward(", e->fn[n->id]);
        for (int k = 0; k < n->inputs.len && b->x; k++)
            fprintf(o, "%s, ", act(e, n->inputs.items[k]));
        if (b->y)
            fprintf(o, "%s, ", act(e, n));
        if (b->aux)
            fprintf(o, "%s, ", at(e, n->train->aux));
        fprintf(o, "%s, ", at(e, n->train->grad));
        for (int k = 0; k < n->inputs.len; k++)
            if (b->dx[k])
                fprintf(o, "%s, ", at(e, ((Node *)n->inputs.items[k])->train->grad));
        if (b->w)
            fprintf(o, "params + %lld, ", ll(n->params[0].offset));
        if (b->gw)
            fprintf(o, "grads + %lld, ", ll(n->params[0].offset));
        if (b->s)
            fprintf(o, "%s, ", at(e, n->train->bscratch));
        fprintf(o, "batch);\n");
    }
    fprintf(o, "    return 0;\n}\n\n");
}

void emit_training(Emit *e, FILE *o) {
    emit_param_table(e, o);
    emit_train_forward(e, o);
    emit_backward_entry(e, o);
}

/* The training declarations of NAME.h. */
void emit_training_header(Emit *e, FILE *o, const Plan *plan) {
    const Graph *g = e->g;
    const char *N = g->name;
    int count = param_tensor_count(g);
    fprintf(o, "/* Training (cnnc build --train): link libcnnrt. */\n");
    fprintf(o, "#define %s_TRAIN_ARENA_BYTES %lld\n", N, ll(plan->arena_bytes));
    fprintf(o, "#define %s_PARAM_TENSORS %d\n", N, count);
    fprintf(o, "extern const CnnrtParam %s_param_table[%d];\n", N, count ? count : 1);
    fprintf(o, "int %s_train_forward(float *params, ", N);
    io_params(o, g, "out", false);
    fprintf(o, "int batch, void *arena, unsigned long long seed, int dropout);\n");
    fprintf(o, "int %s_backward(const float *params, ", N);
    io_params(o, g, "dout", true);
    fprintf(o, "float *grads, int batch, void *arena);\n\n");
}
