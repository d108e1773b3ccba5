#!/usr/bin/python3
"""run.py — the conformance suite for `cnnc run` against the PyTorch twin (twin.py).

For every case (a .cnn text, a batch size, an input scale): draw random canonical parameters and
inputs (seeded by the case name; scales in twin.random_params), write them as .f32 files to a
temporary directory, run

    $CNNC run NET.cnn --weights P.f32 --input X.f32 [...] --output Y.f32 [...] --batch N $CNNC_FLAGS

read the outputs back, and compare each with the twin's: relative error = max|diff| / max|ref|
must be <= 1e-4 (DESIGN.md, "Correctness"). The reference is the twin computed in float64 by
default (--ref float32 for PyTorch's float32), so the error measured is cnnc's own.

Cases:
  layer:*    one small network per layer of DSL.md and per argument edge case
  net:*      small multi-layer networks (fusion patterns, branches, several inputs/outputs)
  example:*  every examples/*.cnn, at a reduced input size (name@SIZE) unless --full, and the
             cheap ones (googlenet, mobilenet, alphago) at their declared size too
  *@b3       the same at batch 3

Usage:
  /usr/bin/python3 tests/conformance/run.py [-k SUBSTR] [--list] [--flags "--target scalar"]
         [-j N] [--full] [--batch N] [--ref float32|float64] [--keep] [--fresh-cache] [--self-test] [-v]
Environment: CNNC (the cnnc command, default ./cnnc at the repository root), CNNC_FLAGS (extra
options for every `cnnc run`, e.g. "--target avx2"; --flags adds more), CNNC_TIMEOUT (seconds per
run, default 600), CNNC_CACHE (passed on to cnnc; see --fresh-cache).
--self-test puts the twin itself (twin.py's `run` command line, float32) in cnnc's place, which
exercises all of this suite's plumbing (files, batch-major layout, several inputs/outputs, option
passing) and measures how far a float32 computation lands from the float64 reference.
Prints one line per case and finally `N passed, M failed`; exits 1 if any failed.
"""
import argparse
import concurrent.futures
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True   # leave no __pycache__ in the tree
sys.path.insert(0, HERE)
import twin  # noqa: E402

REPO = twin.REPO
TOL = 1e-4


class Case:
    def __init__(self, name, text, batch=1, scale=1.0, network=None, calib=True, note=""):
        self.name, self.text, self.batch, self.scale = name, text, batch, scale
        self.network, self.calib, self.note = network, calib, note


def single(shape, body):
    """A network of one input and one chain of layers."""
    return "network t {\n    input x: [%s]\n    y = x -> %s\n    output y\n}\n" % (
        ", ".join(map(str, shape)), body)


# ---------------------------------------------------------------------------------------------
# (a) one case per layer and argument edge case

