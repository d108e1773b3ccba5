/* emit.h — what the C emitter (emit_c.c) shares with the kernel emitters
 * (kernels_scalar.c, and later one file per SIMD target). */
#ifndef CNNC_EMIT_H
#define CNNC_EMIT_H

#include "ir.h"

struct Emit {
    FILE *o;                  /* where kernel text goes */
    Graph *g;
    Plan *plan;
    Packing *packing;
    const BuildOptions *opt;
    Arena *a;
    const char **fn;          /* C function name of each node, by id */
    /* helpers the kernels used, so only those are written out */
    bool need_pad, need_exp, need_tanh, need_log, need_copy;
};

#define P(e, ...) fprintf((e)->o, __VA_ARGS__)

/* Per-sample element count of a node's output, and of its input k. */
static inline int64_t out_elems(const Node *n) { return shape_elems(n->shape); }
static inline int64_t in_elems(const Node *n, int k) {
    return shape_elems(((const Node *)n->inputs.items[k])->shape);
}
static inline Shape in_shape_of(const Node *n, int k) {
    return ((const Node *)n->inputs.items[k])->shape;
}

/* The comment above each kernel: source line, layer, shapes, schedule. */
void emit_kernel_comment(Emit *e, const Node *n, const char *schedule);

#endif
