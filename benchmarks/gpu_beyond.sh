#!/usr/bin/env bash
# Beyond the paper, on a lent GPU (docs/beyond_the_paper.md): CIFAR-10 with
# ConvNet-3 and 10 images per class, ZCA-whitened as RaT-BPTT and KIP do,
# then the standard evaluation of the set on fresh ConvNet-3s and
# AlexCifarNets. Same calling convention, budget, resuming, SKIP, SMOKE and
# DRY_RUN as gpu_campaign.sh (its header), whose state it may share a
# WORKDIR with.
#
#   bash benchmarks/gpu_beyond.sh WORKDIR OUTDIR
set -uo pipefail
cd "$(dirname "$0")/.."
source benchmarks/campaign_lib.sh
campaign_init gpu_beyond.sh "$@"

CONFIG=(--config configs/cifar10.py:strong_convnet10 --config.data.zca=0.1)
if [ "$SMOKE" = 1 ]; then
  RUN=(--config.num_iterations=2 --config.distill.epochs=2
       --config.eval.num_models=2 --config.eval.num_models_during=2
       --config.real_batch_size=64 --config.eval_every=0)
  STANDARD=(--num_models 2 --epochs 1)
else
  RUN=()
  STANDARD=(--num_models 10)
fi
RUN_DIR="$WORKDIR/runs/cifar10_strong_zca"

stage cifar10_strong_zca python -m experiments.mnist "${CONFIG[@]}" \
  --workdir "$RUN_DIR" "${RUN[@]}"
stage cifar10_strong_zca_standard python -m experiments.evaluate \
  --protocol standard "${CONFIG[@]}" --distilled "$RUN_DIR/distilled.npz" \
  --arch convnet,alexcifarnet --workdir "$WORKDIR/runs/cifar10_strong_zca_std" \
  "${STANDARD[@]}"
campaign_finish
