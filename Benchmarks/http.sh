#!/usr/bin/env bash
# The registry under load: wrk drives POST /v1/calls on loopback with node-signed call records,
# one record per request: first against the HTTP floor (Benchmarks/HTTPFloor: Hummingbird reading
# the same requests and answering 201, with no work at all), then the registry, settled in real
# time (group commit coalesces the concurrent requests), then deferred (reserved); then deferred again, PER_REQUEST records a request through
# POST /v1/calls/batch; then every reserved call is settled as one batch. Prints calls per second,
# p50/p99 latency and the server's CPU time per call for each. The node signs its records in batches (SIGN=batch, the
# default: one Ed25519 signature over the RFC 9162 root of SIGN_BATCH records, each record
# carrying its inclusion proof, as DESIGN.md §8 describes) or one by one (SIGN=single).
#
# Needs wrk (apt-get install wrk) and python3 with the cryptography package (to sign the
# records with the node's key beforehand, so wrk only replays them).
#
# Environment:
#   PROVENANCE_BIN  use this binary instead of building the release one
#   DURATION        seconds per run (default 10)
#   CONNECTIONS     concurrent connections (default 64)
#   CALLERS         caller accounts the records rotate over (default 64)
#   SIGN            batch (default) or single
#   SIGN_BATCH      records per node signature when SIGN=batch (default 256)
#   THREADS         wrk threads (default 2)
#   CALLS           signed records prepared per run (default 200000: a 10 s deferred run at
#                   16,000 calls/s sends 160,000); a run that sends them all before its DURATION
#                   is marked: its rate is the records', not the server's
#   PER_REQUEST     records per request in the third run, deferred through POST /v1/calls/batch (default 100)
#   RUNS            which runs, of "floor realtime deferred batched settle" (default: all five)
#   HTTP_FLOOR_BIN  use this http-floor binary instead of building the release one
#   DATABASE        a postgres:// URL of an empty database: the store keeps its state there
#   REPLICAS        `provenance serve` processes on the store (default 1; more need DATABASE);
#                   the connections and records are split evenly, one wrk per replica
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
CALLERS=${CALLERS:-64}
SIGN=${SIGN:-batch}
SIGN_BATCH=${SIGN_BATCH:-256}
THREADS=${THREADS:-2}
CALLS=${CALLS:-200000}
PER_REQUEST=${PER_REQUEST:-100}
RUNS=${RUNS:-floor realtime deferred batched settle}
REPLICAS=${REPLICAS:-1}

require_tools http.sh wrk python3 awk
require_signing http.sh
find_provenance http.sh
PROVENANCE_BIN=$BIN

