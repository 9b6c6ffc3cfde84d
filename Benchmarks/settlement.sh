#!/usr/bin/env bash
# Settlement throughput: 200,000 deferred calls settled in batches and 20,000 real-time calls,
# against inserting the same rows into SQLite with no logic (the floor the store sets).
# Sizes: DEFERRED_CALLS, REALTIME_CALLS, BATCH_SIZE.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product settlement-benchmark --scratch-path .build-release >&2
exec .build-release/release/settlement-benchmark
