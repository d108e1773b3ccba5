/* diag.c — errors, warnings and notes in the form DSL.md fixes:
 *
 *   net.cnn:7:14: error: conv expects input [C,H,W] but 'x' has shape [500]
 *       y = x -> conv(16, 5)
 *                ^
 */
#include "base.h"

#include <string.h>

void diags_init(Diags *d, Arena *a, const char *filename, const char *src,
                size_t len, FILE *out) {
    memset(d, 0, sizeof *d);
    d->filename = filename;
    d->src = src;
    d->src_len = len;
    d->out = out;
    d->arena = a;
}

/* Lines longer than this are shown as a window around the caret, with
 * "..." where they are cut, so a generated one-line file cannot flood the
 * terminal with a megabyte per message. */
enum { QUOTE_WIDTH = 160 };

/* Prints source line `line` and a caret under byte column `col`. Control
 * bytes are shown as spaces so a corrupt file cannot garble the terminal;
 * tabs are kept, in the caret line too, so the caret lines up. */
/* Where the line starting at p ends (its \n, \r\n or lone \r, as the
 * lexer counts them), and in *next where the following one starts. */
static const char *line_end(const char *p, const char *end, const char **next) {
    while (p < end && *p != '\n' && *p != '\r')
        p++;
    *next = p < end ? p + 1 + (*p == '\r' && p + 1 < end && p[1] == '\n') : end;
    return p;
}

static void quote_line(Diags *d, int line, int col) {
    const char *p = d->src, *end = d->src + d->src_len, *next;
    for (int l = 1; l < line && p < end; l++) {
        line_end(p, end, &next);
        p = next;
    }
    const char *eol = line_end(p, end, &next);
    size_t len = (size_t)(eol - p);
    size_t caret = col > 1 ? (size_t)col - 1 : 0;
    if (caret > len)
        caret = len;
    size_t from = 0, to = len;   /* the part of the line shown */
    if (len > QUOTE_WIDTH) {
        if (caret > QUOTE_WIDTH / 2)
            from = caret - QUOTE_WIDTH / 2;
        if (to - from > QUOTE_WIDTH)
            to = from + QUOTE_WIDTH;
    }
    fputs(from ? "    ..." : "    ", d->out);
    for (size_t i = from; i < to; i++) {
        unsigned char c = (unsigned char)p[i];
        fputc(c == '\t' || c >= 0x20 ? c : ' ', d->out);
    }
    fputs(to < len ? "...\n" : "\n", d->out);
    fputs(from ? "       " : "    ", d->out);
    for (size_t i = from; i < caret; i++)
        fputc(p[i] == '\t' ? '\t' : ' ', d->out);
    fputs("^\n", d->out);
}

static void report(Diags *d, const char *kind, Loc loc, const char *fmt,
                   va_list ap) {
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    fprintf(d->out, "%s:", d->filename);
    if (loc.line > 0)
        fprintf(d->out, "%d:%d:", loc.line, loc.col);
    fprintf(d->out, " %s: %s\n", kind, msg);
    if (loc.line > 0 && d->src)
        quote_line(d, loc.line, loc.col);
}

/* True if this exact diagnostic was printed before; remembers it if not. */
static bool repeated(Diags *d, const char *kind, Loc loc, const char *fmt,
                     va_list ap) {
    char msg[1024], key[1100];
    vsnprintf(msg, sizeof msg, fmt, ap);
    snprintf(key, sizeof key, "%d:%d:%s:%s", loc.line, loc.col, kind, msg);
    for (int i = 0; i < d->seen.len; i++)
        if (strcmp(d->seen.items[i], key) == 0)
            return true;
    vec_push(d->arena, &d->seen, arena_strdup(d->arena, key));
    return false;
}

void diag_error(Diags *d, Loc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bool rep = d->too_many || repeated(d, "error", loc, fmt, ap);
    va_end(ap);
    d->last_dropped = rep;
    if (rep)
        return;
    if (d->errors == DIAG_MAX_ERRORS) {
        fprintf(d->out, "%s: error: too many errors (%d); stopping\n",
                d->filename, DIAG_MAX_ERRORS);
        d->too_many = true;
        d->last_dropped = true;
        return;
    }
    d->errors++;
    va_start(ap, fmt);
    report(d, "error", loc, fmt, ap);
    va_end(ap);
}

/* Past this many warnings one line says so and the rest are dropped: a
 * generated file can make a warning per line, and nobody reads the
 * hundred-and-first. (d->warnings stops at MAX_WARNINGS + 1.) */
enum { MAX_WARNINGS = 100 };

void diag_warning(Diags *d, Loc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bool rep = d->too_many || d->warnings > MAX_WARNINGS ||
               repeated(d, "warning", loc, fmt, ap);
    va_end(ap);
    d->last_dropped = rep;
    if (rep)
        return;
    if (d->warnings == MAX_WARNINGS) {
        fprintf(d->out, "%s: warning: too many warnings (%d); not showing "
                "more\n", d->filename, MAX_WARNINGS);
        d->warnings++;
        d->last_dropped = true;
        return;
    }
    d->warnings++;
    va_start(ap, fmt);
    report(d, "warning", loc, fmt, ap);
    va_end(ap);
}

void diag_note(Diags *d, Loc loc, const char *fmt, ...) {
    if (d->last_dropped)
        return;
    va_list ap;
    va_start(ap, fmt);
    report(d, "note", loc, fmt, ap);
    va_end(ap);
}
