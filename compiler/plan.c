/* plan.c — the memory plan: every intermediate tensor gets an offset in one
 * arena, fixed at compile time.
 *
 * First each node chooses where its output lives: the caller's buffer for
 * network inputs and outputs; its input's bytes for views (flatten, and
 * dropout, which is the identity in inference) and for element-wise layers
 * that are the last to read their input (in place); for a convolution that
 * writes a slice of a concat (fuse_concat.c) or pools before it stores
 * (fuse_pool.c), the concat's or the pool's buffer, made when the
 * convolution runs; otherwise a buffer of its own. A buffer is live from
 * the step that writes it to the last step that reads it. Then buffers are placed greedily, largest first, each in
 * the smallest gap left by the buffers it shares a step with ("greedy by
 * size, best fit").
 */
#include "ir.h"

#include <stdlib.h>

static bool may_run_in_place(OpKind op) {
    switch (op) {
    case OP_RELU: case OP_RELU6: case OP_SIGMOID: case OP_TANH:
    case OP_LEAKYRELU: case OP_ELU: case OP_PRELU: case OP_BN: case OP_BIAS:
    case OP_SOFTMAX: case OP_ADD:
        return true;
    default:
        return false;
    }
}

static bool is_view(OpKind op) {
    return op == OP_FLATTEN || op == OP_DROPOUT;
}

static int64_t round_up(int64_t v, int64_t to) {
    return (v + to - 1) / to * to;
}

static Buffer *new_buffer(Plan *p, Arena *a, const Node *owner, int64_t bytes,
                          int first, int last) {
    Buffer *b = arena_alloc(a, sizeof *b);
    b->id = p->buffers.len;
    b->bytes = round_up(bytes, ARENA_ALIGN);
    b->sample_bytes = b->bytes;
    b->first = first;
    b->last = last;
    b->owner = owner;
    vec_push(a, &p->buffers, b);
    return b;
}

/* A buffer for the output of `owner`, every sample of it. */
static Buffer *tensor_buffer(Plan *p, Arena *a, const Node *owner, int first, int last) {
    int64_t one = shape_elems(owner->shape) * 4;
    Buffer *b = new_buffer(p, a, owner, one * p->batch, first, last);
    b->sample_bytes = round_up(one, ARENA_ALIGN);
    return b;
}

/* Gives n the storage of its input `in` (a view or an in-place layer). */
static void share(Node *n, Node *in, int last_read) {
    n->home = in->home;
    n->home_at = in->home_at;
    n->buf = in->buf;
    if (n->buf && n->buf->last < last_read)
        n->buf->last = last_read;
}

/* May n overwrite the storage of input i? Only an arena buffer that nobody
 * reads after n. */
static bool can_overwrite(const Node *n, int i) {
    const Node *in = n->inputs.items[i];
    return in->buf && in->buf->last == n->id;
}

/* The buffer of node `to`, written first by an earlier node at step
 * `first` (a slice of a concat, a convolution with the pool in it): made
 * then, if no earlier writer made it, and live to `to`'s last reader. */
static Buffer *written_early(Plan *p, Arena *a, Node *to, int first, const int *last_read) {
    if (!to->buf && !to->is_output) {
        int last = last_read[to->id] > to->id ? last_read[to->id] : to->id;
        to->buf = tensor_buffer(p, a, to, first, last);
    }
    return to->buf;
}

