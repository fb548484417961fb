#!/usr/bin/env bash
# The campaign's state between calls of the device tool, in both directions.
#
#   bash benchmarks/campaign_pack.sh [PART...]     here, before a call
#   bash benchmarks/campaign_pack.sh --return DIR  on the device machine, after
#
# Here: fills .campaign/ (git-ignored), which a call carries to the GPU
# machine: a copy of the data, the wheels that machine lacks, and the state
# the previous call returned. PART...: the campaign.tgz.NN files that call
# left under $OUT (or one campaign.tgz from before they were split). They are
# joined and kept as $CAMPAIGN_STATE (the state it replaces as
# $CAMPAIGN_STATE.previous; default
# ~/.cache/ddistill-campaign/campaign.tgz), outside the checkout, because a
# session's checkout (and its .campaign/) may not outlive it; then unpacked
# over .campaign/ so the next call resumes where it stopped. Without PART the
# kept state, if any, is unpacked. .campaign/out is rebuilt from the state.
# PARTs whose archive does not read or holds no work/ are refused (exit 1)
# and the kept state stays.
#
# --return DIR: packs .campaign/work, less the pools' weights (800 LeNets,
# about 200 MB), as DIR/campaign.tgz.00, .01, ... of at most 15 MiB each:
# $OUT returns files of at most 16 MiB, 8 files and 64 MiB in all. OUTDIR
# is left out (gpu_campaign.sh rebuilds it from WORKDIR); without
# .campaign/work it exits 2 and writes nothing. See
# benchmarks/README.md for the device command.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = --return ]; then
  if [ $# -ne 2 ] || [ ! -d "$2" ]; then
    echo "usage: bash benchmarks/campaign_pack.sh --return DIR (a folder)" >&2
    exit 2
  fi
  if [ ! -d "$ROOT/.campaign/work" ]; then  # Else an empty archive returns.
    echo "campaign_pack: no $ROOT/.campaign/work to return" >&2
    exit 2
  fi
  # Split in a folder of its own, moved in whole: no half state in DIR.
  rm -rf "$2/.campaign_parts" && mkdir "$2/.campaign_parts"
  tar czf - --exclude='pretrain_*/params' --exclude='pretrain_*/chunks' \
      -C "$ROOT/.campaign" work |
    split -b 15M -d - "$2/.campaign_parts/campaign.tgz."
  mv "$2"/.campaign_parts/campaign.tgz.* "$2"/ && rmdir "$2/.campaign_parts"
  parts=$(ls "$2"/campaign.tgz.* | wc -l)
  echo "campaign_pack: state in $parts part(s): $(du -ch "$2"/campaign.tgz.* | tail -1 | cut -f1)"
  [ "$parts" -le 4 ] ||
    echo "campaign_pack: over the 4 parts (64 MiB) that \$OUT returns" >&2
  exit 0
fi
STATE=${CAMPAIGN_STATE:-$HOME/.cache/ddistill-campaign/campaign.tgz}
if [ $# -ge 1 ]; then
  for part in "$@"; do
    if [ ! -f "$part" ]; then
      echo "campaign_pack: $part: no such file; kept state unchanged" >&2
      exit 1
    fi
  done
  mkdir -p "$(dirname "$STATE")"
  cat "$@" > "$STATE.tmp"
  # A campaign state holds work/ (gpu_campaign.sh's WORKDIR); anything else
  # leaves the kept state intact.
  # (grep reads the whole listing: grep -q would stop early and, under
  # pipefail, fail the pipeline through tar's SIGPIPE.)
  if ! tar tzf "$STATE.tmp" 2> /dev/null | grep '^work/' > /dev/null; then
    rm -f "$STATE.tmp"
    echo "campaign_pack: $* is not a campaign state (.tgz of work/); kept" \
      "state unchanged" >&2
    exit 1
  fi
  [ -f "$STATE" ] && mv "$STATE" "$STATE.previous"  # One step back, kept.
  mv "$STATE.tmp" "$STATE"
fi
cd "$ROOT"
DATA=${DDISTILL_DATA_DIR:-$(cd .. && pwd)/shared/data}
mkdir -p .campaign/data .campaign/wheels
for name in mnist cifar10 usps; do
  [ -d ".campaign/data/$name" ] || cp -r "$DATA/$name" .campaign/data/
done
# The GPU image has jax, flax, optax, orbax, absl; not ml_collections.
ls .campaign/wheels/ml_collections-*.whl > /dev/null 2>&1 ||
  python -m pip download -q --no-deps --only-binary=:all: \
    --python-version 3.12 -d .campaign/wheels ml-collections
# The state is the kept archive's alone: nothing left from an earlier pack
# (and nothing but data, wheels and state to carry).
find .campaign -mindepth 1 -maxdepth 1 ! -name data ! -name wheels \
  -exec rm -rf {} +
mkdir -p .campaign/work .campaign/out
if [ -f "$STATE" ]; then
  if ! tar xzf "$STATE" -C .campaign 2> /dev/null; then
    echo "campaign_pack: the kept state $STATE is damaged; move it aside" >&2
    exit 1
  fi
  WORKDIR=.campaign/work OUTDIR=.campaign/out
  source benchmarks/campaign_lib.sh
  collect || true  # Some outputs may not exist yet.
  echo "campaign state from $STATE: stages done: $(ls .campaign/work/done 2>/dev/null | tr '\n' ' ')"
fi
du -sh .campaign
