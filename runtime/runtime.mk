# runtime/runtime.mk — libcnnrt, the runtime that trains compiled networks.
# Included at the end of the top Makefile (it uses B, CC, CFLAGS, WARN, SAN).
#
#   build/libcnnrt.a      what a training program links, with -lz -lm
#   build/libcnnrt-san.a  the same under ASan + UBSan, for the tests
#   make conformance-optim   SGD/Adam/AdamW against torch.optim (needs python3-torch)

RTSRC    = $(wildcard runtime/*.c)
RTHDR    = runtime/cnnrt.h runtime/internal.h
RTOBJ    = $(RTSRC:runtime/%.c=$(B)/rt/%.o)
RTSANOBJ = $(RTSRC:runtime/%.c=$(B)/rt-san/%.o)
RTLIBS   = -lz -lm

$(B)/rt/%.o: runtime/%.c $(RTHDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -Iruntime -c $< -o $@

$(B)/rt-san/%.o: runtime/%.c $(RTHDR)
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(SAN) $(WARN) -Iruntime -c $< -o $@

# rm first: an object whose source was deleted must not linger in the archive
$(B)/libcnnrt.a: $(RTOBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libcnnrt-san.a: $(RTSANOBJ)
	@rm -f $@
	ar rcs $@ $^

# The runtime's tests link the runtime and zlib, not the compiler; this
# explicit rule takes precedence over the top Makefile's $(B)/tests/% pattern.
$(B)/tests/test_runtime: tests/test_runtime.c tests/data/optim_ref.h $(B)/libcnnrt-san.a
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(SAN) $(WARN) -Wno-missing-prototypes -Iruntime -Itests $< \
	    $(B)/libcnnrt-san.a -lcriterion $(RTLIBS) -o $@

.PHONY: runtime conformance-optim
runtime: $(B)/libcnnrt.a $(B)/libcnnrt-san.a
all: $(B)/libcnnrt.a

conformance-optim:
	/usr/bin/python3 tests/conformance/optim_vs_torch.py

# zlib for the .gz data sets, and the real training data the tests read
DEPS += zlib1g-dev dataset-fashion-mnist
