/* pool_bands.c — a max pool after a convolution whose kernel cannot take it
 * in its registers (the direct kernels of kernels_simd.c, the row Winograd
 * of wino_rows.c, and Winograd's with a pool other than 2x2/2 or a
 * residual sum), taken a chunk of the convolution at a time.
 *
 * The first two kernels are one flat loop of tile trips. Cut into chunks
 * whose output fills about a quarter of L2, the loop leaves, after each
 * chunk, either some more whole rows of every channel (position tiles
 * outermost) or every row of some more channels (channel blocks
 * outermost). The convolution writes its output, one sample, into scratch
 * as before, and after each chunk the pool takes the rows whose windows
 * that chunk completed, while they are still in cache: the convolution's
 * output never goes to the arena and is read back from L2, not memory.
 * Winograd's kernel already runs in bands of tile rows sized for L2
 * (winograd.c), so each band is a chunk, and the kernel writes the table,
 * each chunk's start and its pool into its own loop (bands_table and the
 * two after it); a lone sample's bands run inside one OpenMP region, whose
 * threads share the moves and the pool's channels. ResNet's and
 * GoogLeNet's first layers (64x112x112, 3.2 MB) and AlexNet's three pools
 * are the cases in the examples.
 *
 * Which rows each chunk completes is known here, so the kernel carries it
 * as a table: span[ch] = {first channel, end channel, first pooled row, end
 * pooled row, the buffer's first channel and row, and the move before the
 * chunk: from where and how many floats} (Chunk, below). The pool itself
 * is the vector pool kernel's loop, written as a function named for the
 * pool (kernels_simd.c, simd_emit_band_pool), one channel a call. The
 * results are the same bits as the two layers apart: the convolution
 * computes each output exactly as before, and the pool reads the same
 * values in the same order. */
#define _POSIX_C_SOURCE 200809L   /* open_memstream */
#include <stdlib.h>

#include "emit.h"

static long long ll(int64_t v) { return (long long)v; }

bool pool_in_bands(Target t, const Node *conv) {
    return conv->op == OP_CONV && conv->pool && !dw_suits(t, conv) &&
           !(conv->winograd && pool_in_registers(t, conv, conv->pool));
}

bool bands_here(const Emit *e, const Node *conv) {
    return !e->plain && simd_target(e->opt->target) && pool_in_bands(e->opt->target, conv);
}

/* Trips a chunk: whole units (blocks of channels, or runs of positions)
 * whose output comes to about a quarter of L2, at least one unit. */
static int64_t chunk_trips(const TripOrder *o, const Node *conv) {
    if (o->chunk_a_trip)
        return 1;
    int64_t k = conv->shape.d[0], h = conv->shape.d[1], w = conv->shape.d[2];
    int64_t budget = L2_BYTES / 4 / 4;   /* floats */
    int64_t units;
    if (o->by_channels) {
        units = budget / (o->mr * h * w);
        units = units < 1 ? 1 : units;
        return units * o->per_block < o->trips ? units * o->per_block : o->trips;
    }
    int64_t rows = budget / (k * w);
    rows = rows < 1 ? 1 : rows;
    units = rows * o->pitch / o->unit_pos;
    units = units < 1 ? 1 : units;
    return units * o->unit < o->trips ? units * o->unit : o->trips;
}

/* Pool rows whose windows lie in the first `rows` rows of the
 * convolution's output (all of them once every row is done). */
static int64_t pooled_upto(const Node *pool, int64_t rows, int64_t h) {
    int64_t ho = pool->shape.d[1];
    if (rows >= h)
        return ho;
    int64_t last = rows + pool->a.pad_lo[0] - pool->a.kernel[0];   /* oh * sh <= last */
    if (last < 0)
        return 0;
    int64_t r = last / pool->a.stride[0] + 1;
    return r < ho ? r : ho;
}

/* Rows of every channel done after the first `trips` trips, positions
 * outermost: those the finished units' positions cover whole. */
static int64_t rows_done(const TripOrder *o, int64_t trips, int64_t h) {
    if (trips >= o->trips)
        return h;
    int64_t rows = trips / o->unit * o->unit_pos / o->pitch;
    return rows < h ? rows : h;
}

