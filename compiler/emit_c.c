/* emit_c.c — writes the generated pair NAME.c / NAME.h.
 *
 * The .c file reads top to bottom like hand-written code: the helpers the
 * kernels use (exp and log written out, since inference links no libm),
 * one kernel function per layer with a comment naming its source line,
 * shapes and schedule, the packing function, and NAME_forward, which calls
 * the kernels in order with arena offsets fixed by the memory plan.
 * Kernels come from the target's emitter (kernels_scalar.c for now).
 */
#define _POSIX_C_SOURCE 200809L   /* open_memstream */
#include "emit.h"

#include <math.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#ifndef CNNC_VERSION
#define CNNC_VERSION "0.1.0"
#endif

static long long ll(int64_t v) { return (long long)v; }

/* ---- writing kernel text ---------------------------------------------------- */

/* The vector helpers written once for each width, AVX2's named NAME and
 * AVX-512's NAME512: the length of "NAME(" when p starts with one. */
static size_t helper_width(const char *p) {
    static const char *const helpers[] = {"cnn_hsum(", "cnn_vmax(", "cnn_zip(", "cnn_unzip("};
    for (size_t i = 0; i < sizeof helpers / sizeof *helpers; i++)
        if (!strncmp(p, helpers[i], strlen(helpers[i])))
            return strlen(helpers[i]);
    return 0;
}

/* Kernel text, with AVX2's vector words swapped for AVX-512's while
 * e->wide is set: the two name the operations the kernels use alike but for
 * the width (kernels_simd.c). */
void emit_text(Emit *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (!e->wide) {
        vfprintf(e->o, fmt, ap);
        va_end(ap);
        return;
    }
    char small[512], *buf = small;
    va_list again;
    va_copy(again, ap);
    int len = vsnprintf(small, sizeof small, fmt, ap);
    if (len >= (int)sizeof small) {
        buf = malloc((size_t)len + 1);
        vsnprintf(buf, (size_t)len + 1, fmt, again);
    }
    va_end(again);
    va_end(ap);
    for (const char *p = buf; *p;) {
        if (!strncmp(p, "__m256", 6)) {
            fputs("__m512", e->o);
            p += 6;
        } else if (!strncmp(p, "_mm256_", 7)) {
            fputs("_mm512_", e->o);
            p += 7;
        } else if (helper_width(p)) {
            size_t name = helper_width(p);
            fprintf(e->o, "%.*s512(", (int)name - 1, p);
            p += name;
        } else {
            fputc(*p++, e->o);
        }
    }
    if (buf != small)
        free(buf);
}

/* ---- names ------------------------------------------------------------- */

/* `s` (a path or a command line: any bytes) made safe inside a C comment:
 * no star-slash to end it, no slash-star for -Wcomment, no control
 * characters. */
static const char *comment_safe(Arena *a, const char *s) {
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *out = arena_alloc(a, 2 * n + 1), *q = out;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        *q++ = c < 0x20 || c == 0x7f ? '?' : (char)c;
        if ((c == '*' && s[i + 1] == '/') || (c == '/' && s[i + 1] == '*'))
            *q++ = '\\';
    }
    *q = 0;
    return out;
}

/* Is C identifier `s` taken by the network's own API: NAME, or NAME_...
 * (NAME_forward, NAME_backward, ...)? A kernel there would clash with it,
 * or its training kernels (s_backward, s_t, ...) would. */
static bool in_api(const Emit *e, const char *s) {
    size_t n = strlen(e->g->name);
    return !strncmp(s, e->g->name, n) && (s[n] == 0 || s[n] == '_');
}

/* A C identifier for each node: its name with '.' made '_', unique. Layer
 * nodes are named by the compiler (conv1, layer2_basic1_bn2); an input's
 * name is the user's (its kernel, when it is an output too, copies it) and
 * could be any identifier the file uses (arena, cnn_exp, NAME_forward), so
 * its kernel is copy_NAME. A name in the API's namespace gets a 'k' in
 * front until it is not (network conv1: kernel kconv1). */
static void name_functions(Emit *e) {
    e->fn = arena_alloc(e->a, sizeof(char *) * (size_t)e->g->nodes.len);
    for (int i = 0; i < e->g->nodes.len; i++) {
        const Node *n = e->g->nodes.items[i];
        char *s = arena_printf(e->a, "%s%s", n->op == OP_INPUT ? "copy_" : "", n->name);
        for (char *p = s; *p; p++)
            if (!isalnum((unsigned char)*p))
                *p = '_';
        while (in_api(e, s))
            s = arena_printf(e->a, "k%s", s);
        for (int k = 0; k < i; k++)
            if (!strcmp(e->fn[k], s)) {
                s = arena_printf(e->a, "%s_%d", s, n->id);
                break;
            }
        e->fn[i] = s;
    }
}

/* Where a node's output lives, as a C expression in NAME_forward. */
static const char *storage(Emit *e, const Node *n) {
    const Node *home = n->home;
    const char *at = n->home_at ? arena_printf(e->a, " + %lld", ll(n->home_at)) : "";
    if (home->op == OP_INPUT)
        return arena_printf(e->a, "in_%s", home->name);
    if (home->is_output)
        return arena_printf(e->a, "out_%s%s",
                            (const char *)e->g->output_names.items[home->io], at);
    return arena_printf(e->a, "A + %lld", ll(home->buf->offset / 4 + n->home_at));
}

/* ---- the kernels ---------------------------------------------------------- */

static bool has_code(const Node *n) {
    if (pooled_in_conv(n))
        return false;  /* the convolution before it pooled (fuse_pool.c) */
    if (n->op == OP_CONCAT && concat_slices(n) == n->inputs.len)
        return false;  /* its inputs wrote its output (fuse_concat.c) */
    if (n->is_output)
        return true;   /* at least a copy into the caller's buffer */
    return n->op != OP_INPUT && !n->view;
}

void emit_kernel_comment(Emit *e, const Node *n, const char *schedule) {
    P(e, "/* %s — %s:%d: %s\n", n->name, e->source, n->loc.line,
      layer_describe(e->a, n));
    P(e, " *   ");
    for (int k = 0; k < n->inputs.len; k++)
        P(e, "%s%s", k ? " + " : "in ", shape_str(e->a, in_shape_of(n, k)));
    P(e, "%s-> out %s", n->inputs.len ? " " : "", shape_str(e->a, n->shape));
    if (n->in_place)
        P(e, ", in place");
    P(e, "\n");
    if (n->nparams) {
        if (e->plain)
            P(e, " *   weights at params[%lld]:", ll(n->params[0].offset));
        else
            P(e, " *   weights at packed[%lld]:", ll(n->packed));
        for (int k = 0; k < n->nparams; k++) {
            const ParamTensor *t = &n->params[k];
            P(e, " %s%s [", k ? "+ " : "", t->name);
            for (int d = 0; d < t->rank; d++)
                P(e, "%s%lld", d ? "," : "", ll(t->dims[d]));
            P(e, "]");
        }
        if (n->op == OP_BN && !e->plain)
            P(e, " (folded to scale and shift)");
        if (n->pack_mr > 1 && !e->plain)
            P(e, " (packed in blocks of %d output channels)", n->pack_mr);
        P(e, "\n");
    }
    P(e, " *   %s\n */\n", schedule);
}

static void emit_signature(Emit *e, const Node *n, const char *name, bool scratch) {
    const char *r = n->in_place ? "" : "restrict ";
    P(e, "static %svoid %s(", simd_target(e->opt->target) ? "CNN_SIMD " : "", name);
    if (n->op == OP_INPUT)
        P(e, "const float *%sx0, ", r);
    for (int k = 0; k < n->inputs.len; k++)
        if (!written_in_place(e, n, k))
            P(e, "const float *%sx%d, ", r, k);
    for (int k = 0; k < epilogue_operands(e, n); k++)
        P(e, "const float *restrict r%d, ", k);
    P(e, "float *%sy, ", r);
    if (n->nparams)
        P(e, "const float *%sw, ", r);
    if (scratch)
        P(e, "float *%ss, ", r);
    if (has_state(e, n))
        P(e, "float *restrict state, ");
    P(e, "int batch) {\n");
}