work=$(mktemp -d)
server=""
servers=()
floor_pid=""
cleanup() {
  if [[ -n $floor_pid ]] && kill -0 "$floor_pid" 2>/dev/null; then kill -TERM "$floor_pid"; wait "$floor_pid" || true; fi
  for pid in "${servers[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

source "$PACKAGE_ROOT/Registry/live-server.sh"
seed_store
seed_calls "$CALLERS"
admin=$(pv token create --role admin --subject bench 2>/dev/null)

# Sign CALLS records per run with the node's key: one line each, "idempotency key<TAB>body".
PYTHONPATH="$PACKAGE_ROOT/Benchmarks" python3 - "$store/keys/node-gpu1.ed25519" "$work" "$CALLS" "$CALLERS" "$SIGN" "$SIGN_BATCH" "$PER_REQUEST" <<'PY'
import json, sys
from call_signing import load_key, signed_calls  # Benchmarks/call_signing.py
key = load_key(sys.argv[1])
folder, calls, callers, sign, per_signature = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
per_request = int(sys.argv[7])

for mode in ("realtime", "deferred", "batched"):
    lines = signed_calls(key, mode, calls, callers, per_signature, single=sign != "batch")
    with open(f"{folder}/{mode}.tsv", "w") as out:
        if mode == "batched":
            # PER_REQUEST records a request, as a node reporting its calls in bulk sends them.
            for start in range(0, len(lines), per_request):
                body = {"calls": [item for _, item in lines[start:start + per_request]], "deferred": True}
                out.write(f"batch-{start}\t{json.dumps(body, separators=(',', ':'))}\n")
        else:
            for idempotency_key, item in lines:
                body = dict(item, deferred=mode == "deferred")
                out.write(f"{idempotency_key}\t{json.dumps(body, separators=(',', ':'))}\n")
PY

# The wrk script (Benchmarks/calls.lua) replays the signed records, each once (or round and round
# for the floor), and counts the calls answered 201 or 200.
calls_lua="$PACKAGE_ROOT/Benchmarks/calls.lua"

ports=()
for replica in $(seq 1 "$REPLICAS"); do
  start_server error "$replica"
  servers+=("$server")
  ports+=("$port")
done
# Each replica's wrk replays every REPLICAS-th record.
for mode in realtime deferred batched; do
  for replica in $(seq 0 $((REPLICAS - 1))); do
    awk -v n="$REPLICAS" -v r="$replica" '(NR - 1) % n == r' "$work/$mode.tsv" > "$work/$mode.$replica.tsv"
  done
done

# The server's CPU time so far, in clock ticks (user + system): divided by the calls of a run it
# gives the CPU each call cost, a figure that other load on the machine disturbs far less than
# calls per second.
cpu_ticks() { for pid in "${servers[@]}"; do awk '{ print $14 + $15 }' "/proc/$pid/stat"; done | awk '{ sum += $1 } END { print sum }'; }
ticks_per_second=$(getconf CLK_TCK)

run() {  # mode [route [records per request]] → "requests-ok failed seconds p50ms p99ms server-cpu-µs-per-record threads-that-ran-out"
  local before after per=${3:-1}
  # Untimed: the records and stores the script wrote are flushed first, so that the run's fsyncs
  # do not wait behind their writeback (the first run's p99 did, once at 414 ms).
  sync
  before=$(cpu_ticks)
  # One wrk per replica, at once; their counts add up, and the slowest sets seconds, p50 and p99.
  for replica in $(seq 0 $((REPLICAS - 1))); do
    wrk -t "$THREADS" -c $((CONNECTIONS / REPLICAS)) -d "${DURATION}s" --timeout 30s -s "$calls_lua" "http://127.0.0.1:${ports[$replica]}" \
      -- "$work/$1.$replica.tsv" "$THREADS" "$token" "${2:-/v1/calls}" | awk '/^RESULT/ { print $2, $3, $4, $5, $6, $7 }' > "$work/wrk.$replica" &
  done
  wait  # (this runs in a subshell: its jobs are the wrks only)
  cat "$work"/wrk.* | awk '{ ok += $1; bad += $2; if ($3 > s) s = $3; if ($4 > p50) p50 = $4; if ($5 > p99) p99 = $5; out += $6 }
                           END { print ok, bad, s, p50, p99, out }' | {
    read -r ok bad seconds p50 p99 ran_out
    after=$(cpu_ticks)
    echo "$ok $bad $seconds $p50 $p99 $(awk "BEGIN { print ($after - $before) * 1e6 / $ticks_per_second / (($ok + $bad) * $per) }") $ran_out"
  }
  rm -f "$work"/wrk.*
}

# What the store's state holds, in bytes (the SQLite file after a checkpoint, or the database's
# size), and with DATABASE and pg_stat_statements, the statements the database has run so far.
state_bytes() {
  if [ -n "${DATABASE:-}" ]; then psql "$DATABASE" -qAtX -c "SELECT pg_database_size(current_database())"
  else sqlite3 "$store/registry.sqlite" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null 2>&1 || true; stat -c %s "$store/registry.sqlite"; fi
}
statements() {
  [ -n "${DATABASE:-}" ] && psql "$DATABASE" -qAtX -c "SELECT sum(calls) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())" 2>/dev/null || echo ""
}
measure_before() { bytes_before=$(state_bytes); statements_before=$(statements); }
# per_call RECORDS: "N bytes/call[, M statements/call]" since measure_before.
per_call() {
  local bytes statements_now
  bytes=$(awk "BEGIN { print ($(state_bytes) - $bytes_before) / $1 }")
  statements_now=$(statements)
  if [ -n "$statements_now" ] && [ -n "$statements_before" ]; then
    printf '%.0f B/call, %.1f statements/call' "$bytes" "$(awk "BEGIN { print ($statements_now - $statements_before) / $1 }")"
  else
    printf '%.0f B/call' "$bytes"
  fi
}
wants() { [[ " $RUNS " == *" $1 "* ]]; }

