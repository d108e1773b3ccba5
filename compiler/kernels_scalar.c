/* kernels_scalar.c — the portable kernels: plain C99 loops, one function per
 * layer, every size a constant. This is the reference every faster target
 * is tested against, and the fallback for CPUs without an emitter of their
 * own; its loops are written so compilers can vectorise them (constant trip
 * counts, unit-stride inner loops, restrict pointers).
 *
 * Every kernel takes the tensors it reads (x0, x1, ...), the tensor it
 * writes (y), its packed weights (w) and scratch (s) when it has them, and
 * the batch. Samples are batch-major: sample b of a tensor of E floats per
 * sample starts at b * E.
 */
#define _POSIX_C_SOURCE 200809L   /* open_memstream */
#include "emit.h"

#include <stdlib.h>
#include <string.h>

static long long ll(int64_t v) { return (long long)v; }

/* A C float literal that reads back as exactly (float)v: "0.01f", "1.0f". */
const char *float_lit(Arena *a, double v) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.9g", (double)(float)v);
    bool has_point = strpbrk(buf, ".e") != NULL;
    return arena_printf(a, "%s%sf", buf, has_point ? "" : ".0");
}

/* A convolution's tiles (emit_conv_loops): SCALAR_PT positions by up to
 * SCALAR_KB output channels. */
enum { SCALAR_PT = 16, SCALAR_KB = 4 };

/* Output channels a tile takes: 4, or fewer that divide the channels of a
 * group, so a block reads one group's input. */
static int tile_channels(int64_t kg) {
    return kg % SCALAR_KB == 0 ? SCALAR_KB : kg % 3 == 0 ? 3 : kg % 2 == 0 ? 2 : 1;
}

/* A strided convolution's (padded) input split by stride phase: sh x sw
 * planes of every channel, plane (a, b) holding rows a, a + sh, ... and
 * columns b, b + sw, ... (emit_conv). */
typedef struct Phases {
    int64_t sh, sw, hin, win;   /* strides; the (padded) input plane */
    int64_t hph, wph;           /* a phase plane */
} Phases;

static Phases phases_of(const Node *n) {
    const Attrs *a = &n->a;
    Shape s = in_shape_of(n, 0);
    /* along a dimension with one output the stride reads nothing: taken as
     * 1, a stride larger than the input splits it into no planes of
     * (stride - 1) rows of zeros (stride 10000 on 224x224: 1.2 GB) */
    Phases p = {.sh = n->shape.d[1] == 1 ? 1 : a->stride[0],
                .sw = n->shape.d[2] == 1 ? 1 : a->stride[1],
                .hin = s.d[1] + a->pad_lo[0] + a->pad_hi[0],
                .win = s.d[2] + a->pad_lo[1] + a->pad_hi[1]};
    p.hph = (p.hin + p.sh - 1) / p.sh;
    p.wph = (p.win + p.sw - 1) / p.sw;
    return p;
}

static int64_t phase_floats(const Node *n) {
    Phases p = phases_of(n);
    if (p.sh == 1 && p.sw == 1)
        return 0;
    return in_shape_of(n, 0).d[0] * p.sh * p.sw * p.hph * p.wph;
}

/* The run emit_conv_loops_long sums in scratch: a depthwise layer's (one
 * output channel a group) output rows at the input's pitch; else none. */
static int64_t long_run_floats(const Node *n) {
    if (tile_channels(n->a.units / n->a.groups) != 1)
        return 0;
    Phases p = phases_of(n);
    int64_t win = p.sh == 1 && p.sw == 1 ? p.win : p.wph;
    return (n->shape.d[1] - 1) * win + n->shape.d[2];
}

/* Scratch floats a kernel needs: a padded copy of one input sample for
 * convolutions and locally connected layers with padding, then a strided
 * convolution's phase planes. */
int64_t scalar_scratch(const Node *n, int batch) {
    (void)batch;
    if (n->op != OP_CONV && n->op != OP_LOCAL)
        return 0;
    const Attrs *a = &n->a;
    Shape s = in_shape_of(n, 0);
    int64_t wp = s.d[2] + a->pad_lo[1] + a->pad_hi[1];
    int64_t padded = s.d[0] * (s.d[1] + a->pad_lo[0] + a->pad_hi[0]) * wp;
    bool pads = a->pad_lo[0] || a->pad_lo[1] || a->pad_hi[0] || a->pad_hi[1];
    return (pads ? padded : 0) + (n->op == OP_CONV ? phase_floats(n) + long_run_floats(n) : 0);
}

/* An element read or written counts as four multiply-adds: a pool or an
 * elementwise layer moves data at a few floats a nanosecond, a convolution
 * does tens of multiply-adds (LeNet-5's second max pool at batch 64: 39 us
 * for 128K elements, its second convolution 0.6 ms for 15M multiply-adds). */
int64_t omp_work(const Node *n) {
    int64_t elems = 4 * (out_elems(n) + (n->inputs.len ? in_elems(n, 0) : 0));
    return n->macs > elems ? n->macs : elems;
}

bool omp_split(const Emit *e, const Node *n) {
    return e->opt->openmp && omp_work(n) >= OMP_SPLIT_WORK;
}

void omp_batch_for(Emit *e, const Node *n, const char *indent) {
    if (e->opt->openmp)
        P(e, "%s#pragma omp parallel for if(batch * %lldLL >= %d) schedule(static)\n", indent,
          ll(omp_work(n)), OMP_SPLIT_WORK);
}

/* "for (int b = 0; b < batch; b++) {" with per-sample pointers. With
 * --openmp, samples are shared out among the threads when there are several
 * and the kernel's scratch, if any, has a part per sample; a kernel's own
 * parallel loops (omp_split) then share a lone sample. The body goes to a
 * buffer until close_batch, which writes it out twice when it has parallel
 * loops of its own. The kernels training's forward pass calls (plain) have
 * the training plan's scratch. */