/* What the kernel comment says a fused kernel does besides its own layer. */
static const char *fused_note(Emit *e, const Node *n) {
    const char *s = "";
    if (n->bn)
        s = arena_printf(e->a, "%s; %s folded into the weights", s, n->bn->name);
    for (int i = 0; n->epi && i < n->epi->n; i++) {
        const struct EpiStep *st = &n->epi->step[i];
        s = arena_printf(e->a, "%s; then %s", s,
                         st->kind == EPI_ADD
                             ? arena_printf(e->a, "+ %s (%s)", st->operand->name, st->node->name)
                             : st->node->name);
    }
    if (bands_here(e, n))
        s = arena_printf(e->a, "%s; its output kept in scratch a chunk of tiles at a time, "
                         "each chunk's finished rows max pooled by %s() (%s), so it stores %s",
                         s, e->fn[n->pool->id], n->pool->name, shape_str(e->a, n->pool->shape));
    else if (n->pool)
        s = arena_printf(e->a, "%s; then the 2x2 max pool %s in registers, so it stores %s",
                         s, n->pool->name, shape_str(e->a, n->pool->shape));
    if (n->slice_of) {
        int64_t hw = n->shape.d[1] * n->shape.d[2], c0 = n->slice_at / hw;
        s = arena_printf(e->a, "%s; stores into channels %lld..%lld of %s, which copies "
                         "nothing", s, ll(c0),
                         ll(c0 + n->shape.d[0] - 1), n->slice_of->name);
    }
    return s;
}

static const char *schedule_of(Emit *e, const Node *n) {
    if (simd_target(e->opt->target)) {
        const char *s = simd_schedule(e, n);
        if (s)
            return arena_printf(e->a, "%s%s", s, fused_note(e, n));
    }
    return arena_printf(e->a, "%s%s",
                        n->scratch ? "scalar loops; the padded input goes to scratch"
                                   : "scalar loops",
                        fused_note(e, n));
}

static void emit_kernels(Emit *e) {
    for (int i = 0; i < e->g->nodes.len; i++) {
        const Node *n = e->g->nodes.items[i];
        if (!has_code(n))
            continue;
        if (bands_here(e, n))
            simd_emit_band_pool(e, n, e->fn[n->pool->id]);
        emit_kernel_comment(e, n, schedule_of(e, n));
        emit_signature(e, n, e->fn[n->id], n->scratch != NULL);
        if (!simd_target(e->opt->target) || !emit_simd_kernel(e, n))
            emit_scalar_kernel(e, n);
        P(e, "}\n\n");
    }
}

/* Training's forward pass needs every layer as written: where inference
 * fused a layer or changed its weight layout, it gets a plain scalar kernel
 * of its own, named NAME_t. */
static bool needs_plain(const Emit *e, const Node *n) {
    if (n->op == OP_INPUT || n->op == OP_FLATTEN || n->op == OP_BN || n->op == OP_DROPOUT)
        return false;   /* training has its own kernels for these */
    if (n->slice_of || (n->op == OP_CONCAT && concat_slices(n)) || n->pool ||
        pooled_in_conv(n))
        return true;   /* slices of a concat, pools in a conv: training keeps them apart */
    return n->fused_into || n->epi || n->bn || n->pack_mr > 1 ||
           (e->opt->target != TARGET_SCALAR && (n->op == OP_CONV || n->op == OP_DENSE));
}

static void emit_plain_kernels(Emit *e) {
    e->tfn = arena_alloc(e->a, sizeof(char *) * (size_t)e->g->nodes.len);
    e->plain = true;
    for (int i = 0; i < e->g->nodes.len; i++) {
        const Node *n = e->g->nodes.items[i];
        e->tfn[i] = e->fn[i];
        if (!needs_plain(e, n))
            continue;
        e->tfn[i] = arena_printf(e->a, "%s_t", e->fn[i]);
        /* the vector dense kernel reads the canonical weights as they are;
         * a convolution's are packed for it at each step; a max pool the
         * inference fused into its convolution runs as the vector pool */
        if (simd_target(e->opt->target) &&
            (n->op == OP_DENSE || simd_packs_for_training(n) ||
             simd_vector_pool(e->opt->target, n))) {
            emit_kernel_comment(e, n, arena_printf(e->a, "%s; unfused, for training's "
                                "forward pass%s", simd_schedule(e, n),
                                n->op == OP_CONV ? " (weights packed at each step)" : ""));
            emit_signature(e, n, e->tfn[i],
                           simd_train_kernel_scratch(e->opt->target, n, e->opt->batch) > 0);
            emit_simd_kernel(e, n);
            P(e, "}\n\n");
            continue;
        }
        emit_kernel_comment(e, n, "scalar loops, unfused, canonical weights: "
                                  "for training's forward pass");
        emit_signature(e, n, e->tfn[i], scalar_scratch(n, e->opt->batch) > 0);
        emit_scalar_kernel(e, n);
        P(e, "}\n\n");
    }
    e->plain = false;
}

/* ---- helpers written into the generated file -------------------------- */

static const char exp_text[] =
"/* exp and log in double precision, so the generated code needs no libm.\n"
" * exp: x = k ln2 + r with |r| <= ln2/2; exp(r) by Taylor to r^13 (error\n"
" * below 1e-17), scaled by 2^k through the exponent bits. log: x = m 2^e\n"
" * with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(s), s = (m-1)/(m+1),\n"
" * |s| < 0.172, by its series to s^21. */\n"
"static double cnn_exp(double x) {\n"
"    union { double d; uint64_t u; } scale;\n"
"    double r, p;\n"
"    int k;\n"
"    if (x > 709.0)\n"
"        x = 709.0;\n"
"    if (x < -708.0)\n"
"        return 0.0;\n"
"    k = (int)(x * 1.4426950408889634 + (x < 0.0 ? -0.5 : 0.5));\n"
"    r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;\n"
"    p = 1.0 + r / 13.0;\n"
"    p = 1.0 + r / 12.0 * p;\n"
"    p = 1.0 + r / 11.0 * p;\n"
"    p = 1.0 + r / 10.0 * p;\n"
"    p = 1.0 + r / 9.0 * p;\n"
"    p = 1.0 + r / 8.0 * p;\n"
"    p = 1.0 + r / 7.0 * p;\n"
"    p = 1.0 + r / 6.0 * p;\n"
"    p = 1.0 + r / 5.0 * p;\n"
"    p = 1.0 + r / 4.0 * p;\n"
"    p = 1.0 + r / 3.0 * p;\n"
"    p = 1.0 + r / 2.0 * p;\n"
"    p = 1.0 + r * p;\n"
"    scale.u = (uint64_t)(k + 1023) << 52;\n"
"    return p * scale.d;\n"
"}\n\n";

static const char tanh_text[] =
"static double cnn_tanh(double x) {\n"
"    double t;\n"
"    if (x > 20.0)\n"
"        return 1.0;\n"
"    if (x < -20.0)\n"
"        return -1.0;\n"
"    t = cnn_exp(2.0 * x);\n"
"    return (t - 1.0) / (t + 1.0);\n"
"}\n\n";

static const char log_text[] =
"static double cnn_log(double x) {\n"
"    union { double d; uint64_t u; } v;\n"
"    double m, s, s2, series;\n"
"    int e;\n"
"    if (!(x > 0.0))\n"
"        return -1e300;\n"
"    v.d = x;\n"
"    e = (int)((v.u >> 52) & 0x7ff) - 1023;\n"
"    if (e == -1023) { /* subnormal: scale into the normal range first */\n"
"        v.d = x * 18014398509481984.0;\n"
"        e = (int)((v.u >> 52) & 0x7ff) - 1023 - 54;\n"
"    }\n"
"    v.u = (v.u & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;\n"
"    m = v.d;\n"
"    if (m > 1.4142135623730951) {\n"
"        m *= 0.5;\n"
"        e++;\n"
"    }\n"
"    s = (m - 1.0) / (m + 1.0);\n"
"    s2 = s * s;\n"
"    series = 1.0 / 21.0;\n"
"    series = 1.0 / 19.0 + s2 * series;\n"
"    series = 1.0 / 17.0 + s2 * series;\n"
"    series = 1.0 / 15.0 + s2 * series;\n"
"    series = 1.0 / 13.0 + s2 * series;\n"
"    series = 1.0 / 11.0 + s2 * series;\n"
"    series = 1.0 / 9.0 + s2 * series;\n"
"    series = 1.0 / 7.0 + s2 * series;\n"
"    series = 1.0 / 5.0 + s2 * series;\n"
"    series = 1.0 / 3.0 + s2 * series;\n"
"    series = 1.0 + s2 * series;\n"
"    return e * 6.93147180559945309417e-01 + 2.0 * s * series;\n"
"}\n\n";

static const char sqrt_text[] =
"static double cnn_sqrt(double x) {\n"
"    double y;\n"
"    if (!(x > 0.0))\n"
"        return 0.0;\n"
"    y = cnn_exp(0.5 * cnn_log(x));\n"
"    y = 0.5 * (y + x / y);\n"
"    return 0.5 * (y + x / y);\n"
"}\n\n";

