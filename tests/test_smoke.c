#include "helpers.h"

Test(smoke, lenet_compiles) {
    FrontResult r = {0};
    Graph *g = must_compile(&r,
        "network lenet5 {\n"
        "    input img: [1, 32, 32]\n"
        "    f = img -> conv(6, 5) -> relu -> maxpool(2)\n"
        "            -> conv(16, 5) -> relu -> maxpool(2)\n"
        "    logits = f -> dense(120) -> relu -> dense(84) -> relu -> dense(10)\n"
        "    output logits\n"
        "}\n");
    cr_expect_eq(g->learnable_count, 61706);
    front_done(&r);
}
