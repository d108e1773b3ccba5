# cnnc — build, test, and everything else a newcomer runs.
#
#   make            build ./cnnc (gcc by default; CC=clang works the same)
#   make test       build with AddressSanitizer + UBSan and run the test suite
#   make deps       install the Debian packages the project needs (root)
#   make clean

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wno-missing-field-initializers
# flex's and bison's output is not ours to fix; it is still built with -Werror
GENWARN  = -std=c11 -Wall -Werror -Wno-unused-function -Wno-sign-compare
SAN      = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

B        = build
SRC      = $(filter-out compiler/main.c,$(wildcard compiler/*.c))
HDR      = $(wildcard compiler/*.h) dsl/ast.h
GEN      = $(B)/dsl/parser.c $(B)/dsl/lexer.c
INC      = -Icompiler -Idsl -I$(B)/dsl

.PHONY: all test test-run deps clean regen demo bench
all: cnnc

# ---- the language front: bison and flex ---------------------------------
$(B)/dsl/parser.c $(B)/dsl/parser.h: dsl/parser.y
	@mkdir -p $(B)/dsl
	bison -Wall -Werror --defines=$(B)/dsl/parser.h -o $(B)/dsl/parser.c $<

$(B)/dsl/lexer.c $(B)/dsl/lexer.h: dsl/lexer.l $(B)/dsl/parser.h
	@mkdir -p $(B)/dsl
	flex --header-file=$(B)/dsl/lexer.h -o $(B)/dsl/lexer.c $<

# ---- two flavours of every object: plain and sanitized -------------------
$(B)/obj/%.o: compiler/%.c $(HDR) $(B)/dsl/parser.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) $(INC) -c $< -o $@

$(B)/obj/dsl/%.o: $(B)/dsl/%.c $(B)/dsl/lexer.h $(B)/dsl/parser.h $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(GENWARN) $(INC) -c $< -o $@

$(B)/san/%.o: compiler/%.c $(HDR) $(B)/dsl/parser.h
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(SAN) $(WARN) $(INC) -c $< -o $@

$(B)/san/dsl/%.o: $(B)/dsl/%.c $(B)/dsl/lexer.h $(B)/dsl/parser.h $(HDR)
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(SAN) $(GENWARN) $(INC) -c $< -o $@

OBJ     = $(SRC:compiler/%.c=$(B)/obj/%.o) $(B)/obj/dsl/parser.o $(B)/obj/dsl/lexer.o
SANOBJ  = $(SRC:compiler/%.c=$(B)/san/%.o) $(B)/san/dsl/parser.o $(B)/san/dsl/lexer.o

# cnnc carries the runtime's sources, to build training code anywhere.
RTFILES  = $(wildcard runtime/*.h runtime/*.c)
$(B)/tools/embed: compiler/tools/embed.c
	@mkdir -p $(B)/tools
	$(CC) -O1 -o $@ $<
$(B)/runtime_files.c: $(B)/tools/embed $(RTFILES)
	$(B)/tools/embed $@ $(RTFILES)
$(B)/obj/runtime_files.o: $(B)/runtime_files.c $(HDR)
	$(CC) $(CFLAGS) -std=c11 -Wall -Werror $(INC) -c $< -o $@
$(B)/san/runtime_files.o: $(B)/runtime_files.c $(HDR)
	$(CC) -O1 -g $(SAN) -std=c11 -Wall -Werror $(INC) -c $< -o $@

$(B)/libcnnc.a: $(OBJ) $(B)/obj/runtime_files.o
	ar rcs $@ $^

$(B)/libcnnc-san.a: $(SANOBJ) $(B)/san/runtime_files.o
	ar rcs $@ $^

cnnc: $(B)/obj/main.o $(B)/libcnnc.a
	$(CC) $(CFLAGS) -o $@ $^ -lm

# The sanitized compiler, for tests that run it as a program.
$(B)/cnnc-san: $(B)/san/main.o $(B)/libcnnc-san.a
	$(CC) -g $(SAN) -o $@ $^ -lm

# ---- tests (Criterion), always under ASan + UBSan --------------------------
TESTSRC  = $(wildcard tests/test_*.c)
TESTBIN  = $(TESTSRC:tests/%.c=$(B)/tests/%)

$(B)/tests/%: tests/%.c tests/helpers.h $(B)/libcnnc-san.a
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(SAN) $(WARN) -Wno-missing-prototypes $(INC) -Itests $< \
	    $(B)/libcnnc-san.a -lcriterion -lm -o $@

test: deps
	@$(MAKE) --no-print-directory test-run

test-run: cnnc $(B)/cnnc-san $(TESTBIN) $(B)/libcnnrt.a
	@tests/run_all.sh

# generated/: what the compiler writes for every example, committed so a
# reader sees it; tests/test_generated.c fails when it is stale.
# generated/NAME: every example as the AVX2 target writes it (named, so the
# text does not depend on the CPU that runs this); generated/scalar/NAME: a
# few as the portable target writes them.
SCALAR_SHOWN = lenet5 resnet18
regen: cnnc
	@for f in examples/*.cnn; do \
	    n=$$(basename $$f .cnn); \
	    ./cnnc build $$f --target avx2 -o generated/$$n || exit 1; \
	done; \
	for n in $(SCALAR_SHOWN); do \
	    ./cnnc build examples/$$n.cnn --target scalar -o generated/scalar/$$n || exit 1; \
	done; \
	./cnnc build examples/resnet18.cnn --target avx2 --batch 8 -o generated/batch8/resnet18 \
	    || exit 1; echo "generated/ rewritten from examples/"

# Debian packages the build, the tests and the demo need. `make deps` installs
# the missing ones (as root, or through sudo); with all present it does nothing.
DEPS = make gcc clang libclang-rt-14-dev flex bison libcriterion-dev \
       binutils graphviz gnuplot-nox bsdextrautils python3-torch \
       python3-torchvision python3-numpy libopenblas0-openmp

# The README's main job: compile a network, train it on Fashion-MNIST, run
# the trained model through the generated C. EPOCHS=3 make demo is quicker.
demo: deps
	@$(MAKE) --no-print-directory cnnc $(B)/libcnnrt.a
	examples/demo.sh

# Benchmarks (not tests): cnnc beside PyTorch in the same run.
bench: deps
	@$(MAKE) --no-print-directory cnnc
	/usr/bin/python3 bench/train_bench.py
	@mkdir -p $(B)
	$(CC) -O2 -mavx2 -mfma -pthread bench/peak.c -o $(B)/peak
	$(B)/peak
	/usr/bin/python3 bench/layers.py
	/usr/bin/python3 bench/networks.py

deps:
	@missing=$$(for p in $(DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "make deps: installing" $$missing; \
	    sudo=; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	    $$sudo apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q \
	        --no-install-recommends $$missing; \
	fi

clean:
	rm -rf $(B) cnnc

include runtime/runtime.mk
