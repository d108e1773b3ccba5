/* emit.h — what the C emitter (emit_c.c) shares with the kernel emitters
 * (kernels_scalar.c, and later one file per SIMD target). */
#ifndef CNNC_EMIT_H
#define CNNC_EMIT_H

#include "ir.h"

typedef struct BackSig BackSig;

struct Emit {
    FILE *o;                  /* where kernel text goes */
    Graph *g;
    Plan *plan;
    Packing *packing;
    const BuildOptions *opt;
    Arena *a;
    const char **fn;          /* C function name of each node, by id */
    const char *source;       /* the .cnn path and the command line, as text */
    const char *command;      /* that can go inside a C comment */
    const char **tfn;         /* the one training's forward pass calls */
    /* helpers the kernels used, so only those are written out */
    bool need_pad, need_exp, need_tanh, need_log, need_copy, need_dot;
    bool need_sqrt, need_unpad, need_uniform;   /* training helpers */
    bool need_hsum, need_dot4x3, need_zip, need_load2x8;   /* simd */
    bool need_pack_wino2, need_pack_wino4;   /* training packs Winograd weights */
    bool need_unzip, need_unzip512;   /* cnn_unzip: 8 and 16 wide */
    bool need_pool, need_pool512;     /* cnn_vmax: 8 and 16 wide */
    bool wide;                /* writing an AVX-512 kernel */
    bool scratch_per_sample;  /* the kernel's scratch has a part per sample */
    bool split;               /* --openmp: the kernel being written shares one
                                 sample's loops among the threads (omp_split) */
    FILE *batch_o;            /* open_batch's capture of the per-sample body, */
    char *batch_text;         /* which close_batch writes out twice */
    size_t batch_len;
    int64_t batch_work;       /* omp_work of the kernel in open_batch */
    FILE *bands_o;            /* bands_open's capture of a tile loop, */
    char *bands_text;         /* which bands_close writes inside its chunks */
    size_t bands_len;
    bool plain;               /* writing the unfused scalar kernels that
                                 training's forward pass calls */
    Plan *train_plan;         /* --train */
    BackSig *back;            /* by node id, filled by the training kernels */
};

/* With --openmp, a layer's own loops are shared among the threads only
 * when one sample's work pays for waking them. Parallel regions one after
 * another cost about 0.6 us each with libgomp on 2 cores of an EPYC (Zen
 * 4), a barrier 0.3 us: below about 64K multiply-adds (a microsecond's
 * work) a second thread costs more than it saves. At 256K, the earlier
 * bound, LeNet-5 at batch 1 ran no faster on 2 threads than on one; at 64K
 * its second convolution is shared too, and it took 13.2 us against 18.2
 * (the MNIST network 38 against 41 us), one thread losing nothing
 * measurable. omp_work counts an element moved as four multiply-adds. */
enum { OMP_SPLIT_WORK = 1 << 16 };

/* The L2 cache one core has to itself, which tile and band sizes aim to
 * stay within: 1 MB on the Zen 4 and recent Xeon cores this was tuned on
 * (Skylake-SP and later: 1-2 MB). */
enum { L2_BYTES = 1 << 20 };
int64_t omp_work(const Node *n);
bool omp_split(const Emit *e, const Node *n);
/* "#pragma omp parallel for" for a loop over the whole batch, with an if
 * clause that keeps small batches of small layers on one thread. */
void omp_batch_for(Emit *e, const Node *n, const char *indent);

/* Kernel text goes through emit_text (emit_c.c), which swaps AVX2's vector
 * words for AVX-512's while `wide` is set (kernels_simd.c). */