LAYER_CASES = [
    # name, input shape, chain, input scale
    # conv
    ("conv_basic", [3, 8, 8], "conv(4, 3)", 1),
    ("conv_nobias", [3, 8, 8], "conv(4, 3, bias=false)", 1),
    ("conv_stride2_pad1", [3, 9, 9], "conv(5, 3, stride=2, pad=1)", 1),
    ("conv_stride2_even_in", [3, 10, 10], "conv(5, 3, stride=2, pad=1)", 1),
    ("conv_stride3", [3, 11, 11], "conv(4, 3, stride=3, pad=1)", 1),
    ("conv_dilation2", [3, 9, 9], "conv(4, 3, dilation=2, pad=2)", 1),
    ("conv_dilation2_nopad", [3, 9, 10], "conv(4, 3, dilation=2)", 1),
    ("conv_dilation_tuple", [3, 9, 10], "conv(4, 3, dilation=(2, 3), pad=(2, 3))", 1),
    ("conv_groups2", [4, 8, 8], "conv(6, 3, pad=1, groups=2)", 1),
    ("conv_groups4_s2", [8, 9, 9], "conv(12, 3, stride=2, pad=1, groups=4)", 1),
    ("conv_depthwise", [8, 8, 8], "conv(8, 3, pad=1, groups=8, bias=false)", 1),
    ("conv_depthwise_s2", [16, 9, 9], "conv(16, 3, stride=2, pad=1, groups=16)", 1),
    ("conv_depthwise_mult2", [8, 7, 7], "conv(16, 3, pad=1, groups=8)", 1),
    ("conv_depthwise_5x5", [12, 9, 9], "conv(12, 5, pad=2, groups=12)", 1),
    # rows of 8 to 15 outputs: AVX-512's depthwise kernel takes 8-wide vectors there
    # (depthwise.c dw_width), with a pool in it and a leaky epilogue
    ("conv_depthwise_w14", [24, 14, 14], "conv(24, 3, pad=1, groups=24, bias=false) -> relu6", 1),
    ("conv_depthwise_s2_w12", [16, 23, 24], "conv(16, 3, stride=2, pad=1, groups=16) -> "
     "leakyrelu(0.1)", 1),
    ("conv_depthwise_pool_w10", [8, 10, 10], "conv(8, 3, pad=1, groups=8) -> leakyrelu(0.2) "
     "-> maxpool(2)", 1),
    # rows that 8-wide vectors cover with fewer lanes than 16-wide ones (20 and 24 outputs)
    # also take them on AVX-512
    ("conv_depthwise_w20", [8, 6, 20], "conv(8, 3, pad=1, groups=8, bias=false) -> relu6", 1),
    ("conv_depthwise_s2_w24", [8, 7, 48], "conv(8, 3, stride=2, pad=1, groups=8)", 1),
    # one input channel to many outputs: depthwise.c's multiplier form (rows of 16 or more
    # outputs, so the avx512 build takes it too)
    ("conv_one_channel", [1, 12, 19], "conv(6, 3, pad=1)", 1),
    # an even multiplier with a 3x3 kernel: on AVX-512 a tile computes two output channels of
    # a plane (MNIST's first layer's form), with a fused pool, and with stride 2
    ("conv_mult_pair_pool", [2, 12, 28], "conv(8, 3, pad=1, groups=2) -> relu -> maxpool(2)", 1),
    ("conv_mult_pair_s2", [3, 11, 40], "conv(6, 3, stride=2, pad=1, groups=3) -> relu6", 1),
    ("conv_one_channel_5x5_s2", [1, 20, 33], "conv(5, 5, stride=2, pad=2, bias=false)", 1),
    ("conv_depthwise_mult3_reflect", [4, 9, 17], "conv(12, 3, pad=(1, 2), groups=4, "
     "pad_mode=reflect)", 1),
    ("conv_tuple_kernel", [3, 7, 9], "conv(4, (3, 5), stride=(1, 2), pad=(1, 2))", 1),
    ("conv_tuple_kernel_tall", [2, 11, 6], "conv(3, (5, 1), stride=(2, 1))", 1),
    ("conv_same_odd", [3, 7, 8], "conv(4, 3, pad=same)", 1),
    ("conv_same_even", [3, 8, 7], "conv(4, 4, pad=same)", 1),
    ("conv_same_even_tuple", [3, 7, 8], "conv(5, (2, 3), pad=same)", 1),
    ("conv_same_even_dil", [3, 9, 9], "conv(4, 2, pad=same, dilation=3)", 1),
    ("conv_reflect", [3, 7, 8], "conv(4, 3, pad=1, pad_mode=reflect)", 1),
    ("conv_reflect_pad2_s2", [3, 7, 8], "conv(4, 5, stride=2, pad=2, pad_mode=reflect)", 1),
    ("conv_replicate", [3, 7, 8], "conv(4, 3, pad=2, pad_mode=replicate)", 1),
    ("conv_circular", [3, 7, 8], "conv(4, 3, pad=1, pad_mode=circular)", 1),
    ("conv_circular_tuple", [3, 6, 8], "conv(4, (3, 5), pad=(1, 3), pad_mode=circular)", 1),
    ("conv_same_even_reflect", [3, 8, 7], "conv(4, 4, pad=same, pad_mode=reflect)", 1),
    ("conv_same_even_replicate", [3, 8, 7], "conv(4, (2, 4), pad=same, pad_mode=replicate)", 1),
    ("conv_same_even_circular", [3, 8, 7], "conv(4, 4, pad=same, pad_mode=circular)", 1),
    ("conv_out1x1", [3, 7, 7], "conv(5, 7)", 1),
    ("conv_out1x1_pad", [3, 5, 5], "conv(5, 7, pad=1)", 1),
    ("conv_1x1", [8, 5, 6], "conv(16, 1)", 1),
    ("conv_1x1_stride2", [4, 9, 9], "conv(8, 1, stride=2, bias=false)", 1),
    ("conv_odd_channels", [11, 10, 10], "conv(13, 3, pad=1)", 1),
    ("conv_wide", [32, 14, 14], "conv(64, 3, pad=1)", 1),
    ("conv_1x1_wide", [64, 7, 7], "conv(96, 1, bias=false)", 1),
    ("conv_kernel_gt_stride_big", [3, 23, 23], "conv(8, 11, stride=4, pad=2)", 1),
    ("conv_1x1_input_1x1", [20, 1, 1], "conv(7, 1)", 1),
    ("conv_3x3_on_1x1", [4, 1, 1], "conv(5, 3, pad=1)", 1),
    ("conv_pad_gt_half", [3, 5, 5], "conv(4, 3, pad=3)", 1),
    ("conv_stride_gt_kernel", [3, 10, 10], "conv(4, 1, stride=3)", 1),
    # one output row: a stride past the input reads nothing more (scalar: no phase planes)
    ("conv_stride_past_input", [3, 9, 7], "conv(4, 3, stride=(500, 2), pad=1)", 1),
    ("conv_strides_past_input", [2, 6, 5], "conv(3, 2, stride=1000)", 1),
    ("conv_stride2_dil2", [3, 11, 11], "conv(4, 3, stride=2, dilation=2, pad=2)", 1),
    ("conv_depthwise_dil2", [6, 9, 9], "conv(6, 3, pad=2, dilation=2, groups=6)", 1),
    ("conv_1x1_big_tail", [37, 3, 3], "conv(131, 1)", 1),
    # 7x7 outputs: AVX-512's C-form tile of MP=7 positions x MR=48 channels, stride 1 and 2
    ("conv_1x1_mp7", [256, 7, 7], "conv(96, 1, bias=false) -> relu", 1),
    ("conv_1x1_s2_mp7", [64, 14, 14], "conv(48, 1, stride=2)", 1),
    # 14x14 1x1 on AVX-512: vectors of positions, MR=12 x NR=32 (its last tile 4 positions)
    ("conv_1x1_p14", [512, 14, 14], "conv(128, 1) -> relu", 1),
    # a 1x1 stride-2 layer whose 14x14 outputs fill vectors: vectors of positions after
    # the gather (im2col) on both targets, MR=12 x NR=32 and MR=6 x NR=16
    ("conv_1x1_s2_gather", [96, 28, 28], "conv(128, 1, stride=2) -> relu", 1),
    # 7x7 outputs on AVX2: the C-form tile of MP=5 positions x MR=16 channels (the two above
    # take it too), here from a padded 3x3 stride-2 input with a ragged last channel block
    ("conv_3x3_s2_mp5", [32, 14, 14], "conv(40, 3, stride=2, pad=1)", 1),
    # Winograd on the vector targets (winograd.c): rows of whole vectors of tiles with an odd
    # last row and column, two and four tile rows a vector, no padding, channel counts that
    # leave the register tile ragged. wino_tile gives the 7x7 and 8x8 planes F(2x2,3x3), the
    # others F(4x4,3x3) on both targets
    ("conv_wino_odd", [16, 29, 31], "conv(18, 3, pad=1)", 1),
    ("conv_wino_two_rows", [16, 14, 14], "conv(24, 3, pad=1, bias=false) -> relu", 1),
    ("conv_wino_four_rows", [16, 7, 7], "conv(20, 3, pad=1)", 1),
    ("conv_wino_small", [16, 8, 8], "conv(20, 3, pad=1)", 1),
    ("conv_wino_pad0", [24, 30, 37], "conv(40, 3)", 1),
    # ... F(4x4,3x3): 4x4 tiles with a 1-row and 1-column leftover (33x25), 13x13 (one
    # column and row left, two tile rows a vector on AVX2, four on AVX-512), rows of 18 tiles
    # (three vectors a row on AVX2, two on AVX-512, the last part full), no padding (20x25)
    ("conv_wino4_leftover", [16, 33, 25], "conv(20, 3, pad=1)", 1),
    ("conv_wino4_rows", [16, 13, 13], "conv(18, 3, pad=1, bias=false) -> relu", 1),
    ("conv_wino4_wide", [17, 30, 70], "conv(24, 3, pad=1) -> leakyrelu(0.1)", 1),
    ("conv_wino4_pad0", [24, 22, 27], "conv(40, 3)", 1),
    # ... with a 2x2 max pool in the output transform (fuse_pool.c): rows of 30 tiles (a
    # last vector part full), 7 (two rows a vector on AVX-512), 4 (two rows on AVX2, four on
    # AVX-512) and 13
    ("conv_wino_pool", [16, 20, 60], "conv(24, 3, pad=1) -> relu -> maxpool(2)", 1),
    ("conv_wino_pool_two_rows", [16, 14, 14], "conv(24, 3, pad=1, bias=false) -> maxpool(2)", 1),
    ("conv_wino_pool_four_rows", [16, 8, 8], "conv(20, 3, pad=1) -> leakyrelu(0.2) -> maxpool(2)", 1),
    ("conv_wino_pool_odd_tiles", [16, 12, 26], "conv(16, 3, pad=1) -> relu6 -> maxpool(2)", 1),
    # ... and other pools after it a band of tile rows at a time (pool_bands.c): F(4x4) in
    # several bands into a padded 3x3/2 pool (rows moved down between bands); AlexNet's conv5
    # and pool3 (F(4x4), rows of tiles two or four a vector); F(2x2) on 7x7 (four rows a
    # vector); a 2x2 pool on an odd plane, which the registers cannot take
    ("conv_wino_band_pool", [32, 40, 40], "conv(32, 3, pad=1) -> relu -> maxpool(3, stride=2, pad=1)", 1),
    ("conv_wino_band_pool_alexnet5", [64, 13, 13], "conv(64, 3, pad=1) -> relu -> maxpool(3, stride=2)", 1),
    ("conv_wino2_band_pool", [32, 7, 7], "conv(32, 3, pad=1) -> relu -> maxpool(3, stride=2, pad=1)", 1),
    ("conv_wino_band_pool_odd", [16, 15, 15], "conv(24, 3, pad=1) -> maxpool(2)", 1),
    # ... and any vector max pool after the direct kernels or the row Winograd, taken a chunk
    # of the convolution's tiles at a time (pool_bands.c): tiles outermost with the output in
    # several chunks (16x80x80 is 400 KB) and a padded pool; a strided conv (the channel or
    # im2col form) into a stride-1 pool; channel blocks outermost (128x1200 weights, 600 KB),
    # also with groups whose 110 channels leave the last block of each ragged; a pool window
    # as big as the plane; ResNet's first layer and pool (several chunks of row pairs)
    ("conv_band_pool", [3, 80, 80], "conv(16, 5, pad=2) -> relu -> maxpool(3, stride=2, pad=1)", 1),
    ("conv_band_pool_s2", [6, 23, 21], "conv(16, 3, stride=2, pad=1) -> maxpool(3, stride=1, pad=1)", 1),
    ("conv_band_pool_blocks", [48, 12, 12], "conv(128, 5, pad=2) -> relu -> maxpool(2)", 1),
    ("conv_band_pool_groups", [48, 9, 9], "conv(330, 5, pad=2, groups=3) -> maxpool(3, stride=2)", 1),
    ("conv_band_pool_whole", [5, 11, 11], "conv(9, 3, stride=2, bias=false) -> maxpool(5)", 1),
    ("conv_band_pool_rows7", [3, 96, 96], "conv(16, 7, stride=2, pad=3) -> relu -> maxpool(3, stride=2, pad=1)", 1),
    # 7-wide stride-2 layers by 1-D Winograd along rows (wino_rows.c): an odd output width
    # (a last pair half used), rows that end inside a vector, four input channels, output
    # channels that leave the register tile ragged, no padding, a 3-row kernel, and a fused
    # activation; the narrow ones keep the direct kernel on AVX-512, and one input channel
    # goes to depthwise.c's multiplier form, which takes such layers first
    ("conv_rows7_s2", [3, 64, 70], "conv(16, 7, stride=2, pad=3)", 1),
    ("conv_rows7_s2_one_channel", [1, 33, 67], "conv(6, 7, stride=2, pad=3, bias=false)", 1),
    ("conv_rows7_s2_four_channels", [4, 40, 96], "conv(20, 7, stride=2, pad=2) -> relu", 1),
    ("conv_rows7_s2_nopad", [3, 37, 45], "conv(8, 7, stride=2)", 1),
    ("conv_rows7_s2_3x7", [3, 21, 64], "conv(9, (3, 7), stride=2, pad=(1, 3))", 1),
    # local
    ("local_basic", [3, 6, 6], "local(4, 3)", 1),
    ("local_stride_pad", [3, 7, 7], "local(5, 3, stride=2, pad=1)", 1),
    ("local_tuple_nobias", [2, 6, 7], "local(3, (2, 3), stride=(2, 1), bias=false)", 1),
    ("local_pad_tuple", [4, 5, 6], "local(2, 3, pad=(1, 0))", 1),
    ("local_out1", [3, 4, 4], "local(6, 4)", 1),
    # dense
    ("dense_vec", [20], "dense(7)", 1),
    ("dense_chw", [3, 4, 5], "dense(6)", 1),
    ("fc_nobias", [33], "fc(5, bias=false)", 1),
    ("dense_1unit", [3, 2, 2], "dense(1)", 1),
    ("dense_wide", [300], "dense(257)", 1),
    # the vector kernels' panels of 2W units: 48 and 40 whole vectors with a
    # last panel half empty on one target, 24 a ragged vector on AVX-512
    ("dense_panels_ragged", [3, 4, 4], "dense(48) -> relu -> dense(24) -> dense(40)", 1),
    # bn
    ("bn_chw", [5, 4, 4], "bn", 1),
    ("bn_vec", [12], "bn", 1),
    ("bn_eps", [5, 3, 3], "bn(eps=0.1, momentum=0.5)", 1),
    # pooling
    ("maxpool2", [3, 8, 8], "maxpool(2)", 1),
    ("maxpool2_odd_in", [3, 7, 9], "maxpool(2)", 1),
    ("maxpool3_s2_pad1", [3, 9, 9], "maxpool(3, stride=2, pad=1)", 1),
    # one-column windows at column stride 2 take the scalar kernel: the vector
    # one's stride-2 taps read two columns at once (found by random networks)
    ("maxpool_one_column_s2", [2, 5, 10],
     "maxpool((2, 1), stride=2) -> maxpool((3, 1), stride=(1, 2), pad=(1, 0)) -> maxpool(1, stride=2)", 1),
    ("maxpool3_s2_pad1_even", [3, 8, 8], "maxpool(3, stride=2, pad=1)", 1),
    # rows copied into the padded plane a vector at a time, with a tail (37 = 32 + 5)
    ("maxpool3_s2_pad1_wide", [2, 6, 37], "maxpool(3, stride=2, pad=1)", 1),
    ("maxpool_s1_pad2_wide", [2, 5, 19], "maxpool(5, stride=1, pad=2)", 1),
    ("maxpool_tuple", [3, 8, 9], "maxpool((2, 3), stride=(2, 1))", 1),
    ("maxpool_tuple_pad", [3, 8, 9], "maxpool((3, 2), stride=(1, 2), pad=(1, 1))", 1),
    ("maxpool3_s3", [3, 9, 9], "maxpool(3, stride=3)", 1),
    ("maxpool_s1_pad", [3, 6, 6], "maxpool(3, stride=1, pad=1)", 1),
    # big enough that with --openmp a lone sample's channels are shared among the threads,
    # each padded into a plane of its own (kernels_simd.c, lone_split)
    ("maxpool_big_s2_pad", [24, 40, 40], "maxpool(3, stride=2, pad=1)", 1),
    ("maxpool_big_s1_pad", [20, 30, 30], "maxpool(3, stride=1, pad=1)", 1),
    ("maxpool_out1", [2, 5, 5], "maxpool(5)", 1),
    ("maxpool_negative", [3, 6, 6], "maxpool(3, stride=2, pad=1)", -1),
    ("maxpool2_pad1", [3, 5, 5], "maxpool(2, pad=1)", -1),
    ("maxpool_stride_gt_kernel", [3, 10, 10], "maxpool(2, stride=3)", 1),
    ("maxpool_pad_asym_tuple", [3, 6, 7], "maxpool(3, stride=2, pad=(1, 0))", 1),
    # the vector kernels' forms: rows of 16+ outputs, of 8-15, under 8 (masked)
    ("maxpool2_wide", [2, 6, 40], "maxpool(2)", 1),
    ("maxpool2_wide_odd", [2, 5, 35], "maxpool(2)", -1),
    ("maxpool3_s2_wide", [2, 7, 36], "maxpool(3, stride=2)", -1),
    ("maxpool3_s2", [2, 9, 21], "maxpool(3, stride=2)", 1),
    ("maxpool3_s2_narrow", [2, 7, 11], "maxpool(3, stride=2)", 1),
    ("avgpool2", [3, 8, 8], "avgpool(2)", 1),
    ("avgpool3_s2_pad1", [3, 9, 9], "avgpool(3, stride=2, pad=1)", 1),
    ("avgpool_tuple_pad", [3, 7, 8], "avgpool((3, 2), stride=1, pad=(1, 1))", 1),
    ("avgpool_s3", [3, 9, 9], "avgpool(3, stride=3)", 1),
    ("avgpool_out1", [4, 7, 7], "avgpool(7)", 1),
    ("avgpool2_pad1", [3, 5, 5], "avgpool(2, pad=1)", 1),
    ("avgpool_stride_gt_kernel", [3, 10, 10], "avgpool(2, stride=3)", 1),
    ("l2pool2", [3, 8, 8], "l2pool(2)", 1),
    ("l2pool3_s2", [3, 7, 7], "l2pool(3, stride=2)", 1),
    ("l2pool_tuple", [3, 6, 7], "l2pool((2, 3), stride=(1, 2))", 1),
    ("l2pool_k1", [3, 4, 4], "l2pool(1)", 1),
    ("globalavgpool", [6, 5, 7], "globalavgpool", 1),
    ("globalmaxpool", [6, 5, 7], "globalmaxpool", 1),
    ("globalavgpool_1x1", [6, 1, 1], "globalavgpool", 1),
    ("globalmaxpool_negative", [6, 4, 3], "globalmaxpool", -1),
    # lrn: odd and even sizes, sizes above the channel count, strong alpha so it matters
    ("lrn5_default", [8, 4, 4], "lrn(5)", 1),
    ("lrn5_alexnet", [8, 4, 4], "lrn(5, alpha=1e-4, beta=0.75, k=2)", 10),
    ("lrn3_strong", [7, 3, 4], "lrn(3, alpha=0.5, beta=0.75, k=2)", 1),
    ("lrn4_even", [7, 3, 4], "lrn(4, alpha=0.3, beta=0.6, k=1)", 1),
    ("lrn2_even", [6, 3, 3], "lrn(2, alpha=0.5, beta=1.0, k=1)", 1),
    ("lrn1", [5, 3, 3], "lrn(1, alpha=1, beta=0.5, k=1)", 1),
    ("lrn_size_gt_C", [3, 2, 2], "lrn(6, alpha=1, beta=1.5, k=0.5)", 1),
    ("lrn_many_channels", [20, 3, 3], "lrn(5, alpha=0.2, beta=0.75, k=2)", 1),
    ("lrn_1x1_spatial", [9, 1, 1], "lrn(3, alpha=0.4, beta=0.75, k=1)", 1),
    # activations (input scale 3-5 so the clip of relu6 and the saturations are exercised)
    ("relu", [4, 5, 5], "relu", 1),
    ("relu6", [4, 5, 5], "relu6", 5),
    ("sigmoid", [4, 5, 5], "sigmoid", 4),
    ("tanh", [4, 5, 5], "tanh", 3),
    ("leakyrelu_default", [4, 5, 5], "leakyrelu", 1),
    ("leakyrelu_0.2", [4, 5, 5], "leakyrelu(0.2)", 1),
    ("leakyrelu_neg", [4, 5, 5], "leakyrelu(-0.1)", 1),
    ("leakyrelu_gt1", [4, 5, 5], "leakyrelu(1.5)", 1),
    ("elu_default", [4, 5, 5], "elu", 2),
    ("elu_0.5", [4, 5, 5], "elu(0.5)", 2),
    ("elu_2", [4, 5, 5], "elu(2.0)", 2),
    ("acts_vec", [37], "relu6 -> sigmoid", 5),
    ("tanh_vec", [9], "tanh -> elu(0.3) -> leakyrelu(0.3)", 2),
    ("prelu_chw", [5, 4, 3], "prelu", 1),
    ("prelu_vec", [10], "prelu", 1),
    # maxout
    ("maxout2", [6, 4, 4], "maxout(2)", 1),
    ("maxout4", [8, 3, 3], "maxout(4)", 1),
    ("maxout3_vec", [12], "maxout(3)", 1),
    ("maxout1", [3, 2, 2], "maxout(1)", 1),
    # softmax (scale 40: logits up to ~160, exp overflows float32 unless the max is subtracted,
    # which PyTorch does, so the twin computes finite numbers)
    ("softmax_vec", [10], "softmax", 1),
    ("softmax_chw", [5, 3, 4], "softmax", 1),
    ("softmax_vec_large", [50], "softmax", 40),
    ("softmax_chw_large", [6, 2, 3], "softmax", 40),
    ("softmax_1channel", [1, 3, 3], "softmax", 1),
    # shape-only layers
    ("dropout", [3, 4, 4], "dropout(0.3)", 1),
    ("dropout_vec", [10], "dropout", 1),
    ("flatten", [3, 4, 5], "flatten", 1),
    ("flatten_vec", [11], "flatten", 1),
    ("flatten_dense", [3, 4, 5], "flatten -> dense(6)", 1),
    ("bias_chw", [3, 4, 5], "bias", 1),
    ("bias_vec", [7], "bias", 1),
]