static const char pad_index_text[] =
"/* Where padded index i of a dimension of size n reads from: -1 for a zero;\n"
" * mode 0 zeros, 1 reflect, 2 replicate, 3 circular (PyTorch's modes). */\n"
"static int cnn_pad_index(int i, int n, int mode) {\n"
"    if (i >= 0 && i < n)\n"
"        return i;\n"
"    switch (mode) {\n"
"    case 1: return i < 0 ? -i : 2 * (n - 1) - i;\n"
"    case 2: return i < 0 ? 0 : n - 1;\n"
"    case 3: return i < 0 ? i + n : i - n;\n"
"    default: return -1;\n"
"    }\n"
"}\n\n";

/* cnn_pad's row with zero padding: zeros before column a, then src up to
 * column b, then zeros to wp. The padded copies of the input are a few
 * percent of a ResNet, so the vector targets have rows of their own. */
static const char pad_row_text[] =
"/* Row `row` of wp floats: zeros, src[0 .. b-a) from column a, zeros from b. */\n"
"static inline void cnn_pad_row(float *row, const float *src, int a, int b, int wp) {\n"
"    for (int j = 0; j < a; j++)\n"
"        row[j] = 0.0f;\n"
"    for (int j = a; j < b; j++)\n"
"        row[j] = src[j - a];\n"
"    for (int j = b; j < wp; j++)\n"
"        row[j] = 0.0f;\n"
"}\n\n";

/* The vector targets build each row from whole vectors: a masked load
 * takes the input's columns [a, b) and gives zeros elsewhere, and one
 * store writes the vector. Rows of ten to thirty columns (7x7 to 28x28
 * planes) went lane by lane before: the MNIST network's 32x14x14 copy
 * took 3.9 us, now 1.6-1.9. The load starts `a` floats before the row
 * of the input, outside it: the address is formed as an integer, and the
 * masked-off lanes are not read. AVX2 has no cheap masked store: its last
 * vector ends at wp, overlapping the one before (wp >= 8). */
static const char pad_row_avx2_text[] =
"/* Row `row` of wp floats: zeros, src[0 .. b-a) from column a, zeros from b;\n"
" * eight at a time, src's columns by masked loads. */\n"
"static inline CNN_SIMD void cnn_pad_row(float *row, const float *src, int a, int b, int wp) {\n"
"    if (wp < 8) {\n"
"        for (int j = 0; j < wp; j++)\n"
"            row[j] = j >= a && j < b ? src[j - a] : 0.0f;\n"
"        return;\n"
"    }\n"
"    const uintptr_t at = (uintptr_t)src - (uintptr_t)a * sizeof(float); /* column 0 */\n"
"    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);\n"
"    const __m256i before = _mm256_set1_epi32(a - 1), end = _mm256_set1_epi32(b);\n"
"    for (int j = 0;; j += 8) {\n"
"        if (j > wp - 8)\n"
"            j = wp - 8;\n"
"        const __m256i col = _mm256_add_epi32(_mm256_set1_epi32(j), lane);\n"
"        const __m256i in = _mm256_and_si256(_mm256_cmpgt_epi32(col, before), _mm256_cmpgt_epi32(end, col));\n"
"        const float *from = (const float *)(at + (uintptr_t)j * sizeof(float));\n"
"        _mm256_storeu_ps(row + j, _mm256_maskload_ps(from, in));\n"
"        if (j == wp - 8)\n"
"            break;\n"
"    }\n"
"}\n\n";

static const char pad_row_avx512_text[] =
"/* Row `row` of wp floats: zeros, src[0 .. b-a) from column a, zeros from b;\n"
" * sixteen at a time, src's columns by masked loads. */\n"
"static inline CNN_SIMD void cnn_pad_row(float *row, const float *src, int a, int b, int wp) {\n"
"    const uintptr_t at = (uintptr_t)src - (uintptr_t)a * sizeof(float); /* column 0 */\n"
"    for (int j = 0; j < wp; j += 16) {\n"
"        const int lo = a - j < 0 ? 0 : a - j > 16 ? 16 : a - j;\n"
"        const int hi = b - j < 0 ? 0 : b - j > 16 ? 16 : b - j;\n"
"        const int end = wp - j > 16 ? 16 : wp - j;\n"
"        const __mmask16 in = (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));\n"
"        const float *from = (const float *)(at + (uintptr_t)j * sizeof(float));\n"
"        _mm512_mask_storeu_ps(row + j, (__mmask16)((1u << end) - 1u), _mm512_maskz_loadu_ps(in, from));\n"
"    }\n"
"}\n\n";

/* cnn_pad, after "static void " or "static CNN_SIMD void " (so that the
 * vector cnn_pad_row inlines into it). */
static const char pad_text[] =
"cnn_pad(const float *x, float *xp, int c, int h, int w, int top,\n"
"                    int left, int hp, int wp, int mode) {\n"
"    if (mode == 0) { /* zeros: each row a border, a copy, a border */\n"
"        int a = left < wp ? left : wp, b = left + w < wp ? left + w : wp;\n"
"        for (int ci = 0; ci < c; ci++)\n"
"            for (int i = 0; i < hp; i++) {\n"
"                float *row = xp + ((ptrdiff_t)ci * hp + i) * wp;\n"
"                if (i - top < 0 || i - top >= h || b <= a)\n"
"                    cnn_pad_row(row, x, 0, 0, wp);\n"
"                else /* here a = left: the input row starts at column a */\n"
"                    cnn_pad_row(row, x + ((ptrdiff_t)ci * h + i - top) * w, a, b, wp);\n"
"            }\n"
"        return;\n"
"    }\n"
"    for (int ci = 0; ci < c; ci++)\n"
"        for (int i = 0; i < hp; i++) {\n"
"            int si = cnn_pad_index(i - top, h, mode);\n"
"            for (int j = 0; j < wp; j++) {\n"
"                int sj = cnn_pad_index(j - left, w, mode);\n"
"                xp[(ci * hp + i) * wp + j] =\n"
"                    si < 0 || sj < 0 ? 0.0f : x[(ci * h + si) * w + sj];\n"
"            }\n"
"        }\n"
"}\n\n";

static const char unpad_text[] =
"/* The gradient of cnn_pad: each padded cell adds into the cell it was\n"
" * copied from. add: 0 to overwrite dx, 1 to add to it. */\n"
"static void cnn_unpad(const float *dxp, float *dx, int c, int h, int w, int top,\n"
"                      int left, int hp, int wp, int mode, int add) {\n"
"    if (!add)\n"
"        for (int i = 0; i < c * h * w; i++)\n"
"            dx[i] = 0.0f;\n"
"    for (int ci = 0; ci < c; ci++)\n"
"        for (int i = 0; i < hp; i++) {\n"
"            int si = cnn_pad_index(i - top, h, mode);\n"
"            if (si < 0)\n"
"                continue;\n"
"            for (int j = 0; j < wp; j++) {\n"
"                int sj = cnn_pad_index(j - left, w, mode);\n"
"                if (sj >= 0)\n"
"                    dx[(ci * h + si) * w + sj] += dxp[(ci * hp + i) * wp + j];\n"
"            }\n"
"        }\n"
"}\n\n";

static const char uniform_text[] =
"/* A uniform number in [0, 1) from (seed, i): splitmix64, so a dropout mask\n"
" * depends on the seed alone, not on the order it is computed in. */\n"
"static double cnn_uniform(unsigned long long seed, unsigned long long i) {\n"
"    unsigned long long z = seed + 0x9E3779B97F4A7C15ULL * (i + 1);\n"
"    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;\n"
"    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;\n"
"    z ^= z >> 31;\n"
"    return (double)(z >> 11) * (1.0 / 9007199254740992.0);\n"
"}\n\n";

static const char dot_text[] =
"/* A dot product in eight independent lanes: compilers vectorise it\n"
" * without having to reorder one running sum (which they may not). */\n"
"static float cnn_dot(const float *a, const float *b, int n) {\n"
"    float lane[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};\n"
"    float sum = 0.0f;\n"
"    int i = 0;\n"
"    for (; i + 8 <= n; i += 8)\n"
"        for (int l = 0; l < 8; l++)\n"
"            lane[l] += a[i + l] * b[i + l];\n"
"    for (; i < n; i++)\n"
"        sum += a[i] * b[i];\n"
"    return sum + ((lane[0] + lane[1]) + (lane[2] + lane[3])) +\n"
"           ((lane[4] + lane[5]) + (lane[6] + lane[7]));\n"
"}\n\n";