bool written_in_place(const Emit *e, const Node *n, int k) {
    return n->op == OP_CONCAT && !e->plain && is_slice_of(n->inputs.items[k], n);
}

void open_batch(Emit *e, const Node *n) {
    bool scratch = e->plain ? n->train && n->train->fscratch : n->scratch != NULL;
    e->batch_o = NULL;
    if (e->opt->openmp && (!scratch || e->scratch_per_sample)) {
        e->batch_o = e->o;
        e->o = open_memstream(&e->batch_text, &e->batch_len);
        if (!e->o) {
            fprintf(stderr, "cnnc: out of memory\n");
            exit(2);
        }
        e->batch_work = omp_work(n);
    } else {
        P(e, "    for (int b = 0; b < batch; b++) {\n");
    }
    for (int k = 0; k < n->inputs.len; k++)
        if (!written_in_place(e, n, k))
            P(e, "        const float *xb%d = x%d + (ptrdiff_t)b * %lld;\n", k, k,
              ll(in_elems(n, k)));
    /* pool_bands.c: the convolution's own output goes to scratch (yb) */
    bool bands = bands_here(e, n);
    P(e, "        float *%s = y + (ptrdiff_t)b * %lld;%s\n", bands ? "pb" : "yb",
      ll(out_stride(e, n)), bands ? " /* the pool's output */" : "");
    for (int k = 0; k < epilogue_operands(e, n); k++)
        P(e, "        const float *rb%d = r%d + (ptrdiff_t)b * %lld;\n", k, k,
          ll(out_elems(n)));
}

/* Writes `body` with `extra` more spaces on each line, leaving out the
 * OpenMP pragmas when `serial`. */
void emit_indented(FILE *o, const char *body, const char *extra, bool serial) {
    for (const char *p = body; *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p + 1) : strlen(p);
        const char *text = p + strspn(p, " ");
        if (!(serial && !strncmp(text, "#pragma omp", 11)))
            fprintf(o, "%s%.*s", len > 1 ? extra : "", (int)len, p);
        p += len;
    }
}

void close_batch(Emit *e) {
    if (!e->batch_o) {
        P(e, "    }\n");
        return;
    }
    fclose(e->o);
    e->o = e->batch_o;
    e->batch_o = NULL;
    const char *body = e->batch_text;
    long long work = e->batch_work;
    /* Whole samples go to the threads one at a time as each is free
     * (dynamic): on a shared machine a thread that loses its core for a
     * while leaves its samples to the other. A sample is computed the same
     * way whoever takes it. */
    if (!strstr(body, "#pragma omp")) {
        fprintf(e->o, "    #pragma omp parallel for if(batch > 1 && batch * %lldLL >= %d) "
                      "schedule(dynamic)\n", work, OMP_SPLIT_WORK);
        fprintf(e->o, "    for (int b = 0; b < batch; b++) {\n%s    }\n", body);
    } else {
        /* A parallel region inside another, even an inactive one, starts
         * threads of its own at every call (160 us a call with libgomp
         * here): so a lone sample runs outside any region, sharing its own
         * loops, and several samples are shared out whole. Inside a
         * chain's parallel loop (chain.c), omp_get_level() > 0 even when
         * the loop has one thread: the sample stays on its thread. */
        fputs("    if (batch == 1 && omp_get_level() == 0) { /* the threads share the sample's loops */\n"
              "        const int b = 0;\n", e->o);
        emit_indented(e->o, body, "", false);
        fprintf(e->o, "    } else { /* each thread takes whole samples, or a chain's thread one */\n"
                      "    #pragma omp parallel for if(batch * %lldLL >= %d && omp_get_level() == 0) "
                      "schedule(dynamic)\n"
                      "    for (int b = 0; b < batch; b++) {\n", work, OMP_SPLIT_WORK);
        emit_indented(e->o, body, "    ", true);
        fputs("    }\n    }\n", e->o);
    }
    free(e->batch_text);
    e->batch_text = NULL;
}

/* ---- fused epilogues ------------------------------------------------------------ */

int epilogue_operands(const Emit *e, const Node *n) {
    const Epilogue *epi = epilogue_of(e, n);
    int count = 0;
    for (int i = 0; epi && i < epi->n; i++)
        count += epi->step[i].kind == EPI_ADD;
    return count;
}

void emit_epilogue_scalar(Emit *e, const Node *n, const char *in, const char *idx) {
    const Epilogue *epi = epilogue_of(e, n);
    int r = 0;
    for (int i = 0; epi && i < epi->n; i++) {
        const struct EpiStep *st = &epi->step[i];
        switch (st->kind) {
        case EPI_ADD: P(e, "%sv += rb%d[%s];\n", in, r++, idx); break;
        case EPI_RELU: P(e, "%sv = v < 0.0f ? 0.0f : v;\n", in); break;
        case EPI_RELU6: P(e, "%sv = v < 0.0f ? 0.0f : v > 6.0f ? 6.0f : v;\n", in); break;
        case EPI_LEAKY:
            P(e, "%sv = v < 0.0f ? %s * v : v;\n", in, float_lit(e->a, st->alpha));
            break;
        }
    }
}

/* ---- convolution and locally connected layers ---------------------------- */

