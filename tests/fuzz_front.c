/* fuzz_front.c — libFuzzer target for the whole front end: lexer, parser,
 * name check, expansion and shape check, on arbitrary bytes.
 *
 * It is not a Criterion test (the name does not start with test_), so
 * `make test` leaves it alone. Build and run it with clang, from the
 * repository root, after `make` has generated the parser and lexer:
 *
 *   make build/dsl/parser.c build/dsl/lexer.c
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -fno-sanitize-recover=all -Icompiler -Idsl -Ibuild/dsl \
 *       tests/fuzz_front.c compiler/{arena,diag,front,names,expand,shape,layers}.c \
 *       build/dsl/parser.c build/dsl/lexer.c -o build/fuzz_front
 *
 * (the files of the front end, ir.h's first sections: the rest of the
 * compiler is not needed, and the Makefile's sanitized library is gcc's)
 *   mkdir -p build/fuzz-corpus
 *   build/fuzz_front build/fuzz-corpus examples tests/diag \
 *       -dict=tests/fuzz_front.dict -max_len=8192 -timeout=2 \
 *       -max_total_time=600 -jobs=4 -workers=4
 *
 * New inputs go to build/fuzz-corpus (the first directory); examples and
 * tests/diag are the seeds. A crash, leak or timeout is saved as
 * crash-*, leak-* or timeout-* in the current directory: turn each into a
 * golden file under tests/diag (or a case in test_robustness.c) before
 * fixing it.
 *
 * Besides what the sanitizers catch, the target checks the front end's
 * contract: a failed compilation has printed at least one error, and a
 * successful one has a graph and printed none.
 */
#include <stdio.h>
#include <stdlib.h>

#include "ir.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    static FILE *sink;
    if (!sink)
        sink = fopen("/dev/null", "w");
    Compilation c;
    bool ok = compile_front(&c, "fuzz.cnn", (const char *)data, size, NULL, sink);
    if (ok && (!c.graph || c.diags.errors != 0))
        abort();   /* succeeded, yet no graph or an error printed */
    if (!ok && c.diags.errors == 0)
        abort();   /* failed without a word */
    comp_free(&c);
    return 0;
}
