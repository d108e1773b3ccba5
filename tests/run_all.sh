#!/usr/bin/env bash
# The test command behind `make test`: every Criterion suite (built under
# AddressSanitizer and UBSan), then the conformance suites against PyTorch.
# Prints each suite's own closing line and, last, the total.
set -u
cd "$(dirname "$0")/.."
export ASAN_OPTIONS=detect_leaks=1
export LSAN_OPTIONS=suppressions=tests/lsan.supp:print_suppressions=0
export PYTHONDONTWRITEBYTECODE=1
py=/usr/bin/python3   # Debian's interpreter, the one that sees python3-torch
passed=0 failed=0 broken=""
log=$(mktemp)

count() {   # adds the counts of one suite's closing line
    local name=$1 line p f
    line=$(grep -E '^\[====\] Synthesis: Tested|^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [[ $line =~ Passing:\ ([0-9]+)\ \|\ Failing:\ ([0-9]+)\ \|\ Crashing:\ ([0-9]+) ]]; then
        p=${BASH_REMATCH[1]}; f=$((BASH_REMATCH[2] + BASH_REMATCH[3]))
    elif [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
        p=${BASH_REMATCH[1]}; f=${BASH_REMATCH[2]}
    else
        p=0; f=1
    fi
    passed=$((passed + p)); failed=$((failed + f))
    [ "$f" -eq 0 ] || broken="$broken $name"
}

run() {     # run NAME COMMAND...: shows the output, keeps it for count
    local name=$1; shift
    echo "== $name"
    "$@" 2>&1 | tee "$log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || grep -q ' failed' "$log" || echo "0 passed, 1 failed" >> "$log"
    count "$name"
}

for t in build/tests/test_*; do
    run "$(basename "$t")" "$t" --jobs 2
done
# Every target, with every fusion pass on and with all off, runs the whole
# conformance suite; each pass turned off alone runs the cases that exercise
# fusion: the small networks and the examples that have what each pass fuses
# (bn, residual adds and activations in resnet18, concats in googlenet, pools
# in convolutions in mnist and vgg16, depthwise layers in mobilenetv2).
conf() { run "conformance: $1" $py tests/conformance/run.py -j 2 "${@:2}"; }
conf "scalar target, fusion on" --flags "--target scalar"
conf "scalar target, fusion off" -k net: -k example: --flags "--target scalar --no-fuse"
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
    conf "avx2 target, fusion on" --flags "--target avx2"
    conf "avx2 target, fusion off" -k net: -k example: -k conv --flags "--target avx2 --no-fuse"
    fusing=(-k net: -k example:resnet18 -k example:googlenet@ -k example:mnist -k example:vgg16
            -k example:mobilenetv2)
    for pass in bn add act concat pool; do
        conf "avx2 target, only $pass fusion off" "${fusing[@]}" --flags "--target avx2 --no-fuse=$pass"
    done
    # chain.c changes nothing at batch 1: its pass-off run takes the batch-3 cases
    conf "avx2 target, only chain fusion off" -k @b3 --flags "--target avx2 --no-fuse=chain"
    conf "avx2 target, Winograd off" -k example: -k conv --flags "--target avx2 --no-winograd"
    OMP_NUM_THREADS=2 conf "avx2 target with OpenMP, 2 threads" -k net: -k example: -k conv -k pool --flags "--target avx2 --openmp"
    if grep -qw avx512f /proc/cpuinfo; then
        conf "avx512 target, fusion on" --flags "--target avx512"
        conf "avx512 target, fusion off" -k net: -k example: -k conv --flags "--target avx512 --no-fuse"
        OMP_NUM_THREADS=2 conf "avx512 target with OpenMP, 2 threads" -k net: -k example: -k pool --flags "--target avx512 --openmp"
    else
        echo "== the avx512 conformance suites did NOT run: this CPU lacks AVX-512F"
    fi
else
    echo "== the avx2 conformance suites did NOT run: this CPU lacks AVX2 or FMA"
    failed=$((failed + 1)); broken="$broken avx2-not-run"
fi
# random networks (a fixed sample of 24) on each target the CPU has
targets=(--flags "--target scalar")
grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && targets+=(--flags "--target avx2")
grep -qw avx512f /proc/cpuinfo && targets+=(--flags "--target avx512")
run "random networks against the twin" $py tests/conformance/random_nets.py --count 24 "${targets[@]}"
run "gradients: finite differences" $py tests/conformance/fd_check.py
run "gradients: cnnc grad against torch autograd" $py tests/conformance/grad.py
# the training kernels with OpenMP: every layer, and the two small networks
OMP_NUM_THREADS=2 run "gradients with OpenMP, 2 threads" $py tests/conformance/grad.py \
    --flags=--openmp -k layer: -k example:mnist -k example:lenet5
run "optimisers against torch.optim" $py tests/conformance/optim_vs_torch.py
run "training steps, resume and checkpoints" $py tests/conformance/train_vs_torch.py
rm -f "$log"
echo
[ -z "$broken" ] || echo "failing suites:$broken"
echo "all suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
