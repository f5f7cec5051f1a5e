#!/usr/bin/env bash
# Runs fuzz targets one at a time for SECONDS each (libFuzzer, no sanitizer: safe Rust; debug
# assertions and overflow checks on), going on after a crash until the time is spent, and logs
# each target's executions. Usage: fuzz/run.sh SECONDS LOG_DIR TARGET...
# The corpus grows in fuzz/corpus/<target>; crashes land in fuzz/artifacts/<target>/. The binaries
# are cargo fuzz build's, under $CARGO_TARGET_DIR (relative to fuzz/) or fuzz/target.
set -uo pipefail
cd "$(dirname "$0")"
seconds=$1 logs=$2
shift 2
bin=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release
mkdir -p "$logs"
status=0
for t in "$@"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  start=$(date +%s) runs=0 crashes=0 n=0
  while :; do
    left=$(( seconds - ($(date +%s) - start) ))
    [ "$left" -gt 0 ] || break
    n=$((n + 1))
    "$bin/$t" "corpus/$t" -max_total_time="$left" -max_len=262144 -rss_limit_mb=2048 -timeout=30 \
      -print_final_stats=1 -artifact_prefix="artifacts/$t/" > "$logs/$t.$n.log" 2>&1
    rc=$?
    r=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.$n.log" | tail -1)
    runs=$((runs + ${r:-0}))
    if [ "$rc" -ne 0 ]; then crashes=$((crashes + 1)); status=1; fi
  done
  echo "$t seconds=$seconds executions=$runs crashes=$crashes" | tee -a "$logs/summary.txt"
done
exit $status
