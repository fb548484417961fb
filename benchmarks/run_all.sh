#!/usr/bin/env bash
# Runs every benchmark of benchmarks/README.md and prints one result line each.
# Usage: bash benchmarks/run_all.sh [extra flags for outer_step.py]
set -euo pipefail
cd "$(dirname "$0")/.."
run() { echo "== $*"; python benchmarks/outer_step.py "$@" 2>&1 | grep -E '^(device|sec_per_iter)='; }

run --setting a "$@"
run --setting b "$@"
run --setting c --repeats 5 "$@"
for t in 30 300 2000; do run --setting d --unroll "$t" --repeats 5 "$@"; done
# Inits per iteration, on one device and on 8 fake CPU devices.
for n in 4 8 16 32; do run --setting b --inits "$n" --repeats 3 --flops=false "$@"; done
for n in 4 8 16 32; do
  XLA_FLAGS=--xla_force_host_platform_device_count=8 \
    run --setting b --inits "$n" --repeats 3 --flops=false "$@"
done