/* The input of a windowed layer, padded into scratch when it has padding. */
void padded_input(Emit *e, const Node *n, int64_t *hp, int64_t *wp) {
    const Attrs *a = &n->a;
    Shape s = in_shape_of(n, 0);
    *hp = s.d[1] + a->pad_lo[0] + a->pad_hi[0];
    *wp = s.d[2] + a->pad_lo[1] + a->pad_hi[1];
    if (a->pad_lo[0] || a->pad_lo[1] || a->pad_hi[0] || a->pad_hi[1]) {
        e->need_pad = true;
        P(e, "        cnn_pad(xb0, s, %lld, %lld, %lld, %lld, %lld, %lld, %lld, %d);\n",
          ll(s.d[0]), ll(s.d[1]), ll(s.d[2]), ll(a->pad_lo[0]), ll(a->pad_lo[1]),
          ll(*hp), ll(*wp), (int)a->pad_mode);
        P(e, "        const float *in = s;\n");
    } else {
        P(e, "        const float *in = xb0;\n");
    }
}

/* NAME_pack gives the inference kernel a convolution's weights in blocks
 * of its tile's channels, [block][c][kh][kw][channel], so the tile loads
 * the weights of each (c, i, j) together: read one channel's row apart,
 * clang -O3 turned the four loads into a gather, a 1x1 layer of 512 -> 2048
 * channels at 7x7 ran 3.3 ms against 1.4 ms. Training's forward kernels
 * read the canonical weights. */
int scalar_pack_mr(const Node *n) {
    if (n->op != OP_CONV)
        return 0;
    int kb = tile_channels(n->a.units / n->a.groups);
    return kb > 1 ? kb : 0;
}

/* Where (c, i, j) starts reading, from the group's input xg. */
static const char *input_at(Emit *e, const ConvLoops *c) {
    if (c->sh == 1 && c->sw == 1)
        return arena_printf(e->a, "c * %lld + i * %lld + j * %lld", ll(c->hin * c->win),
                            ll(c->dh * c->win), ll(c->dw));
    /* the plane of the stride phase (i * dh, j * dw) falls in, and the place in it */
    return arena_printf(e->a, "c * %lld + (i * %lld %% %lld * %lld + j * %lld %% %lld) * %lld + "
                        "i * %lld / %lld * %lld + j * %lld / %lld", ll(c->hin * c->win),
                        ll(c->dh), ll(c->sh), ll(c->sw), ll(c->dw), ll(c->sw),
                        ll(c->cin_g * c->groups * c->hin * c->win), ll(c->dh), ll(c->sh),
                        ll(c->win), ll(c->dw), ll(c->sw));
}

/* One output channel a group (depthwise layers) with a scratch run `tmp`:
 * a loop per (c, i, j) along the whole run. With so few terms per output
 * (9 for a 3x3 depthwise layer) the tiles' bookkeeping did not pay: a
 * 144-channel depthwise layer at 56x56 took 0.80 ms in tiles against 0.30
 * with clang -O3 -march=native, which vectorises this long loop well (gcc
 * -O2: 1.4 against 2.8 ms). */
static void emit_conv_loops_long(Emit *e, const ConvLoops *c, int64_t len) {
    int64_t kg = c->k / c->groups;
    P(e, "        /* one loop along the run of %lld positions per (c, i, j) */\n", ll(len));
    P(e, "        for (int k = 0; k < %lld; k++) {\n", ll(c->k));
    P(e, "            const float *wk = %s + k * %lld;\n", c->w, ll(c->cin_g * c->kh * c->kw));
    if (c->groups > 1)
        P(e, "            const float *xg = %s + (k / %lld) * %lld;\n", c->in, ll(kg),
          ll(c->cin_g * c->hin * c->win));
    else
        P(e, "            const float *xg = %s;\n", c->in);
    P(e, "            float *yk = %s + k * %lld;\n", c->out, ll(c->out_rows * c->out_row_stride));
    P(e, "            float *t = %s;\n", c->tmp);
    P(e, "            for (int p = 0; p < %lld; p++)\n", ll(len));
    P(e, "                t[p] = %s;\n", c->init ? c->init : "0.0f");
    P(e, "            for (int c = 0; c < %lld; c++)\n", ll(c->cin_g));
    P(e, "                for (int i = 0; i < %lld; i++)\n", ll(c->kh));
    P(e, "                    for (int j = 0; j < %lld; j++) {\n", ll(c->kw));
    P(e, "                        const float wv = wk[(c * %lld + i) * %lld + j];\n",
      ll(c->kh), ll(c->kw));
    P(e, "                        const float *xr = xg + %s;\n", input_at(e, c));
    P(e, "                        for (int p = 0; p < %lld; p++)\n", ll(len));
    P(e, "                            t[p] += wv * xr[p];\n");
    P(e, "                    }\n");
    P(e, "            for (int oh = 0; oh < %lld; oh++)\n", ll(c->hout));
    P(e, "                for (int ow = 0; ow < %lld; ow++)\n", ll(c->wout));
    P(e, "                    yk[oh * %lld + ow] %s t[oh * %lld + ow];\n", ll(c->out_row_stride),
      c->init ? "=" : "+=", ll(c->win));
    P(e, "        }\n");
}

/* Direct convolution loops for one sample. Each output starts from the
 * bias (or zero, or what is there) and adds one weight times one input per
 * (c, kh, kw), in that order. The backward pass uses the same loops for
 * the input gradient (kernels_train.c).
 *
 * Stride 1: the output rows, laid end to end with the input's row stride,
 * make one run of positions, since output (oh, ow) reads input (oh + i*dh,
 * ow + j*dw) and so each (c, i, j) reads a contiguous stretch of the input.
 * A stride over 1 comes to the same once the input is split by stride
 * phase (emit_conv): output (oh, ow) reads input row oh*sh + i*dh, which
 * is row oh + (i*dh)/sh of the phase plane holding rows (i*dh)%sh, (i*dh)%sh
 * + sh, ..., and the same along columns.
 * The run goes in tiles of PT positions by KB output channels: each
 * channel's PT sums live in an array of their own (a0, a1, ...), which the
 * C compiler keeps in vector registers, and each (c, i, j) loads PT inputs
 * once for the KB channels. One long loop per (c, i, j) over the whole run
 * (emit_conv_loops_long, left to depthwise layers) reads and writes its
 * sums in memory at every step:
 * a 64-channel 3x3 layer at 56x56 went from 6.3 to 2.3-2.8 ms with clang
 * or gcc -O3 -march=native, from 33 to 10 ms with gcc -O2. The columns
 * past wout are computed and dropped. Each output's sum takes its terms
 * in the same order as before, so its bits are those of the plain loop. */

