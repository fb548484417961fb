#!/usr/bin/env bash
# Prepares .campaign/ (git-ignored) for a call of the device tool, which
# carries it to the GPU machine: a copy of the data, the wheels that machine
# lacks, and the campaign's state brought back by the previous call.
#
#   bash benchmarks/campaign_pack.sh [CAMPAIGN_TGZ]
#
# CAMPAIGN_TGZ: the campaign.tgz the last call left under $OUT, unpacked over
# .campaign/ so the next call resumes where it stopped. See
# benchmarks/README.md for the device command.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DDISTILL_DATA_DIR:-$(cd .. && pwd)/shared/data}
mkdir -p .campaign/data .campaign/wheels .campaign/work
for name in mnist cifar10 usps; do
  [ -d ".campaign/data/$name" ] || cp -r "$DATA/$name" .campaign/data/
done
# The GPU image has jax, flax, optax, orbax, absl; not ml_collections.
ls .campaign/wheels/ml_collections-*.whl > /dev/null 2>&1 ||
  python -m pip download -q --no-deps --only-binary=:all: \
    --python-version 3.12 -d .campaign/wheels ml-collections
if [ $# -ge 1 ]; then
  tar xzf "$1" -C .campaign
fi
du -sh .campaign