static const char hsum_text[] =
"/* The sum of a vector's eight lanes. */\n"
"static CNN_SIMD float cnn_hsum(__m256 v) {\n"
"    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));\n"
"    s = _mm_add_ps(s, _mm_movehl_ps(s, s));\n"
"    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));\n"
"    return _mm_cvtss_f32(s);\n"
"}\n\n";

static const char hsum512_text[] =
"/* The sum of a vector's sixteen lanes. */\n"
"static CNN_SIMD float cnn_hsum512(__m512 v) {\n"
"    return _mm512_reduce_add_ps(v);\n"
"}\n\n";

/* The vector shuffles of Winograd's transforms and of stride-2 depthwise
 * and pooling loads. cnn_unzip: the even lanes of a then b, and the odd ones; cnn_zip,
 * its inverse: a and b interleaved, the first half of each into lo, the
 * second into hi. */
static const char unzip_text[] =
"/* The even lanes of a then of b, and the odd ones. */\n"
"static CNN_SIMD void cnn_unzip(__m256 a, __m256 b, __m256 *even, __m256 *odd) {\n"
"    const __m256 e = _mm256_shuffle_ps(a, b, 0x88), o = _mm256_shuffle_ps(a, b, 0xdd);\n"
"    *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xd8));\n"
"    *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xd8));\n"
"}\n\n";

static const char zip_text[] =
"/* a and b interleaved: lanes 0..3 of each into lo, 4..7 into hi. */\n"
"static CNN_SIMD void cnn_zip(__m256 a, __m256 b, __m256 *lo, __m256 *hi) {\n"
"    const __m256 l = _mm256_unpacklo_ps(a, b), h = _mm256_unpackhi_ps(a, b);\n"
"    *lo = _mm256_permute2f128_ps(l, h, 0x20);\n"
"    *hi = _mm256_permute2f128_ps(l, h, 0x31);\n"
"}\n\n";

static const char unzip512_text[] =
"/* The even lanes of a then of b, and the odd ones. */\n"
"static CNN_SIMD void cnn_unzip512(__m512 a, __m512 b, __m512 *even, __m512 *odd) {\n"
"    const __m512i e = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);\n"
"    const __m512i o = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);\n"
"    *even = _mm512_permutex2var_ps(a, e, b);\n"
"    *odd = _mm512_permutex2var_ps(a, o, b);\n"
"}\n\n";

static const char zip512_text[] =
"/* a and b interleaved: lanes 0..7 of each into lo, 8..15 into hi. */\n"
"static CNN_SIMD void cnn_zip512(__m512 a, __m512 b, __m512 *lo, __m512 *hi) {\n"
"    const __m512i l = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);\n"
"    const __m512i h = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);\n"
"    *lo = _mm512_permutex2var_ps(a, l, b);\n"
"    *hi = _mm512_permutex2var_ps(a, h, b);\n"
"}\n\n";

static const char load2x8_text[] =
"/* Eight floats from p, then eight from q: Winograd's tiles of four rows. */\n"
"static CNN_SIMD __m512 cnn_load2x8(const float *p, const float *q) {\n"
"    const __m512d lo = _mm512_castps_pd(_mm512_castps256_ps512(_mm256_loadu_ps(p)));\n"
"    return _mm512_castpd_ps(_mm512_insertf64x4(lo, _mm256_castps_pd(_mm256_loadu_ps(q)), 1));\n"
"}\n\n";

static const char pool_text[] =
"/* Max pooling's step in each lane, as the scalar kernels take it: v when it\n"
" * is greater or NaN, else best, so a NaN wins and of equal values (+0 and\n"
" * -0) the first stays. max_ps(v, best) is v > best ? v : best. */\n"
"static CNN_SIMD __m256 cnn_vmax(__m256 best, __m256 v) {\n"
"    return _mm256_blendv_ps(_mm256_max_ps(v, best), v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));\n"
"}\n\n";

static const char pool512_text[] =
"/* cnn_vmax on sixteen lanes. */\n"
"static CNN_SIMD __m512 cnn_vmax512(__m512 best, __m512 v) {\n"
"    return _mm512_mask_mov_ps(_mm512_max_ps(v, best), _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v);\n"
"}\n\n";

static const char dot4x3_text[] =
"/* g[k * gs + r] += the dot product of row k of d with row r of c, n long,\n"
" * for four rows of d and three of c (rows n apart): twelve accumulators,\n"
" * seven loads for twelve FMAs. The weight gradient of a convolution. */\n"
"static CNN_SIMD void cnn_dot4x3(const float *d, const float *c, int n, float *g, int gs) {\n"
"    __m256 a00 = _mm256_setzero_ps(), a01 = _mm256_setzero_ps(), a02 = _mm256_setzero_ps();\n"
"    __m256 a10 = _mm256_setzero_ps(), a11 = _mm256_setzero_ps(), a12 = _mm256_setzero_ps();\n"
"    __m256 a20 = _mm256_setzero_ps(), a21 = _mm256_setzero_ps(), a22 = _mm256_setzero_ps();\n"
"    __m256 a30 = _mm256_setzero_ps(), a31 = _mm256_setzero_ps(), a32 = _mm256_setzero_ps();\n"
"    int p = 0;\n"
"    for (; p + 8 <= n; p += 8) {\n"
"        const __m256 c0 = _mm256_loadu_ps(c + p), c1 = _mm256_loadu_ps(c + n + p),\n"
"                     c2 = _mm256_loadu_ps(c + 2 * n + p);\n"
"        __m256 dk;\n"
"        dk = _mm256_loadu_ps(d + 0 * n + p);\n"
"        a00 = _mm256_fmadd_ps(dk, c0, a00);\n"
"        a01 = _mm256_fmadd_ps(dk, c1, a01);\n"
"        a02 = _mm256_fmadd_ps(dk, c2, a02);\n"
"        dk = _mm256_loadu_ps(d + 1 * n + p);\n"
"        a10 = _mm256_fmadd_ps(dk, c0, a10);\n"
"        a11 = _mm256_fmadd_ps(dk, c1, a11);\n"
"        a12 = _mm256_fmadd_ps(dk, c2, a12);\n"
"        dk = _mm256_loadu_ps(d + 2 * n + p);\n"
"        a20 = _mm256_fmadd_ps(dk, c0, a20);\n"
"        a21 = _mm256_fmadd_ps(dk, c1, a21);\n"
"        a22 = _mm256_fmadd_ps(dk, c2, a22);\n"
"        dk = _mm256_loadu_ps(d + 3 * n + p);\n"
"        a30 = _mm256_fmadd_ps(dk, c0, a30);\n"
"        a31 = _mm256_fmadd_ps(dk, c1, a31);\n"
"        a32 = _mm256_fmadd_ps(dk, c2, a32);\n"
"    }\n"
"    {\n"
"        float s[4][3];\n"
"        s[0][0] = cnn_hsum(a00);\n"
"        s[0][1] = cnn_hsum(a01);\n"
"        s[0][2] = cnn_hsum(a02);\n"
"        s[1][0] = cnn_hsum(a10);\n"
"        s[1][1] = cnn_hsum(a11);\n"
"        s[1][2] = cnn_hsum(a12);\n"
"        s[2][0] = cnn_hsum(a20);\n"
"        s[2][1] = cnn_hsum(a21);\n"
"        s[2][2] = cnn_hsum(a22);\n"
"        s[3][0] = cnn_hsum(a30);\n"
"        s[3][1] = cnn_hsum(a31);\n"
"        s[3][2] = cnn_hsum(a32);\n"
"        for (; p < n; p++)\n"
"            for (int k = 0; k < 4; k++)\n"
"                for (int r = 0; r < 3; r++)\n"
"                    s[k][r] += d[k * n + p] * c[r * n + p];\n"
"        for (int k = 0; k < 4; k++)\n"
"            for (int r = 0; r < 3; r++)\n"
"                g[k * gs + r] += s[k][r];\n"
"    }\n"
"}\n"
"\n";

static const char copy_text[] =
"static void cnn_copy(const float *src, float *dst, ptrdiff_t n) {\n"
"    for (ptrdiff_t i = 0; i < n; i++)\n"
"        dst[i] = src[i];\n"
"}\n\n";

static const char pack_bn_text[] =
"/* Batch norm for inference: y = (x - mean) / sqrt(var + eps) * gamma + beta\n"
" * becomes y = x * scale + shift. pack.c does the same arithmetic. */\n"
"static void cnn_pack_bn(const float *p, float *out, int c, double eps) {\n"
"    for (int k = 0; k < c; k++) {\n"
"        float scale = (float)(p[k] / cnn_sqrt((double)p[3 * c + k] + eps));\n"
"        out[k] = scale;\n"
"        out[c + k] = (float)(p[c + k] - (double)p[2 * c + k] * scale);\n"
"    }\n"
"}\n\n";