/* The body of one tile: `pt` positions from p by `kb` channels from k0. */
static void emit_flat_tile(Emit *e, const ConvLoops *c, int64_t pt, int kb, const char *in) {
    int64_t kg = c->k / c->groups;
    P(e, "%s    float", in);
    for (int q = 0; q < kb; q++)
        P(e, "%s a%d[%lld]", q ? "," : "", q, ll(pt));
    P(e, ";\n");
    for (int q = 0; q < kb; q++)
        P(e, "%s    { const int k = k0 + %d; (void)k; for (int l = 0; l < %lld; l++) a%d[l] = %s; }\n",
          in, q, ll(pt), q, c->init ? c->init : "0.0f");
    if (c->groups > 1)
        P(e, "%s    const float *xg = %s + (k0 / %lld) * %lld + p;\n", in, c->in, ll(kg),
          ll(c->cin_g * c->hin * c->win));
    else
        P(e, "%s    const float *xg = %s + p;\n", in, c->in);
    P(e, "%s    const float *wk = %s + (ptrdiff_t)k0 * %lld;\n", in, c->w,
      ll(c->cin_g * c->kh * c->kw));
    P(e, "%s    for (int c = 0; c < %lld; c++)\n", in, ll(c->cin_g));
    P(e, "%s        for (int i = 0; i < %lld; i++)\n", in, ll(c->kh));
    P(e, "%s            for (int j = 0; j < %lld; j++) {\n", in, ll(c->kw));
    P(e, "%s                const int r = (c * %lld + i) * %lld + j;\n", in, ll(c->kh),
      ll(c->kw));
    P(e, "%s                const float *xr = xg + %s;\n", in, input_at(e, c));
    P(e, "%s                const float", in);
    for (int q = 0; q < kb; q++) {
        if (c->blocked)
            P(e, "%s w%d = wk[r * %d + %d]", q ? "," : "", q, kb, q);
        else
            P(e, "%s w%d = wk[%lld + r]", q ? "," : "", q, ll(q * c->cin_g * c->kh * c->kw));
    }
    P(e, ";\n");
    P(e, "%s                for (int l = 0; l < %lld; l++) {\n", in, ll(pt));
    P(e, "%s                    const float x = xr[l];\n", in);
    for (int q = 0; q < kb; q++)
        P(e, "%s                    a%d[l] += w%d * x;\n", in, q, q);
    P(e, "%s                }\n", in);
    P(e, "%s            }\n", in);
    /* the tile's first row and column, then stepped along */
    P(e, "%s    int oh = p / %lld, ow = p - oh * %lld;\n", in, ll(c->win), ll(c->win));
    P(e, "%s    for (int l = 0; l < %lld; l++, ow++) {\n", in, ll(pt));
    P(e, "%s        if (ow == %lld) {\n%s            ow = 0;\n%s            oh++;\n%s        }\n",
      in, ll(c->win), in, in, in);
    P(e, "%s        if (ow >= %lld)\n%s            continue;\n", in, ll(c->wout), in);
    P(e, "%s        float *yo = %s + (ptrdiff_t)k0 * %lld + oh * %lld + ow;\n", in, c->out,
      ll(c->out_rows * c->out_row_stride), ll(c->out_row_stride));
    for (int q = 0; q < kb; q++)
        P(e, "%s        yo[%lld] %s a%d[l];\n", in, ll(q * c->out_rows * c->out_row_stride),
          c->init ? "=" : "+=", q);
    P(e, "%s    }\n", in);
}

void emit_conv_loops(Emit *e, const ConvLoops *c) {
    int64_t len = (c->hout - 1) * c->win + c->wout;
    int kb = tile_channels(c->k / c->groups);
    if (kb == 1 && c->tmp) {
        emit_conv_loops_long(e, c, len);
        return;
    }
    int64_t whole = len / SCALAR_PT * SCALAR_PT, rest = len - whole;
    /* (tiles outermost: with channel blocks outermost instead, a 512-channel
     * 3x3 layer at 7x7, whose 9.4 MB of weights are read once a tile this
     * way, ran no faster) */
    P(e, "        /* tiles of %d positions (then %lld) by %d output channels */\n", SCALAR_PT,
      ll(rest), kb);
    if (whole) {
        P(e, "        for (int p = 0; p < %lld; p += %d)\n", ll(whole), SCALAR_PT);
        P(e, "            for (int k0 = 0; k0 < %lld; k0 += %d) {\n", ll(c->k), kb);
        emit_flat_tile(e, c, SCALAR_PT, kb, "            ");
        P(e, "            }\n");
    }
    if (rest) {
        P(e, "        for (int k0 = 0; k0 < %lld; k0 += %d) {\n", ll(c->k), kb);
        P(e, "            const int p = %lld;\n", ll(whole));
        emit_flat_tile(e, c, rest, kb, "        ");
        P(e, "        }\n");
    }
}

