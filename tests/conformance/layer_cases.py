"""Small networks that put every layer of DSL.md through its backward pass,
with argument edge cases: strides, padding in every mode, dilation, groups,
tuple kernels, pad=same with even kernels, gradients that meet (a tensor read
by several layers, x + x), and every activation. Shared by fd_check.py
(finite differences) and grad.py (torch autograd)."""

CASES = {
    "conv_stride_pad_dilation": ("[2, 9, 9]", "y = x -> conv(3, 3, stride=2, pad=2, dilation=2) -> tanh"),
    "conv_groups_tuples": ("[4, 7, 7]", "y = x -> conv(6, (3, 2), stride=(2, 1), pad=(1, 0), groups=2, bias=false)"),
    "conv_depthwise_reflect": ("[3, 6, 6]", "y = x -> conv(3, 3, pad=1, groups=3, pad_mode=reflect) -> conv(2, 1)"),
    "conv_replicate_circular": ("[2, 5, 5]", "y = x -> conv(2, 3, pad=2, pad_mode=replicate)\n"
                                             "        -> conv(2, 3, pad=1, pad_mode=circular)"),
    "conv_same_even_kernel": ("[2, 6, 6]", "y = x -> conv(3, 4, pad=same) -> sigmoid"),
    "conv_stride3_output1": ("[2, 5, 5]", "y = x -> conv(3, 3, stride=3) -> conv(2, 1, stride=2)"),
    "local_stride_pad": ("[2, 6, 6]", "y = x -> local(3, 3, stride=2, pad=1) -> elu"),
    "dense_bn_vector": ("[2, 3, 3]", "y = x -> dense(7) -> bn -> leakyrelu(0.2) -> dense(4)"),
    "bn_image_relu6": ("[3, 4, 4]", "y = x -> conv(4, 3, pad=1) -> bn(eps=0.001, momentum=0.2) -> relu6 -> conv(2, 1)"),
    "max_avg_l2_pools": ("[2, 8, 8]", "y = x -> conv(3, 1) -> maxpool(3, stride=2, pad=1) -> avgpool(2, pad=1) -> l2pool(2)"),
    "global_pools_concat": ("[2, 5, 5]", "a = x -> conv(3, 1) -> globalavgpool\n"
                                         "    b = x -> conv(3, 1) -> globalmaxpool\n"
                                         "    y = concat(a, b) -> flatten -> dense(3)"),
    "lrn_odd_even": ("[6, 3, 3]", "y = x -> conv(6, 1) -> lrn(3, alpha=0.1, beta=0.75, k=2) -> conv(5, 1) -> lrn(4, alpha=0.2)"),
    "prelu_maxout": ("[4, 3, 3]", "y = x -> conv(6, 1) -> prelu -> maxout(2) -> flatten -> dense(6) -> prelu -> maxout(3)"),
    "softmax_image_vector": ("[3, 2, 2]", "y = x -> conv(4, 1) -> softmax -> flatten -> dense(5) -> softmax"),
    "bias_dropout": ("[2, 3, 3]", "y = x -> conv(2, 1) -> bias -> dropout(0.3) -> relu"),
    "add_concat_reuse": ("[3, 4, 4]", "a = x -> conv(3, 3, pad=1)\n"
                                      "    b = a + a + x\n"
                                      "    y = concat(b, a, x -> relu) -> conv(2, 1)"),
    # enough channels for the vector targets' weight gradient in vectors of
    # output channels (kernels_train.c, DwVec): 90 and 108 rows of X, a
    # ragged last tile of rows, 12 and 11 channels padded to vectors, stride 2
    # (columns), groups and dilation; and a 2x2 max pool tiling its input
    "conv_grads_in_vectors": ("[10, 8, 8]",
                              "y = x -> conv(12, 3, pad=1) -> relu -> maxpool(2)\n"
                              "        -> conv(24, 3, stride=2, pad=1, bias=false)\n"
                              "        -> conv(22, 3, pad=(1, 2), dilation=(1, 2), groups=2)"),
    # the input gradient of a 3x3 stride-1 layer as Winograd on the vector
    # targets (simd_dx_node): 20 and 24 channels, no padding in the layer
    "conv_input_grad_winograd": ("[16, 12, 12]",
                                 "y = x -> conv(20, 3, pad=1) -> relu -> conv(24, 3) -> conv(2, 1)"),
    "two_outputs": ("[2, 4, 4]", "a = x -> conv(3, 3, pad=1) -> relu\n"
                                 "    y = a -> globalavgpool -> flatten\n"
                                 "    z = a -> conv(1, 1) -> sigmoid"),
}


def network(name, dims, body):
    outputs = "y, z" if "z = " in body else "y"
    return ("network c_%s {\n    input x: %s\n    %s\n    output %s\n}\n"
            % (name, dims, body, outputs))