NET_CASES = [
    ("concat3", """network t {
    input x: [4, 6, 6]
    a = x -> conv(2, 1)
    b = x -> conv(3, 3, pad=1)
    c = x -> maxpool(3, stride=1, pad=1)
    y = concat(a, b, c)
    output y
}
"""),
    ("concat3_vec", """network t {
    input x: [15]
    a = x -> dense(4)
    b = x -> dense(3) -> relu
    c = x -> dense(5, bias=false)
    y = concat(a, b, c) -> dense(6)
    output y
}
"""),
    ("concat_then_conv", """network t {
    input x: [4, 7, 7]
    a = x -> conv(5, 3, pad=1) -> relu
    b = x -> conv(3, 1) -> relu
    y = concat(b, a, x) -> conv(6, 3, stride=2)
    output y
}
"""),
    ("add2", """network t {
    input x: [4, 6, 6]
    a = x -> conv(3, 1)
    b = x -> conv(3, 3, pad=1)
    y = a + b
    output y
}
"""),
    ("add3", """network t {
    input x: [4, 6, 6]
    a = x -> conv(3, 1)
    b = x -> conv(3, 3, pad=1)
    c = x -> conv(3, 3, pad=1, bias=false) -> relu
    y = a + b + c
    output y
}
"""),
    ("add_self", """network t {
    input x: [4, 5, 5]
    a = x -> conv(4, 3, pad=1)
    y = (a + a) -> relu
    output y
}
"""),
    ("add_vec", """network t {
    input x: [10]
    y = (x -> dense(10)) + x
    output y
}
"""),
    ("residual_block", """block basic(x, ch) {
    y = x -> conv(ch, 3, pad=1, bias=false) -> bn -> relu
          -> conv(ch, 3, pad=1, bias=false) -> bn
    return relu(y + x)
}
network t {
    input x: [8, 8, 8]
    y = x -> basic(8) -> basic(8)
    output y
}
"""),
    # F(4x4,3x3) with batch norm folded in, a fused relu and a fused residual sum (14x14)
    ("wino4_residual", """block basic(x, ch) {
    y = x -> conv(ch, 3, pad=1, bias=false) -> bn -> relu
          -> conv(ch, 3, pad=1, bias=false) -> bn
    return relu(y + x)
}
network t {
    input x: [16, 14, 14]
    y = x -> basic(16) -> basic(16)
    output y
}
"""),
    ("residual_down", """network t {
    input x: [8, 9, 9]
    y = x -> conv(16, 3, stride=2, pad=1, bias=false) -> bn -> relu
          -> conv(16, 3, pad=1, bias=false) -> bn
    s = x -> conv(16, 1, stride=2, bias=false) -> bn
    z = relu(y + s)
    output z
}
"""),
    ("conv_bias_bn_relu6", single([3, 8, 8], "conv(6, 3, pad=1) -> bn -> relu6")),
    ("conv_bn_leaky", single([3, 8, 8], "conv(6, 3, bias=false) -> bn -> leakyrelu(0.1)")),
    ("conv_bn_elu_sigmoid", single([3, 8, 8], "conv(6, 3) -> bn -> elu -> conv(4, 1) -> sigmoid")),
    ("conv_prelu_maxout", single([3, 8, 8], "conv(8, 3, pad=1) -> prelu -> maxout(2) -> tanh")),
    ("dw_separable", single([8, 10, 10], "conv(8, 3, stride=2, pad=1, groups=8, bias=false) -> bn"
                                         " -> relu6 -> conv(16, 1, bias=false) -> bn -> relu6")),
    ("bn_then_conv", single([4, 6, 6], "bn -> conv(5, 3, pad=1) -> relu")),
    ("dense_chain_vec", single([24], "dense(16) -> bn -> relu -> dropout(0.5) -> dense(8)"
                                     " -> prelu -> dense(3) -> softmax")),
    ("alphago_head", single([8, 5, 5], "conv(1, 1, bias=false) -> flatten -> bias -> softmax")),
    ("lrn_pool_stack", single([6, 12, 12], "conv(8, 3) -> relu -> lrn(5, alpha=0.01, k=2)"
                                           " -> maxpool(3, stride=2) -> avgpool(2)")),
    ("pool_chain", single([3, 16, 16], "maxpool(3, stride=2, pad=1) -> l2pool(2) -> avgpool(3,"
                                       " stride=1, pad=1) -> globalmaxpool")),
    ("local_then_dense", single([3, 8, 8], "local(4, 3, stride=2) -> relu -> dense(5)")),
    # an output that a later layer also reads: in-place element-wise layers must not clobber it
    ("output_also_consumed", """network t {
    input x: [4, 6, 6]
    a = x -> conv(5, 3, pad=1)
    b = a -> relu -> conv(3, 1) -> sigmoid
    c = a -> globalavgpool
    output a, b, c
}
"""),
    ("output_is_input", """network t {
    input x: [3, 4, 4]
    y = x -> relu
    output x, y
}
"""),
    ("two_inputs_same_shape", """network t {
    input a: [3, 5, 5]
    input b: [3, 5, 5]
    y = (a -> conv(3, 3, pad=1)) + b
    z = (b -> globalavgpool -> flatten) + (a -> globalmaxpool -> flatten)
    w = (a -> globalavgpool -> flatten) -> dense(3)
    output z, w, y
}
"""),
    ("concat_slices", """network t {
    input x: [16, 12, 12]
    a = x -> conv(16, 3, pad=1) -> relu
    b = x -> conv(16, 3, pad=1, groups=16) -> relu6
    r = x -> conv(8, 1)
    c = (x -> conv(8, 3, pad=1)) + r -> relu
    d = x -> maxpool(2, stride=1) -> conv(4, 2, stride=1, pad=1) -> leakyrelu(0.1)
    y = concat(a, x, b, c, d)
    z = concat(r, d -> relu) -> conv(5, 1)
    output y, z
}
"""),
    # fuse_pool.c: 2x2 max pools computed by the depthwise kernel of the conv before them,
    # with an activation, a residual sum, a multiplier; e's conv has 5 rows, so its pool
    # stays apart
    ("pool_in_conv", """network t {
    input x: [1, 20, 32]
    a = x -> conv(4, 3, pad=1) -> relu -> maxpool(2)
    b = a -> conv(8, 3, pad=1, groups=4) -> relu6 -> maxpool(2)
    r = a -> tanh
    c = (a -> conv(4, 3, pad=1, groups=4)) + r -> maxpool(2)
    e = b -> conv(8, 3, pad=1, groups=8) -> maxpool(2)
    d = x -> conv(3, 3, pad=(0, 1)) -> maxpool(2)
    output c, d, e
}
"""),
    # pool_bands.c: a max pool after a direct conv with a residual sum in its epilogue,
    # whose operand is read in the conv's own layout, and a pool the vector kernel does not
    # take (a 9-wide window), which stays apart
    ("pool_band_residual", """network t {
    input x: [6, 30, 30]
    a = x -> conv(12, 5, pad=2)
    b = (a -> conv(12, 5, pad=2)) + a -> relu -> maxpool(3, stride=2, pad=1)
    c = a -> conv(4, 1) -> maxpool(9, stride=3)
    output b, c
}
"""),
    # a Winograd convolution with a residual sum and a pool after each band (its whole output
    # kept, the operand read at the store's index)
    ("wino_band_pool_residual", """network t {
    input x: [16, 28, 28]
    a = x -> conv(16, 3, pad=1) -> relu
    b = (a -> conv(16, 3, pad=1)) + a -> relu -> maxpool(3, stride=2, pad=1)
    output b
}
"""),
    # chain.c: layers a sample at a time (at batch 3: their outputs outgrow L2), through a
    # strided 7x7 conv, a pool, a bottleneck with its residual sum, a depthwise layer, a
    # concat its convs write, a Winograd conv with its pool, into a dense head
    ("chain_net", """network t {
    input x: [3, 128, 128]
    a = x -> conv(24, 7, stride=2, pad=3) -> bn -> relu -> maxpool(3, stride=2, pad=1)
    b = a -> conv(16, 1) -> relu -> conv(16, 3, pad=1) -> bn -> relu -> conv(24, 1) -> bn
    c = a + b -> relu
    d = c -> conv(24, 3, pad=1, groups=24) -> relu6
    e = concat(d -> conv(16, 1), d -> conv(16, 3, pad=1) -> relu)
    f = e -> conv(32, 3, pad=1) -> relu -> maxpool(2)
    y = f -> globalavgpool -> dense(10)
    output y
}
"""),
    ("concat_same_twice", """network t {
    input x: [3, 5, 5]
    a = x -> conv(2, 3, pad=1) -> relu
    y = concat(a, x, a) -> conv(4, 1)
    output y
}
"""),
    ("multi_io", """network t {
    input img: [3, 8, 8]
    input vec: [5]
    f = img -> conv(4, 3, stride=2, pad=1) -> relu -> flatten -> dense(6)
    g = vec -> dense(6) -> tanh
    h = concat(f, g) -> dense(3)
    output h, g, f
}
"""),
    ("two_networks_pick", """network other {
    input x: [3, 4, 4]
    y = x -> conv(2, 3)
    output y
}
network t {
    input x: [3, 4, 4]
    y = x -> conv(5, 3, pad=1) -> relu
    output y
}
"""),
    ("inception_mini", """block inception(x, c1, c3r, c3, c5r, c5, pp) {
    b1 = x -> conv(c1, 1) -> relu
    b2 = x -> conv(c3r, 1) -> relu -> conv(c3, 3, pad=1) -> relu
    b3 = x -> conv(c5r, 1) -> relu -> conv(c5, 5, pad=2) -> relu
    b4 = x -> maxpool(3, stride=1, pad=1) -> conv(pp, 1) -> relu
    return concat(b1, b2, b3, b4)
}
network t {
    input x: [8, 9, 9]
    y = x -> inception(4, 3, 5, 2, 3, 3) -> maxpool(3, stride=2, pad=1)
          -> inception(6, 4, 6, 2, 4, 4) -> globalavgpool -> dense(5)
    output y
}
"""),
]

