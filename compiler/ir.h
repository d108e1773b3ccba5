/* ir.h — the map of cnnc.
 *
 *   network.cnn ─ parser.y ─▶ AST (dsl/ast.h)
 *               ─ names.c  ─▶ every definition name-checked
 *               ─ expand.c ─▶ graph IR: blocks and repeats expanded, one Node per layer
 *               ─ shape.c  ─▶ typed graph: shapes, parameter tensors, MACs, warnings
 *               ─ summary.c, dot.c (what the CLI shows of a typed graph)
 *
 * Each section below lists one file's types and exports. The layer table
 * (layers.c) is the single place that knows what a layer is: its arguments
 * and defaults, its shape rule, its parameter tensors in canonical order and
 * its multiply-accumulate count.
 */
#ifndef CNNC_IR_H
#define CNNC_IR_H

#include "../dsl/ast.h"
#include "base.h"

/* ---- shapes ---------------------------------------------------------------
 * Per-sample shapes: rank 3 is [C, H, W], rank 1 is [N]. The batch is never
 * part of a shape. Rank 0 means "not known" (an earlier error). */
typedef struct Shape {
    int rank;
    int64_t d[3];
} Shape;

int64_t shape_elems(Shape s);                 /* product of the dims */
const char *shape_str(Arena *a, Shape s);     /* "[64,56,56]" */

/* Any tensor, parameter vector or arena larger than this is an error (DSL.md). */
#define MAX_BYTES ((int64_t)1 << 40)
/* An expansion that makes more layers than this is refused: no real network
 * comes close, and it bounds time and memory on hostile input. */
enum { MAX_NODES = 100000 };

/* ---- layers.c: the table of layers -------------------------------------- */
typedef enum OpKind {
    OP_INPUT,            /* input NAME: [...]          (not in the table's calls) */
    OP_CONV, OP_LOCAL, OP_DENSE, OP_BN,
    OP_MAXPOOL, OP_AVGPOOL, OP_L2POOL, OP_GLOBALAVGPOOL, OP_GLOBALMAXPOOL,
    OP_LRN,
    OP_RELU, OP_RELU6, OP_SIGMOID, OP_TANH, OP_LEAKYRELU, OP_ELU, OP_PRELU,
    OP_MAXOUT, OP_SOFTMAX, OP_DROPOUT, OP_FLATTEN, OP_BIAS,
    OP_CONCAT,           /* concat(a, b, ...)                                  */
    OP_ADD,              /* a + b                                              */
    OP_COUNT
} OpKind;

typedef enum PadMode { PAD_ZEROS, PAD_REFLECT, PAD_REPLICATE, PAD_CIRCULAR } PadMode;

/* The arguments of every layer, resolved. Each layer uses the fields its
 * table row names; the rest keep their zero value. Pairs are (h, w). */
typedef struct Attrs {
    int64_t units;        /* conv, local: filters; dense: units */
    int64_t kernel[2];
    int64_t stride[2];
    int64_t pad[2];       /* as written: top = bottom, left = right */
    bool pad_same;        /* pad=same: resolved by the shape rule into pad_lo/hi */
    int64_t pad_lo[2];    /* padding before (top, left) ... */
    int64_t pad_hi[2];    /* ... and after (bottom, right), after shape check */
    int64_t dilation[2];
    int64_t groups;
    bool bias;
    PadMode pad_mode;
    int64_t pieces;       /* maxout */
    int64_t size;         /* lrn */
    double p, eps, momentum, alpha, beta, k;
} Attrs;

typedef enum ArgType {
    ARG_INT,      /* a positive integer                                     */
    ARG_PAIR,     /* an integer or an (h, w) tuple of them                  */
    ARG_PAD,      /* a pair of integers >= 0, or `same`                      */
    ARG_REAL,     /* a number (an integer is accepted and converted)        */
    ARG_BOOL,     /* true or false                                          */
    ARG_PADMODE,  /* zeros, reflect, replicate or circular                  */
} ArgType;

typedef struct ArgSpec {
    const char *name;
    ArgType type;
    size_t offset;        /* where it lands in Attrs */
    bool required;
    double def;           /* the default (numbers, bools, pad modes as 0/1/2/3) */
    bool def_is_kernel;   /* pooling's stride: defaults to the kernel */
    int64_t min;          /* smallest legal integer (1 for sizes, 0 for pad) */
} ArgSpec;

