/* Runs tests/api/chainpool.cnn on 8 samples, then on the first alone, and
 * writes both outputs' bits to the file argv[1]. */
#include <stdio.h>

#include "chainpool.h"

enum { B = 8 };
static float params[chainpool_PARAM_COUNT], packed[chainpool_PACKED_COUNT];
static float x[B * chainpool_INPUT_SIZE], y[(B + 1) * chainpool_OUTPUT_SIZE];
static _Alignas(64) unsigned char arena[chainpool_ARENA_BYTES];

int main(int argc, char **argv) {
    unsigned s = 7;
    if (argc != 2)
        return 1;
    for (int i = 0; i < chainpool_PARAM_COUNT; i++) {
        s = s * 1103515245u + 12345u;
        params[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 0.2f;
    }
    for (int i = 0; i < B * chainpool_INPUT_SIZE; i++) {
        s = s * 1103515245u + 12345u;
        x[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
    chainpool_pack(params, packed);
    if (chainpool_forward(packed, x, y, B, arena))
        return 2;
    if (chainpool_forward(packed, x, y + B * chainpool_OUTPUT_SIZE, 1, arena))
        return 3;
    FILE *out = fopen(argv[1], "wb");
    return out && fwrite(y, sizeof y, 1, out) == 1 && !fclose(out) ? 0 : 4;
}
