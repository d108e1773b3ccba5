/* front.c — the front end as one call: read, parse, name-check, expand,
 * shape-check, and plan the arena at batch 1. Every command of the CLI
 * starts here, and so do the tests. */
#include "ir.h"

#include <errno.h>
#include <string.h>

/* A .cnn file is a few kilobytes; anything past this is not one. */
enum { MAX_SOURCE = 16 << 20 };

static bool read_source(Compilation *c, const char *path, FILE *out) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(out, "%s: error: cannot open: %s\n", path, strerror(errno));
        return false;
    }
    size_t cap = 4096, len = 0;
    char *buf = arena_alloc(&c->arena, cap + 1);
    for (;;) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap)
            break;
        if (cap >= MAX_SOURCE) {
            fprintf(out, "%s: error: larger than %d MiB; not a .cnn file\n",
                    path, MAX_SOURCE >> 20);
            fclose(f);
            return false;
        }
        char *bigger = arena_alloc(&c->arena, cap * 2 + 1);
        memcpy(bigger, buf, len);
        buf = bigger;
        cap *= 2;
    }
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        fprintf(out, "%s: error: cannot read: %s\n", path, strerror(errno));
        return false;
    }
    c->src = buf;
    c->src_len = len;
    return true;
}

bool compile_front(Compilation *c, const char *path, const char *src,
                   size_t len, const char *network, FILE *out) {
    memset(c, 0, sizeof *c);
    arena_init(&c->arena);
    c->filename = path;
    if (src) {
        if (len > MAX_SOURCE) {
            fprintf(out, "%s: error: larger than %d MiB; not a .cnn file\n",
                    path, MAX_SOURCE >> 20);
            return false;
        }
        c->src = arena_strndup(&c->arena, src, len);
        c->src_len = len;
    } else if (!read_source(c, path, out)) {
        return false;
    }
    /* a UTF-8 byte order mark, which some editors write first: not text */
    if (c->src_len >= 3 && !memcmp(c->src, "\xEF\xBB\xBF", 3)) {
        c->src += 3;
        c->src_len -= 3;
    }
    Diags *d = &c->diags;
    diags_init(d, &c->arena, path, c->src, c->src_len, out);

    c->program = parse_program(&c->arena, d, c->src, c->src_len);
    if (d->errors || !c->program)
        return false;
    if (!check_names(c->program, d))
        return false;
    const Def *net = select_network(c->program, network, d);
    if (!net)
        return false;
    Graph *g = expand_network(c->program, net, &c->arena, d);
    if (!g || !check_shapes(g, &c->arena, d))
        return false;
    /* the arena is part of checking too: none over 2^40 bytes (DSL.md) */
    c->plan = plan_memory(g, 1, scalar_scratch, &c->arena, d);
    if (!c->plan)
        return false;
    c->graph = g;
    return true;
}

void comp_free(Compilation *c) {
    arena_free(&c->arena);
}