# The floor: the same wrk, connections and request bytes (the deferred records) against a bare
# Hummingbird server that reads each body and answers 201. What the registry adds to a request is
# what its rate falls short of this.
floor_rate=""
if wants floor; then
  if [[ -n ${HTTP_FLOOR_BIN:-} ]]; then
    [[ -x $HTTP_FLOOR_BIN ]] || { echo "http.sh: HTTP_FLOOR_BIN=$HTTP_FLOOR_BIN is not an executable file" >&2; exit 2; }
    floor_bin=$HTTP_FLOOR_BIN
  else
    swift build -c release --product http-floor --scratch-path .build-release >&2
    floor_bin="$PACKAGE_ROOT/.build-release/release/http-floor"
  fi
  floor_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  "$floor_bin" "$floor_port" >"$work/floor.log" 2>&1 &
  floor_pid=$!
  floor_up=""
  for _ in $(seq 1 100); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$floor_port/healthz')" 2>/dev/null && { floor_up=1; break; }
    sleep 0.1
  done
  [[ -n $floor_up ]] || { echo "http.sh: http-floor did not answer /healthz; its log:" >&2; cat "$work/floor.log" >&2; exit 1; }
  floor_before=$(awk '{ print $14 + $15 }' "/proc/$floor_pid/stat")
  read -r ok bad seconds p50 p99 <<<"$(wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --timeout 30s -s "$calls_lua" \
    "http://127.0.0.1:$floor_port" -- "$work/deferred.tsv" "$THREADS" "$token" /v1/calls cycle | awk '/^RESULT/ { print $2, $3, $4, $5, $6 }')"
  floor_after=$(awk '{ print $14 + $15 }' "/proc/$floor_pid/stat")
  kill -TERM "$floor_pid"; wait "$floor_pid" || true
  floor_pid=""
  floor_rate=$(awk "BEGIN { print $ok / $seconds }")
  floor_line=$(printf '%-34s %8d reqs   %6.0f requests/s     p50 %7.2f ms  p99 %7.2f ms  server CPU %4.0f µs/request  (%d not 201)' \
    "HTTP floor (bare Hummingbird)" "$ok" "$floor_rate" "$p50" "$p99" \
    "$(awk "BEGIN { print ($floor_after - $floor_before) * 1e6 / $ticks_per_second / ($ok + $bad) }")" "$bad")
fi
# versus_floor RATE: "  N of the floor" when the floor ran, else nothing.
versus_floor() { [[ -n $floor_rate ]] && awk "BEGIN { printf \"  %.2f of the floor\", $1 / $floor_rate }"; true; }

echo "registry HTTP benchmark: $CONNECTIONS connections, $THREADS wrk threads, ${DURATION}s per run, $SIGN signatures, $(nproc) cores, $REPLICAS replica(s) on $([ -n "${DATABASE:-}" ] && echo PostgreSQL || echo SQLite)"
deferred_seconds=0
[[ -n $floor_rate ]] && echo "$floor_line"
if wants realtime; then
  measure_before
  read -r ok bad seconds p50 p99 cpu ran_out <<<"$(run realtime)"
  printf '%-34s %8d calls  %6.0f settled calls/s  p50 %7.2f ms  p99 %7.2f ms  server CPU %4.0f µs/call  %s  (%d not 201)%s%s\n' \
    "real-time (POST /v1/calls)" "$ok" "$(awk "BEGIN { print $ok / $seconds }")" "$p50" "$p99" "$cpu" "$(per_call "$ok")" "$bad" \
    "$(versus_floor "$(awk "BEGIN { print $ok / $seconds }")")" "$(ran_out_note "$ran_out" CALLS)"
fi

if wants deferred; then
  measure_before
  read -r ok bad seconds p50 p99 cpu ran_out <<<"$(run deferred)"
  printf '%-34s %8d calls  %6.0f reserved calls/s p50 %7.2f ms  p99 %7.2f ms  server CPU %4.0f µs/call  %s  (%d not 201)%s%s\n' \
    "deferred (POST /v1/calls, defer)" "$ok" "$(awk "BEGIN { print $ok / $seconds }")" "$p50" "$p99" "$cpu" "$(per_call "$ok")" "$bad" \
    "$(versus_floor "$(awk "BEGIN { print $ok / $seconds }")")" "$(ran_out_note "$ran_out" CALLS)"
  deferred_seconds=$seconds
fi

if wants batched; then
  read -r ok bad seconds p50 p99 cpu ran_out <<<"$(run batched /v1/calls/batch "$PER_REQUEST")"
  deferred_seconds=$(awk "BEGIN { print $deferred_seconds + $seconds }")
  printf '%-34s %8d calls  %6.0f reserved calls/s p50 %7.2f ms  p99 %7.2f ms  server CPU %4.0f µs/call  (%d requests not 200)%s\n' \
    "deferred, $PER_REQUEST a request (/batch)" "$((ok * PER_REQUEST))" "$(awk "BEGIN { print $ok * $PER_REQUEST / $seconds }")" "$p50" "$p99" "$cpu" "$bad" \
    "$(ran_out_note "$ran_out" CALLS)"
fi

if wants settle; then
read -r settled settle <<<"$(python3 - "http://127.0.0.1:$port/v1/settlements" "$admin" <<'EOF'
import json, sys, time, urllib.request
request = urllib.request.Request(sys.argv[1], method="POST", headers={"Authorization": f"Bearer {sys.argv[2]}"})
start = time.monotonic()
report = json.load(urllib.request.urlopen(request, timeout=600))
print(report["settled"], time.monotonic() - start)
EOF
)"
printf '%-34s %8d calls  %6.0f settled calls/s  in one batch of %.2f s; end to end %.0f settled calls/s\n' \
  "batch (POST /v1/settlements)" "$settled" "$(awk "BEGIN { print $settled / $settle }")" "$settle" \
  "$(awk "BEGIN { print $settled / ($deferred_seconds + $settle) }")"
fi

pv verify >/dev/null && echo "verify: ok"
