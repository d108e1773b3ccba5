/* build.c — the commands that produce and run code: `cnnc build` writes the
 * generated pair atomically; `cnnc run` also compiles it with a small driver
 * program, caches the binary under the hash of everything it was built
 * from, and runs the forward pass on .f32 files. */
#define _POSIX_C_SOURCE 200809L
#include "ir.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- files -------------------------------------------------------------- */

static int mkdirs(const char *path) {
    char buf[4096];
    if (strlen(path) >= sizeof buf)
        return -1;
    strcpy(buf, path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Writes `text` to path.tmp.PID; the caller renames it into place. */
static bool write_temp(const char *tmp, const char *text) {
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return false;
    size_t n = strlen(text);
    bool ok = fwrite(text, 1, n, f) == n;
    ok &= fflush(f) == 0;
    ok &= fclose(f) == 0;
    if (!ok)
        remove(tmp);
    return ok;
}

/* Writes several files so that either all appear complete or none does. */
bool write_files_atomically(int n, const char *const *paths, const char *const *texts,
                            Arena *a) {
    const char **tmps = arena_alloc(a, sizeof(char *) * (size_t)n);
    for (int i = 0; i < n; i++) {
        tmps[i] = arena_printf(a, "%s.tmp.%ld", paths[i], (long)getpid());
        if (!write_temp(tmps[i], texts[i])) {
            fprintf(stderr, "cnnc: cannot write '%s': %s\n", paths[i], strerror(errno));
            for (int k = 0; k < i; k++)
                remove(tmps[k]);
            return false;
        }
    }
    for (int i = 0; i < n; i++)
        if (rename(tmps[i], paths[i]) != 0) {
            fprintf(stderr, "cnnc: cannot write '%s': %s\n", paths[i], strerror(errno));
            for (int k = i; k < n; k++)
                remove(tmps[k]);
            return false;
        }
    return true;
}

/* Reads exactly `count` floats from a .f32 file, or explains why not. */
static float *read_f32(const char *path, int64_t count, const char *what, Arena *a) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cnnc: cannot open %s '%s': %s\n", what, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "cnnc: %s '%s' is a directory, not a file\n", what, path);
        fclose(f);
        return NULL;
    }
    if (fstat(fileno(f), &st) != 0 || st.st_size != count * 4) {
        fprintf(stderr, "cnnc: %s '%s' holds %lld bytes, but %lld floats "
                "(%lld bytes) are expected\n", what, path, (long long)st.st_size,
                (long long)count, (long long)count * 4);
        fclose(f);
        return NULL;
    }
    float *v = arena_alloc(a, (size_t)count * 4 + 4);
    bool ok = fread(v, 4, (size_t)count, f) == (size_t)count;
    fclose(f);
    if (!ok) {
        fprintf(stderr, "cnnc: cannot read %s '%s'\n", what, path);
        return NULL;
    }
    return v;
}

/* ---- cnnc build ------------------------------------------------------------ */

bool target_runs_here(Target t) {
    if (t == TARGET_SCALAR)
        return true;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return t == TARGET_AVX512 ? avx2 && __builtin_cpu_supports("avx512f") : avx2;
#else
    return false;
#endif
}

bool check_target_runs_here(Target t, const char *command) {
    if (target_runs_here(t))
        return true;
    fprintf(stderr, "cnnc %s: this CPU cannot run --target %s code (it lacks %s); use "
            "--target auto, or build it with 'cnnc build' for a CPU that has it\n", command,
            t == TARGET_AVX512 ? "avx512" : "avx2",
            t == TARGET_AVX512 ? "AVX-512F" : "AVX2 or FMA");
    return false;
}

Target resolve_target(const char *name) {
    if (name && !strcmp(name, "scalar"))
        return TARGET_SCALAR;
    if (name && !strcmp(name, "avx2"))
        return TARGET_AVX2;
    if (name && !strcmp(name, "avx512"))
        return TARGET_AVX512;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return __builtin_cpu_supports("avx512f") ? TARGET_AVX512 : TARGET_AVX2;
#endif
    return TARGET_SCALAR;
}

