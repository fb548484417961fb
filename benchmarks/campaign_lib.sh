# The plumbing of the GPU scripts (gpu_campaign.sh, gpu_beyond.sh): stages
# that run once each within a time budget, resumed by the next call, and
# their outputs copied flat to OUTDIR. Sourced from the repository's root;
# then `campaign_init NAME "$@"`, `stage ...` for each stage, and
# `campaign_finish`. Environment: BUDGET_S, SMOKE, SKIP, DRY_RUN
# (gpu_campaign.sh's header says what each does), DDISTILL_DATA_DIR.

# campaign_init SCRIPT WORKDIR OUTDIR: the globals every function reads.
campaign_init() {
  if [ $# -ne 3 ]; then
    echo "usage: bash benchmarks/$1 WORKDIR OUTDIR" >&2
    exit 2
  fi
  WORKDIR=$2
  OUTDIR=$3
  BUDGET_S=${BUDGET_S:-540}
  SMOKE=${SMOKE:-0}
  SKIP=${SKIP:-}
  DRY_RUN=${DRY_RUN:-0}
  local problem=
  # No leading zeros: bash arithmetic would read them as octal.
  [[ $BUDGET_S =~ ^(0|[1-9][0-9]*)$ ]] ||
    problem="BUDGET_S=$BUDGET_S is not seconds"
  [[ $SMOKE =~ ^[01]$ ]] || problem="SMOKE=$SMOKE: use 1 or 0"
  [[ $DRY_RUN =~ ^[01]$ ]] || problem="DRY_RUN=$DRY_RUN: use 1 or 0"
  [ -n "$WORKDIR" ] && [ -n "$OUTDIR" ] || problem="WORKDIR or OUTDIR is ''"
  if [ -z "$problem" ] &&
     ! mkdir -p "$WORKDIR/done" "$WORKDIR/logs" "$OUTDIR" 2> /dev/null; then
    problem="cannot make folders in $WORKDIR and $OUTDIR"
  fi
  if [ -n "$problem" ]; then
    echo "error: $problem" >&2
    exit 2
  fi
  export DDISTILL_DATA_DIR="${DDISTILL_DATA_DIR:-$(cd .. && pwd)/shared/data}"
  export PYTHONUNBUFFERED=1
  SKIPPED=
  START=$(date +%s)
}

left() { echo $((BUDGET_S - ($(date +%s) - START))); }

listed() { [[ " $2 " == *" $1 "* ]]; }  # listed NAME "A B ...": NAME among them.

collect() {  # Copies each run's outputs to OUTDIR, flat: <run>.<file>.
  cp "$WORKDIR"/logs/*.log "$OUTDIR"/ 2>/dev/null
  local run name f
  for run in $(find "$WORKDIR/runs" -name config.json -printf '%h\n' \
               2>/dev/null); do
    name=$(realpath --relative-to="$WORKDIR/runs" "$run" | tr / _)
    for f in results.json metrics.jsonl curves.png distilled.png; do
      [ -f "$run/$f" ] && cp "$run/$f" "$OUTDIR/$name.$f"
    done
  done
  cp "$WORKDIR"/runs/table1*/table1.md "$OUTDIR"/ 2>/dev/null
  for f in "$WORKDIR"/runs/*/standard_eval.md; do
    [ -f "$f" ] && cp "$f" "$OUTDIR/$(basename "$(dirname "$f")").standard_eval.md"
  done
  for run in "$WORKDIR"/runs/pretrain_*/; do
    [ -f "$run/info.json" ] && cp "$run/info.json" "$OUTDIR/$(basename "$run").info.json"
  done
  ls "$WORKDIR/done" > "$OUTDIR/stages_done.txt"
  if [ -f "$WORKDIR/seconds.tsv" ]; then
    cp "$WORKDIR/seconds.tsv" "$OUTDIR/"
    seconds_summary > "$OUTDIR/seconds.txt"
  fi
}

# The ledger WORKDIR/seconds.tsv has one line per call of a stage: name, UTC
# start, seconds, exit status. It travels with the state, so a stage's time
# is summed over every call and session that ran it (issue 21's "stages 1
# to 3 within 45 minutes of GPU time" is the sum of theirs).
seconds_summary() {  # Seconds per stage over all calls, in the order run.
  awk -F'\t' '!($1 in s) {order[n++] = $1} {s[$1] += $3; c[$1]++}
    END {for (i = 0; i < n; i++) {
           k = order[i]; t += s[k]
           printf "%s\t%d s\t%d call(s)\n", k, s[k], c[k]}
         printf "all\t%d s\n", t}' "$WORKDIR/seconds.tsv"
}

# stage NAME COMMAND...: runs COMMAND unless NAME is done, within the budget.
stage() {
  local name=$1; shift
  local log="$WORKDIR/logs/$name.log"
  [ -f "$WORKDIR/done/$name" ] && return 0
  if listed "$name" "$SKIP"; then
    echo "campaign: stage $name skipped (SKIP)"
    SKIPPED="$SKIPPED $name"
    return 0
  fi
  if [ "$DRY_RUN" = 1 ]; then
    echo "campaign: would run $name: ${*@Q}"
    return 0
  fi
  local budget
  budget=$(left)
  if [ "$budget" -lt 30 ]; then
    echo "campaign: budget spent; run again to resume at stage $name"
    collect
    exit 75
  fi
  echo "campaign: stage $name ($budget s left in this call)"
  # Appended, so a stage resumed over several calls keeps each call's output.
  echo "campaign: call of $(date -u +%FT%TZ), $budget s left" \
    >> "$log"
  # On SIGTERM a distillation run saves the iteration in progress and ends
  # (ddistill/preemption.py); whatever is still running 20 s later is killed.
  local t0
  t0=$(date +%s)
  timeout --signal=TERM --kill-after=20 "$budget" "$@" \
    >> "$log" 2>&1
  local rc=$?
  printf '%s\t%s\t%d\t%d\n' "$name" "$(date -u -d "@$t0" +%FT%TZ)" \
    $(($(date +%s) - t0)) "$rc" >> "$WORKDIR/seconds.tsv"
  if [ $rc -eq 0 ]; then
    touch "$WORKDIR/done/$name"
    echo "campaign: stage $name done"
    tail -n 1 "$log"
    collect
    return 0
  fi
  collect
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    echo "campaign: budget spent inside stage $name; run again to resume it"
    exit 75
  fi
  echo "campaign: stage $name failed (exit $rc); see $log" >&2
  tail -n 5 "$log" >&2
  exit 1
}

campaign_finish() {  # Copies what is left, then says what was skipped.
  # Every stage was visited (run, done or skipped): a SKIP name none of them
  # took is misspelt. DRY_RUN=1 shows it before a real call.
  local name
  for name in $SKIP; do
    listed "$name" "$SKIPPED" || [ -f "$WORKDIR/done/$name" ] ||
      echo "campaign: SKIP names no stage of this script: $name" >&2
  done
  if [ "$DRY_RUN" = 1 ]; then
    echo "campaign: dry run; nothing run"
    return 0
  fi
  collect
  if [ -n "$SKIPPED" ]; then
    echo "campaign: every stage done but those skipped:$SKIPPED"
  else
    echo "campaign: every stage done"
  fi
}
