/* progress.c — one line of training progress on stderr.
 *
 * On a terminal, a bar redrawn in place (\r) at most ten times a second. In a
 * log file or a pipe, where \r would pile up, one plain line each time
 * another tenth of the samples is done, and a summary at the end: at most
 * eleven lines an epoch, however fast the updates come. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define BAR 24

double cnnrt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void cnnrt_progress_start(CnnrtProgress *p, const char *label, int64_t total) {
    memset(p, 0, sizeof *p);
    p->label = label ? label : "";
    p->total = total > 0 ? total : 0;
    p->start = cnnrt_now();
    p->last_draw = -1e300;
    const char *term = getenv("TERM");
    p->tty = isatty(STDERR_FILENO) && !(term && !strcmp(term, "dumb"));
}

/* "1:02:03" or "2:03" */
static void clock_text(char *buf, size_t n, double seconds) {
    long s = seconds > 0 && seconds < 1e9 ? (long)(seconds + 0.5) : 0;
    if (s >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, n, "%ld:%02ld", s / 60, s % 60);
}

/* "12000/60000 loss 0.4321  5123 img/s  0:06 left" */
static void stats_text(const CnnrtProgress *p, char *buf, size_t n, int final) {
    double elapsed = cnnrt_now() - p->start;
    double rate = elapsed > 0 ? p->done / elapsed : 0;
    char t[32];
    clock_text(t, sizeof t, final ? elapsed : rate > 0 ? (p->total - p->done) / rate : 0);
    snprintf(buf, n, "%lld/%lld loss %.4f  %.0f img/s  %s %s", (long long)p->done,
             (long long)p->total, p->loss, rate, t, final ? "total" : "left");
}

static void draw_bar(CnnrtProgress *p, int final) {
    char bar[BAR + 1], stats[160];
    int fill = p->total ? (int)(BAR * (double)p->done / p->total) : BAR;
    fill = fill < 0 ? 0 : fill > BAR ? BAR : fill;
    for (int i = 0; i < BAR; i++)
        bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
    bar[BAR] = 0;
    stats_text(p, stats, sizeof stats, final);
    fprintf(stderr, "\r%s [%s] %s\033[K%s", p->label, bar, stats, final ? "\n" : "");
    fflush(stderr);
}

static void print_line(const CnnrtProgress *p, int final) {
    char stats[160];
    stats_text(p, stats, sizeof stats, final);
    int pct = p->total ? (int)(100 * p->done / p->total) : 100;
    fprintf(stderr, "%s: %3d%% %s\n", p->label, pct, stats);
}

void cnnrt_progress_update(CnnrtProgress *p, int64_t done, double loss) {
    p->done = done < 0 ? 0 : p->total && done > p->total ? p->total : done;
    p->loss = loss;
    if (p->tty) {
        double now = cnnrt_now();
        if (now - p->last_draw >= 0.1) {
            p->last_draw = now;
            draw_bar(p, 0);
        }
        return;
    }
    int tenth = p->total ? (int)(10 * p->done / p->total) : 0;
    if (tenth > p->tenths && tenth < 10) {  /* the end line says 100% */
        p->tenths = tenth;
        p->last_draw = cnnrt_now();
        print_line(p, 0);
    }
}

void cnnrt_progress_end(CnnrtProgress *p) {
    if (p->tty)
        draw_bar(p, 1);
    else
        print_line(p, 1);
}
