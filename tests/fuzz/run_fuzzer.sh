#!/bin/sh
# Runs one fuzzer for a fixed time on its committed corpus, as a ctest test:
#   run_fuzzer.sh FUZZER CORPUS_DIR WORK_DIR SECONDS [libFuzzer options...]
# Fails (non-zero) on any crash, leak, timeout or trapped invariant, and then
# prints the report and where the reproducer is. Always prints how many inputs
# ran. New inputs go to WORK_DIR/new (emptied first), never into the committed
# corpus.
set -u
fuzzer=$1
corpus=$2
work=$3
seconds=$4
shift 4

rm -rf "$work"
mkdir -p "$work/new" "$work/artifacts"
log="$work/fuzz.log"

# The broker's socket directory (control_fuzzer), short and removed whatever
# the outcome.
tmp=$(mktemp -d /tmp/rp-fuzz-run.XXXXXX)
chmod 0711 "$tmp"  # the control fuzzer's second peer, another uid, must reach the broker's socket below
started=$(date +%s)
TMPDIR="$tmp" "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$@" "$work/new" "$corpus" >"$log" 2>&1
status=$?
rm -rf "$tmp"
elapsed=$(($(date +%s) - started))

name=$(basename "$fuzzer")
units=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
coverage=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -n 's/.*cov: \([0-9]*\).*ft: \([0-9]*\).*/\1 edges, \2 features/p')
echo "$name: ${units:-?} executions in ${elapsed} s (${rate:-?}/s); ${coverage:-coverage ?}; exit status $status"
if [ "$status" -ne 0 ] || [ -z "$units" ]; then
  echo "---- last 80 lines of $log ----"
  tail -n 80 "$log"
  echo "---- reproducers in $work/artifacts: ----"
  ls -l "$work/artifacts"
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