# (b) the examples: name -> (input size or None for the declared one, extra text replacements).
# Reduced sizes keep the suite quick; each is chosen so that every layer stays valid:
EXAMPLES = {
    "lenet5": (None, []),
    "mnist": (None, []),
    # 95: conv 11/4 pad 2 -> 23, maxpool -> 11, -> 5, -> 2: dense sees 256*2*2
    "alexnet": (95, []),
    # 99: conv 11/4 -> 23, maxpool -> 11, -> 5, -> 2
    "alexnet_original": (99, []),
    "vgg16": (32, []),
    "vgg19": (32, []),
    # 64 -> final maps 2x2; the closing avgpool(7) becomes avgpool(2) (its full-size meaning:
    # the average of the whole last map)
    "googlenet": (64, [("avgpool(7)", "avgpool(2)")]),
    "mobilenet": (64, [("avgpool(7)", "avgpool(2)")]),
    "mobilenetv2": (64, []),
    "resnet18": (64, []),
    "resnet34": (64, []),
    "resnet50": (64, []),
    "alphago": (9, []),          # a 9x9 board: same layers, a fifth of the work
    "sentence_cnn": (None, []),  # the kernels span the 300-wide embedding; it is cheap anyway
}

# cheap enough at their declared size to run that way too (seconds each): the reduced runs test
# odd sizes and tails, these the real thing (googlenet's and mobilenet's avgpool(7) unmodified,
# alphago's 19x19 board). With --full every example runs at its declared size only.
ALSO_FULL = ["googlenet", "mobilenet", "alphago"]

