/* Uses the generated C API of tests/api/two.cnn directly, as an embedding
 * application would: pack, forward with two inputs and two outputs, the
 * error codes, and an arena that is never overrun. Exit 0 when all holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "two.h"

static int fails = 0;

static void expect(int cond, const char *what) {
    if (!cond) {
        printf("FAIL: %s\n", what);
        fails++;
    }
}

int main(void) {
    /* dense weight [2,3] then bias [2], the canonical order */
    const float params[two_PARAM_COUNT] = {1, 2, 3, -1, 0, 1, 0.5f, -0.5f};
    float packed[two_PACKED_COUNT + 1];
    float a[2 * two_IN_a_SIZE] = {1, 1, 1, 2, 0, -1};
    float b[2 * two_IN_b_SIZE] = {1, -1, 2, 3, -4, 4, 0, 0,
                                  8, 8, 8, 8, 1, 1, 1, 1};
    float s[2 * two_OUT_s_SIZE], t[2 * two_OUT_t_SIZE];
    enum { GUARD = 256 };
    unsigned char *raw = malloc(two_ARENA_BYTES + 64 + GUARD + 1);
    unsigned char *arena = raw + (64 - (size_t)raw % 64) % 64;
    memset(arena + two_ARENA_BYTES, 0xA5, GUARD);

    expect(two_PARAM_COUNT == 8, "PARAM_COUNT is 8");
    expect(two_INPUT_SIZE == 3 && two_IN_b_SIZE == 8, "input sizes");
    expect(two_OUTPUT_SIZE == 2 && two_OUT_t_SIZE == 2, "output sizes");
    two_pack(params, packed);
    expect(two_forward(packed, a, b, s, t, 2, arena) == 0, "forward returns 0");
    /* s = W a + bias */
    expect(s[0] == 6.5f && s[1] == -0.5f, "s of sample 0");
    expect(s[2] == -0.5f && s[3] == -3.5f, "s of sample 1");
    /* t = mean over positions of relu(b), per channel */
    expect(t[0] == 1.5f && t[1] == 1.0f, "t of sample 0");
    expect(t[2] == 8.0f && t[3] == 1.0f, "t of sample 1");
    for (int i = 0; i < GUARD; i++)
        if (arena[two_ARENA_BYTES + i] != 0xA5) {
            expect(0, "the arena is not overrun");
            break;
        }
    s[0] = 42;
    expect(two_forward(packed, a, b, s, t, 0, arena) == 1, "batch 0 is refused");
    expect(two_forward(packed, a, b, s, t, two_BATCH + 1, arena) == 1,
           "batch above two_BATCH is refused");
    expect(two_forward(packed, a, b, s, t, 1, arena + 4) == 2,
           "a misaligned arena is refused");
    expect(s[0] == 42, "a refused call touches nothing");
    free(raw);
    printf("%s\n", fails ? "api test failed" : "api test passed");
    return fails != 0;
}
