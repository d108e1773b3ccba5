/* peak.c — the machine's fp32 FMA peak in GFLOP/s, one core and all cores.
 *
 *     cc -O2 -mavx2 -mfma -pthread bench/peak.c -o peak && ./peak [--threads N] [--trials T]
 *
 * Each thread runs 12 independent chains of 8-wide FMAs (ymm accumulators):
 * with a 4-5 cycle FMA latency and two FMA ports, 8-10 chains in flight
 * saturate the ports, 12 leave margin, and 12 + 2 operands fit the 16 ymm
 * registers, so nothing spills. One FMA counts 2 flops per lane: 16 per
 * instruction. Each trial times ~0.25 s; the peak is the best of the trials
 * (the fastest run is the one least disturbed by other work on the machine),
 * the median is printed beside it.
 *
 * On a CPU with AVX-512 the same is measured with 12 zmm chains, as
 * information only: the scalar and AVX2 targets of cnnc are judged against
 * the AVX2 figure, but a library (PyTorch's oneDNN/OpenBLAS) may use AVX-512
 * and so exceed 100 % of the AVX2 peak.
 *
 * It also measures how fast one core reads data it does not compute on
 * (8 independent sums of aligned ymm loads, so only the loads limit it): from
 * a buffer half its L2's size, read over and over (the L2 rate), and from one
 * four times its L2 (the rate from L3 or beyond). bench/networks.py divides a
 * network's weight bytes by these rates: at batch 1 every weight is read once
 * a call, so no code can take less time than that read.
 * `--read` measures only the read rates.
 *
 * Last lines, for scripts:  PEAK avx2_1core=X avx2_all=Y threads=N [avx512_1core=Z avx512_all=W]
 *                           READ l2_bytes=B l2_gbs=R2 beyond_l2_gbs=R3
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* 12 chains x ITER iterations x 8 lanes x 2 flops */
#define CHAINS 12

static float sink_avx2(long iters) {
    __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    __m256 c0 = _mm256_set1_ps(0.0f), c1 = _mm256_set1_ps(0.1f), c2 = _mm256_set1_ps(0.2f),
           c3 = _mm256_set1_ps(0.3f), c4 = _mm256_set1_ps(0.4f), c5 = _mm256_set1_ps(0.5f),
           c6 = _mm256_set1_ps(0.6f), c7 = _mm256_set1_ps(0.7f), c8 = _mm256_set1_ps(0.8f),
           c9 = _mm256_set1_ps(0.9f), c10 = _mm256_set1_ps(1.0f), c11 = _mm256_set1_ps(1.1f);
    for (long i = 0; i < iters; i++) {
        c0 = _mm256_fmadd_ps(c0, a, b);
        c1 = _mm256_fmadd_ps(c1, a, b);
        c2 = _mm256_fmadd_ps(c2, a, b);
        c3 = _mm256_fmadd_ps(c3, a, b);
        c4 = _mm256_fmadd_ps(c4, a, b);
        c5 = _mm256_fmadd_ps(c5, a, b);
        c6 = _mm256_fmadd_ps(c6, a, b);
        c7 = _mm256_fmadd_ps(c7, a, b);
        c8 = _mm256_fmadd_ps(c8, a, b);
        c9 = _mm256_fmadd_ps(c9, a, b);
        c10 = _mm256_fmadd_ps(c10, a, b);
        c11 = _mm256_fmadd_ps(c11, a, b);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                             _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}

__attribute__((target("avx512f"))) static float sink_avx512(long iters) {
    __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    __m512 c0 = _mm512_set1_ps(0.0f), c1 = _mm512_set1_ps(0.1f), c2 = _mm512_set1_ps(0.2f),
           c3 = _mm512_set1_ps(0.3f), c4 = _mm512_set1_ps(0.4f), c5 = _mm512_set1_ps(0.5f),
           c6 = _mm512_set1_ps(0.6f), c7 = _mm512_set1_ps(0.7f), c8 = _mm512_set1_ps(0.8f),
           c9 = _mm512_set1_ps(0.9f), c10 = _mm512_set1_ps(1.0f), c11 = _mm512_set1_ps(1.1f);
    for (long i = 0; i < iters; i++) {
        c0 = _mm512_fmadd_ps(c0, a, b);
        c1 = _mm512_fmadd_ps(c1, a, b);
        c2 = _mm512_fmadd_ps(c2, a, b);
        c3 = _mm512_fmadd_ps(c3, a, b);
        c4 = _mm512_fmadd_ps(c4, a, b);
        c5 = _mm512_fmadd_ps(c5, a, b);
        c6 = _mm512_fmadd_ps(c6, a, b);
        c7 = _mm512_fmadd_ps(c7, a, b);
        c8 = _mm512_fmadd_ps(c8, a, b);
        c9 = _mm512_fmadd_ps(c9, a, b);
        c10 = _mm512_fmadd_ps(c10, a, b);
        c11 = _mm512_fmadd_ps(c11, a, b);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                             _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));
    return _mm512_reduce_add_ps(s);
}

typedef struct {
    int wide;          /* 0: ymm, 1: zmm */
    long iters;
    pthread_barrier_t *start;
    double seconds;
    float sink;
} job_t;

static void *worker(void *p) {
    job_t *j = p;
    pthread_barrier_wait(j->start);
    double t0 = now();
    j->sink = j->wide ? sink_avx512(j->iters) : sink_avx2(j->iters);
    j->seconds = now() - t0;
    return NULL;
}

