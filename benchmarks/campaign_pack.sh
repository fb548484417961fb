#!/usr/bin/env bash
# Prepares .campaign/ (git-ignored) for a call of the device tool, which
# carries it to the GPU machine: a copy of the data, the wheels that machine
# lacks, and the campaign's state brought back by the previous call.
#
#   bash benchmarks/campaign_pack.sh [CAMPAIGN_TGZ]
#
# CAMPAIGN_TGZ: the campaign.tgz the last call left under $OUT. It is kept as
# $CAMPAIGN_STATE (default ~/.cache/ddistill-campaign/campaign.tgz), outside
# the checkout, because a session's checkout (and its .campaign/) may not
# outlive it; then unpacked over .campaign/ so the next call resumes where it
# stopped. Without CAMPAIGN_TGZ the kept state, if any, is unpacked. See
# benchmarks/README.md for the device command.
set -euo pipefail
STATE=${CAMPAIGN_STATE:-$HOME/.cache/ddistill-campaign/campaign.tgz}
if [ $# -ge 1 ]; then
  if [ ! -f "$1" ]; then
    echo "campaign_pack: $1: no such file; kept state unchanged" >&2
    exit 1
  fi
  if ! tar tzf "$1" > /dev/null 2>&1; then  # The kept state stays intact.
    echo "campaign_pack: $1 is not a readable .tgz; kept state unchanged" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$STATE")"
  cp "$1" "$STATE.tmp" && mv "$STATE.tmp" "$STATE"
fi
cd "$(dirname "$0")/.."
DATA=${DDISTILL_DATA_DIR:-$(cd .. && pwd)/shared/data}
mkdir -p .campaign/data .campaign/wheels
for name in mnist cifar10 usps; do
  [ -d ".campaign/data/$name" ] || cp -r "$DATA/$name" .campaign/data/
done
# The GPU image has jax, flax, optax, orbax, absl; not ml_collections.
ls .campaign/wheels/ml_collections-*.whl > /dev/null 2>&1 ||
  python -m pip download -q --no-deps --only-binary=:all: \
    --python-version 3.12 -d .campaign/wheels ml-collections
# The state is the kept archive's alone: nothing left from an earlier pack.
rm -rf .campaign/work .campaign/out
mkdir -p .campaign/work
if [ -f "$STATE" ]; then
  if ! tar xzf "$STATE" -C .campaign 2> /dev/null; then
    echo "campaign_pack: the kept state $STATE is damaged; move it aside" >&2
    exit 1
  fi
  echo "campaign state from $STATE: stages done: $(ls .campaign/work/done 2>/dev/null | tr '\n' ' ')"
fi
du -sh .campaign