static const char pack_conv_text[] =
"/* A convolution's or dense layer's weights [k][per] and bias (NULL: none)\n"
" * to the order its kernel reads: per group, output channels in blocks of\n"
" * mr, [block][per][mr], zeros past the last channel; then one bias per\n"
" * padded channel. bn (NULL: none) holds gamma, beta, mean, var of a batch\n"
" * norm folded in: scale = gamma / sqrt(var + eps) multiplies weights and\n"
" * bias, beta - mean * scale is added. pack.c does the same arithmetic. */\n"
"static void cnn_pack_conv(const float *w, const float *bias, const float *bn,\n"
"                          double eps, float *out, int k, int per, int groups,\n"
"                          int mr) {\n"
"    int kg = k / groups, blocks = (kg + mr - 1) / mr;\n"
"    float *ob = out + (ptrdiff_t)groups * blocks * mr * per;\n"
"    for (int g = 0; g < groups; g++)\n"
"        for (int b = 0; b < blocks; b++)\n"
"            for (int i = 0; i < mr; i++) {\n"
"                int oc = b * mr + i, ch = g * kg + oc;\n"
"                ptrdiff_t at = (ptrdiff_t)(g * blocks + b) * mr * per;\n"
"                double scale = 1.0, shift = 0.0;\n"
"                if (oc < kg && bn) {\n"
"                    scale = (double)(float)(bn[ch] / cnn_sqrt((double)bn[3 * k + ch] + eps));\n"
"                    shift = bn[k + ch] - (double)bn[2 * k + ch] * scale;\n"
"                }\n"
"                for (int j = 0; j < per; j++)\n"
"                    out[at + (ptrdiff_t)j * mr + i] =\n"
"                        oc < kg ? (float)(w[(ptrdiff_t)ch * per + j] * scale) : 0.0f;\n"
"                ob[(g * blocks + b) * mr + i] =\n"
"                    oc < kg ? (float)((bias ? bias[ch] : 0.0) * scale + shift) : 0.0f;\n"
"            }\n"
"}\n\n";

static const char pack_wino_text[] =
"/* A 3x3 convolution's weights [k][c][3][3] and bias (NULL: none), batch\n"
" * norm bn (NULL: none) folded in as cnn_pack_conv folds it, to the order\n"
" * its Winograd kernel reads: U = G g G^T for each kernel g, with\n"
" * G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1], as [16][k in blocks of mr]\n"
" * [c][mr] (zeros past the last channel); then the k biases. pack.c does\n"
" * the same arithmetic. */\n"
"static void cnn_pack_wino(const float *w, const float *bias, const float *bn,\n"
"                          double eps, float *out, int k, int c, int mr) {\n"
"    int blocks = (k + mr - 1) / mr;\n"
"    float *ob = out + (ptrdiff_t)16 * blocks * mr * c;\n"
"    for (int oc = 0; oc < blocks * mr; oc++) {\n"
"        double scale = 1.0, shift = 0.0;\n"
"        if (oc < k && bn) {\n"
"            scale = (double)(float)(bn[oc] / cnn_sqrt((double)bn[3 * k + oc] + eps));\n"
"            shift = bn[k + oc] - (double)bn[2 * k + oc] * scale;\n"
"        }\n"
"        for (int ci = 0; ci < c; ci++) {\n"
"            double g[3][3], t[4][3], u[4][4];\n"
"            for (int i = 0; i < 9; i++)\n"
"                g[i / 3][i % 3] =\n"
"                    oc < k ? (float)(w[((ptrdiff_t)oc * c + ci) * 9 + i] * scale) : 0.0f;\n"
"            for (int j = 0; j < 3; j++) {\n"
"                t[0][j] = g[0][j];\n"
"                t[1][j] = (g[0][j] + g[1][j] + g[2][j]) * 0.5;\n"
"                t[2][j] = (g[0][j] - g[1][j] + g[2][j]) * 0.5;\n"
"                t[3][j] = g[2][j];\n"
"            }\n"
"            for (int i = 0; i < 4; i++) {\n"
"                u[i][0] = t[i][0];\n"
"                u[i][1] = (t[i][0] + t[i][1] + t[i][2]) * 0.5;\n"
"                u[i][2] = (t[i][0] - t[i][1] + t[i][2]) * 0.5;\n"
"                u[i][3] = t[i][2];\n"
"            }\n"
"            for (int xi = 0; xi < 16; xi++)\n"
"                out[(((ptrdiff_t)xi * blocks + oc / mr) * c + ci) * mr + oc % mr] =\n"
"                    (float)u[xi / 4][xi % 4];\n"
"        }\n"
"        if (oc < k)\n"
"            ob[oc] = (float)((bias ? bias[oc] : 0.0) * scale + shift);\n"
"    }\n"
"}\n\n";

static const char pack_wino4_text[] =
"/* The same for F(4x4, 3x3): U = G g G^T with G = [1/4 0 0; -1/6 -1/6 -1/6;\n"
" * -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1], as [36][k in blocks\n"
" * of mr][c][mr], then the k biases. The sums are scaled last, so no\n"
" * product can be contracted into an FMA: pack.c gets the same bits. */\n"
"static void cnn_wino4_g(const double *x, int s, double *out, int os) {\n"
"    out[0] = x[0] * 0.25;\n"
"    out[os] = -(x[0] + x[s] + x[2 * s]) / 6.0;\n"
"    out[2 * os] = -(x[0] - x[s] + x[2 * s]) / 6.0;\n"
"    out[3 * os] = (x[0] + 2.0 * x[s] + 4.0 * x[2 * s]) / 24.0;\n"
"    out[4 * os] = (x[0] - 2.0 * x[s] + 4.0 * x[2 * s]) / 24.0;\n"
"    out[5 * os] = x[2 * s];\n"
"}\n\n"
"static void cnn_pack_wino4(const float *w, const float *bias, const float *bn,\n"
"                           double eps, float *out, int k, int c, int mr) {\n"
"    int blocks = (k + mr - 1) / mr;\n"
"    float *ob = out + (ptrdiff_t)36 * blocks * mr * c;\n"
"    for (int oc = 0; oc < blocks * mr; oc++) {\n"
"        double scale = 1.0, shift = 0.0;\n"
"        if (oc < k && bn) {\n"
"            scale = (double)(float)(bn[oc] / cnn_sqrt((double)bn[3 * k + oc] + eps));\n"
"            shift = bn[k + oc] - (double)bn[2 * k + oc] * scale;\n"
"        }\n"
"        for (int ci = 0; ci < c; ci++) {\n"
"            double g[3][3], t[6][3], u[6][6];\n"
"            for (int i = 0; i < 9; i++)\n"
"                g[i / 3][i % 3] =\n"
"                    oc < k ? (float)(w[((ptrdiff_t)oc * c + ci) * 9 + i] * scale) : 0.0f;\n"
"            for (int j = 0; j < 3; j++)\n"
"                cnn_wino4_g(&g[0][j], 3, &t[0][j], 3);\n"
"            for (int i = 0; i < 6; i++)\n"
"                cnn_wino4_g(t[i], 1, u[i], 1);\n"
"            for (int xi = 0; xi < 36; xi++)\n"
"                out[(((ptrdiff_t)xi * blocks + oc / mr) * c + ci) * mr + oc % mr] =\n"
"                    (float)u[xi / 6][xi % 6];\n"
"        }\n"
"        if (oc < k)\n"
"            ob[oc] = (float)((bias ? bias[oc] : 0.0) * scale + shift);\n"
"    }\n"
"}\n\n";

/* ---- pack, embed, forward ------------------------------------------------ */

static bool any_pack_op(const Packing *pk, PackKind kind) {
    for (int i = 0; i < pk->ops.len; i++)
        if (((PackOp *)pk->ops.items[i])->kind == kind)
            return true;
    return false;
}

/* Whether some PACK_WINO op is for output tiles of side m. */
static bool any_wino_op(const Packing *pk, int m) {
    for (int i = 0; i < pk->ops.len; i++) {
        const PackOp *op = pk->ops.items[i];
        if (op->kind == PACK_WINO && op->m == m)
            return true;
    }
    return false;
}