typedef struct Node Node;
typedef struct Check Check;

enum { MAX_ARGS = 8, MAX_PARAM_TENSORS = 4 };

typedef struct LayerInfo {
    OpKind op;
    const char *name;         /* as written in .cnn */
    const char *alias;        /* another accepted name (fc for dense), or NULL */
    bool variadic;            /* takes any number of tensors (concat) */
    ArgSpec args[MAX_ARGS];   /* the non-tensor arguments, positional order */
    /* The shape rule: sets n->shape from the inputs and n->a, or reports an
     * error through check_error() and returns false. */
    bool (*shape)(Check *c, Node *n);
    /* Fills n->params in canonical order (DSL.md). NULL: no parameters. */
    void (*params)(Node *n);
    /* Multiply-accumulates per sample. NULL: none counted. */
    int64_t (*macs)(const Node *n);
    const char *help;         /* one line, for `cnnc --help` */
} LayerInfo;

const LayerInfo *layer_find(const char *name);   /* by name or alias; NULL if none */
const LayerInfo *layer_info(OpKind op);
int layer_count(void);                           /* rows in the table */
const LayerInfo *layer_at(int i);
int layer_nargs(const LayerInfo *li);
const ArgSpec *layer_arg(const LayerInfo *li, const char *name);
/* Identifiers with a fixed meaning as argument values (same, true, ...). */
bool is_symbol(const char *name);
/* "conv 3x3/2 p1 64" — the layer and its arguments, short, for tables. */
const char *layer_describe(Arena *a, const Node *n);

/* ---- the graph IR -------------------------------------------------------- */

/* The chain of block calls a node was expanded from, innermost first; its
 * locations become "note: in block 'basic' called here" lines. */
typedef struct CallSite {
    const char *block;
    Loc loc;
    const struct CallSite *parent;
} CallSite;

/* A parameter tensor of a node, in canonical order. */
typedef struct ParamTensor {
    const char *name;     /* weight, bias, gamma, beta, running_mean, ... */
    int rank;
    int64_t dims[6];
    int64_t count;
    bool learnable;       /* false for BN running statistics */
    int64_t offset;       /* first float in the canonical parameter vector */
} ParamTensor;

/* A direct convolution's register tile (kernels_simd.c): the P form holds
 * MR output channels x NV vectors of positions, the C form (bpos) MP
 * positions x NV vectors of output channels, MR of them a block. */
typedef struct TileChoice {
    bool bpos;
    int mr, nv, mp;           /* mp 0 in the P form */
} TileChoice;

static inline bool same_tile(TileChoice x, TileChoice y) {
    return x.bpos == y.bpos && x.mr == y.mr && x.nv == y.nv && x.mp == y.mp;
}

struct Node {
    int id;                   /* index in Graph.nodes, a topological order */
    OpKind op;
    const LayerInfo *layer;   /* NULL for OP_INPUT */
    const char *name;         /* unique and readable: conv1, layer2.basic1.bn2 */
    Loc loc;                  /* the call or operator that made it */
    const CallSite *site;     /* NULL at network level */
    Vec inputs;               /* Node *, in argument order */
    Vec input_desc;           /* const char *, how the user named each input:
                                 "'x'", "the output of relu" */
    Attrs a;
    Shape shape;              /* per-sample output shape, set by shape.c */
    bool bad;                 /* its shape is unknown: an error here or before */
    int nparams;
    ParamTensor params[MAX_PARAM_TENSORS];
    int64_t param_count;      /* floats in params[] */
    int64_t macs;             /* per sample */
    int users;                /* nodes and outputs that read it */

    /* set by plan.c */
    bool is_output;           /* written to the caller's output buffer `io` */
    int io;                   /* which output, when is_output */
    struct Node *home;        /* the node whose storage its output shares:
                                 itself, or for views and in-place layers the
                                 home of its input, or for a slice of a
                                 concat (slice_of) the concat, or for a
                                 conv with a pool in it, the pool */
    int64_t home_at;          /* where its output starts in a sample of its
                                 home's, in floats: 0 but for slices */
    struct Buffer *buf;       /* the home's arena buffer; NULL when the home
                                 is a caller's input or output buffer */
    bool in_place;            /* overwrites its input's storage */
    bool view;                /* no code at all: the same bytes as its input */
    struct Buffer *scratch;   /* work space live only while it runs, or NULL */
    struct Buffer *state;     /* what its kernel keeps from one call to the
                                 next (plan_with_state), or NULL */

