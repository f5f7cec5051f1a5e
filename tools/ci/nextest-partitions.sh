#!/usr/bin/env bash
# cargo-nextest's hash partitions split the one-test-per-capture harness (tests/etcd_corpus.rs)
# so that every capture under corpus/ runs exactly once: for K = 1..N this lists and runs
# `cargo nextest run --test etcd_corpus --partition SCHEME:K/N`, then checks that the captures
# the N partitions ran are every capture, each once, and that every partition passed.
# Usage: tools/ci/nextest-partitions.sh [N [SCHEME]]   (default 3 hash; make test-partitions)
# SCHEME is nextest's: hash (a test keeps its partition as tests are added) or count (dealt out
# in list order: even, but tests move when one is added).
# Exit 0: covered exactly once and green; 1: a capture missed, run twice, or failed;
# 2: cargo-nextest is not installed (`cargo install cargo-nextest --locked`).
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-3}
scheme=${2:-hash}
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "cargo-nextest is not installed: cargo install cargo-nextest --locked" >&2
    exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Every capture, as the harness names its test: verify_capture::<capture>/manifest.json.
for manifest in corpus/*/manifest.json; do
    echo "verify_capture::${manifest#corpus/}"
done | sort >"$work/expected"

status=0
for k in $(seq 1 "$n"); do
    cargo nextest list --test etcd_corpus --partition "$scheme:$k/$n" --message-format json \
        2>/dev/null >"$work/list-$k.json"
    python3 - "$work/list-$k.json" >"$work/partition-$k" <<'PY'
import json, sys
listing = json.load(open(sys.argv[1]))
for suite in listing["rust-suites"].values():
    for name, case in suite["testcases"].items():
        if case["filter-match"]["status"] == "matches":
            print(name)
PY
    echo "partition $scheme:$k/$n: $(tr '\n' ' ' <"$work/partition-$k")"
    if [ -s "$work/partition-$k" ]; then
        # Run it as a CI runner would; a failing capture fails the partition.
        cargo nextest run --test etcd_corpus --partition "$scheme:$k/$n" --no-fail-fast \
            >"$work/run-$k.log" 2>&1 || { echo "partition $k/$n failed:"; tail -40 "$work/run-$k.log"; status=1; }
        ran=$(grep -c '^ *PASS ' "$work/run-$k.log" || true)
        listed=$(wc -l <"$work/partition-$k")
        [ "$ran" -eq "$listed" ] || { echo "partition $k/$n: listed $listed, passed $ran"; status=1; }
    fi
done

sort "$work"/partition-* >"$work/union"
if ! diff -u "$work/expected" "$work/union"; then
    echo "FAILED: the partitions do not run every capture exactly once (diff above: - missing, + extra or twice)"
    exit 1
fi
[ "$status" -eq 0 ] || exit 1
echo "OK: $(wc -l <"$work/expected") captures, each in exactly one of $n partitions, all passed"