/* What chunk ch does. It computes trips it0..it1-1, which write rows
 * w0..w1 of output channels c0..c1-1; then the pool takes its rows
 * r0..r1-1 of those channels. The convolution's output lives in a buffer
 * of `rows` rows a channel (BandPlan): channel c, from row row0 on, at
 * (c - cb) * rows * WO. Before the chunk starts, mv_len floats of each
 * channel move down from mv_from: the rows the last chunk left that this
 * one's pool or its first trips still need. */
typedef struct Chunk {
    int64_t it0, it1, c0, c1, r0, r1, w0, w1, cb, row0, mv_from, mv_len;
} Chunk;

typedef struct BandPlan {
    TripOrder o;
    int64_t chunk, chunks;  /* trips a chunk, chunks */
    bool slide;             /* the buffer holds a chunk's rows or channels */
    int64_t rows, chans;    /* the buffer: rows a channel, channels */
} BandPlan;

static Chunk chunk_rows(const BandPlan *b, const Node *conv, int64_t ch) {
    const TripOrder *o = &b->o;
    const Node *pool = conv->pool;
    int64_t h = conv->shape.d[1];
    Chunk c = {.it0 = ch * b->chunk};
    c.it1 = c.it0 + b->chunk < o->trips ? c.it0 + b->chunk : o->trips;
    if (o->by_channels) {
        /* blocks gb0 .. gb1-1; a group's last block may be short */
        int64_t gb0 = c.it0 / o->per_block, gb1 = (c.it1 + o->per_block - 1) / o->per_block;
        int64_t g0 = gb0 / o->blocks, g1 = (gb1 - 1) / o->blocks;
        int64_t ob0 = gb0 - g0 * o->blocks, ob1 = gb1 - 1 - g1 * o->blocks;
        int64_t end = (ob1 + 1) * o->mr < o->kg ? (ob1 + 1) * o->mr : o->kg;
        c.c0 = g0 * o->kg + ob0 * o->mr;
        c.c1 = g1 * o->kg + end;
        c.r1 = pool->shape.d[1];
        c.w1 = h - 1;
        return c;
    }
    c.c1 = conv->shape.d[0];
    c.r0 = c.it0 ? pooled_upto(pool, rows_done(o, c.it0, h), h) : 0;
    c.r1 = pooled_upto(pool, rows_done(o, c.it1, h), h);
    int64_t first = c.it0 / o->unit * o->unit_pos;
    if (c.it1 == o->trips && o->last_start < first)
        first = o->last_start;   /* the last tile, shifted back */
    c.w0 = first / o->pitch;
    c.w1 = c.it1 == o->trips ? h - 1 : (c.it1 / o->unit * o->unit_pos - 1) / o->pitch;
    c.w1 = c.w1 < h ? c.w1 : h - 1;
    return c;
}

/* The row a chunk's buffer starts at: the first its trips write or its
 * pool reads, whichever comes first. */
static int64_t chunk_row0(const BandPlan *b, const Node *conv, const Chunk *c) {
    if (!b->slide || b->o.by_channels)
        return 0;
    int64_t need = c->r0 * conv->pool->a.stride[0] - conv->pool->a.pad_lo[0];
    need = need < 0 ? 0 : need;
    return need < c->w0 ? need : c->w0;
}

static Chunk chunk_at(const BandPlan *b, const Node *conv, int64_t ch) {
    Chunk c = chunk_rows(b, conv, ch);
    int64_t w = conv->shape.d[2];
    c.row0 = chunk_row0(b, conv, &c);
    c.cb = b->slide && b->o.by_channels ? c.c0 : 0;
    if (b->slide && !b->o.by_channels && ch > 0) {
        Chunk prev = chunk_rows(b, conv, ch - 1);
        prev.row0 = chunk_row0(b, conv, &prev);
        c.mv_from = (c.row0 - prev.row0) * w;
        c.mv_len = (prev.w1 - c.row0 + 1) * w;
        if (c.mv_from == 0 || c.mv_len < 0)
            c.mv_len = 0;
    }
    return c;
}

/* A residual sum in the epilogue reads its operand at the index the
 * convolution stores to, in the whole plane: such a convolution keeps its
 * whole output (one sample) in scratch. */
static bool reads_operand(const Node *conv) {
    for (int i = 0; conv->epi && i < conv->epi->n; i++)
        if (conv->epi->step[i].kind == EPI_ADD)
            return true;
    return false;
}