static void emit_pack(FILE *o, const Graph *g, const Packing *pk) {
    fprintf(o, "/* Canonical parameters (DSL.md order, %lld floats) to the packed layout\n"
               " * the kernels read (%lld floats). */\n",
            ll(g->param_count), ll(pk->count));
    fprintf(o, "void %s_pack(const float *params, float *packed) {\n", g->name);
    if (pk->ops.len == 0)
        fprintf(o, "    (void)params;\n    (void)packed;\n");
    for (int i = 0; i < pk->ops.len; i++) {
        const PackOp *op = pk->ops.items[i];
        if (op->kind == PACK_COPY) {
            fprintf(o, "    cnn_copy(params + %lld, packed + %lld, %lld); /* %s */\n",
                    ll(op->src), ll(op->dst), ll(op->count), op->node->name);
        } else if (op->kind == PACK_WINO) {
            const char *bias = op->bias ? "params + " : "NULL";
            fprintf(o, "    cnn_pack_wino%s(params + %lld, %s", op->m == 4 ? "4" : "",
                    ll(op->src), bias);
            if (op->bias)
                fprintf(o, "%lld", ll(op->src + op->k * op->per * 9));
            if (op->bn_src >= 0)
                fprintf(o, ", params + %lld, %.17g", ll(op->bn_src), op->eps);
            else
                fprintf(o, ", NULL, 0.0");
            fprintf(o, ", packed + %lld, %lld, %lld, %d); /* %s%s%s: Winograd%s */\n",
                    ll(op->dst), ll(op->k), ll(op->per), op->mr, op->node->name,
                    op->node->bn ? " + " : "", op->node->bn ? op->node->bn->name : "",
                    op->m == 4 ? " F(4x4)" : "");
        } else if (op->kind == PACK_CONV) {
            const char *bias = op->bias ? "params + " : "NULL";
            fprintf(o, "    cnn_pack_conv(params + %lld, %s", ll(op->src), bias);
            if (op->bias)
                fprintf(o, "%lld", ll(op->src + op->k * op->per));
            if (op->bn_src >= 0)
                fprintf(o, ", params + %lld, %.17g", ll(op->bn_src), op->eps);
            else
                fprintf(o, ", NULL, 0.0");
            fprintf(o, ", packed + %lld, %lld, %lld, %lld, %d); /* %s%s%s */\n",
                    ll(op->dst), ll(op->k), ll(op->per), ll(op->groups), op->mr,
                    op->node->name, op->node->bn ? " + " : "",
                    op->node->bn ? op->node->bn->name : "");
        } else {
            fprintf(o, "    cnn_pack_bn(params + %lld, packed + %lld, %lld, %.17g); /* %s */\n",
                    ll(op->src), ll(op->dst), ll(op->count), op->eps, op->node->name);
        }
    }
    fprintf(o, "}\n\n");
}

static void emit_embedded(FILE *o, const Graph *g, const Packing *pk, const float *packed) {
    fprintf(o, "/* The packed weights, embedded (--embed). */\n");
    fprintf(o, "static const float %s_weights[%lld] = {\n", g->name,
            ll(pk->count > 0 ? pk->count : 1));
    for (int64_t i = 0; i < pk->count; i++) {
        char buf[48];
        snprintf(buf, sizeof buf, "%.9g", (double)packed[i]);
        bool point = strpbrk(buf, ".e") != NULL;
        fprintf(o, "%s%s%sf,", i % 6 == 0 ? "    " : " ", buf, point ? "" : ".0");
        if (i % 6 == 5 || i + 1 == pk->count)
            fputc('\n', o);
    }
    if (pk->count == 0)
        fprintf(o, "    0.0f\n");
    fprintf(o, "};\n\n");
}

/* The packed weights for --embed, or NULL with an error when one is not a
 * finite number (it could not be written as a C constant): a NaN or
 * infinity in the file, or a batch norm variance below -eps. */
static float *packed_for_embed(const Packing *pk, const float *weights, Arena *a, Diags *d) {
    float *packed = arena_alloc(a, sizeof(float) * (size_t)(pk->count + 1));
    pack_apply(pk, weights, packed);
    for (int i = 0; i < pk->ops.len; i++) {
        const PackOp *op = pk->ops.items[i];
        int64_t end = i + 1 < pk->ops.len ? ((const PackOp *)pk->ops.items[i + 1])->dst
                                          : pk->count;
        for (int64_t k = op->dst; k < end; k++)
            if (!isfinite(packed[k])) {
                diag_error(d, op->node->loc, "--embed: the weights of '%s' are not all "
                           "finite once packed (a NaN or infinity in the file, or a batch "
                           "norm variance below zero?)", op->node->name);
                return NULL;
            }
    }
    return packed;
}

static void emit_io_params(FILE *o, const Graph *g) {
    for (int i = 0; i < g->inputs.len; i++)
        fprintf(o, "const float *in_%s, ", ((Node *)g->inputs.items[i])->name);
    for (int i = 0; i < g->outputs.len; i++)
        fprintf(o, "float *out_%s, ", (const char *)g->output_names.items[i]);
}

/* The slot of the chain workspace that buffer x lies in that the thread
 * running the chain's calls uses, as floats to add ("" when the workspace
 * has one slot). */
static const char *slot_of(Emit *e, const Buffer *x) {
    if (x->ws->slots == 1)
        return "";
    return arena_printf(e->a, " + (ptrdiff_t)slot * %lld", ll(x->ws->slot_bytes / 4));
}

/* storage(e, n) in a chain's loop over samples (chain.c): at sample b's
 * part, or in the thread's slot when its buffer is the chain's own. */
static const char *sample_storage(Emit *e, const Node *n, bool in_chain) {
    const char *at = storage(e, n);
    const Node *home = n->home;
    if (!in_chain)
        return at;
    if (home->buf && home->buf->one_sample)
        return arena_printf(e->a, "%s%s", at, slot_of(e, home->buf));
    return arena_printf(e->a, "%s + (ptrdiff_t)b * %lld", at, ll(shape_elems(home->shape)));
}

static void emit_call(Emit *e, FILE *o, const Node *n) {
    bool in_chain = n->chain > 0;
    fprintf(o, "%s%s(", in_chain ? "        " : "    ", e->fn[n->id]);
    if (n->op == OP_INPUT)
        fprintf(o, "%s, ", storage(e, n));
    for (int k = 0; k < n->inputs.len; k++)
        if (!written_in_place(e, n, k))
            fprintf(o, "%s, ", sample_storage(e, n->inputs.items[k], in_chain));
    for (int k = 0; n->epi && k < n->epi->n; k++)
        if (n->epi->step[k].kind == EPI_ADD)
            fprintf(o, "%s, ", sample_storage(e, n->epi->step[k].operand, in_chain));
    /* an input that is also an output is copied into the output buffer */
    fprintf(o, "%s, ", n->op == OP_INPUT
                       ? arena_printf(e->a, "out_%s", (const char *)e->g->output_names.items[n->io])
                       : sample_storage(e, n, in_chain));
    if (n->nparams)
        fprintf(o, "packed + %lld, ", ll(n->packed));
    if (n->scratch)
        fprintf(o, "A + %lld%s, ", ll(n->scratch->offset / 4),
                n->scratch->ws ? slot_of(e, n->scratch) : "");
    if (n->state)
        fprintf(o, "A + %lld, ", ll(n->state->offset / 4));
    fprintf(o, "%s);\n", in_chain ? "1" : "batch");
    /* a chain ticks once, after its loop (emit_chain): inside, its
     * members run a sample at a time, on several threads with OpenMP */
    if (e->opt->profile && !in_chain)
        fprintf(o, "    cnn_tick(%d);\n", n->id);
}

/* The loop of chain c over the samples, with what it is for, its calls
 * and its end. With OpenMP, several samples go to the threads whole, one
 * at a time as each is free; each thread works in its own slot of the
 * chain's workspace (there are as many as samples, and no more threads
 * than samples), which stays in its cache from one sample to the next.
 * The kernels see they are inside a parallel region and run on their
 * thread alone. A lone sample opens no region (the kernels share its
 * loops), so the calls are written twice. */
static void emit_chain(Emit *e, FILE *o, int c) {
    const Graph *g = e->g;
    int members = 0, last = 0;
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *m = g->nodes.items[i];
        if (m->chain == c && has_code(m)) {
            members++;
            last = m->id;
        }
    }
    fprintf(o, "    /* %d layers a sample at a time (chain.c): what they pass each other\n"
               "     * stays in cache and takes one sample's bytes of the arena%s */\n",
            members, e->opt->openmp ? ",\n     * a slot of them for each sample" : "");
    for (int twice = 0; twice < (e->opt->openmp ? 2 : 1); twice++) {
        if (e->opt->openmp && twice == 0)
            fprintf(o, "    if (batch == 1) {\n        const int b = 0, slot = 0;\n"
                       "        (void)slot;\n");
        else if (e->opt->openmp)
            fprintf(o, "    } else {\n"
                       "    const int threads = omp_get_max_threads();\n"
                       "    #pragma omp parallel num_threads(threads < batch ? threads : batch)\n"
                       "    {\n"
                       "    const int slot = omp_get_thread_num();\n"
                       "    (void)slot;\n"
                       "    #pragma omp for schedule(dynamic)\n"
                       "    for (int b = 0; b < batch; b++) {\n");
        else
            fprintf(o, "    for (int b = 0; b < batch; b++) {\n");
        for (int i = 0; i < g->nodes.len; i++) {
            const Node *n = g->nodes.items[i];
            if (n->chain == c && has_code(n))
                emit_call(e, o, n);
        }
    }
    fprintf(o, e->opt->openmp ? "    }\n    }\n    }\n" : "    }\n");
    if (e->opt->profile)   /* the whole chain's time, on its last member */
        fprintf(o, "    cnn_tick(%d);\n", last);
}