static bool options_for(Compilation *c, const CliOptions *o, BuildOptions *b) {
    memset(b, 0, sizeof *b);
    b->batch = o->batch;
    b->target = resolve_target(o->target);
    b->openmp = o->openmp;
    b->fuse = o->fuse;
    b->no_winograd = o->no_winograd;
    b->source_name = c->filename;
    b->command = o->command_line;
    b->train = o->train;
    if (o->tune_file && !(b->tune = tune_read(o->tune_file, &c->arena)))
        return false;
    if (o->embed && !o->weights) {
        fprintf(stderr, "cnnc: --embed needs --weights P.f32\n");
        return false;
    }
    if (o->weights) {
        b->weights = read_f32(o->weights, c->graph->param_count, "weights file",
                              &c->arena);
        if (!b->weights)
            return false;
        b->embed = o->embed;
    }
    return true;
}

int cmd_build(Compilation *c, const CliOptions *o) {
    if (!o->out_dir) {
        fprintf(stderr, "cnnc: build needs -o DIR\n");
        return 2;
    }
    if (o->weights && !o->embed) {
        fprintf(stderr, "cnnc: --weights is used by build only with --embed\n");
        return 2;
    }
    BuildOptions b;
    if (!options_for(c, o, &b))
        return 1;
    Generated *gen = emit_c(c->graph, &b, &c->arena, &c->diags);
    if (!gen)
        return 1;
    if (mkdirs(o->out_dir) != 0) {
        fprintf(stderr, "cnnc: cannot create '%s': %s\n", o->out_dir, strerror(errno));
        return 1;
    }
    const char *paths[2] = {
        arena_printf(&c->arena, "%s/%s.c", o->out_dir, c->graph->name),
        arena_printf(&c->arena, "%s/%s.h", o->out_dir, c->graph->name),
    };
    const char *texts[2] = {gen->c_text, gen->h_text};
    return write_files_atomically(2, paths, texts, &c->arena) ? 0 : 1;
}

/* ---- cnnc run ------------------------------------------------------------- */

/* What the drivers of `cnnc run` and `cnnc grad` share: reading and
 * writing whole .f32 files, with messages that name them. The network's
 * numbers are `real`: float, or double for `grad --double`, where the
 * generated file is compiled with float defined as double. */
static const char *driver_prelude(const Graph *g, const char *what, bool dbl, Arena *a) {
    const char *head = dbl
        ? arena_printf(a, "typedef float f32;\n"
                          "#define float double   /* the network computes in double */\n"
                          "#include \"%s.h\"\n#undef float\ntypedef double real;\n\n", g->name)
        : arena_printf(a, "#include \"%s.h\"\ntypedef float f32;\ntypedef float real;\n\n",
                       g->name);
    return arena_printf(a,
"/* The driver of `cnnc %s` for network %s. */\n"
"#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n%s"
"static real *load(const char *path, long count) {\n"
"    FILE *f = fopen(path, \"rb\");\n"
"    f32 *raw = malloc((size_t)count * sizeof(f32) + 1);\n"
"    real *v = malloc((size_t)count * sizeof(real) + 1);\n"
"    if (!f || !raw || !v || fread(raw, sizeof(f32), (size_t)count, f) != (size_t)count\n"
"        || fgetc(f) != EOF) {\n"
"        fprintf(stderr, \"cnnc %s: '%%s' does not hold %%ld floats\\n\", path, count);\n"
"        exit(1);\n"
"    }\n"
"    fclose(f);\n"
"    for (long i = 0; i < count; i++)\n"
"        v[i] = raw[i];\n"
"    free(raw);\n"
"    return v;\n"
"}\n\n"
"static void save(const char *path, const real *v, long count) {\n"
"    char tmp[4200];\n"
"    FILE *f;\n"
"    f32 *raw = malloc((size_t)count * sizeof(f32) + 1);\n"
"    for (long i = 0; raw && i < count; i++)\n"
"        raw[i] = (f32)v[i];\n"
"    snprintf(tmp, sizeof tmp, \"%%s.tmp\", path);\n"
"    f = fopen(tmp, \"wb\");\n"
"    if (!raw || !f || fwrite(raw, sizeof(f32), (size_t)count, f) != (size_t)count\n"
"        || fclose(f) != 0 || rename(tmp, path) != 0) {\n"
"        fprintf(stderr, \"cnnc %s: cannot write '%%s'\\n\", path);\n"
"        remove(tmp);\n"
"        exit(1);\n"
"    }\n"
"    free(raw);\n"
"}\n\n"
"/* bytes: as planned for float; a double network needs twice as many */\n"
"static char *aligned(long bytes) {\n"
"    char *raw = malloc((size_t)bytes / sizeof(f32) * sizeof(real) + 64);\n"
"    if (!raw)\n"
"        exit(1);\n"
"    return raw + (64 - (size_t)raw %% 64) %% 64;\n"
"}\n\n", what, g->name, head, what, what);
}