static void emit_conv(Emit *e, const Node *n) {
    const Attrs *a = &n->a;
    Shape in = in_shape_of(n, 0), out = n->shape;
    int64_t hp, wp;
    open_batch(e, n);
    padded_input(e, n, &hp, &wp);
    Phases ph = phases_of(n);
    bool pads = a->pad_lo[0] || a->pad_lo[1] || a->pad_hi[0] || a->pad_hi[1];
    bool split = phase_floats(n) > 0;
    if (split) {
        int64_t c = in.d[0];
        P(e, "        /* split by stride phase: plane (a, b) of channel c holds rows a, a + %lld, "
             "... and columns b, b + %lld, ... */\n", ll(ph.sh), ll(ph.sw));
        P(e, "        float *ph = s + %lld;\n", ll(pads ? c * hp * wp : 0));
        P(e, "        for (int a = 0; a < %lld; a++)\n", ll(ph.sh));
        P(e, "            for (int b2 = 0; b2 < %lld; b2++)\n", ll(ph.sw));
        P(e, "                for (int c = 0; c < %lld; c++)\n", ll(c));
        P(e, "                    for (int h = 0; h < %lld; h++)\n", ll(ph.hph));
        P(e, "                        for (int w2 = 0; w2 < %lld; w2++) {\n", ll(ph.wph));
        P(e, "                            const int ih = h * %lld + a, iw = w2 * %lld + b2;\n",
          ll(ph.sh), ll(ph.sw));
        P(e, "                            ph[(((a * %lld + b2) * %lld + c) * %lld + h) * %lld + w2] "
             "=\n", ll(ph.sw), ll(c), ll(ph.hph), ll(ph.wph));
        P(e, "                                ih < %lld && iw < %lld ? in[(c * %lld + ih) * %lld + "
             "iw] : 0.0f;\n", ll(hp), ll(wp), ll(hp), ll(wp));
        P(e, "                        }\n");
    }
    int64_t run_at = (pads ? in.d[0] * hp * wp : 0) + phase_floats(n);
    ConvLoops c = {
        .in = split ? "ph" : "in", .out = "yb", .w = "w",
        .blocked = !e->plain && n->pack_mr > 1,
        .tmp = long_run_floats(n) ? arena_printf(e->a, "s + %lld", ll(run_at)) : NULL,
        .cin_g = in.d[0] / a->groups, .k = a->units, .groups = a->groups,
        .kh = a->kernel[0], .kw = a->kernel[1], .dh = a->dilation[0],
        .dw = a->dilation[1], .sh = ph.sh, .sw = ph.sw,
        .hin = split ? ph.hph : hp, .win = split ? ph.wph : wp,
        .hout = out.d[1], .wout = out.d[2],
        .out_rows = out.d[1], .out_row_stride = out.d[2],
        .init = has_bias(e, n) ? arena_printf(e->a, "w[%lld + k]",
                                      ll(a->units * (in.d[0] / a->groups) *
                                         a->kernel[0] * a->kernel[1]))
                        : "0.0f",
    };
    emit_conv_loops(e, &c);
    if (epilogue_of(e, n)) {
        P(e, "        for (int i = 0; i < %lld; i++) {\n", ll(out_elems(n)));
        P(e, "            float v = yb[i];\n");
        emit_epilogue_scalar(e, n, "            ", "i");
        P(e, "            yb[i] = v;\n");
        P(e, "        }\n");
    }
    close_batch(e);
}

/* Locally connected: like a convolution, but every output position has its
 * own weights, laid out [H', W', K, C, kh, kw] (DSL.md). */
static void emit_local(Emit *e, const Node *n) {
    const Attrs *a = &n->a;
    Shape in = in_shape_of(n, 0), out = n->shape;
    int64_t kh = a->kernel[0], kw = a->kernel[1], hp, wp;
    int64_t per = in.d[0] * kh * kw;
    open_batch(e, n);
    padded_input(e, n, &hp, &wp);
    P(e, "        for (int oh = 0; oh < %lld; oh++)\n", ll(out.d[1]));
    P(e, "            for (int ow = 0; ow < %lld; ow++)\n", ll(out.d[2]));
    P(e, "                for (int k = 0; k < %lld; k++) {\n", ll(out.d[0]));
    P(e, "                    const float *wp = w + ((oh * %lld + ow) * %lld + k) * %lld;\n",
      ll(out.d[2]), ll(out.d[0]), ll(per));
    P(e, "                    const float *xr = in + oh * %lld + ow * %lld;\n",
      ll(a->stride[0] * wp), ll(a->stride[1]));
    if (a->bias)
        P(e, "                    float sum = w[%lld + (k * %lld + oh) * %lld + ow];\n",
          ll(out.d[1] * out.d[2] * out.d[0] * per), ll(out.d[1]), ll(out.d[2]));
    else
        P(e, "                    float sum = 0.0f;\n");
    P(e, "                    for (int c = 0; c < %lld; c++)\n", ll(in.d[0]));
    P(e, "                        for (int i = 0; i < %lld; i++)\n", ll(kh));
    P(e, "                            for (int j = 0; j < %lld; j++)\n", ll(kw));
    P(e, "                                sum += wp[(c * %lld + i) * %lld + j] * "
         "xr[c * %lld + i * %lld + j];\n", ll(kh), ll(kw), ll(hp * wp), ll(wp));
    P(e, "                    yb[(k * %lld + oh) * %lld + ow] = sum;\n", ll(out.d[1]),
      ll(out.d[2]));
    P(e, "                }\n");
    close_batch(e);
}

/* y = W x + b over the flattened sample. The weight row is the outer loop
 * so it stays in cache while every sample of the batch uses it; the dot
 * product runs in eight lanes (cnn_dot), which compilers vectorise. */
static void emit_dense(Emit *e, const Node *n) {
    int64_t units = n->a.units, in = in_elems(n, 0);
    e->need_dot = true;
    P(e, "    for (int u = 0; u < %lld; u++) {\n", ll(units));
    P(e, "        const float *wu = w + (ptrdiff_t)u * %lld;\n", ll(in));
    P(e, "        for (int b = 0; b < batch; b++) {\n");
    for (int k = 0; k < epilogue_operands(e, n); k++)
        P(e, "            const float *rb%d = r%d + (ptrdiff_t)b * %lld;\n", k, k, ll(units));
    P(e, "            float v = cnn_dot(wu, x0 + (ptrdiff_t)b * %lld, %lld)%s;\n", ll(in), ll(in),
      has_bias(e, n) ? arena_printf(e->a, " + w[%lld + u]", ll(units * in)) : "");
    emit_epilogue_scalar(e, n, "            ", "u");
    P(e, "            y[(ptrdiff_t)b * %lld + u] = v;\n", ll(units));
    P(e, "        }\n");
    P(e, "    }\n");
}