# batch 9: whole register tiles of samples in the vector dense kernel (6 or 8
# samples), then samples left over
BATCH9 = ["layer:dense_panels_ragged", "layer:dense_wide", "net:dense_chain_vec",
          "example:mnist"]

BATCH3 = ["layer:conv_stride2_pad1", "layer:conv_rows7_s2", "layer:conv_band_pool",
          "layer:conv_band_pool_blocks", "layer:conv_band_pool_rows7", "net:pool_band_residual",
          "layer:conv_wino_band_pool", "layer:conv_wino_band_pool_alexnet5", "net:wino_band_pool_residual", "layer:conv_one_channel", "layer:conv_wino_pool", "layer:conv_wino4_leftover", "net:wino4_residual",
          "layer:dense_chw", "layer:bn_vec", "layer:softmax_chw",
          "layer:local_stride_pad", "layer:lrn4_even", "layer:prelu_vec", "layer:maxpool3_s2_pad1",
          "net:concat3", "net:concat_slices", "net:pool_in_conv", "net:multi_io", "net:residual_block", "net:dense_chain_vec",
          "net:chain_net",
          "example:lenet5", "example:resnet18", "example:mobilenetv2", "example:sentence_cnn"]


def all_cases(full=False):
    cases = []
    for name, shape, body, scale in LAYER_CASES:
        cases.append(Case("layer:" + name, single(shape, body), scale=scale))
    for name, text in NET_CASES:
        cases.append(Case("net:" + name, text, network="t" if "two_networks" in name else None))
    for ex, (size, subs) in sorted(EXAMPLES.items()):
        text = open(os.path.join(REPO, "examples", ex + ".cnn")).read()
        label = "example:" + ex
        if size is not None and not full:
            text = twin.with_input_size(text, size)
            for a, b in subs:
                if a not in text:
                    raise ValueError("%s: no %r to replace" % (ex, a))
                text = text.replace(a, b)
            label += "@%d" % size
        cases.append(Case(label, text, note=ex))
        if ex in ALSO_FULL and size is not None and not full:
            text = open(os.path.join(REPO, "examples", ex + ".cnn")).read()
            cases.append(Case("example:" + ex, text, note=ex))
    by_name = {c.name.split("@")[0] if c.name.startswith("example:") else c.name: c for c in cases}
    for batch, names in ((3, BATCH3), (9, BATCH9)):
        for n in names:
            c = by_name[n]
            cases.append(Case(c.name + "@b%d" % batch, c.text, batch=batch, scale=c.scale,
                              network=c.network, note=c.note))
    return cases