/* Loads the inputs (argv from `first`) and allocates the outputs. */
static const char *driver_io(const Graph *g, const char *s, int first, Arena *a) {
    const char *N = g->name;
    for (int i = 0; i < g->inputs.len; i++) {
        const Node *n = g->inputs.items[i];
        s = arena_printf(a, "%s    real *in%d = load(argv[%d], (long)batch * %s_IN_%s_SIZE);\n",
                         s, i, first + i, N, n->name);
    }
    for (int i = 0; i < g->outputs.len; i++)
        s = arena_printf(a, "%s    real *out%d = malloc(sizeof(real) * batch * %s_OUT_%s_SIZE + 1);\n",
                         s, i, N, (const char *)g->output_names.items[i]);
    return s;
}

static const char *args_list(const Graph *g, const char *s, const char *outs, Arena *a) {
    for (int i = 0; i < g->inputs.len; i++)
        s = arena_printf(a, "%sin%d, ", s, i);
    for (int i = 0; i < g->outputs.len; i++)
        s = arena_printf(a, "%s%s%d, ", s, outs, i);
    return s;
}

/* `cnnc run`: weights batch inputs... outputs... */
static const char *driver_text(const Graph *g, Arena *a) {
    const char *N = g->name;
    int nin = g->inputs.len, nout = g->outputs.len;
    const char *s = driver_prelude(g, "run", false, a);
    s = arena_printf(a, "%sint main(int argc, char **argv) {\n"
        "    int batch, rc;\n"
        "    real *params, *packed;\n"
        "    if (argc != %d) {\n"
        "        fprintf(stderr, \"usage: %%s weights batch %d-inputs %d-outputs\\n\", argv[0]);\n"
        "        return 2;\n    }\n"
        "    batch = atoi(argv[2]);\n"
        "    if (batch < 1 || batch > %s_BATCH)\n        return 2;\n"
        "    params = load(argv[1], %s_PARAM_COUNT);\n"
        "    packed = malloc(sizeof(real) * %s_PACKED_COUNT + 1);\n"
        "    if (!packed)\n        return 1;\n"
        "    %s_pack(params, packed);\n",
        s, 3 + nin + nout, nin, nout, N, N, N, N);
    s = driver_io(g, s, 3, a);
    s = arena_printf(a, "%s    rc = %s_forward(packed, ", s, N);
    s = args_list(g, s, "out", a);
    s = arena_printf(a, "%sbatch, aligned(%s_ARENA_BYTES));\n    if (rc != 0) {\n"
        "        fprintf(stderr, \"cnnc run: %s_forward returned %%d\\n\", rc);\n"
        "        return 1;\n    }\n", s, N, N);
    for (int i = 0; i < nout; i++)
        s = arena_printf(a, "%s    save(argv[%d], out%d, (long)batch * %s_OUT_%s_SIZE);\n",
                         s, 3 + nin + i, i, N, (const char *)g->output_names.items[i]);
    return arena_printf(a, "%s    return 0;\n}\n", s);
}