void emit_text(Emit *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define P(e, ...) emit_text((e), __VA_ARGS__)

/* A C float literal that reads back as exactly (float)v: "0.01f", "2.0f". */
const char *float_lit(Arena *a, double v);

/* Per-sample element count of a node's output, and of its input k. */
static inline int64_t out_elems(const Node *n) { return shape_elems(n->shape); }
/* Floats from one sample's output to the next: more than out_elems for a
 * slice of a concat (fuse_concat.c), less for a conv that pools what it
 * stores (fuse_pool.c); training does neither. */
static inline int64_t out_stride(const Emit *e, const Node *n) {
    if (e->plain)
        return out_elems(n);
    return n->slice_of ? shape_elems(n->slice_of->shape)
           : n->pool ? out_elems(n->pool) : out_elems(n);
}
static inline int64_t in_elems(const Node *n, int k) {
    return shape_elems(((const Node *)n->inputs.items[k])->shape);
}
/* Channels, and positions per channel, of a [C,H,W] or [N] output. */
static inline void channels(const Node *n, int64_t *c, int64_t *hw) {
    *c = n->shape.d[0];
    *hw = n->shape.rank == 3 ? n->shape.d[1] * n->shape.d[2] : 1;
}

/* How far an LRN window reaches below and above channel c: size/2 and
 * (size-1)/2 as PyTorch has it, but never past the C channels there are
 * (a size of 4294967297 would loop 4e9 times, past int). */
static inline void lrn_reach(const Node *n, int64_t c, int64_t *below, int64_t *above) {
    *below = n->a.size / 2 < c - 1 ? n->a.size / 2 : c - 1;
    *above = (n->a.size - 1) / 2 < c - 1 ? (n->a.size - 1) / 2 : c - 1;
}

static inline Shape in_shape_of(const Node *n, int k) {
    return ((const Node *)n->inputs.items[k])->shape;
}

/* The loops of a direct convolution over one sample (kernels_scalar.c);
 * the forward pass and the input gradient both use them. */
typedef struct ConvLoops {
    const char *in, *out, *w;   /* C pointer expressions */
    int64_t cin_g, k, groups;   /* input channels per group, outputs, groups */
    int64_t kh, kw, dh, dw, sh, sw;
    int64_t hin, win;           /* the (padded) input plane; with a stride over
                                   1, a plane of its stride phases, sh x sw
                                   planes of every channel in turn */
    int64_t hout, wout;         /* the outputs computed */
    int64_t out_rows, out_row_stride;  /* the output plane holding them */
    const char *init;           /* start value (an expression of k, the output
                                   channel), or NULL to add to what is there */
    bool blocked;               /* weights in blocks of a tile's channels
                                   (scalar_pack_mr), else canonical */
    const char *tmp;            /* one output channel a group: a scratch run
                                   of (hout - 1) * win + wout floats for the
                                   long-loop form, or NULL for tiles */
} ConvLoops;

void emit_conv_loops(Emit *e, const ConvLoops *c);
/* Is input k of n a concat input that its own kernel wrote into the
 * concat's output (fuse_concat.c)? The concat kernel does not take it: it
 * would be the same pointer as the output. */
bool written_in_place(const Emit *e, const Node *n, int k);
/* Per-sample loop with xb0.., yb pointers; its closing brace. */
void open_batch(Emit *e, const Node *n);
void close_batch(Emit *e);
/* The loops over pooling window (oh, ow), ih and iw inside the input. */
void open_window(Emit *e, const Node *n);
/* `in`: input sample 0, padded into scratch `s` when the layer pads. */
void padded_input(Emit *e, const Node *n, int64_t *hp, int64_t *wp);

/* Does n's kernel fold a batch norm, or add and activate before storing?
 * (Never in the plain kernels training calls.) */
static inline const Epilogue *epilogue_of(const Emit *e, const Node *n) {
    return e->plain ? NULL : n->epi;
}
static inline bool has_bias(const Emit *e, const Node *n) {
    return n->a.bias || (!e->plain && n->bn);
}
/* Does n's kernel keep state from one call to the next (plan_with_state)?
 * Only the inference kernels do. */
static inline bool has_state(const Emit *e, const Node *n) {
    return !e->plain && n->state;
}
/* The epilogue's steps on the float `v`, element `idx` of the sample (the
 * residual summands are r0, r1, ... at the sample's start), as C statements
 * at `indent`. */
void emit_epilogue_scalar(Emit *e, const Node *n, const char *indent, const char *idx);
/* The residual summands' parameters, ", const float *restrict r0" ... */
int epilogue_operands(const Emit *e, const Node *n);

/* ---- kernels_simd.c: AVX2 and AVX-512 ---- */
bool simd_target(Target t);
/* The function attribute's target string: "avx2,fma", ... */
const char *simd_attribute(Target t);
/* Emits n's kernel with vector intrinsics; false when it has none (then the
 * scalar kernel is written, compiled for the target by the attribute). */
bool emit_simd_kernel(Emit *e, const Node *n);
/* The schedule line of the kernel comment, or NULL for a scalar kernel. */
const char *simd_schedule(Emit *e, const Node *n);
/* Does n run the direct convolution kernel (the P and C forms) on t? Its
 * candidate tiles (at most max), and the one the default model picks. */
bool simd_direct_conv(Target t, const Node *n);
int simd_tile_candidates(Target t, const Node *n, TileChoice *out, int max);
TileChoice simd_default_tile(Target t, const Node *n);
int64_t simd_scratch(Target t, const Node *n, int batch);
int simd_pack_mr(Target t, const Node *n);
int simd_conv_mr(Target t, const Node *n);
/* Training's forward pass runs n's SIMD kernel too, on weights packed from
 * the canonical parameters at each step into the end of its scratch. */
bool simd_packs_for_training(const Node *n);
/* A max pool the vector kernel takes (training's forward pass uses it too). */
bool simd_vector_pool(Target t, const Node *n);
int64_t simd_train_fscratch(Target t, const Node *n, int batch);
/* The scratch of the kernel training's forward pass calls for n (a dense
 * layer's transposed batch, else the inference kernel's). */
int64_t simd_train_kernel_scratch(Target t, const Node *n, int batch);
/* The input gradient of stride-1 convolution n as a convolution node of its
 * own (NULL when n is not such), and the backward scratch with room for it. */
Node *simd_backward_data_node(const Node *n, Arena *a);
/* That node as the build writes it: Winograd where it suits and the build
 * allows it. Its packed weights and scratch, one sample. */
Node *simd_dx_node(const Emit *e, const Node *n);
/* The scratch of the kernel that computes conv n (Winograd's where it takes
 * it), and the floats of its weights as training packs them for it. */
int64_t simd_kernel_scratch(Target t, const Node *n, int batch);
int64_t simd_train_packed(Target t, const Node *n);
int64_t simd_train_bscratch(Target t, const Node *n, int batch);
/* The same for one lane of a convolution's backward (train_lane_total). */
int64_t simd_train_bscratch_lane(Target t, const Node *n);
/* A dense layer's backward (the kernels_train.c signature). */
void emit_simd_dense_back(Emit *e, const BackSig *b);
/* The planner's and packer's callbacks for target t. */
ScratchFn simd_scratch_fn(Target t);
/* Floats a vector kernel keeps between calls (plan_with_state). */
int64_t simd_state_floats(const Node *n, int batch);
ScratchFn simd_fscratch_fn(Target t);
ScratchFn simd_bscratch_fn(Target t);
PackMrFn simd_mr_fn(Target t);

/* Floats in one of target t's vectors. */
int simd_width(Target t);
/* Notes that the kernel being written calls cnn_unzip at its vector width. */
void simd_need_unzip(Emit *e);
/* cnn_vmax (the pooling kernels' maximum) at the width being written. */
void simd_need_vmax(Emit *e);
/* The epilogue's steps on the vector `x` holding outputs from sample index
 * `idx` on, as statements at `indent`. */
void simd_epilogue_vector(Emit *e, const Node *n, const char *indent, const char *idx);

/* Stores vector `vec` at yb + `at` through the epilogue; or lanes `first`
 * .. + `count` of it one by one (C expressions; the kernel defines W). */
void simd_store_vector(Emit *e, const Node *n, const char *indent, const char *vec,
                       const char *at);
void simd_store_lanes(Emit *e, const Node *n, const char *indent, const char *vec,
                      const char *first, const char *count, const char *at);

/* ---- winograd.c: 3x3 stride-1 convolutions by F(2x2, 3x3) or F(4x4, 3x3) ---- */
/* Marks the convolutions Winograd computes on target t (none when off). */
void wino_choose(Graph *g, Target t, bool off);
/* pool_bands.c: a max pool taken after each chunk of a convolution's tile
 * loop. A kernel's flat loop of trips finishes its output in one of two
 * orders: */
typedef struct TripOrder {
    int64_t trips;          /* the loop's trips */
    bool by_channels;       /* channel blocks outermost: */
    int64_t per_block;      /*   trips a block of mr channels, every row */
    int64_t mr, kg, blocks; /*   channels a block, a group, blocks a group */
    /* positions outermost: each `unit` trips finish `unit_pos` more
     * positions of the kernel's run, `pitch` of them a row */
    int64_t unit, unit_pos, pitch;
    int64_t last_start;     /* where the last tile starts (shifted back) */
    bool chunk_a_trip;      /* a trip is a chunk (winograd.c: a band) */
} TripOrder;
/* The order of conv's kernel (kernels_simd.c: direct, wino_rows.c's or
 * winograd.c's). */
TripOrder trip_order(Target t, const Node *conv);
TripOrder rows_trip_order(Target t, const Node *conv);
TripOrder wino_trip_order(Target t, const Node *conv);
/* Does conv take its pool this way (rather than in registers)? */
bool pool_in_bands(Target t, const Node *conv);
/* ... in the kernel being written: inference on a vector target (training's
 * forward pass keeps its pools apart). */
bool bands_here(const Emit *e, const Node *conv);
/* Floats a sample of scratch for it: the convolution's output and the
 * pool's padded rows. */
int64_t bands_scratch(Target t, const Node *conv);
/* Floats a channel of the convolution's output takes in scratch: its
 * kernel stores channel c's output at c * this - sub (bands_close). */
int64_t bands_plane(Target t, const Node *conv);
/* "float *yb" (the convolution's output in scratch at `base`) and "pl". */
void bands_pointers(Emit *e, const Node *conv, const char *base);
/* Around the kernel's tile loop "for (int it = it0; it < it1; it++)". */
void bands_open(Emit *e, const Node *conv);
void bands_close(Emit *e, const Node *conv);
/* Or, in a kernel whose own loop is the chunks, with `ch` the chunk: the
 * table before the loop, the start of each chunk, the pool after it. */
void bands_table(Emit *e, const Node *conv, const char *indent);
void bands_chunk_start(Emit *e, const Node *conv, const char *indent);
void bands_chunk_pool(Emit *e, const Node *conv, const char *indent);
/* The pool's function (kernels_simd.c). */
void simd_emit_band_pool(Emit *e, const Node *conv, const char *name);
/* `body` with `extra` more spaces a line, without OpenMP pragmas when
 * `serial` (kernels_scalar.c). */
void emit_indented(FILE *o, const char *body, const char *extra, bool serial);

/* fuse_pool.c: marks each max pool that the kernel of the convolution
 * before it computes (n->pool); run after fuse_graph() and wino_choose(). */
void fuse_pool(Graph *g, Target t);
/* Whether the kernel of the convolution before max pool p can take it. */
bool pool_suits(Target t, const Node *p);
/* ... in its registers: a 2x2 stride-2 pool after Winograd or depthwise. */
bool pool_in_registers(Target t, const Node *conv, const Node *p);
/* chain.c: numbers the runs of convolutions NAME_forward takes one sample
 * at a time (n->chain); run after fuse_pool(). */
void chain_samples(Graph *g, const BuildOptions *opt);
/* A layer that can run inside a chain with a kernel of its own: a
 * convolution or a max pool not fused into another layer (in a chain
 * when n->chain is set). */
bool chain_member(const Node *n);
bool wino_suits(Target t, const Node *n, int m);
/* The tile side F(m x m) the layer n takes (0: none), as wino_choose
 * chooses it. */
int wino_pick(Target t, const Node *n);
int wino_mr(Target t, const Node *n);
int64_t wino_scratch(Target t, const Node *n, int batch);
const char *wino_schedule(Emit *e, const Node *n);
void emit_wino_conv(Emit *e, const Node *n);

/* ---- wino_rows.c: 7-wide stride-2 convolutions by 1-D Winograd ---- */
bool rows_suits(Target t, const Node *n);
int rows_mr(Target t, const Node *n);
int64_t rows_scratch(Target t, const Node *n, int batch);
const char *rows_schedule(Emit *e, const Node *n);
void emit_rows_conv(Emit *e, const Node *n);

/* ---- depthwise.c: depthwise convolutions on the vector targets ---- */
bool dw_suits(Target t, const Node *n);
int dw_width(Target t, const Node *n);   /* its vector width: 8 or 16 */
int64_t dw_scratch(Target t, const Node *n, int batch);
const char *dw_schedule(Emit *e, const Node *n);
void emit_dw_conv(Emit *e, const Node *n);

/* ---- training (kernels_train.c, emit_train.c) ---- */

/* What one backward kernel takes and does. */
struct BackSig {
    const Node *n;
    bool x, y, aux;        /* reads its inputs, its output, its aux buffer */
    bool w, gw, s;         /* reads weights, writes weight gradients, scratch */
    bool any_dx;
    bool *dx;              /* per input: its gradient is wanted */
    bool *acc;             /* per input: add to it rather than assign */
};

/* written[id]: a gradient already holds something (backward order). */
BackSig back_signature(const Node *n, const bool *written, Arena *a);
bool back_needed(const BackSig *b);
int64_t train_bscratch(const Node *n, int batch);
/* A convolution's backward scratch for one lane, and for all its lanes
 * given one lane's (other nodes: the same). */
int64_t train_bscratch_lane(const Node *n);
/* The vector weight gradient's dyT and gT, part of a lane's scratch on the
 * vector targets (0 where it does not apply). */
int64_t train_dw_floats(Target t, const Node *n);
int64_t train_lane_total(const Node *n, int64_t per_lane);
/* The lanes a convolution's backward splits the batch into (1: none). */
int train_lanes(const BuildOptions *opt);
void emit_backward_kernel(Emit *e, const BackSig *b);
/* The function a convolution's backward calls for each lane, if it has
 * lanes (written before the backward kernel), and the kernel comment's
 * schedule line for a backward kernel. */
void emit_backward_lane(Emit *e, const BackSig *b);
const char *backward_schedule(Emit *e, const BackSig *b);
void emit_bn_train(Emit *e, const Node *n);
void emit_dropout_train(Emit *e, const Node *n);
/* The training kernels (into e->o), then the entry points and the header's
 * declarations (emit_train.c). */
void emit_training_kernels(Emit *e);
void emit_training(Emit *e, FILE *o);
void emit_training_header(Emit *e, FILE *o, const Plan *plan);

/* The comment above each kernel: source line, layer, shapes, schedule. */
void emit_kernel_comment(Emit *e, const Node *n, const char *schedule);

#endif
