#!/usr/bin/env bash
# Database bytes written per settled call: the growth of registry.sqlite (after a WAL
# checkpoint) divided by the calls settled, for deferred calls settled as one batch and for
# real-time calls. Run it on two binaries to compare releases side by side:
#
#   PROVENANCE_BIN=/path/to/old/provenance Benchmarks/bytes-per-call.sh
#   Benchmarks/bytes-per-call.sh            # the release build of this checkout
#
# Environment: DEFERRED (default 1000), REALTIME (default 300), CONTRIBUTORS (default 5).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DEFERRED=${DEFERRED:-1000}
REALTIME=${REALTIME:-300}
CONTRIBUTORS=${CONTRIBUTORS:-5}
require_tools bytes-per-call.sh sqlite3
find_provenance bytes-per-call.sh
PROVENANCE_BIN=$BIN

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
store="$work/.provenance"
pv() { "$PROVENANCE_BIN" "$@" --store "$store"; }

pv init >/dev/null
for i in $(seq 1 "$CONTRIBUTORS"); do
  (cd "$work" && printf 'sample %s\n' "$i" > "f$i.txt" && pv add corpus "f$i.txt" --contributor "C$i <c$i@example.org>" >/dev/null)
done
pv model register m@1 --developer "Dev <dev@example.org>" --dataset corpus >/dev/null
pv model price m --input-per-1k 0.001 --output-per-1k 0.002 >/dev/null
pv account deposit caller 1000000 >/dev/null
pv account deposit node:gpu 10 >/dev/null
pv node add gpu --stake 5 >/dev/null

size() {
  sqlite3 "$store/registry.sqlite" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
  sqlite3 "$store/registry.sqlite" 'PRAGMA page_count;' | awk -v ps="$(sqlite3 "$store/registry.sqlite" 'PRAGMA page_size;')" '{ print $1 * ps }'
}

before=$(size)
for i in $(seq 1 "$DEFERRED"); do
  pv call m@1 --caller caller --node gpu --input-tokens $((500 + i % 1000)) --output-tokens $((100 + i % 300)) \
    --latency-ms $((100 + i % 700)) --idempotency-key "d$i" --defer >/dev/null
done
pv settle >/dev/null
deferred=$(size)
for i in $(seq 1 "$REALTIME"); do
  pv call m@1 --caller caller --node gpu --input-tokens $((500 + i % 1000)) --output-tokens $((100 + i % 300)) \
    --latency-ms $((100 + i % 700)) --idempotency-key "r$i" >/dev/null
done
realtime=$(size)
pv verify >/dev/null
echo "database bytes per settled call ($CONTRIBUTORS contributors, $(basename "$(dirname "$PROVENANCE_BIN")")/$(basename "$PROVENANCE_BIN")):"
echo "  deferred, settled in one batch: $(( (deferred - before) / DEFERRED )) bytes ($DEFERRED calls)"
echo "  real-time, one call per CLI run: $(( (realtime - deferred) / REALTIME )) bytes ($REALTIME calls)"