static void choose_homes(Graph *g, Plan *p, const int *last_read, Arena *a) {
    for (int i = 0; i < g->nodes.len; i++) {
        Node *n = g->nodes.items[i];
        n->home = n;
        n->home_at = 0;
        n->buf = NULL;
    }
    for (int i = 0; i < g->nodes.len; i++) {
        Node *n = g->nodes.items[i];
        int last = last_read[i] > n->id ? last_read[i] : n->id;
        if (n->op == OP_INPUT || n->is_output)
            continue;
        /* fuse_concat.c, fuse_pool.c: it writes the concat's or the pool's bytes */
        Node *to = n->slice_of ? n->slice_of : n->pool;
        if (to) {
            n->buf = written_early(p, a, to, n->id, last_read);
            n->home = to;
            n->home_at = n->slice_of ? n->slice_at : 0;
            continue;
        }
        if (n->buf)
            continue;   /* a concat or pool whose writers made its buffer */
        if (is_view(n->op) || n->fused_into) {
            n->view = true;
            share(n, n->inputs.items[n->fused_into ? n->fused_arg : 0], last);
            continue;
        }
        if (may_run_in_place(n->op)) {
            int k = can_overwrite(n, 0) ? 0
                  : n->inputs.len > 1 && can_overwrite(n, 1) ? 1 : -1;
            if (k >= 0) {
                n->in_place = true;
                if (k == 1) {   /* keep the overwritten input first */
                    void *t = n->inputs.items[0];
                    n->inputs.items[0] = n->inputs.items[1];
                    n->inputs.items[1] = t;
                    t = n->input_desc.items[0];
                    n->input_desc.items[0] = n->input_desc.items[1];
                    n->input_desc.items[1] = t;
                }
                share(n, n->inputs.items[0], last);
                continue;
            }
        }
        n->buf = tensor_buffer(p, a, n, n->id, last);
    }
}

static int by_size_desc(const void *x, const void *y) {
    const Buffer *a = *(Buffer *const *)x, *b = *(Buffer *const *)y;
    if (a->bytes != b->bytes)
        return a->bytes < b->bytes ? 1 : -1;
    return a->first != b->first ? a->first - b->first : a->id - b->id;
}