static void emit_forward(Emit *e, FILE *o) {
    const Graph *g = e->g;
    fprintf(o, "/* Inference on `batch` samples (1..%s_BATCH), NCHW in and out. Returns 0,\n"
               " * or 1 for a batch out of range, 2 for an arena that is not 64-byte\n"
               " * aligned; then nothing is touched. */\n", g->name);
    fprintf(o, "int %s_forward(const float *packed, ", g->name);
    emit_io_params(o, g);
    fprintf(o, "int batch, void *arena) {\n");
    fprintf(o, "    float *A = (float *)arena; /* offsets count floats */\n");
    fprintf(o, "    if (batch < 1 || batch > %s_BATCH)\n        return 1;\n", g->name);
    fprintf(o, "    if ((uintptr_t)arena %% 64 != 0 || (%s_ARENA_BYTES > 0 && !arena))\n"
               "        return 2;\n", g->name);
    if (e->opt->embed)
        fprintf(o, "    if (!packed)\n        packed = %s_weights;\n", g->name);
    bool uses_a = e->plan->buffers.len > 0, uses_packed = false;
    for (int i = 0; i < g->nodes.len; i++)
        uses_packed |= ((Node *)g->nodes.items[i])->nparams > 0;
    if (!uses_a)
        fprintf(o, "    (void)A;\n");
    if (!uses_packed)
        fprintf(o, "    (void)packed;\n");
    for (int i = 0; i < g->inputs.len; i++) {   /* declared, never read (a warning) */
        const Node *in = g->inputs.items[i];
        if (in->users == 0 && !in->is_output)
            fprintf(o, "    (void)in_%s;\n", in->name);
    }
    int chain = 0;   /* the last chain written */
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        if (!has_code(n))
            continue;
        if (n->chain && n->chain != chain)
            emit_chain(e, o, n->chain);
        chain = n->chain;
        if (!n->chain)
            emit_call(e, o, n);
    }
    fprintf(o, "    return 0;\n}\n");
}

/* ---- the header -------------------------------------------------------------- */

/* Does some kernel keep state in the arena between calls? */
static bool keeps_state(const Graph *g) {
    for (int i = 0; i < g->nodes.len; i++)
        if (((const Node *)g->nodes.items[i])->state)
            return true;
    return false;
}

static void emit_header(Emit *e, FILE *o) {
    const Graph *g = e->g;
    const char *N = g->name;
    fprintf(o, "/* %s.h — generated by cnnc %s from %s (network %s); do not edit.\n",
            N, CNNC_VERSION, e->source, N);
    fprintf(o, " * Sizes are per sample, in floats; the arena size is in bytes. */\n");
    fprintf(o, "#ifndef %s_H_INCLUDED\n#define %s_H_INCLUDED\n\n", N, N);
    if (e->opt->train)
        fprintf(o, "#include \"cnnrt.h\"\n\n");
    fprintf(o, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    const Node *in0 = g->inputs.items[0], *out0 = g->outputs.items[0];
    fprintf(o, "#define %s_BATCH %d\n", N, e->opt->batch);
    fprintf(o, "#define %s_INPUT_SIZE %lld\n", N, ll(shape_elems(in0->shape)));
    fprintf(o, "#define %s_OUTPUT_SIZE %lld\n", N, ll(shape_elems(out0->shape)));
    for (int i = 0; i < g->inputs.len; i++) {
        const Node *n = g->inputs.items[i];
        fprintf(o, "#define %s_IN_%s_SIZE %lld\n", N, n->name, ll(shape_elems(n->shape)));
    }
    for (int i = 0; i < g->outputs.len; i++) {
        const Node *n = g->outputs.items[i];
        fprintf(o, "#define %s_OUT_%s_SIZE %lld\n", N,
                (const char *)g->output_names.items[i], ll(shape_elems(n->shape)));
    }
    fprintf(o, "#define %s_PARAM_COUNT %lld\n", N, ll(g->param_count));
    fprintf(o, "#define %s_PACKED_COUNT %lld\n", N, ll(e->packing->count));
    fprintf(o, "#define %s_ARENA_BYTES %lld\n\n", N, ll(e->plan->arena_bytes));
    fprintf(o, "/* Canonical parameters (the order of DSL.md, as in a --weights file) to\n"
               " * the layout the kernels read: params holds %s_PARAM_COUNT floats,\n"
               " * packed %s_PACKED_COUNT. */\n", N, N);
    fprintf(o, "void %s_pack(const float *params, float *packed);\n\n", N);
    fprintf(o, "/* Runs the network on `batch` samples, 1..%s_BATCH. `arena` is\n"
               " * %s_ARENA_BYTES bytes, 64-byte aligned, owned by the caller.%s%s */\n",
            N, N, e->opt->embed ? "\n * `packed` may be NULL: the weights are embedded." : "",
            keeps_state(g) ? "\n * A few of its bytes pass from one call to the next: they steer the\n"
                             " * order in which weights are read (for the cache), never the\n"
                             " * results, so whatever they hold is fine." : "");
    fprintf(o, "int %s_forward(const float *packed, ", N);
    emit_io_params(o, g);
    fprintf(o, "int batch, void *arena);\n\n");
    if (e->opt->train)
        emit_training_header(e, o, e->train_plan);
    fprintf(o, "#ifdef __cplusplus\n}\n#endif\n\n#endif\n");
}

/* ---- the whole file ------------------------------------------------------- */

static void emit_front_matter(Emit *e, FILE *o) {
    const Graph *g = e->g;
    fprintf(o, "/* %s.c — generated by cnnc %s; do not edit.\n", g->name, CNNC_VERSION);
    fprintf(o, " *\n * source:  %s, network %s\n", e->source, g->name);
    if (e->command)
        fprintf(o, " * command: %s\n", e->command);
    fprintf(o, " * target:  %s; batch up to %d%s\n",
            e->opt->target == TARGET_AVX512 ? "x86-64 AVX-512F (with AVX2 and FMA)"
            : e->opt->target == TARGET_AVX2 ? "x86-64 AVX2 + FMA" : "portable C (scalar)",
            e->opt->batch, e->opt->openmp ? "; OpenMP (compile with -fopenmp)" : "");
    const FuseOptions *f = &e->opt->fuse;
    const char *passes = arena_printf(e->a, "%s%s%s%s%s%s", f->no_bn ? "" : ", bn folding",
                                      f->no_add ? "" : ", residual adds",
                                      f->no_act ? "" : ", activations",
                                      f->no_concat ? "" : ", concat slices",
                                      f->no_pool ? "" : ", max pools in convolutions",
                                      f->no_chain ? "" : ", chains a sample at a time");
    fprintf(o, " * fusion:  %s\n", *passes ? passes + 2 : "off");
    fprintf(o, " * arena:   %lld bytes (%lld without reuse; %lld live at most)\n",
            ll(e->plan->arena_bytes), ll(e->plan->no_reuse_bytes),
            ll(e->plan->lower_bound));
    fprintf(o, " * weights: %lld canonical floats, %lld packed\n", ll(g->param_count),
            ll(e->packing->count));
    fprintf(o, " *\n * Inference calls no library function but memcpy/memset (which a\n"
               " * compiler may emit for plain loops) and needs no libm. */\n");
    fprintf(o, "#include \"%s.h\"\n\n#include <stddef.h>\n#include <stdint.h>\n", g->name);
    if (e->opt->openmp)
        fprintf(o, "#include <omp.h>\n");
    if (simd_target(e->opt->target))
        fprintf(o, "#include <immintrin.h>\n\n"
                   "/* The kernels use these instruction sets whatever flags the file is\n"
                   " * compiled with; the CPU must have them (cnnc --target auto checks). */\n"
                   "#if defined(__GNUC__) || defined(__clang__)\n"
                   "#define CNN_SIMD __attribute__((target(\"%s\")))\n"
                   "#else\n"
                   "#define CNN_SIMD\n"
                   "#endif\n", simd_attribute(e->opt->target));
    if (e->opt->profile)
        fprintf(o, "void cnn_tick(int node); /* cnnc tune's timer, after each kernel */\n");
    if (simd_target(e->opt->target) && e->opt->openmp) {
        /* clang outlines a parallel region into a function of its own that
         * lacks the enclosing function's target attribute, and then
         * rejects the vector code in it with a page of ABI errors */
        const char *macro = simd_width(e->opt->target) == 16 ? "__AVX512F__" : "__AVX2__";
        fprintf(o, "#if defined(__clang__) && defined(_OPENMP) && !defined(%s)\n"
                   "#error \"with clang and -fopenmp, compile with -march=native (or -m%s "
                   "-mfma): clang's OpenMP regions do not inherit the kernels' target "
                   "attribute\"\n"
                   "#endif\n", macro, simd_width(e->opt->target) == 16 ? "avx512f" : "avx2");
    }
    fprintf(o, "\n");
}

/* Generated code indexes one sample with int: refuse what does not fit. */
static bool fits_int(const Graph *g, Diags *d) {
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        int64_t scratch = n->scratch ? n->scratch->bytes / 4 : 0;
        if (shape_elems(n->shape) >= INT32_MAX || scratch >= INT32_MAX) {
            diag_error(d, n->loc, "%s has more than 2^31 floats per sample, more "
                       "than the generated C indexes", n->name);
            return false;
        }
        /* a window's loops count rows and columns with int (maxpool(2^31,
         * pad=2^30) has a [C,1,1] output but loops past it) */
        const Attrs *a = &n->a;
        for (int dim = 0; dim < 2 && a->kernel[0] > 0 && n->inputs.len > 0; dim++) {
            Shape in = in_shape_of(n, 0);
            int64_t padded = in.rank == 3 ? in.d[1 + dim] + a->pad_lo[dim] + a->pad_hi[dim] : 0;
            if (padded >= INT32_MAX || a->stride[dim] >= INT32_MAX) {
                diag_error(d, n->loc, "%s: %s %lld %s, 2^31 or more, more than the generated C "
                           "indexes", n->name, padded >= INT32_MAX ? "its padded input is"
                                                                   : "its stride is",
                           (long long)(padded >= INT32_MAX ? padded : a->stride[dim]),
                           dim ? "columns" : "rows");
                return false;
            }
        }
    }
    return true;
}