# ---------------------------------------------------------------------------------------------
# Running one case

def relerr(out, ref):
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    m = float(np.abs(ref).max()) if ref.size else 0.0
    if not np.all(np.isfinite(out)):
        return float("inf"), m
    d = float(np.abs(out - ref).max()) if ref.size else 0.0
    return (d / m if m > 0 else d), m


def run_case(case, cfg):
    t0 = time.time()
    seed = (zlib.crc32(case.name.split("@b")[0].encode()) ^ cfg.seed) & 0xffffffff
    rng = np.random.default_rng(seed)
    tmp = tempfile.mkdtemp(prefix="cnnc_conf_", dir=cfg.tmpdir)
    try:
        net = os.path.join(tmp, "net.cnn")
        with open(net, "w") as f:
            f.write(case.text)
        g = twin.graph_of_file(net, case.network, cfg.graph_cnnc)
        xs = [x * np.float32(case.scale) for x in twin.random_inputs(g, case.batch, rng)]
        calib = None
        if case.calib:
            calib = [x * np.float32(case.scale) for x in twin.random_inputs(g, 4, rng)]
        params = twin.random_params(g, rng, calib)
        wpath = os.path.join(tmp, "params.f32")
        twin.write_f32(wpath, params)
        del params
        cmd = list(cfg.cnnc) + ["run", net, "--weights", wpath]
        if case.network:
            cmd += ["--network", case.network]
        for i, x in enumerate(xs):
            p = os.path.join(tmp, "in%d.f32" % i)
            twin.write_f32(p, x)
            cmd += ["--input", p]
        outs = [os.path.join(tmp, "out%d.f32" % i) for i in range(len(g["outputs"]))]
        for p in outs:
            cmd += ["--output", p]
        cmd += ["--batch", str(case.batch)] + list(cfg.flags)
        t1 = time.time()
        try:
            pr = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                timeout=cfg.timeout)
        except subprocess.TimeoutExpired:
            return False, "cnnc run timed out after %ds" % cfg.timeout, time.time() - t0
        t_run = time.time() - t1
        if cfg.verbose:
            print("  $ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
        # the reference: read the weights back so that twin and cnnc see the same bits
        ref = twin.run(g, twin.read_f32(wpath), xs, cfg.ref, batch=case.batch)
        if pr.returncode != 0:
            msg = (pr.stderr.strip() or pr.stdout.strip()).splitlines()
            return False, "cnnc run exit %d: %s" % (pr.returncode, " | ".join(msg[:4])), \
                time.time() - t0
        worst, parts, ok = 0.0, [], True
        for spec, path, r in zip(g["outputs"], outs, ref):
            if not os.path.exists(path):
                return False, "no output file for %s" % spec["name"], time.time() - t0
            y = twin.read_f32(path)
            if y.size != r.size:
                return False, "output %s has %d floats, expected %d (batch %d x %s)" % (
                    spec["name"], y.size, r.size, case.batch, spec["shape"]), time.time() - t0
            e, m = relerr(y.reshape(r.shape), r)
            worst = max(worst, e)
            if e > TOL:
                ok = False
                diff = np.abs(y.reshape(r.shape).astype(np.float64) - r)
                idx = np.unravel_index(int(np.nanargmax(np.where(np.isfinite(diff), diff,
                                                                  np.inf))), r.shape)
                parts.append("%s: relerr %.3g, max|ref| %.3g, worst at %s got %.6g want %.6g" % (
                    spec["name"], e, m, list(idx), float(y.reshape(r.shape)[idx]), float(r[idx])))
            elif len(g["outputs"]) > 1:
                parts.append("%s %.3g" % (spec["name"], e))
        msg = "%.3g" % worst + (" (" + "; ".join(parts) + ")" if parts else "") + \
            " [run %.1fs]" % t_run
        return ok, msg, time.time() - t0
    except Exception as e:  # the case itself broke: report, go on
        return False, "error: %s: %s" % (type(e).__name__, e), time.time() - t0
    finally:
        if not cfg.keep:
            for fn in os.listdir(tmp):
                os.remove(os.path.join(tmp, fn))
            os.rmdir(tmp)
        else:
            print("  kept %s" % tmp, flush=True)


class Cfg:
    pass


def main():
    ap = argparse.ArgumentParser(description="conformance of `cnnc run` against the PyTorch twin")
    ap.add_argument("-k", dest="substr", action="append", default=[],
                    help="only cases whose name contains SUBSTR (repeatable: any of them)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--flags", default="", help="extra options for cnnc run (after $CNNC_FLAGS)")
    ap.add_argument("-j", "--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="cases run in parallel (default 2)")
    ap.add_argument("--full", action="store_true", help="examples at their declared input size")
    ap.add_argument("--batch", type=int, default=None,
                    help="run every case at this batch size instead (names get @bN)")
    ap.add_argument("--ref", choices=["float32", "float64"], default="float64",
                    help="precision of the twin (default float64)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep each case's files")
    ap.add_argument("--fresh-cache", action="store_true",
                    help="point CNNC_CACHE at a new temporary directory (no cached builds)")
    ap.add_argument("--self-test", action="store_true",
                    help="put the twin (float32) in cnnc's place to test this suite's plumbing")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each cnnc command")
    args = ap.parse_args()

    cases = all_cases(args.full)
    if args.batch:
        seen, forced = set(), []
        for c in cases:
            base = c.name.split("@b")[0]
            if base not in seen:
                seen.add(base)
                forced.append(Case(base + "@b%d" % args.batch, c.text, batch=args.batch,
                                   scale=c.scale, network=c.network, note=c.note))
        cases = forced
    if args.substr:
        cases = [c for c in cases if any(s in c.name for s in args.substr)]
    if args.list:
        for c in cases:
            print(c.name + ("  (batch %d)" % c.batch if c.batch != 1 else ""))
        print("%d cases" % len(cases))
        return 0

    cfg = Cfg()
    real_cnnc = os.environ.get("CNNC") or os.path.join(REPO, "cnnc")
    cfg.graph_cnnc = os.environ.get("CNNC_GRAPH") or shlex.split(real_cnnc)[0]
    if args.self_test:
        cfg.cnnc = ["/usr/bin/python3", os.path.join(HERE, "twin.py")]
    else:
        cfg.cnnc = shlex.split(real_cnnc)
    cfg.flags = shlex.split(os.environ.get("CNNC_FLAGS", "")) + shlex.split(args.flags)
    cfg.timeout = int(os.environ.get("CNNC_TIMEOUT", "600"))
    cfg.ref, cfg.seed, cfg.keep, cfg.verbose = args.ref, args.seed, args.keep, args.verbose
    cfg.tmpdir = None
    fresh = None
    if args.fresh_cache:
        fresh = tempfile.mkdtemp(prefix="cnnc_cache_")
        os.environ["CNNC_CACHE"] = fresh
    jobs = max(1, args.jobs)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))
    try:   # which compiler this was (the binary changes under a working tree being developed)
        exe = shutil.which(cfg.cnnc[0]) or cfg.cnnc[0]
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(exe)))
    except OSError:
        stamp = "?"
    print("# cnnc binary modified %s" % stamp)
    print("# cnnc: %s %s | reference: twin in %s | tolerance %g | %d cases, %d at a time" % (
        " ".join(cfg.cnnc), " ".join(cfg.flags), cfg.ref, TOL, len(cases), jobs), flush=True)

    passed = failed = 0
    failures = []
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
        futs = [ex.submit(run_case, c, cfg) for c in cases]
        for c, fu in zip(cases, futs):      # print in case order
            ok, msg, dt = fu.result()
            print("%s %s %s [%.1fs]" % ("PASS" if ok else "FAIL", c.name, msg, dt), flush=True)
            if ok:
                passed += 1
            else:
                failed += 1
                failures.append(c.name)
    if fresh:
        shutil.rmtree(fresh, ignore_errors=True)
    if failures:
        print("# failed: " + " ".join(failures))
    print("# %.1fs in all" % (time.time() - t0))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