static BandPlan bands_plan(Target t, const Node *conv) {
    BandPlan b = {.o = trip_order(t, conv)};
    b.chunk = chunk_trips(&b.o, conv);
    b.chunks = (b.o.trips + b.chunk - 1) / b.chunk;
    b.slide = !reads_operand(conv);
    b.rows = conv->shape.d[1];
    b.chans = conv->shape.d[0];
    if (!b.slide)
        return b;
    if (b.o.by_channels)
        b.chans = 0;
    else
        b.rows = 0;
    for (int64_t ch = 0; ch < b.chunks; ch++) {
        Chunk c = chunk_at(&b, conv, ch);
        if (b.o.by_channels && c.c1 - c.c0 > b.chans)
            b.chans = c.c1 - c.c0;
        if (!b.o.by_channels && c.w1 - c.row0 + 1 > b.rows)
            b.rows = c.w1 - c.row0 + 1;
    }
    return b;
}

static bool pool_pads(const Node *pool) {
    const Attrs *a = &pool->a;
    return a->pad_lo[0] || a->pad_lo[1] || a->pad_hi[0] || a->pad_hi[1];
}

/* Floats of one padded-rows buffer, a channel's: the most rows one call
 * of the pool reads. */
static int64_t pad_floats(const BandPlan *b, const Node *conv) {
    const Node *pool = conv->pool;
    if (!pool_pads(pool))
        return 0;
    int64_t most = 0;
    for (int64_t ch = 0; ch < b->chunks; ch++) {
        Chunk c = chunk_at(b, conv, ch);
        int64_t rows = c.r1 > c.r0 ? (c.r1 - c.r0 - 1) * pool->a.stride[0] + pool->a.kernel[0] : 0;
        most = rows > most ? rows : most;
    }
    return most * (conv->shape.d[2] + pool->a.pad_lo[1] + pool->a.pad_hi[1]);
}

int64_t bands_scratch(Target t, const Node *conv) {
    BandPlan b = bands_plan(t, conv);
    /* a lone sample's channels go to the threads, each with its own rows */
    int64_t buffers = conv->lone_split ? conv->shape.d[0] : 1;
    return b.chans * b.rows * conv->shape.d[2] + buffers * pad_floats(&b, conv);
}

int64_t bands_plane(Target t, const Node *conv) {
    return bands_plan(t, conv).rows * conv->shape.d[2];
}

void bands_pointers(Emit *e, const Node *conv, const char *base) {
    BandPlan b = bands_plan(e->opt->target, conv);
    if (!b.slide)
        P(e, "        float *yb = %s; /* %s's output, one sample, pooled chunk by chunk into "
             "pb */\n", base, conv->name);
    else if (b.o.by_channels)
        P(e, "        float *yb = %s; /* %s's output, %lld channels at a time, pooled chunk "
             "by chunk into pb */\n", base, conv->name, ll(b.chans));
    else
        P(e, "        float *yb = %s; /* %s's output, %lld rows of each channel at a time, "
             "pooled chunk by chunk into pb */\n", base, conv->name, ll(b.rows));
    if (pad_floats(&b, conv))
        P(e, "        float *pl = yb + %lld; /* the rows the pool reads, padded */\n",
          ll(b.chans * b.rows * conv->shape.d[2]));
    else
        P(e, "        float *pl = NULL; /* the pool reads the rows in place */\n");
}

/* The kernel's tile loop goes to a buffer until bands_close, which writes
 * it inside the loop over chunks, one level deeper. */
void bands_open(Emit *e, const Node *conv) {
    (void)conv;
    e->bands_o = e->o;
    e->o = open_memstream(&e->bands_text, &e->bands_len);
    if (!e->o) {
        fprintf(stderr, "cnnc: out of memory\n");
        exit(2);
    }
}

/* The table of chunks, span[ch][8] (Chunk). */
static void emit_span(Emit *e, const Node *conv, const BandPlan *b, const char *in) {
    bool moves = b->slide && !b->o.by_channels;
    P(e, "%s/* chunk ch: channels span[ch][0].., pool rows span[ch][2]..; its output from "
         "channel span[ch][4] and row span[ch][5] on at yb%s */\n", in, moves
          ? ", after span[ch][7] floats of each channel move down from span[ch][6]" : "");
    P(e, "%sstatic const int span[%lld][8] = {", in, ll(b->chunks));
    for (int64_t ch = 0; ch < b->chunks; ch++) {
        Chunk c = chunk_at(b, conv, ch);
        P(e, "%s{%lld, %lld, %lld, %lld, %lld, %lld, %lld, %lld}",
          ch ? arena_printf(e->a, ",\n%s    ", in) : "", ll(c.c0), ll(c.c1), ll(c.r0),
          ll(c.r1), ll(c.cb), ll(c.row0), ll(c.mv_from), ll(c.mv_len));
    }
    P(e, "};\n");
}