/* ---- normalisation -------------------------------------------------------- */

/* Inference batch norm, folded by NAME_pack into y = x * scale + shift. */
static void emit_bn(Emit *e, const Node *n) {
    int64_t c, hw;
    channels(n, &c, &hw);
    open_batch(e, n);
    P(e, "        for (int c = 0; c < %lld; c++)\n", ll(c));
    P(e, "            for (int i = 0; i < %lld; i++)\n", ll(hw));
    P(e, "                yb[c * %lld + i] = xb0[c * %lld + i] * w[c] + w[%lld + c];\n",
      ll(hw), ll(hw), ll(c));
    close_batch(e);
}

/* b_c = a_c / (k + alpha/size * sum of a^2 over the channel window)^beta,
 * the window running from c - size/2 to c + (size-1)/2, as in PyTorch. */
static void emit_lrn(Emit *e, const Node *n) {
    const Attrs *a = &n->a;
    int64_t c, hw;
    channels(n, &c, &hw);
    int64_t below, above;
    lrn_reach(n, c, &below, &above);
    e->need_exp = e->need_log = true;
    open_batch(e, n);
    P(e, "        for (int i = 0; i < %lld; i++)\n", ll(hw));
    P(e, "            for (int c = 0; c < %lld; c++) {\n", ll(c));
    P(e, "                double sum = 0.0;\n");
    P(e, "                for (int j = c - %lld; j <= c + %lld; j++)\n", ll(below), ll(above));
    P(e, "                    if (j >= 0 && j < %lld) {\n", ll(c));
    P(e, "                        double v = xb0[j * %lld + i];\n", ll(hw));
    P(e, "                        sum += v * v;\n");
    P(e, "                    }\n");
    P(e, "                double base = %.17g + %.17g * sum;\n", a->k, a->alpha / (double)a->size);
    P(e, "                yb[c * %lld + i] = (float)(xb0[c * %lld + i] / "
         "cnn_exp(%.17g * cnn_log(base)));\n", ll(hw), ll(hw), a->beta);
    P(e, "            }\n");
    close_batch(e);
}

/* ---- pooling ----------------------------------------------------------------- */

/* The two loops over a pooling window at output (oh, ow), skipping what
 * falls in the padding: ih, iw are the input row and column. Pooling's
 * backward pass (kernels_train.c) walks the same windows. */
void open_window(Emit *e, const Node *n) {
    const Attrs *a = &n->a;
    Shape in = in_shape_of(n, 0);
    P(e, "                    for (int i = 0; i < %lld; i++) {\n", ll(a->kernel[0]));
    P(e, "                        int ih = oh * %lld - %lld + i;\n", ll(a->stride[0]),
      ll(a->pad_lo[0]));
    P(e, "                        if (ih < 0 || ih >= %lld)\n", ll(in.d[1]));
    P(e, "                            continue;\n");
    P(e, "                        for (int j = 0; j < %lld; j++) {\n", ll(a->kernel[1]));
    P(e, "                            int iw = ow * %lld - %lld + j;\n", ll(a->stride[1]),
      ll(a->pad_lo[1]));
    P(e, "                            if (iw < 0 || iw >= %lld)\n", ll(in.d[2]));
    P(e, "                                continue;\n");
}

/* Max, average (padding counted, as PyTorch's default) and L2 pooling, with
 * windows clipped to the real input: for max, padding never wins. The
 * output rows and columns whose windows lie wholly inside the input take a
 * second loop with no bounds checks and unit-stride columns when the stride
 * is 1, which compilers vectorise; the border keeps the checked loop. */
static void pool_window_value(Emit *e, const Node *n, const char *in, const char *at,
                              bool inner) {
    bool is_max = n->op == OP_MAXPOOL, is_l2 = n->op == OP_L2POOL;
    P(e, "%sfloat v = %s;\n", in, at);
    if (is_max && inner)
        P(e, "%sbest = v > best || v != v ? v : best;\n", in);
    else if (is_max) /* v != v: NaN wins, as in PyTorch */
        P(e, "%sif (!seen || v > best || v != v)\n"
             "%s    best = v;\n"
             "%sseen = 1;\n", in, in, in);
    else if (is_l2)
        P(e, "%ssum += (double)v * v;\n", in);
    else
        P(e, "%ssum += v;\n", in);
}

static void pool_start(Emit *e, const Node *n, const char *in, const char *first) {
    if (n->op == OP_MAXPOOL && first)
        P(e, "%sfloat best = %s;\n", in, first);
    else if (n->op == OP_MAXPOOL)
        P(e, "%sfloat best = 0.0f;\n%sint seen = 0;\n", in, in);
    else
        P(e, "%sdouble sum = 0.0;\n", in);
}

static void pool_store(Emit *e, const Node *n, const char *in) {
    const Attrs *a = &n->a;
    Shape out = n->shape;
    bool is_max = n->op == OP_MAXPOOL, is_l2 = n->op == OP_L2POOL;
    const char *res = is_max ? "best"
                    : is_l2 ? "(float)(sum > 0.0 ? cnn_exp(0.5 * cnn_log(sum)) : 0.0)"
                            : arena_printf(e->a, "(float)(sum / %lld.0)",
                                           ll(a->kernel[0] * a->kernel[1]));
    P(e, "%syb[(c * %lld + oh) * %lld + ow] = %s;\n", in, ll(out.d[1]), ll(out.d[2]), res);
}