/* `cnnc grad`: weights batch inputs... douts... grads — the training forward
 * (batch statistics, dropout off), then the backward pass. */
static const char *grad_driver_text(const Graph *g, bool dbl, Arena *a) {
    const char *N = g->name;
    int nin = g->inputs.len, nout = g->outputs.len;
    const char *s = driver_prelude(g, "grad", dbl, a);
    s = arena_printf(a, "%sint main(int argc, char **argv) {\n"
        "    int batch;\n"
        "    real *params, *grads;\n"
        "    char *arena;\n"
        "    if (argc != %d)\n        return 2;\n"
        "    batch = atoi(argv[2]);\n"
        "    if (batch < 1 || batch > %s_BATCH)\n        return 2;\n"
        "    params = load(argv[1], %s_PARAM_COUNT);\n"
        "    grads = malloc(sizeof(real) * %s_PARAM_COUNT + 1);\n"
        "    arena = aligned(%s_TRAIN_ARENA_BYTES);\n",
        s, 4 + nin + nout, N, N, N, N);
    s = driver_io(g, s, 3, a);
    for (int i = 0; i < nout; i++)
        s = arena_printf(a, "%s    real *dout%d = load(argv[%d], (long)batch * %s_OUT_%s_SIZE);\n",
                         s, i, 3 + nin + i, N, (const char *)g->output_names.items[i]);
    s = arena_printf(a, "%s    if (%s_train_forward(params, ", s, N);
    s = args_list(g, s, "out", a);
    s = arena_printf(a, "%sbatch, arena, 0ULL, 0) != 0)\n        return 1;\n", s);
    s = arena_printf(a, "%s    if (%s_backward(params, ", s, N);
    s = args_list(g, s, "dout", a);
    s = arena_printf(a, "%sgrads, batch, arena) != 0)\n        return 1;\n", s);
    s = arena_printf(a, "%s    save(argv[%d], grads, %s_PARAM_COUNT);\n", s, 3 + nin + nout, N);
    return arena_printf(a, "%s    return 0;\n}\n", s);
}

static uint64_t fnv1a(uint64_t h, const char *s) {
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h ^ 0xff;   /* separates consecutive strings */
}

static const char *cache_root(Arena *a) {
    const char *dir = getenv("CNNC_CACHE");
    if (dir && *dir)
        return dir;
    dir = getenv("XDG_CACHE_HOME");
    if (dir && *dir)
        return arena_printf(a, "%s/cnnc", dir);
    dir = getenv("HOME");
    if (dir && *dir)
        return arena_printf(a, "%s/.cache/cnnc", dir);
    return arena_printf(a, "/tmp/cnnc-cache-%ld", (long)getuid());
}