static char *close_stream(FILE *f, char **buf, Arena *a) {
    fclose(f);
    char *s = arena_strdup(a, *buf);
    free(*buf);
    return s;
}

Generated *emit_c(Graph *g, const BuildOptions *opt, Arena *a, Diags *d) {
    fuse_graph(g, &opt->fuse, a);
    bool simd = simd_target(opt->target);
    wino_choose(g, opt->target, opt->no_winograd);
    if (!opt->fuse.no_pool)
        fuse_pool(g, opt->target);
    if (!opt->fuse.no_chain)
        chain_samples(g, opt);
    tune_apply(g, opt->tune, opt->target);
    for (int i = 0; i < g->nodes.len; i++) {
        Node *n = g->nodes.items[i];
        n->lone_split = opt->openmp && !n->chain && omp_work(n) >= OMP_SPLIT_WORK;
    }
    int slots = opt->openmp ? opt->batch : 1;   /* samples a chain holds at once */
    Plan *plan = simd ? plan_with_state(g, opt->batch, simd_scratch_fn(opt->target),
                                        simd_state_floats, slots, a, d)
                      : plan_with_state(g, opt->batch, scalar_scratch, NULL, slots, a, d);
    if (!plan || !fits_int(g, d))
        return NULL;
    const char *bad = plan_verify(g, plan, a);
    /* (the training plan is verified the same way below) */
    if (bad) {
        diag_error(d, (Loc){0, 0}, "internal error in the memory plan: %s", bad);
        return NULL;
    }
    Emit e = {.g = g, .plan = plan, .opt = opt, .a = a};
    e.packing = pack_plan(g, simd ? simd_mr_fn(opt->target) : scalar_pack_mr, a);
    float *embedded = NULL;
    if (opt->embed && !(embedded = packed_for_embed(e.packing, opt->weights, a, d)))
        return NULL;
    name_functions(&e);
    e.source = comment_safe(a, opt->source_name);
    e.command = comment_safe(a, opt->command);

    char *kbuf = NULL, *cbuf = NULL, *hbuf = NULL;
    size_t klen, clen, hlen;
    e.o = open_memstream(&kbuf, &klen);
    emit_kernels(&e);
    if (opt->train) {
        e.train_plan = plan_training(g, opt->batch, train_lanes(opt),
                                     simd ? simd_fscratch_fn(opt->target) : scalar_scratch,
                                     simd ? simd_bscratch_fn(opt->target) : train_bscratch, a, d);
        if (!e.train_plan) {
            fclose(e.o);
            free(kbuf);
            return NULL;
        }
        bad = plan_verify(g, e.train_plan, a);
        if (bad) {
            diag_error(d, (Loc){0, 0}, "internal error in the training plan: %s", bad);
            fclose(e.o);
            free(kbuf);
            return NULL;
        }
        emit_plain_kernels(&e);
        emit_training_kernels(&e);
    }
    const char *kernels = close_stream(e.o, &kbuf, a);

    FILE *o = open_memstream(&cbuf, &clen);
    emit_front_matter(&e, o);
    /* Only the helpers something calls: unused statics would warn. */
    bool bn = any_pack_op(e.packing, PACK_BN);
    bool copy = e.need_copy || any_pack_op(e.packing, PACK_COPY);
    bool pconv = any_pack_op(e.packing, PACK_CONV);
    bool pwino = any_wino_op(e.packing, 2) || e.need_pack_wino2;
    bool pwino4 = any_wino_op(e.packing, 4) || e.need_pack_wino4;
    bool sqrt_ = bn || pconv || pwino || pwino4 || e.need_sqrt, log_ = e.need_log || sqrt_;
    if (e.need_exp || e.need_tanh || log_)
        fputs(exp_text, o);
    if (e.need_tanh)
        fputs(tanh_text, o);
    if (log_)
        fputs(log_text, o);
    if (sqrt_)
        fputs(sqrt_text, o);
    if (e.need_pad || e.need_unpad)
        fputs(pad_index_text, o);
    if (e.need_pad) {
        fputs(!simd ? pad_row_text
                   : opt->target == TARGET_AVX512 ? pad_row_avx512_text : pad_row_avx2_text, o);
        fputs("/* One sample [c][h][w] into [c][hp][wp], `top` rows and `left` columns of\n"
              " * padding before it. */\n", o);
        fputs(simd ? "static CNN_SIMD void " : "static void ", o);
        fputs(pad_text, o);
    }
    if (e.need_unpad)
        fputs(unpad_text, o);
    if (e.need_uniform)
        fputs(uniform_text, o);
    if (e.need_dot)
        fputs(dot_text, o);
    if (e.need_hsum && opt->target == TARGET_AVX512)
        fputs(hsum512_text, o);
    if ((e.need_hsum && opt->target != TARGET_AVX512) || e.need_dot4x3)
        fputs(hsum_text, o);
    if (e.need_pool)
        fputs(pool_text, o);
    if (e.need_pool512)
        fputs(pool512_text, o);
    if (e.need_dot4x3)
        fputs(dot4x3_text, o);
    if (e.need_unzip)
        fputs(unzip_text, o);
    if (e.need_unzip512)
        fputs(unzip512_text, o);
    if (e.need_zip)
        fputs(opt->target == TARGET_AVX512 ? zip512_text : zip_text, o);
    if (e.need_load2x8)
        fputs(load2x8_text, o);
    if (copy)
        fputs(copy_text, o);
    if (bn)
        fputs(pack_bn_text, o);
    if (pconv)
        fputs(pack_conv_text, o);
    if (pwino)
        fputs(pack_wino_text, o);
    if (pwino4)
        fputs(pack_wino4_text, o);
    fputs(kernels, o);
    if (embedded)
        emit_embedded(o, g, e.packing, embedded);
    emit_pack(o, g, e.packing);
    emit_forward(&e, o);
    if (opt->train) {
        fputc('\n', o);
        emit_training(&e, o);
    }

    Generated *out = arena_alloc(a, sizeof *out);
    out->c_text = close_stream(o, &cbuf, a);
    o = open_memstream(&hbuf, &hlen);
    emit_header(&e, o);
    out->h_text = close_stream(o, &hbuf, a);
    out->plan = plan;
    out->packing = e.packing;
    return out;
}