/* The first output index from which the window lies inside the input
 * (lo) and the first from which it no longer does (hi), along one axis. */
static void inner_range(int64_t pad, int64_t stride, int64_t k, int64_t in, int64_t out,
                        int64_t *lo, int64_t *hi) {
    *lo = (pad + stride - 1) / stride;
    *hi = in - k + pad >= 0 ? (in - k + pad) / stride + 1 : 0;
    if (*hi > out)
        *hi = out;
    if (*lo > *hi)
        *lo = *hi;
}

static void emit_pool(Emit *e, const Node *n) {
    const Attrs *a = &n->a;
    Shape in = in_shape_of(n, 0), out = n->shape;
    if (n->op == OP_L2POOL)
        e->need_exp = e->need_log = true;
    int64_t h_lo, h_hi, w_lo, w_hi;
    inner_range(a->pad_lo[0], a->stride[0], a->kernel[0], in.d[1], out.d[1], &h_lo, &h_hi);
    inner_range(a->pad_lo[1], a->stride[1], a->kernel[1], in.d[2], out.d[2], &w_lo, &w_hi);
    bool split = w_hi - w_lo >= 4 && h_hi > h_lo;
    open_batch(e, n);
    P(e, "        for (int c = 0; c < %lld; c++)\n", ll(out.d[0]));
    P(e, "            for (int oh = 0; oh < %lld; oh++) {\n", ll(out.d[1]));
    P(e, "                const float *xc = xb0 + c * %lld;\n", ll(in.d[1] * in.d[2]));
    if (split) {
        P(e, "                const int inner = oh >= %lld && oh < %lld;\n", ll(h_lo), ll(h_hi));
        P(e, "                if (inner)\n");
        P(e, "                    for (int ow = %lld; ow < %lld; ow++) {\n", ll(w_lo), ll(w_hi));
        P(e, "                        const float *xw = xc + (oh * %lld - %lld) * %lld + "
             "ow * %lld - %lld;\n", ll(a->stride[0]), ll(a->pad_lo[0]), ll(in.d[2]),
          ll(a->stride[1]), ll(a->pad_lo[1]));
        pool_start(e, n, "                        ", "xw[0]");
        P(e, "                        for (int i = 0; i < %lld; i++)\n", ll(a->kernel[0]));
        P(e, "                            for (int j = 0; j < %lld; j++) {\n", ll(a->kernel[1]));
        pool_window_value(e, n, "                                ",
                          arena_printf(e->a, "xw[i * %lld + j]", ll(in.d[2])), true);
        P(e, "                            }\n");
        pool_store(e, n, "                        ");
        P(e, "                    }\n");
    }
    P(e, "                for (int ow = 0; ow < %lld; ow++) {\n", ll(out.d[2]));
    if (split)
        P(e, "                    if (inner && ow >= %lld && ow < %lld)\n"
             "                        continue;\n", ll(w_lo), ll(w_hi));
    pool_start(e, n, "                    ", NULL);
    open_window(e, n);
    pool_window_value(e, n, "                            ",
                      arena_printf(e->a, "xc[ih * %lld + iw]", ll(in.d[2])), false);
    P(e, "                        }\n");
    P(e, "                    }\n");
    pool_store(e, n, "                    ");
    P(e, "                }\n");
    P(e, "            }\n");
    close_batch(e);
}

static void emit_global_pool(Emit *e, const Node *n) {
    Shape in = in_shape_of(n, 0);
    int64_t hw = in.d[1] * in.d[2];
    bool is_max = n->op == OP_GLOBALMAXPOOL;
    open_batch(e, n);
    P(e, "        for (int c = 0; c < %lld; c++) {\n", ll(in.d[0]));
    P(e, "            const float *xc = xb0 + c * %lld;\n", ll(hw));
    if (is_max) {
        P(e, "            float best = xc[0];\n");
        P(e, "            for (int i = 1; i < %lld; i++)\n", ll(hw));
        P(e, "                best = xc[i] > best || xc[i] != xc[i] ? xc[i] : best;\n");
        P(e, "            yb[c] = best;\n");
    } else {
        P(e, "            double sum = 0.0;\n");
        P(e, "            for (int i = 0; i < %lld; i++)\n", ll(hw));
        P(e, "                sum += xc[i];\n");
        P(e, "            yb[c] = (float)(sum / %lld.0);\n", ll(hw));
    }
    P(e, "        }\n");
    close_batch(e);
}

/* ---- element-wise layers ------------------------------------------------------- */

/* y[i] = f(v) with v = x0[i], over the whole batch at once. */
static void emit_map(Emit *e, const Node *n, const char *expr) {
    omp_batch_for(e, n, "    ");
    P(e, "    for (ptrdiff_t i = 0; i < (ptrdiff_t)batch * %lld; i++) {\n", ll(out_elems(n)));
    P(e, "        const float v = x0[i];\n");
    P(e, "        y[i] = %s;\n", expr);
    P(e, "    }\n");
}

static void emit_prelu(Emit *e, const Node *n) {
    int64_t c, hw;
    channels(n, &c, &hw);
    open_batch(e, n);
    P(e, "        for (int c = 0; c < %lld; c++)\n", ll(c));
    P(e, "            for (int i = 0; i < %lld; i++) {\n", ll(hw));
    P(e, "                const float v = xb0[c * %lld + i];\n", ll(hw));
    P(e, "                yb[c * %lld + i] = v < 0.0f ? w[c] * v : v;\n", ll(hw));
    P(e, "            }\n");
    close_batch(e);
}