/* Runs argv; returns its exit status, or -1 if it could not run or died. */
int run_process(char **argv) {
    /* Like system(): while the child runs, Ctrl-C is the child's to handle
     * (the trainer finishes its step and keeps its last checkpoint). */
    struct sigaction ignore = {.sa_handler = SIG_IGN}, old_int, old_quit;
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGINT, &ignore, &old_int);
    sigaction(SIGQUIT, &ignore, &old_quit);
    pid_t pid = fork();
    if (pid == 0) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGQUIT, &old_quit, NULL);
        execvp(argv[0], argv);
        fprintf(stderr, "cnnc: cannot run '%s': %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status = 0;
    bool ok = pid > 0;
    while (ok && waitpid(pid, &status, 0) < 0)
        ok = errno == EINTR;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    return ok && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* $CC split at spaces (so "ccache gcc" works), then the flags. */
char **compiler_argv(const char *cc, const char *const *rest, Arena *a) {
    char **argv = arena_alloc(a, sizeof(char *) * 64);
    int n = 0;
    char *copy = arena_strdup(a, cc);
    for (char *tok = strtok(copy, " \t"); tok && n < 40; tok = strtok(NULL, " \t"))
        argv[n++] = tok;
    for (int i = 0; rest[i] && n < 63; i++)
        argv[n++] = (char *)rest[i];
    argv[n] = NULL;
    return argv;
}


void add_file(HostProgram *p, const char *name, const char *text) {
    if (p->nfiles < 64) {
        p->names[p->nfiles] = name;
        p->texts[p->nfiles] = text;
        p->nfiles++;
    }
}

/* The runtime's header, and its sources when the program links libcnnrt. */
void add_runtime(HostProgram *p, bool sources) {
    for (const EmbeddedFile *f = runtime_files; f->name; f++) {
        size_t n = strlen(f->name);
        bool is_c = n > 2 && !strcmp(f->name + n - 2, ".c");
        if (!is_c || sources)
            add_file(p, f->name, f->text);
    }
}

/* Builds (or finds in the cache) the program; returns its binary's path.
 * The cache key is the hash of every file's text, the compiler and flags. */
const char *build_cached(Compilation *c, const HostProgram *prog) {
    Arena *a = &c->arena;
    const char *cc = getenv("CC");
    if (!cc || !*cc)
        cc = "cc";
    uint64_t h = 14695981039346656037ULL;
    for (int i = 0; i < prog->nfiles; i++) {
        h = fnv1a(h, prog->names[i]);
        h = fnv1a(h, prog->texts[i]);
    }
    h = fnv1a(h, cc);
    for (int i = 0; prog->flags[i]; i++)
        h = fnv1a(h, prog->flags[i]);
    for (int i = 0; prog->link[i]; i++)
        h = fnv1a(h, prog->link[i]);
    const char *dir = arena_printf(a, "%s/%s-%016llx", cache_root(a), c->graph->name,
                                   (unsigned long long)h);
    const char *bin = arena_printf(a, "%s/run", dir);
    if (access(bin, X_OK) == 0)
        return bin;
    if (mkdirs(dir) != 0) {
        fprintf(stderr, "cnnc: cannot create the cache directory '%s': %s\n", dir,
                strerror(errno));
        return NULL;
    }
    const char **paths = arena_alloc(a, sizeof(char *) * (size_t)prog->nfiles);
    for (int i = 0; i < prog->nfiles; i++)
        paths[i] = arena_printf(a, "%s/%s", dir, prog->names[i]);
    if (!write_files_atomically(prog->nfiles, paths, prog->texts, a))
        return NULL;
    const char *tmp = arena_printf(a, "%s.tmp.%ld", bin, (long)getpid());
    const char *rest[96];
    int n = 0;
    if (!prog->flags[0]) {
        rest[n++] = "-O2";
        rest[n++] = "-std=c99";
    }
    for (int i = 0; prog->flags[i]; i++)
        rest[n++] = prog->flags[i];
    rest[n++] = "-o";
    rest[n++] = tmp;
    for (int i = 0; i < prog->nfiles; i++) {
        size_t len = strlen(paths[i]);
        if (len > 2 && !strcmp(paths[i] + len - 2, ".c"))
            rest[n++] = paths[i];
    }
    for (int i = 0; prog->link[i]; i++)
        rest[n++] = prog->link[i];
    rest[n] = NULL;
    int rc = run_process(compiler_argv(cc, rest, a));
    if (rc != 0 || rename(tmp, bin) != 0) {
        remove(tmp);
        fprintf(stderr, "cnnc: the C compiler '%s' failed on the generated code "
                "(kept in %s)\n", cc, dir);
        return NULL;
    }
    return bin;
}

/* The files `run` and `grad` read must match the network; say so here,
 * where the messages can name it. */
static bool check_data_files(Compilation *c, const CliOptions *o) {
    Graph *g = c->graph;
    if (!o->weights) {
        fprintf(stderr, "cnnc: %s needs --weights P.f32\n", o->command);
        return false;
    }
    if (o->ninputs != g->inputs.len) {
        fprintf(stderr, "cnnc: network '%s' has %d input%s; give --input once for "
                "each, in declaration order (got %d)\n", g->name, g->inputs.len,
                g->inputs.len == 1 ? "" : "s", o->ninputs);
        return false;
    }
    struct stat st;
    if (stat(o->weights, &st) != 0 || st.st_size != g->param_count * 4) {
        fprintf(stderr, "cnnc: weights file '%s' %s; network '%s' has %lld "
                "parameters (%lld bytes, canonical order of DSL.md)\n", o->weights,
                stat(o->weights, &st) != 0 ? "cannot be read"
                : arena_printf(&c->arena, "holds %lld bytes", (long long)st.st_size),
                g->name, (long long)g->param_count, (long long)g->param_count * 4);
        return false;
    }
    for (int i = 0; i < o->ninputs; i++) {
        const Node *in = g->inputs.items[i];
        int64_t want = shape_elems(in->shape) * o->batch * 4;
        if (stat(o->inputs[i], &st) != 0 || st.st_size != want) {
            fprintf(stderr, "cnnc: input file '%s' %s; input '%s' of shape %s at "
                    "batch %d needs %lld bytes\n", o->inputs[i],
                    stat(o->inputs[i], &st) != 0 ? "cannot be read"
                    : arena_printf(&c->arena, "holds %lld bytes", (long long)st.st_size),
                    in->name, shape_str(&c->arena, in->shape), o->batch,
                    (long long)want);
            return false;
        }
    }
    for (int i = 0; i < o->ndouts; i++) {
        const Node *out = g->outputs.items[i < g->outputs.len ? i : 0];
        int64_t want = shape_elems(out->shape) * o->batch * 4;
        if (stat(o->douts[i], &st) != 0 || st.st_size != want) {
            fprintf(stderr, "cnnc: output gradient file '%s' %s; output '%s' of "
                    "shape %s at batch %d needs %lld bytes\n", o->douts[i],
                    stat(o->douts[i], &st) != 0 ? "cannot be read"
                    : arena_printf(&c->arena, "holds %lld bytes", (long long)st.st_size),
                    (const char *)g->output_names.items[i], shape_str(&c->arena, out->shape),
                    o->batch, (long long)want);
            return false;
        }
    }
    return true;
}

/* What both drivers take first: weights, batch, the input files; room is
 * left for the rest (n is where it goes). */
static char **driver_argv(Compilation *c, const char *bin, const CliOptions *o, int *n) {
    const Graph *g = c->graph;
    char **argv = arena_alloc(&c->arena, sizeof(char *) * (size_t)(8 + g->inputs.len +
                                                                    g->outputs.len));
    int k = 0;
    argv[k++] = (char *)bin;
    argv[k++] = (char *)o->weights;
    argv[k++] = arena_printf(&c->arena, "%d", o->batch);
    for (int i = 0; i < o->ninputs; i++)
        argv[k++] = (char *)o->inputs[i];
    *n = k;
    return argv;
}

int cmd_grad(Compilation *c, const CliOptions *o) {
    Graph *g = c->graph;
    if (o->ndouts != g->outputs.len || o->noutputs != 1) {
        fprintf(stderr, "cnnc: grad needs --dout once for each of the %d output%s of "
                "network '%s' (got %d) and one --output for the gradient\n",
                g->outputs.len, g->outputs.len == 1 ? "" : "s", g->name, o->ndouts);
        return 2;
    }
    if (!check_data_files(c, o))
        return 1;
    /* float defined as double would break the vector intrinsics */
    BuildOptions b = {.batch = o->batch,
                      .target = o->precision_double ? TARGET_SCALAR
                                                    : resolve_target(o->target),
                      .fuse = o->fuse, .source_name = c->filename, .train = true,
                      .openmp = o->openmp};
    if (!check_target_runs_here(b.target, "grad"))
        return 2;
    if (o->tune_file && !(b.tune = tune_read(o->tune_file, &c->arena)))
        return 1;
    Generated *gen = emit_c(g, &b, &c->arena, &c->diags);
    if (!gen)
        return 1;
    HostProgram prog = {.link = {NULL}};
    if (o->openmp) {
        prog.flags[0] = "-O2";
        prog.flags[1] = "-std=c99";
        prog.flags[2] = "-fopenmp";
    }
    if (o->precision_double) {
        /* the same generated text, compiled with float defined as double */
        add_file(&prog, arena_printf(&c->arena, "%s.c.txt", g->name), gen->c_text);
        add_file(&prog, "double.c", arena_printf(&c->arena, "#define float double\n"
                                                 "#include \"%s.c.txt\"\n", g->name));
    } else {
        add_file(&prog, arena_printf(&c->arena, "%s.c", g->name), gen->c_text);
    }
    add_file(&prog, arena_printf(&c->arena, "%s.h", g->name), gen->h_text);
    add_file(&prog, "main.c", grad_driver_text(g, o->precision_double, &c->arena));
    add_runtime(&prog, false);
    const char *bin = build_cached(c, &prog);
    if (!bin)
        return 1;
    int n;
    char **argv = driver_argv(c, bin, o, &n);
    for (int i = 0; i < o->ndouts; i++)
        argv[n++] = (char *)o->douts[i];
    argv[n++] = (char *)o->outputs[0];
    argv[n] = NULL;
    if (run_process(argv) != 0) {
        fprintf(stderr, "cnnc: computing the gradient of network '%s' failed\n", g->name);
        return 1;
    }
    return 0;
}

int cmd_run(Compilation *c, const CliOptions *o) {
    Graph *g = c->graph;
    if (o->noutputs < 1 || o->noutputs > g->outputs.len) {
        fprintf(stderr, "cnnc: network '%s' has %d output%s; give --output 1 to %d "
                "times (got %d)\n", g->name, g->outputs.len,
                g->outputs.len == 1 ? "" : "s", g->outputs.len, o->noutputs);
        return 2;
    }
    if (!check_data_files(c, o))
        return 1;
    BuildOptions b;
    if (!options_for(c, &(CliOptions){.batch = o->batch, .target = o->target,
                                      .openmp = o->openmp, .fuse = o->fuse,
                                      .no_winograd = o->no_winograd,
                                      .tune_file = o->tune_file}, &b))
        return 1;
    if (!check_target_runs_here(b.target, "run"))
        return 2;
    b.command = NULL;   /* the cache key must not depend on file names */
    Generated *gen = emit_c(g, &b, &c->arena, &c->diags);
    if (!gen)
        return 1;
    HostProgram prog = {.link = {NULL}};
    if (o->openmp) {
        prog.flags[0] = "-O2";
        prog.flags[1] = "-std=c99";
        prog.flags[2] = "-fopenmp";
    }
    add_file(&prog, arena_printf(&c->arena, "%s.c", g->name), gen->c_text);
    add_file(&prog, arena_printf(&c->arena, "%s.h", g->name), gen->h_text);
    add_file(&prog, "main.c", driver_text(g, &c->arena));
    const char *bin = build_cached(c, &prog);
    if (!bin)
        return 1;

    /* All outputs are produced; those not asked for go to a scratch file. */
    int n;
    char **argv = driver_argv(c, bin, o, &n);
    char *unused = NULL;
    for (int i = 0; i < g->outputs.len; i++) {
        if (i < o->noutputs) {
            argv[n++] = (char *)o->outputs[i];
        } else {
            if (!unused)
                unused = arena_printf(&c->arena, "%s.unused-output", o->outputs[0]);
            argv[n++] = unused;
        }
    }
    argv[n] = NULL;
    int rc = run_process(argv);
    if (unused)
        remove(unused);
    if (rc != 0) {
        fprintf(stderr, "cnnc: running network '%s' failed\n", g->name);
        return 1;
    }
    return 0;
}