static int by_offset(const void *x, const void *y) {
    const Buffer *a = *(Buffer *const *)x, *b = *(Buffer *const *)y;
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

static bool overlap_in_time(const Buffer *a, const Buffer *b) {
    return a->first <= b->last && b->first <= a->last;
}

/* The runs of convolutions that take one sample at a time (chain.c). A
 * buffer that only chain c writes and reads (a member's scratch too) holds
 * one sample, since sample b+1 overwrites it only after sample b is
 * through the chain. One the chain writes for a later layer is live from
 * the chain's first step (it keeps sample 0 while the chain goes on with
 * the rest); one it reads from an earlier layer, to the chain's last step.
 *
 * The chain's own buffers are placed among themselves, by their steps,
 * in one sample's workspace; the chain's workspace buffer holds p->slots
 * of those, one for each sample in flight, and is live at every step of
 * the chain. With threads, one slot a sample: two threads at different
 * members of the chain never share bytes, whatever steps they are at. */
static void place_buffers(Buffer **list, int n, int64_t *top);

static void plan_chains(const Graph *g, Plan *p, Arena *a) {
    int count = p->buffers.len;
    Buffer **inside = malloc(sizeof(Buffer *) * (size_t)(count + 1));
    for (int c = 1;; c++) {
        int first = -1, last = -1;
        for (int i = 0; i < g->nodes.len; i++)
            if (((const Node *)g->nodes.items[i])->chain == c) {
                first = first < 0 ? i : first;
                last = i;
            }
        if (first < 0)
            break;
        int n = 0;
        for (int i = 0; i < count; i++) {
            Buffer *b = p->buffers.items[i];
            if (b->first >= first && b->last <= last) {
                b->one_sample = true;
                b->bytes = b->sample_bytes;
                inside[n++] = b;
            } else if (b->first < first && b->last >= first && b->last < last) {
                b->last = last;
            } else if (b->first >= first && b->first <= last && b->last > last) {
                b->first = first;
            }
        }
        if (n == 0)
            continue;
        int64_t slot = 0;
        place_buffers(inside, n, &slot);
        Buffer *ws = new_buffer(p, a, g->nodes.items[first], slot * p->slots, first, last);
        ws->slots = p->slots;
        ws->slot_bytes = slot;
        ws->sample_bytes = slot;
        for (int i = 0; i < n; i++)
            inside[i]->ws = ws;
    }
    free(inside);
}

/* Greedy by size, best fit: the n buffers of `list` get offsets from 0,
 * and *top the end of the highest. */
static void place_buffers(Buffer **list, int n, int64_t *top) {
    Buffer **order = malloc(sizeof(Buffer *) * (size_t)(n + 1));
    Buffer **placed = malloc(sizeof(Buffer *) * (size_t)(n + 1));
    Buffer **conflicts = malloc(sizeof(Buffer *) * (size_t)(n + 1));
    for (int i = 0; i < n; i++)
        order[i] = list[i];
    qsort(order, (size_t)n, sizeof *order, by_size_desc);
    int nplaced = 0;
    for (int i = 0; i < n; i++) {
        Buffer *b = order[i];
        int nc = 0;
        for (int k = 0; k < nplaced; k++)
            if (overlap_in_time(b, placed[k]))
                conflicts[nc++] = placed[k];
        qsort(conflicts, (size_t)nc, sizeof *conflicts, by_offset);
        int64_t best = -1, best_gap = INT64_MAX, end = 0;
        for (int k = 0; k < nc; k++) {
            int64_t gap = conflicts[k]->offset - end;
            if (gap >= b->bytes && gap < best_gap) {
                best = end;
                best_gap = gap;
            }
            int64_t e = conflicts[k]->offset + conflicts[k]->bytes;
            end = e > end ? e : end;
        }
        b->offset = best >= 0 ? best : end;
        placed[nplaced++] = b;
        if (b->offset + b->bytes > *top)
            *top = b->offset + b->bytes;
    }
    free(order);
    free(placed);
    free(conflicts);
}

/* Every buffer outside a workspace in the arena, then those inside at
 * their workspace's offset. */
static void place(Plan *p) {
    int n = 0;
    Buffer **list = malloc(sizeof(Buffer *) * (size_t)(p->buffers.len + 1));
    for (int i = 0; i < p->buffers.len; i++) {
        Buffer *b = p->buffers.items[i];
        if (!b->ws)
            list[n++] = b;
    }
    place_buffers(list, n, &p->arena_bytes);
    free(list);
    for (int i = 0; i < p->buffers.len; i++) {
        Buffer *b = p->buffers.items[i];
        if (b->ws)
            b->offset += b->ws->offset;
    }
}

/* The most bytes live at one step: no placement can do better. */
static int64_t lower_bound(const Plan *p, int steps) {
    int64_t *delta = calloc((size_t)steps + 2, sizeof *delta);
    for (int i = 0; i < p->buffers.len; i++) {
        const Buffer *b = p->buffers.items[i];
        int64_t bytes = b->ws ? 0 : b->bytes;   /* counted in its workspace */
        delta[b->first] += bytes;
        delta[b->last + 1] -= bytes;
    }
    int64_t live = 0, most = 0;
    for (int t = 0; t <= steps; t++) {
        live += delta[t];
        most = live > most ? live : most;
    }
    free(delta);
    return most;
}

/* An arena over 2^40 bytes is an error at the layer whose buffer first
 * reaches past the limit (DSL.md: "at the layer that makes it"). */
static void arena_too_big(const Plan *p, Diags *d, const char *what) {
    const Buffer *worst = NULL;
    for (int i = 0; i < p->buffers.len; i++) {
        const Buffer *b = p->buffers.items[i];
        if (b->offset + b->bytes > MAX_BYTES && (!worst || b->first < worst->first))
            worst = b;
    }
    diag_error(d, worst->owner->loc, "at batch %d the %s reaches past 2^40 bytes "
               "here: what is live at %s does not fit", p->batch, what,
               worst->owner->name);
}

Plan *plan_memory(Graph *g, int batch, ScratchFn scratch, Arena *a, Diags *d) {
    return plan_with_state(g, batch, scratch, NULL, 1, a, d);
}

Plan *plan_with_state(Graph *g, int batch, ScratchFn scratch, ScratchFn state, int slots,
                      Arena *a, Diags *d) {
    Plan *p = arena_alloc(a, sizeof *p);
    p->batch = batch;
    p->slots = slots;
    int steps = g->nodes.len;

    /* The bytes for all samples must stay below the 2^40 limit too. */
    for (int i = 0; i < steps; i++) {
        Node *n = g->nodes.items[i];
        int64_t bytes;
        if (!mul_ok(shape_elems(n->shape) * 4, batch, &bytes) || bytes > MAX_BYTES) {
            diag_error(d, n->loc, "at batch %d the output of %s takes more than "
                       "2^40 bytes", batch, n->name);
            return NULL;
        }
        n->is_output = false;
        n->in_place = n->view = false;
        n->scratch = n->state = NULL;
    }
    for (int i = 0; i < g->outputs.len; i++) {
        Node *n = g->outputs.items[i];
        n->is_output = true;
        n->io = i;
    }

    int *last_read = calloc((size_t)steps + 1, sizeof *last_read);
    for (int i = 0; i < steps; i++) {
        const Node *n = g->nodes.items[i];
        for (int k = 0; k < n->inputs.len; k++) {
            const Node *in = n->inputs.items[k];
            if (last_read[in->id] < n->id)
                last_read[in->id] = n->id;
        }
    }
    choose_homes(g, p, last_read, a);
    free(last_read);

    for (int i = 0; i < steps; i++) {
        Node *n = g->nodes.items[i];
        /* a chain's convolution runs on one sample a call */
        int64_t floats = scratch ? scratch(n, n->chain ? 1 : batch) : 0;
        if (floats > 0)
            n->scratch = new_buffer(p, a, n, floats * 4, n->id, n->id);
        /* live at every step, so nothing else ever writes over it */
        int64_t kept = state ? state(n, batch) : 0;
        if (kept > 0)
            n->state = new_buffer(p, a, n, kept * 4, 0, steps - 1);
    }
    plan_chains(g, p, a);
    for (int i = 0; i < p->buffers.len; i++) {
        const Buffer *b = p->buffers.items[i];
        p->no_reuse_bytes += b->slots ? 0 : b->ws ? b->bytes * b->ws->slots : b->bytes;
    }
    place(p);
    p->lower_bound = lower_bound(p, steps);
    if (p->arena_bytes > MAX_BYTES) {
        arena_too_big(p, d, "arena");
        return NULL;
    }
    return p;
}

const char *plan_verify(const Graph *g, const Plan *p, Arena *a) {
    (void)g;
    for (int i = 0; i < p->buffers.len; i++) {
        const Buffer *x = p->buffers.items[i];
        if (x->offset % ARENA_ALIGN || x->offset < 0 ||
            x->offset + x->bytes > p->arena_bytes)
            return arena_printf(a, "buffer %d of %s is misplaced", x->id,
                                x->owner->name);
        if (x->ws && (x->offset < x->ws->offset ||
                      x->offset + x->bytes > x->ws->offset + x->ws->slot_bytes))
            return arena_printf(a, "buffer %d of %s is outside its slot", x->id,
                                x->owner->name);
        for (int k = i + 1; k < p->buffers.len; k++) {
            const Buffer *y = p->buffers.items[k];
            if (x->ws == y || y->ws == x)
                continue;   /* a workspace holds its chain's buffers */
            if (overlap_in_time(x, y) && x->offset < y->offset + y->bytes &&
                y->offset < x->offset + x->bytes)
                return arena_printf(a, "buffers of %s and %s overlap while both "
                                    "are live", x->owner->name, y->owner->name);
        }
    }
    return NULL;
}

/* ---- the training plan ------------------------------------------------------ */

bool backward_reads_input(const Node *n) {
    switch (n->op) {
    case OP_CONV: case OP_LOCAL: case OP_DENSE: case OP_BN: case OP_MAXPOOL:
    case OP_L2POOL: case OP_GLOBALMAXPOOL: case OP_LRN: case OP_LEAKYRELU:
    case OP_ELU: case OP_PRELU: case OP_MAXOUT:
        return true;
    default:
        return false;
    }
}

bool backward_reads_output(const Node *n) {
    switch (n->op) {
    case OP_RELU: case OP_RELU6: case OP_SIGMOID: case OP_TANH: case OP_SOFTMAX:
    case OP_L2POOL:
        return true;
    default:
        return false;
    }
}

static void extend(Buffer *b, int last) {
    if (b && b->last < last)
        b->last = last;
}

Plan *plan_training(Graph *g, int batch, int lanes, ScratchFn fscratch, ScratchFn bscratch,
                    Arena *a, Diags *d) {
    Plan *p = arena_alloc(a, sizeof *p);
    p->batch = batch;
    int n = g->nodes.len;
    for (int i = 0; i < n; i++) {
        Node *nd = g->nodes.items[i];
        int64_t bytes;
        if (!mul_ok(shape_elems(nd->shape) * 4, batch, &bytes) || bytes > MAX_BYTES) {
            diag_error(d, nd->loc, "at batch %d the output of %s takes more than "
                       "2^40 bytes", batch, nd->name);
            return NULL;
        }
    }
    /* activations, bn statistics, dropout masks, forward scratch */
    for (int i = 0; i < n; i++) {
        Node *nd = g->nodes.items[i];
        TrainNode *t = nd->train = arena_alloc(a, sizeof *t);
        t->lanes = lanes;
        int64_t bytes = shape_elems(nd->shape) * 4 * batch;
        int back = 2 * n - 1 - i;
        if (nd->op == OP_FLATTEN)
            t->act = ((Node *)nd->inputs.items[0])->train->act;
        else if (nd->op != OP_INPUT)
            t->act = new_buffer(p, a, nd, bytes, i, i);
        if (nd->op == OP_BN)
            t->aux = new_buffer(p, a, nd, 2 * 4 * nd->shape.d[0], i, back);
        if (nd->op == OP_DROPOUT)
            t->aux = new_buffer(p, a, nd, bytes, i, back);
        int64_t fs = fscratch(nd, batch);
        if (fs > 0)
            t->fscratch = new_buffer(p, a, nd, fs * 4, i, i);
    }
    /* how long each activation must live */
    for (int i = 0; i < n; i++) {
        Node *nd = g->nodes.items[i];
        int back = 2 * n - 1 - i;
        for (int k = 0; k < nd->inputs.len; k++) {
            const Node *in = nd->inputs.items[k];
            extend(in->train->act, backward_reads_input(nd) ? back : i);
        }
        if (backward_reads_output(nd))
            extend(nd->train->act, back);
    }
    for (int i = 0; i < g->outputs.len; i++)   /* copied out after the last layer */
        extend(((Node *)g->outputs.items[i])->train->act, n - 1);

    /* gradients: from the first backward step that writes one to the
     * backward step of its node; outputs start with the caller's dout */
    int *first = malloc(sizeof(int) * (size_t)(n + 1));
    for (int i = 0; i < n; i++)
        first[i] = INT32_MAX;
    for (int i = 0; i < g->outputs.len; i++)
        first[((Node *)g->outputs.items[i])->id] = n;
    for (int i = 0; i < n; i++) {
        const Node *nd = g->nodes.items[i];
        for (int k = 0; k < nd->inputs.len; k++) {
            const Node *in = nd->inputs.items[k];
            int back = 2 * n - 1 - i;
            if (back < first[in->id])
                first[in->id] = back;
        }
    }
    for (int i = 0; i < n; i++) {
        Node *nd = g->nodes.items[i];
        int back = 2 * n - 1 - i;
        if (nd->op != OP_INPUT && first[i] != INT32_MAX)
            nd->train->grad = new_buffer(p, a, nd, shape_elems(nd->shape) * 4 * batch,
                                         first[i], back);
        int64_t bs = bscratch(nd, batch);
        if (bs > 0)
            nd->train->bscratch = new_buffer(p, a, nd, bs * 4, back, back);
    }
    free(first);

    for (int i = 0; i < p->buffers.len; i++)
        p->no_reuse_bytes += ((Buffer *)p->buffers.items[i])->bytes;
    place(p);
    p->lower_bound = lower_bound(p, 2 * n);
    if (p->arena_bytes > MAX_BYTES) {
        arena_too_big(p, d, "training arena");
        return NULL;
    }
    return p;
}