/* Chunk ch's start: `sub`, where the stores' index starts, and the move of
 * the rows the last chunk left that this one still needs. In an OpenMP
 * region (`region`) the threads share the move's channels. */
static void emit_chunk_start(Emit *e, const Node *conv, const BandPlan *b, const char *in,
                             bool region) {
    int64_t w = conv->shape.d[2], plane = b->rows * w;
    P(e, "%sconst int sub = span[ch][4] * %lld + span[ch][5] * %lld;\n", in, ll(plane), ll(w));
    if (!b->slide || b->o.by_channels)
        return;
    if (region && e->split)
        P(e, "%s#pragma omp for schedule(static)\n", in);
    P(e, "%sfor (int c = 0; c < %lld; c++)\n", in, ll(b->chans));
    P(e, "%s    for (int i = 0; i < span[ch][7]; i++)\n", in);
    P(e, "%s        yb[c * %lld + i] = yb[c * %lld + span[ch][6] + i];\n", in, ll(plane),
      ll(plane));
}

/* Chunk ch's end: the pool takes the rows the chunk finished, channel by
 * channel. A lone sample's channels go to the threads, each padding its
 * rows in a buffer of its own; a member of a chain (chain.c) has one
 * buffer a sample, so its pool stays on one thread even where its tiles
 * do not. */
static void emit_chunk_pool(Emit *e, const Node *conv, const BandPlan *b, const char *in,
                            bool region) {
    int64_t pad = pad_floats(b, conv);
    if (e->split && conv->lone_split)
        P(e, "%s#pragma omp %sfor schedule(static)\n", in, region ? "" : "parallel ");
    else if (e->split && region)
        P(e, "%s#pragma omp single\n", in);
    P(e, "%sfor (int c = span[ch][0]; c < span[ch][1]; c++)\n", in);
    P(e, "%s    %s(yb + (c - span[ch][4]) * %lld, span[ch][5], pb, pl%s, c, "
         "span[ch][2], span[ch][3]);\n", in, e->fn[conv->pool->id], ll(b->rows * conv->shape.d[2]),
      pad && conv->lone_split
          ? arena_printf(e->a, " + (batch == 1 ? (ptrdiff_t)c * %lld : 0)", ll(pad)) : "");
}

void bands_close(Emit *e, const Node *conv) {
    fclose(e->o);
    e->o = e->bands_o;
    BandPlan b = bands_plan(e->opt->target, conv);
    P(e, "        /* chunks of %lld trips */\n", ll(b.chunk));
    emit_span(e, conv, &b, "        ");
    P(e, "        for (int ch = 0; ch < %lld; ch++) {\n", ll(b.chunks));
    P(e, "            const int it0 = ch * %lld, it1 = it0 + %lld < %lld ? it0 + %lld : %lld;\n",
      ll(b.chunk), ll(b.chunk), ll(b.o.trips), ll(b.chunk), ll(b.o.trips));
    emit_chunk_start(e, conv, &b, "            ", false);
    emit_indented(e->o, e->bands_text, "    ", false);
    free(e->bands_text);
    e->bands_text = NULL;
    emit_chunk_pool(e, conv, &b, "            ", false);
    P(e, "        }\n");
}

/* A kernel whose own loop is the chunks (winograd.c: one band of tile rows
 * a chunk, inside an OpenMP region when the threads share a sample). */
void bands_table(Emit *e, const Node *conv, const char *in) {
    BandPlan b = bands_plan(e->opt->target, conv);
    emit_span(e, conv, &b, in);
}

void bands_chunk_start(Emit *e, const Node *conv, const char *in) {
    BandPlan b = bands_plan(e->opt->target, conv);
    emit_chunk_start(e, conv, &b, in, true);
}

void bands_chunk_pool(Emit *e, const Node *conv, const char *in) {
    BandPlan b = bands_plan(e->opt->target, conv);
    emit_chunk_pool(e, conv, &b, in, true);
}