    /* set by the fusion passes (fuse*.c), for inference only */
    struct Node *fused_into;  /* its work is done by that node's kernel: it
                                 has no code of its own and its output is
                                 that kernel's output */
    int fused_arg;            /* which of its inputs carries the fused chain */
    const struct Node *bn;    /* conv, dense: batch norm folded into its weights */
    struct Epilogue *epi;     /* conv, dense: what its kernel does to each
                                 sum before storing it; NULL for nothing */

    /* set by fuse_concat.c, for inference: a convolution whose output is
     * only read by a concat writes it straight into its slice of the
     * concat's output, which then has nothing left to copy */
    struct Node *slice_of;    /* that concat, or NULL */
    int64_t slice_at;         /* where its slice starts in a sample of the
                                 concat's output, in floats */

    /* set by fuse_pool() (fuse_pool.c) before planning, for inference */
    struct Node *pool;        /* conv: the max pool its kernel applies (in
                                 registers, or to each chunk of its tiles'
                                 output: pool_bands.c); it then writes the
                                 pool's output, and the pool has no code */

    /* set by wino_choose() (winograd.c) before planning, for inference */
    int winograd;             /* conv: 0, or the side m of the output tiles
                                 Winograd's F(m x m, 3x3) computes it by
                                 (2 or 4; winograd.c) */
    bool rows_wino;           /* conv: 7-wide stride 2 by 1-D Winograd along
                                 rows (wino_rows.c); its packed blocks serve
                                 training's forward pass too */

    /* set by tune_apply() (tune.c) from a tune file, before planning */
    TileChoice tile;          /* conv: the tile measured fastest here; mr 0:
                                 the default model's */

    /* set by chain_samples() (chain.c) before planning, for inference */
    int chain;                /* 0, or the number of the run of
                                 convolutions NAME_forward takes one sample
                                 at a time that has it: one of them, or a
                                 node without code among or after them */
    bool lone_split;          /* with --openmp, outside chains: a lone
                                 sample's loops are shared among the
                                 threads (omp_split), so a kernel's
                                 per-channel scratch needs a part per
                                 channel, not one per sample */

    /* set by pack.c */
    int64_t packed;           /* first float of its weights in the packed vector */
    int pack_mr;              /* conv, dense: output channels interleaved in
                                 its packed weights (1: the canonical order) */

    /* set by plan_training() in plan.c, for --train */
    struct TrainNode *train;
};

/* Where training keeps what a node needs. Steps: the forward of node i is
 * step i, its backward step 2N-1-i (N nodes), so backward runs in reverse. */
typedef struct TrainNode {
    struct Buffer *act;       /* its output (a view shares its input's) */
    struct Buffer *aux;       /* bn: batch mean and 1/std per channel;
                                 dropout: the mask, 0 or 1/(1-p) */
    struct Buffer *grad;      /* d loss / d output; NULL for network inputs */
    struct Buffer *fscratch;  /* forward work space */
    struct Buffer *bscratch;  /* backward work space */
    int lanes;                /* groups of samples a convolution's backward
                                 runs in parallel, each with its own scratch
                                 and weight gradient (1: no OpenMP) */
} TrainNode;

typedef struct Graph {
    const char *name;         /* the network's name */
    const Def *def;
    Vec nodes;                /* Node *, in evaluation (= canonical) order */
    Vec inputs;               /* Node * (OP_INPUT), in declaration order */
    Vec outputs;              /* Node *, in `output` order */
    Vec output_names;         /* const char * */
    int64_t param_count;      /* the canonical vector: learnable + BN statistics */
    int64_t learnable_count;
    int64_t macs;
    int64_t activation_bytes; /* every node's output, batch 1, no reuse */
} Graph;

/* ---- names.c: name checks over every definition ------------------------- */
/* Duplicate definitions, unknown layers and arguments, names used before
 * they are bound, values never used, blocks that call themselves, misplaced
 * input/output/return. Reports through `d`; returns false on any error. */