/* GFLOP/s of one trial on n threads (the slowest thread's time counts) */
static double trial(int n, int wide, long iters, volatile float *sink) {
    pthread_t th[256];
    job_t jobs[256];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        jobs[i] = (job_t){wide, iters, &start, 0.0, 0.0f};
        pthread_create(&th[i], NULL, worker, &jobs[i]);
    }
    double worst = 0.0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        if (jobs[i].seconds > worst)
            worst = jobs[i].seconds;
        *sink += jobs[i].sink;
    }
    pthread_barrier_destroy(&start);
    double flops = (double)n * iters * CHAINS * (wide ? 16 : 8) * 2;
    return flops / worst * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* best and median over `trials` trials */
static void measure(int n, int wide, int trials, double *best, double *median) {
    volatile float sink = 0.0f;
    /* calibrate: iterations for ~0.25 s on one thread */
    long iters = 1L << 20;
    for (;;) {
        double t0 = now();
        sink += wide ? sink_avx512(iters) : sink_avx2(iters);
        double dt = now() - t0;
        if (dt > 0.05) {
            iters = (long)(iters * 0.25 / dt);
            break;
        }
        iters *= 2;
    }
    double g[64];
    if (trials > 64)
        trials = 64;
    for (int t = 0; t < trials; t++)
        g[t] = trial(n, wide, iters, &sink);
    qsort(g, (size_t)trials, sizeof g[0], cmp);
    *best = g[trials - 1];
    *median = g[trials / 2];
}

/* One pass over n floats (n a multiple of 64, p 32-byte aligned): 8 sums
 * in flight, two loads a cycle at most, nothing but the loads to wait on. */
static float read_pass(const float *p, size_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (size_t i = 0; i < n; i += 64) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
        a4 = _mm256_add_ps(a4, _mm256_load_ps(p + i + 32));
        a5 = _mm256_add_ps(a5, _mm256_load_ps(p + i + 40));
        a6 = _mm256_add_ps(a6, _mm256_load_ps(p + i + 48));
        a7 = _mm256_add_ps(a7, _mm256_load_ps(p + i + 56));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}

/* GB/s of the fastest of `passes` timed passes over `bytes` bytes (after one
 * untimed pass): the fastest is the least disturbed by other work */
static double read_rate(size_t bytes, int passes) {
    size_t n = bytes / sizeof(float) / 64 * 64;
    float *p = aligned_alloc(64, n * sizeof(float));
    if (!p) {
        fprintf(stderr, "peak: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = 1.0f;
    volatile float sink = read_pass(p, n);
    double best = 1e30;
    for (int r = 0; r < passes; r++) {
        double t0 = now();
        sink += read_pass(p, n);
        double dt = now() - t0;
        if (dt < best)
            best = dt;
    }
    free(p);
    return (double)n * sizeof(float) / best * 1e-9;
}

static void measure_reads(void) {
    long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (l2 <= 0)
        l2 = 1L << 20; /* not reported (some VMs): a typical size */
    double r2 = read_rate((size_t)l2 / 2, 20000), r3 = read_rate((size_t)l2 * 4, 2000);
    printf("One core reading (8 sums of ymm loads, fastest pass):\n");
    printf("  from L2 (%ld KiB buffer):        %6.1f GB/s\n", l2 / 2048, r2);
    printf("  from beyond L2 (%ld KiB buffer): %6.1f GB/s\n", l2 * 4 / 1024, r3);
    printf("READ l2_bytes=%ld l2_gbs=%.2f beyond_l2_gbs=%.2f\n", l2, r2, r3);
}

int main(int argc, char **argv) {
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN), trials = 7, reads_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--trials") && i + 1 < argc)
            trials = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--read"))
            reads_only = 1;
        else {
            fprintf(stderr, "usage: %s [--threads N] [--trials T] [--read]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1 || threads > 256 || trials < 1) {
        fprintf(stderr, "peak: --threads 1..256, --trials >= 1\n");
        return 2;
    }
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
        fprintf(stderr, "peak: this CPU has no AVX2+FMA\n");
        return 1;
    }
    if (reads_only) {
        measure_reads();
        return 0;
    }
    double b1, m1, bn, mn;
    measure(1, 0, trials, &b1, &m1);
    measure(threads, 0, trials, &bn, &mn);
    printf("AVX2+FMA fp32 peak (12 ymm FMA chains, best of %d trials, median in brackets):\n", trials);
    printf("  1 core:   %7.1f GFLOP/s  (%.1f)  = %.1f GHz x 32 flop/cycle\n", b1, m1, b1 / 32);
    printf("  %d cores: %7.1f GFLOP/s  (%.1f)\n", threads, bn, mn);
    printf("  all/1 ratio: %.2f (ideal %d)\n", bn / b1, threads);
    int has512 = __builtin_cpu_supports("avx512f");
    double z1 = 0, zn = 0, zm1, zmn;
    if (has512) {
        measure(1, 1, trials, &z1, &zm1);
        measure(threads, 1, trials, &zn, &zmn);
        printf("AVX-512 fp32 peak, for information (12 zmm chains):\n");
        printf("  1 core:   %7.1f GFLOP/s  (%.1f)  = %.2fx the AVX2 peak\n", z1, zm1, z1 / b1);
        printf("  %d cores: %7.1f GFLOP/s  (%.1f)\n", threads, zn, zmn);
    }
    printf("PEAK avx2_1core=%.2f avx2_all=%.2f threads=%d", b1, bn, threads);
    if (has512)
        printf(" avx512_1core=%.2f avx512_all=%.2f", z1, zn);
    printf("\n");
    measure_reads();
    return 0;
}
