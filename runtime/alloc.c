/* alloc.c — every allocation of the runtime, and the two fault hooks the
 * tests use to make an allocation or a write fail on purpose (SQLite's
 * memdebug_fail idea: fail the N-th, N = 1, 2, ... until the operation
 * completes, and check each failure ends cleanly). */
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

static RT_THREAD_LOCAL long alloc_countdown;       /* 0: disarmed */
static RT_THREAD_LOCAL int64_t write_budget = -1;  /* -1: disarmed */

void cnnrt_test_fail_alloc(long n) {
    alloc_countdown = n > 0 ? n : 0;
}

void cnnrt_test_fail_write(int64_t bytes) {
    write_budget = bytes >= 0 ? bytes : -1;
}

/* True when this allocation is the one chosen to fail. */
static int injected_failure(void) {
    if (alloc_countdown == 0)
        return 0;
    return --alloc_countdown == 0;
}

void *rt_malloc(size_t size) {
    if (injected_failure())
        return NULL;
    return malloc(size ? size : 1);
}

void *rt_calloc(size_t count, size_t size) {
    if (injected_failure())
        return NULL;
    if (count == 0 || size == 0)
        count = size = 1;
    return calloc(count, size);
}

void *rt_alloc_array(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size)
        return NULL;
    return rt_malloc(count * size);
}

void *rt_realloc(void *p, size_t size) {
    if (injected_failure())
        return NULL;
    return realloc(p, size ? size : 1);
}

int64_t rt_write_budget(size_t want) {
    if (write_budget < 0)
        return -1;
    int64_t allowed = (int64_t)want < write_budget ? (int64_t)want : write_budget;
    write_budget -= allowed;
    return allowed;
}