bool check_names(Program *prog, Diags *d);

/* The definition of that kind with that name, or NULL. */
const Def *find_def(Program *prog, const char *name, DefKind kind);
/* The network to compile: `name`, or the last one in the file. */
const Def *select_network(Program *prog, const char *name, Diags *d);

/* ---- expand.c: AST → graph ---------------------------------------------- */
/* Expands blocks, repeats and groups of the network `net`; evaluates the
 * arguments. Returns NULL after reporting an error. */
Graph *expand_network(Program *prog, const Def *net, Arena *a, Diags *d);

/* ---- shape.c: the typed graph ------------------------------------------ */
struct Check {
    Arena *arena;
    Diags *diags;
    Graph *graph;
};

/* Infers every shape, checks every rule of DSL.md, lays out the parameter
 * vector and counts MACs. Returns false if any error was reported. */
bool check_shapes(Graph *g, Arena *a, Diags *d);
/* Reports an error at node n (with its block call sites as notes). */
void check_error(Check *c, const Node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void check_warning(Check *c, const Node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- fuse.c, fuse_bn.c, fuse_add.c, fuse_act.c, fuse_concat.c: fusion ------
 * A fused node keeps its place in the graph (training still sees every
 * layer) but its work moves into the kernel of the convolution or dense
 * layer that produces its input, which then writes the chain's result.
 * Two passes move storage rather than work: fuse_concat.c (a convolution
 * writes its slice of a concat) and fuse_pool.c (emit.h: a convolution
 * pools before it stores, and writes the pool's output). */
typedef enum EpiKind { EPI_ADD, EPI_RELU, EPI_RELU6, EPI_LEAKY } EpiKind;

enum { MAX_EPI = 4 };

typedef struct Epilogue {
    int n;
    struct EpiStep {
        EpiKind kind;
        const Node *node;       /* the fused layer */
        const Node *operand;    /* EPI_ADD: the other summand */
        double alpha;           /* EPI_LEAKY */
    } step[MAX_EPI];
} Epilogue;

/* Which passes run. All on is the default; --no-fuse turns them all off
 * and --no-fuse=bn,add,act,concat,pool,chain any of them (pool:
 * fuse_pool() and chain: chain_samples(), in emit.h, which need the
 * target). */
typedef struct FuseOptions {
    bool no_bn, no_add, no_act, no_concat, no_pool, no_chain;
} FuseOptions;

/* Clears what an earlier run left, then runs the enabled passes in order:
 * batch norm into weights, residual adds, activations, concat slices. */
void fuse_graph(Graph *g, const FuseOptions *f, Arena *a);
/* The node whose kernel computes n's output: n, or where it was fused. */
Node *fusion_root(const Node *n);
/* May x's work move into the kernel that produces its input k? */
bool can_fuse_into_producer(const Node *x, int k);
void fuse_append(Node *root, Node *x, int k, struct EpiStep step, Arena *a);
void fuse_bn(Graph *g, Arena *a);
void fuse_add(Graph *g, Arena *a);
void fuse_act(Graph *g, Arena *a);
void fuse_concat(Graph *g);
/* Is input `in` of a concat written straight into the concat's output? */
bool is_slice_of(const Node *in, const Node *concat);
/* How many of the concat's inputs are written straight into its output? */
int concat_slices(const Node *concat);
/* Is max pool p computed by the convolution before it (fuse_pool.c)? */
bool pooled_in_conv(const Node *p);

/* ---- plan.c: one arena for every intermediate tensor ---------------------
 * A buffer holds one tensor (or several that share bytes: views and
 * in-place layers) for all NAME_BATCH samples, batch-major. Steps are node
 * ids: a buffer is live from the step that writes it to the last step that
 * reads it, and two buffers live at the same step never overlap. */
typedef struct Buffer {
    int id;
    int64_t bytes;            /* rounded up to ARENA_ALIGN */
    int first, last;          /* live steps, inclusive */
    int64_t offset;           /* in the arena, a multiple of ARENA_ALIGN */
    const Node *owner;        /* the node that first writes it */
    int64_t sample_bytes;     /* what one sample of it takes */
    bool one_sample;          /* only a chain (chain.c) writes and reads it,
                                 one sample at a time: it holds one sample
                                 in each slot of the chain's workspace */
    struct Buffer *ws;        /* that workspace (offset: in its first slot) */
    int slots;                /* a workspace: samples it holds at once, each
                                 in a slot of slot_bytes */
    int64_t slot_bytes;
} Buffer;

enum { ARENA_ALIGN = 64 };

typedef struct Plan {
    int batch;                /* samples the arena is sized for */
    int slots;                /* samples a chain holds at once (plan_chains) */
    Vec buffers;              /* Buffer * */
    int64_t arena_bytes;      /* the arena after reuse */
    int64_t no_reuse_bytes;   /* every buffer at its own offset */
    int64_t lower_bound;      /* the most bytes live at any one step */
} Plan;

/* How much scratch a node's kernel needs per run, in floats (emit_c.c). */
typedef int64_t (*ScratchFn)(const Node *n, int batch);

/* Decides views and in-place layers, then places every buffer. Returns
 * NULL after reporting an error (an arena over 2^40 bytes). */
Plan *plan_memory(Graph *g, int batch, ScratchFn scratch, Arena *a, Diags *d);
/* The same, and `state` floats for each node (NULL: none) that stay put
 * from one call of NAME_forward to the next: a kernel's memory of its last
 * run, which may steer how it runs but never what it computes. Each chain
 * (chain.c) holds `slots` samples at once: 1, or the batch when threads
 * take its samples. */
Plan *plan_with_state(Graph *g, int batch, ScratchFn scratch, ScratchFn state, int slots,
                      Arena *a, Diags *d);
/* The training plan: activations kept until the backward steps that read
 * them, gradients from their first writer to their reader, scratch for
 * both directions. Sets every node's `train`, with `lanes` (1 or more)
 * before the scratch functions are asked. */
Plan *plan_training(Graph *g, int batch, int lanes, ScratchFn fscratch, ScratchFn bscratch,
                    Arena *a, Diags *d);
/* Does the backward of n read its input k, or its own output? */
bool backward_reads_input(const Node *n);
bool backward_reads_output(const Node *n);
/* Checks that no two buffers live at the same step overlap and that each is
 * aligned and inside the arena; returns a description of the first
 * violation, or NULL. */
const char *plan_verify(const Graph *g, const Plan *p, Arena *a);

/* ---- pack.c: canonical parameters → the layout the kernels read ---------
 * Packing is a short list of operations. The compiler runs them itself for
 * --embed and the emitter writes them out as NAME_pack(), so the two can
 * never disagree about the layout. */
typedef enum PackKind {
    PACK_COPY,      /* packed[dst .. dst+count) = params[src .. src+count)       */
    PACK_BN,        /* gamma, beta, mean, var at src (count channels each) →
                       scale, shift at dst: y = x * scale + shift              */
    PACK_CONV,      /* a convolution's or dense layer's weights [K][per] (and
                       bias) at src, with the batch norm at bn_src folded in
                       when there is one, to [group][K/groups in blocks of mr]
                       [per][mr] (zeros past the last channel), then a bias
                       for every padded channel                               */
    PACK_WINO,      /* a 3x3 convolution's weights [K][C][3][3] (and bias),
                       batch norm folded in as for PACK_CONV, transformed for
                       Winograd's F(m x m,3x3) to [(m+2)^2][K in blocks of mr]
                       [C][mr], then K biases                                 */
} PackKind;

typedef struct PackOp {
    PackKind kind;
    const Node *node;
    int64_t src, dst, count;
    double eps;
    /* PACK_CONV */
    int64_t k, per, groups, bn_src;   /* bn_src < 0: none */
    int mr;
    int m;                    /* PACK_WINO: the output tile's side, 2 or 4 */
    bool bias;
} PackOp;

typedef struct Packing {
    Vec ops;                  /* PackOp * */
    int64_t count;            /* floats in the packed vector */
} Packing;

/* Output channels interleaved in the packed weights of n for the target;
 * 0 keeps the canonical order (and no bias region when there is no bias). */
typedef int (*PackMrFn)(const Node *n);

Packing *pack_plan(Graph *g, PackMrFn mr_of, Arena *a);
/* Floats of a PACK_CONV result: blocked weights and the padded bias. */
int64_t pack_conv_floats(int64_t k, int64_t per, int64_t groups, int mr);
/* Floats of a PACK_WINO result: (m + 2)^2 transformed blocks and the bias. */
int64_t pack_wino_floats(int64_t k, int64_t c, int mr, int m);
void pack_apply(const Packing *pk, const float *params, float *packed);

/* ---- emit_c.c, kernels_scalar.c: the C emitter ------------------------- */
typedef enum Target {
    TARGET_SCALAR,            /* portable C99 (kernels_scalar.c) */
    TARGET_AVX2,              /* x86-64 AVX2 + FMA intrinsics (kernels_simd.c) */
    TARGET_AVX512,            /* the same kernels on AVX-512F's 16-float vectors */
} Target;

typedef struct BuildOptions {
    int batch;                /* NAME_BATCH: the most samples per call */
    Target target;
    bool embed;               /* packed weights as a const array */
    bool train;               /* also the training entry points */
    bool openmp;              /* OpenMP pragmas in the kernels */
    bool no_winograd;         /* direct kernels for every convolution */
    FuseOptions fuse;
    const float *weights;     /* the canonical vector, for embed */
    const char *source_name;  /* the .cnn file as given on the command line */
    const char *command;      /* the command line, for the file's front matter */
    const struct TuneFile *tune;   /* --tune: tiles measured by cnnc tune */
    bool profile;             /* cnnc tune's builds: NAME_forward calls
                                 cnn_tick(node id) after each kernel */
} BuildOptions;

/* The generated pair, as text in the arena. */
typedef struct Generated {
    const char *c_text, *h_text;
    Plan *plan;
    Packing *packing;
} Generated;

/* Plans memory and writes NAME.c and NAME.h as text. NULL after an error. */
Generated *emit_c(Graph *g, const BuildOptions *opt, Arena *a, Diags *d);

/* Scratch floats each kernel needs (the planner asks before emitting). */
int64_t scalar_scratch(const Node *n, int batch);
/* The blocks of output channels NAME_pack gives the scalar target's
 * convolution kernels (0: the canonical order). */
int scalar_pack_mr(const Node *n);

typedef struct Emit Emit;
/* Writes the kernel function for node n (kernels_scalar.c). */
void emit_scalar_kernel(Emit *e, const Node *n);

/* ---- front.c: the front end as one call -------------------------------- */
typedef struct Compilation {
    Arena arena;
    Diags diags;
    const char *filename;
    char *src;
    size_t src_len;
    Program *program;
    Graph *graph;            /* NULL until compile_front succeeds */
    Plan *plan;              /* the memory plan at batch 1 */
} Compilation;

/* Reads `path` into c (or takes `src` when it is not NULL) and runs parse,
 * name check, expansion, shape check and the memory plan at batch 1 for
 * network `network` (NULL: the last). Diagnostics go to `out`. Returns true when the graph is typed.
 * comp_free() releases everything, on success or not. */
bool compile_front(Compilation *c, const char *path, const char *src,
                   size_t len, const char *network, FILE *out);
void comp_free(Compilation *c);

/* ---- build.c: commands that write and run generated code ---------------- */
enum { MAX_IO_FILES = 64 };

/* What main.c parsed from the command line. */
typedef struct CliOptions {
    const char *command, *file, *network;
    const char *out_dir;            /* build -o */
    int batch;                      /* --batch, default 1 */
    bool batch_given;
    const char *weights;            /* --weights */
    bool embed;
    const char *inputs[MAX_IO_FILES], *outputs[MAX_IO_FILES];
    int ninputs, noutputs;
    const char *douts[MAX_IO_FILES];  /* grad --dout */
    int ndouts;
    bool train;                       /* build --train */
    const char *target;               /* --target: auto, scalar, avx2, avx512 */
    bool openmp;                      /* --openmp */
    FuseOptions fuse;                 /* --no-fuse[=bn,add,act] */
    bool no_winograd;                 /* --no-winograd */
    bool precision_double;            /* grad --double */
    const char *tune_file;            /* --tune */
    const char *train_args[64];       /* train: options for the trainer */
    int ntrain_args;
    const char *command_line;       /* for the generated file's front matter */
} CliOptions;

int cmd_build(Compilation *c, const CliOptions *o);   /* exit status */
/* --target resolved: auto is avx512 when this CPU has AVX-512F (and AVX2
 * and FMA), else avx2 when it has AVX2 and FMA, else scalar. */
Target resolve_target(const char *name);
/* Can this CPU run code for target t? The second prints why not, for
 * `cnnc COMMAND`, which runs what it builds here. */
bool target_runs_here(Target t);
bool check_target_runs_here(Target t, const char *command);
int cmd_run(Compilation *c, const CliOptions *o);
int cmd_grad(Compilation *c, const CliOptions *o);
/* Writes each text to a temporary name, then renames them all; false after
 * a message. */
bool write_files_atomically(int n, const char *const *paths, const char *const *texts,
                            Arena *a);
/* $CC split at spaces (so "ccache gcc" works), then the NULL-ended flags. */
char **compiler_argv(const char *cc, const char *const *rest, Arena *a);

/* A host program built in the cache (build.c): source files written side by
 * side, the .c ones compiled together; the binary is reused while the
 * hash of every text, the compiler and the flags is the same. */
typedef struct HostProgram {
    int nfiles;
    const char *names[64], *texts[64];
    const char *flags[8];       /* NULL-terminated; default -O2 -std=c99 */
    const char *link[8];        /* NULL-terminated, after the sources */
} HostProgram;

void add_file(HostProgram *p, const char *name, const char *text);
/* The runtime's headers, and its sources when `sources`. */
void add_runtime(HostProgram *p, bool sources);
const char *build_cached(Compilation *c, const HostProgram *prog);
int run_process(char **argv);   /* exit status, or -1 */

/* ---- tune.c: cnnc tune and the tune file --------------------------------
 * `cnnc tune` times every register tile a direct convolution may take, on
 * this machine, layer by layer, and writes the fastest to a tune file: one
 * line per convolution geometry and target. `build --tune FILE` gives each
 * convolution with a line its tile; the rest keep the default model's. */
typedef struct TuneEntry {
    Target target;
    int64_t geo[16];          /* tune_geometry(): the sizes that pick a tile */
    TileChoice tile;
} TuneEntry;

typedef struct TuneFile {
    const char *path;
    Vec entries;              /* TuneEntry *, in the file's order */
} TuneFile;

/* Reads a tune file; NULL after a message naming the file and line. */
TuneFile *tune_read(const char *path, Arena *a);
/* Gives every direct convolution of g on target t the tile of its line. */
void tune_apply(Graph *g, const TuneFile *f, Target t);
int cmd_tune(Compilation *c, const CliOptions *o);
const char *target_name(Target t);                          /* "avx512" */
const char *tile_str(TileChoice t, Target target, Arena *a);  /* "P MR=6 x NR=64" */
/* A fresh $TMPDIR/cnnc-COMMAND-XXXXXX for time_kernels' files (NULL after
 * a message), and its removal with them. */
const char *timing_dir(const char *command, Arena *a);
void timing_dir_remove(const char *dir, const Graph *g, Arena *a);
/* Builds the network as b says with a timer after each kernel, compiles
 * it with $CC -O2 in dir and runs it at batch 1; seconds[node id]: that
 * kernel's fastest call (negative: the node has no kernel). */
bool time_kernels(const Compilation *c, const char *network, const BuildOptions *b,
                  const char *dir, double *seconds, Arena *a);

/* ---- profile.c: cnnc profile, each kernel's time in one inference ------ */
int cmd_profile(Compilation *c, const CliOptions *o);

/* ---- train.c: cnnc train ---------------------------------------------------- */
int cmd_train(Compilation *c, const CliOptions *o);

/* The runtime's sources, carried inside cnnc (built by compiler/tools/embed.c
 * into build/runtime_files.c), ending with {NULL, NULL}. */
typedef struct EmbeddedFile {
    const char *name, *text;
} EmbeddedFile;
extern const EmbeddedFile runtime_files[];

/* ---- summary.c, dot.c, json.c: views of a typed graph ------------------- */
void print_summary(FILE *f, const Graph *g, const Plan *plan, Arena *a);
void print_dot(FILE *f, const Graph *g, Arena *a);
void print_graph_json(FILE *f, const Graph *g, const char *filename);

#endif
