#!/usr/bin/env bash
# Settlement throughput: 200,000 deferred calls settled in batches, 20,000 real-time calls one by
# one and 40,000 from 64 concurrent callers (group commit), against inserting the same rows into
# SQLite with no logic (the floor the store sets); bytes per settled call; verify's time.
# Sizes: DEFERRED_CALLS, REALTIME_CALLS, CONCURRENT_CALLS, CLIENTS, BATCH_SIZE.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product settlement-benchmark --scratch-path .build-release >&2
exec .build-release/release/settlement-benchmark
