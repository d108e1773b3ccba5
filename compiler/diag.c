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

/* Prints source line `line` and a caret under byte column `col`. Control
 * bytes are shown as spaces so a corrupt file cannot garble the terminal;
 * tabs are kept, in the caret line too, so the caret lines up. */
static void quote_line(Diags *d, int line, int col) {
    const char *p = d->src, *end = d->src + d->src_len;
    for (int l = 1; l < line && p < end; p++)
        if (*p == '\n')
            l++;
    const char *eol = p;
    while (eol < end && *eol != '\n')
        eol++;
    fputc(' ', d->out);
    fputc(' ', d->out);
    fputc(' ', d->out);
    fputc(' ', d->out);
    for (const char *q = p; q < eol; q++) {
        unsigned char c = (unsigned char)*q;
        fputc(c == '\t' || c >= 0x20 ? c : ' ', d->out);
    }
    fputs("\n    ", d->out);
    for (int i = 1; i < col; i++)
        fputc(p + i - 1 < eol && p[i - 1] == '\t' ? '\t' : ' ', d->out);
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
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    char *key = arena_printf(d->arena, "%d:%d:%s:%s", loc.line, loc.col,
                             kind, msg);
    for (int i = 0; i < d->seen.len; i++)
        if (strcmp(d->seen.items[i], key) == 0)
            return true;
    vec_push(d->arena, &d->seen, key);
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

void diag_warning(Diags *d, Loc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bool rep = d->too_many || repeated(d, "warning", loc, fmt, ap);
    va_end(ap);
    d->last_dropped = rep;
    if (rep)
        return;
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
