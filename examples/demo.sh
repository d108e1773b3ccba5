#!/usr/bin/env bash
# make demo: compile a network, train it on Fashion-MNIST, and run the
# trained model through the generated inference code.
#   EPOCHS=3 make demo    for a shorter run
set -euo pipefail
cd "$(dirname "$0")/.."
out=out/demo
net=examples/fashion_bn.cnn
data=/usr/share/datasets/fashion-mnist
epochs=${EPOCHS:-10}
mkdir -p "$out"

step() { printf '\n== %s\n' "$*"; }

step "the network: $net"
./cnnc summary "$net"
./cnnc dot "$net" | dot -Tpng -o "$out/network.png"
echo "(drawn in $out/network.png)"

step "training it on Fashion-MNIST: Adam, cosine schedule, augmentation, $epochs epochs"
rm -f "$out/train.csv" "$out/fashion_bn.ckpt"
./cnnc train "$net" --data fashion-mnist --epochs "$epochs" --batch 64 \
    --optimizer adam --lr 0.002 --schedule cosine --augment --seed 1 \
    --log "$out/train.csv" --checkpoint "$out/fashion_bn.ckpt" --out "$out/fashion_bn.f32"

step "the accuracy curve"
column -s, -t "$out/train.csv"
gnuplot <<GNUPLOT
set terminal png size 1000,420 noenhanced
set output "$out/curves.png"
set datafile separator ","
set multiplot layout 1,2 title "fashion_bn on Fashion-MNIST (cnnc train)"
set xlabel "epoch"; set grid
set title "training loss"; plot "$out/train.csv" using 1:2 with linespoints title "loss"
set title "accuracy"; set key bottom right
plot "$out/train.csv" using 1:3 with linespoints title "train", \
     "$out/train.csv" using 1:4 with linespoints title "test"
unset multiplot
GNUPLOT
echo "(drawn in $out/curves.png)"

step "the trained model as C: cnnc build --weights $out/fashion_bn.f32 --embed"
./cnnc build "$net" --weights "$out/fashion_bn.f32" --embed -o "$out"
ls -l "$out/fashion_bn.c" "$out/fashion_bn.h"
cc -std=c11 -O2 -Wall -Wextra -Werror -I"$out" -Iruntime examples/classify.c \
    "$out/fashion_bn.c" build/libcnnrt.a -lz -lm -o "$out/classify"

step "classifying test images with the generated code"
"$out/classify" "$data/t10k-images-idx3-ubyte.gz" "$data/t10k-labels-idx1-ubyte.gz" 10
