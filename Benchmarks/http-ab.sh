#!/usr/bin/env bash
# Two builds of `provenance serve` side by side on the same signed records: the same seeded store
# copied twice, one copy per build, and rounds that alternate the builds (A, B, A, B, ...) with
# fresh records each round. On a machine whose speed moves by a third from minute to minute, one
# run of each build says little; pairs taken a few seconds apart say more. Prints each run's
# calls per second, p99 latency, the server's CPU time a call and its peak resident memory.
#
# Usage: Benchmarks/http-ab.sh BINARY_A BINARY_B (the same binary twice compares two kinds of key)
# Environment:
#   MODE       deferred (default) or realtime
#   ROUNDS     pairs of runs (default 4)
#   PER_ROUND  signed records per run (default 90000); a run that sends them all before its
#              DURATION is marked: its rate is the records', not the server's
#   DURATION   seconds per run (default 7)
#   PRELOAD    calls sent to the seeded store (by build A) before it is copied, so that both
#              builds start on a store that already holds calls (default 0); with KEYS_B, B's
#              store is preloaded apart, with records keyed its way
#   KEYS       how the records are keyed: sequential (default), uuid (random, version 4) or
#              uuid7 (time-ordered), as in wal-frames.sh
#   KEYS_B     another kind of key for B's records (default: KEYS); the records are otherwise
#              the same
# Needs wrk and python3 with the cryptography package, like http.sh (it shares Benchmarks/calls.lua and call_signing.py).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
two_builds http-ab.sh "$@"
MODE=${MODE:-deferred}; ROUNDS=${ROUNDS:-4}; PER_ROUND=${PER_ROUND:-90000}; DURATION=${DURATION:-7}; PRELOAD=${PRELOAD:-0}
KEYS=${KEYS:-sequential}; KEYS_B=${KEYS_B:-$KEYS}
# The settings first, the tools after: a mistyped setting is told at once, on any machine.
[[ $MODE == deferred || $MODE == realtime ]] || { echo "http-ab.sh: MODE must be deferred or realtime, not '$MODE'" >&2; exit 2; }
require_key_kind http-ab.sh KEYS "$KEYS"
require_key_kind http-ab.sh KEYS_B "$KEYS_B"
require_tools http-ab.sh wrk python3 awk
require_signing http-ab.sh
PACKAGE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

scratch_for_a_server

PROVENANCE_BIN=$A
source "$PACKAGE_ROOT/Registry/live-server.sh"
seed_store
seed_calls 64
# PRELOAD + ROUNDS × PER_ROUND records, signed in batches of 256 under one Ed25519 signature, as http.sh does.
# With KEYS_B, B's records (its preloaded ones too) are signed again under its kind of key.
for side in A B; do
  kind=$KEYS; [[ $side == B ]] && kind=$KEYS_B
  if [[ $side == B && $KEYS_B == "$KEYS" ]]; then
    ln -s "$work/preloadA.tsv" "$work/preloadB.tsv"; ln -s "$work/callsA.tsv" "$work/callsB.tsv"
    continue
  fi
  python3 "$PACKAGE_ROOT/Benchmarks/call_signing.py" "$work/store/keys/node-gpu1.ed25519" "$work/all.tsv" $((PRELOAD + ROUNDS * PER_ROUND)) "$MODE" "$kind"
  head -n "$PRELOAD" "$work/all.tsv" > "$work/preload$side.tsv"
  tail -n +"$((PRELOAD + 1))" "$work/all.tsv" > "$work/calls$side.tsv"
done
# Build A preloads each store; with the same records for both, B's is a copy of A's.
mv "$work/store" "$work/seeded"
for side in A B; do
  if [[ $side == B && $KEYS_B == "$KEYS" ]]; then cp -R "$work/storeA" "$work/storeB"; continue; fi
  cp -R "$work/seeded" "$work/store$side"
  store="$work/store$side"
  if [[ $PRELOAD -gt 0 ]]; then
    start_server error
    send_calls "$work/preload$side.tsv" "$PRELOAD"
    kill -TERM "$server"; wait "$server" || true
    server=""
  fi
done

ticks_per_second=$(getconf CLK_TCK)
echo "http-ab.sh: $MODE, $ROUNDS rounds of ${DURATION}s, 64 connections, $(nproc) cores, $PRELOAD calls preloaded; A = $A ($KEYS keys), B = $B ($KEYS_B keys)"
for round in $(seq 0 $((ROUNDS - 1))); do
  for side in A B; do
    sed -n "$((round * PER_ROUND + 1)),$(((round + 1) * PER_ROUND))p" "$work/calls$side.tsv" > "$work/round.tsv"
    PROVENANCE_BIN=$A; [[ $side == B ]] && PROVENANCE_BIN=$B
    store="$work/store$side"
    # Untimed: the stores copied and the records written are flushed first, so that no run's
    # fsyncs wait behind the writeback of files the script made (the first run's p99 did, at 237-532 ms).
    sync
    start_server error
    before=$(awk '{ print $14 + $15 }' "/proc/$server/stat")
    read -r ok bad seconds p50 p99 ran_out <<<"$(wrk -t 2 -c 64 -d "${DURATION}s" --timeout 30s -s "$PACKAGE_ROOT/Benchmarks/calls.lua" "http://127.0.0.1:$port" \
      -- "$work/round.tsv" 2 "$token" /v1/calls | awk '/^RESULT/ { print $2, $3, $4, $5, $6, $7 }')"
    after=$(awk '{ print $14 + $15 }' "/proc/$server/stat")
    peak_kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$server/status")
    kill -TERM "$server"; wait "$server" || true
    server=""
    printf 'round %d %s  %6.0f calls/s  p50 %6.2f ms  p99 %6.2f ms  server CPU %4.0f µs/call  peak RSS %4.0f MiB  (%d not 2xx)  load %s%s\n' \
      "$round" "$side" "$(awk "BEGIN { print $ok / $seconds }")" "$p50" "$p99" \
      "$(awk "BEGIN { print ($after - $before) * 1e6 / $ticks_per_second / ($ok + $bad) }")" "$((peak_kib / 1024))" "$bad" "$(cut -d' ' -f1 /proc/loadavg)" \
      "$(ran_out_note "$ran_out" PER_ROUND)"
  done
done
for side in A B; do
  PROVENANCE_BIN=$A; [[ $side == B ]] && PROVENANCE_BIN=$B
  store="$work/store$side"
  pv verify >/dev/null && echo "verify $side: ok"
done
