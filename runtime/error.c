/* error.c — the last error message, one per thread. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static RT_THREAD_LOCAL char message[1024];

const char *cnnrt_error(void) {
    return message;
}

int rt_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return -1;
}