static void emit_maxout(Emit *e, const Node *n) {
    int64_t c, hw;
    channels(n, &c, &hw);
    int64_t pieces = n->a.pieces;
    open_batch(e, n);
    P(e, "        for (int c = 0; c < %lld; c++)\n", ll(c));
    P(e, "            for (int i = 0; i < %lld; i++) {\n", ll(hw));
    P(e, "                float best = xb0[(c * %lld) * %lld + i];\n", ll(pieces), ll(hw));
    P(e, "                for (int p = 1; p < %lld; p++) {\n", ll(pieces));
    P(e, "                    float v = xb0[(c * %lld + p) * %lld + i];\n", ll(pieces), ll(hw));
    P(e, "                    best = v > best || v != v ? v : best;\n");
    P(e, "                }\n");
    P(e, "                yb[c * %lld + i] = best;\n", ll(hw));
    P(e, "            }\n");
    close_batch(e);
}

/* Softmax over channels at each position (over all features of a vector),
 * shifted by the maximum so exp never overflows. */
static void emit_softmax(Emit *e, const Node *n) {
    int64_t c, hw;
    channels(n, &c, &hw);
    e->need_exp = true;
    open_batch(e, n);
    P(e, "        for (int i = 0; i < %lld; i++) {\n", ll(hw));
    P(e, "            float top = xb0[i];\n");
    P(e, "            for (int c = 1; c < %lld; c++)\n", ll(c));
    P(e, "                top = xb0[c * %lld + i] > top ? xb0[c * %lld + i] : top;\n",
      ll(hw), ll(hw));
    P(e, "            double sum = 0.0;\n");
    P(e, "            for (int c = 0; c < %lld; c++) {\n", ll(c));
    P(e, "                double v = cnn_exp((double)xb0[c * %lld + i] - top);\n", ll(hw));
    P(e, "                yb[c * %lld + i] = (float)v;\n", ll(hw));
    P(e, "                sum += v;\n");
    P(e, "            }\n");
    P(e, "            for (int c = 0; c < %lld; c++)\n", ll(c));
    P(e, "                yb[c * %lld + i] = (float)(yb[c * %lld + i] / sum);\n", ll(hw), ll(hw));
    P(e, "        }\n");
    close_batch(e);
}

static void emit_bias(Emit *e, const Node *n) {
    open_batch(e, n);
    P(e, "        for (int i = 0; i < %lld; i++)\n", ll(out_elems(n)));
    P(e, "            yb[i] = xb0[i] + w[i];\n");
    close_batch(e);
}

static void emit_add(Emit *e, const Node *n) {
    omp_batch_for(e, n, "    ");
    P(e, "    for (ptrdiff_t i = 0; i < (ptrdiff_t)batch * %lld; i++)\n", ll(out_elems(n)));
    P(e, "        y[i] = x0[i] + x1[i];\n");
}

/* Channels are the outermost dimension of a sample, so each input is one
 * contiguous slice of the output sample. Inputs whose kernels wrote their
 * slice already (fuse_concat.c) are left alone. */
static void emit_concat(Emit *e, const Node *n) {
    e->need_copy = true;
    open_batch(e, n);
    int64_t at = 0;
    for (int k = 0; k < n->inputs.len; k++) {
        if (!written_in_place(e, n, k))
            P(e, "        cnn_copy(xb%d, yb + %lld, %lld);\n", k, ll(at), ll(in_elems(n, k)));
        at += in_elems(n, k);
    }
    close_batch(e);
}

/* A view (flatten, dropout) or an input that is also an output: the bytes
 * move to the caller's output buffer unchanged. */
static void emit_copy(Emit *e, const Node *n) {
    e->need_copy = true;
    P(e, "    cnn_copy(x0, y, (ptrdiff_t)batch * %lld);\n", ll(out_elems(n)));
}

void emit_scalar_kernel(Emit *e, const Node *n) {
    const Attrs *a = &n->a;
    switch (n->op) {
    case OP_CONV: emit_conv(e, n); break;
    case OP_LOCAL: emit_local(e, n); break;
    case OP_DENSE: emit_dense(e, n); break;
    case OP_BN: emit_bn(e, n); break;
    case OP_LRN: emit_lrn(e, n); break;
    case OP_MAXPOOL: case OP_AVGPOOL: case OP_L2POOL: emit_pool(e, n); break;
    case OP_GLOBALAVGPOOL: case OP_GLOBALMAXPOOL: emit_global_pool(e, n); break;
    case OP_RELU: emit_map(e, n, "v < 0.0f ? 0.0f : v"); break;
    case OP_RELU6: emit_map(e, n, "v < 0.0f ? 0.0f : v > 6.0f ? 6.0f : v"); break;
    case OP_SIGMOID:
        e->need_exp = true;
        emit_map(e, n, "(float)(1.0 / (1.0 + cnn_exp(-(double)v)))");
        break;
    case OP_TANH:
        e->need_tanh = true;
        emit_map(e, n, "(float)cnn_tanh(v)");
        break;
    case OP_LEAKYRELU:
        emit_map(e, n, arena_printf(e->a, "v < 0.0f ? %s * v : v", float_lit(e->a, a->alpha)));
        break;
    case OP_ELU:
        e->need_exp = true;
        emit_map(e, n, arena_printf(e->a, "v > 0.0f ? v : (float)(%.17g * (cnn_exp(v) - 1.0))",
                                    a->alpha));
        break;
    case OP_PRELU: emit_prelu(e, n); break;
    case OP_MAXOUT: emit_maxout(e, n); break;
    case OP_SOFTMAX: emit_softmax(e, n); break;
    case OP_BIAS: emit_bias(e, n); break;
    case OP_ADD: emit_add(e, n); break;
    case OP_CONCAT: emit_concat(e, n); break;
    case OP_INPUT: case OP_FLATTEN: case OP_DROPOUT: emit_copy(e, n); break;
    case OP_COUNT: break;
    }
}
