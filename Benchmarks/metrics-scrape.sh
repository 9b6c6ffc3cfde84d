#!/usr/bin/env bash
# A Prometheus scrape of `provenance serve` on a store that holds many pending (deferred) calls,
# two builds side by side: the same seeded store copied twice, one copy per build, each scraped
# SCRAPES times (GET /metrics) after one untimed scrape. Prints each build's median and slowest scrape, the
# server's CPU time a scrape and its peak resident memory, and B's median over A's. A scraper
# asks every 15 s or so; what one scrape costs the server should not grow with the ledger.
#
# Usage: Benchmarks/metrics-scrape.sh BINARY_A BINARY_B
# Environment:
#   PENDING   deferred calls reserved on the store before the scrapes (default 200000)
#   SCRAPES   scrapes per build (default 7)
# Needs wrk and python3 with the cryptography package, like http.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
two_builds metrics-scrape.sh "$@"
PENDING=${PENDING:-200000}; SCRAPES=${SCRAPES:-7}
[[ $PENDING =~ ^[0-9]+$ && $PENDING -gt 0 ]] || { echo "metrics-scrape.sh: PENDING must be a positive number, not '$PENDING'" >&2; exit 2; }
[[ $SCRAPES =~ ^[0-9]+$ && $SCRAPES -gt 0 ]] || { echo "metrics-scrape.sh: SCRAPES must be a positive number, not '$SCRAPES'" >&2; exit 2; }
require_tools metrics-scrape.sh wrk python3 awk curl
require_signing metrics-scrape.sh
PACKAGE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

scratch_for_a_server

PROVENANCE_BIN=$A
source "$PACKAGE_ROOT/Registry/live-server.sh"
seed_store
seed_calls 64
python3 "$PACKAGE_ROOT/Benchmarks/call_signing.py" "$work/store/keys/node-gpu1.ed25519" "$work/calls.tsv" "$PENDING" deferred sequential
start_server error
send_calls "$work/calls.tsv" "$PENDING"
kill -TERM "$server"; wait "$server" || true
server=""
mv "$work/store" "$work/storeA"
cp -R "$work/storeA" "$work/storeB"
sync

ticks_per_second=$(getconf CLK_TCK)
pending=""
declare -A times cpu peak
for side in A B; do
  PROVENANCE_BIN=$A; [[ $side == B ]] && PROVENANCE_BIN=$B
  store="$work/store$side"
  start_server error "$side"
  # One scrape first, untimed: the page cache and the server's caches warm for both alike.
  curl -sf "http://127.0.0.1:$port/metrics" > "$work/metrics$side.txt"
  before=$(awk '{ print $14 + $15 }' "/proc/$server/stat")
  list=""
  for _ in $(seq 1 "$SCRAPES"); do
    seconds=$(curl -sf -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port/metrics")
    list+="$(awk "BEGIN { print $seconds * 1000 }") "
  done
  after=$(awk '{ print $14 + $15 }' "/proc/$server/stat")
  times[$side]=$list
  cpu[$side]=$(awk "BEGIN { print ($after - $before) * 1000 / $ticks_per_second / $SCRAPES }")
  peak[$side]=$(( $(awk '/^VmHWM:/ { print $2 }' "/proc/$server/status") / 1024 ))
  kill -TERM "$server"; wait "$server" || true
  server=""
  reported=$(awk '/^provenance_calls_pending_calls / { print $2 }' "$work/metrics$side.txt")
  [[ -z $pending ]] && pending=$reported
  [[ $reported == "$pending" ]] || { echo "metrics-scrape.sh: A reported $pending pending calls, B $reported" >&2; exit 1; }
done

median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
slowest() { tr ' ' '\n' | awk 'NF' | sort -g | tail -1; }
echo "metrics-scrape.sh: $(awk "BEGIN { printf \"%d\", $pending }") pending calls, $SCRAPES scrapes a build, $(nproc) cores; A = $A, B = $B"
for side in A B; do
  printf '%s  median %9.1f ms  slowest %9.1f ms  server CPU %9.1f ms a scrape  peak RSS %5d MiB\n' \
    "$side" "$(median <<<"${times[$side]}")" "$(slowest <<<"${times[$side]}")" "${cpu[$side]}" "${peak[$side]}"
done
printf 'B / A median scrape: %.4f\n' "$(awk "BEGIN { print $(median <<<"${times[B]}") / $(median <<<"${times[A]}") }")"
