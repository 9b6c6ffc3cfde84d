#!/usr/bin/env bash
# The registry on PostgreSQL next to SQLite, in one run: Benchmarks/http.sh's real-time and
# deferred runs (64 connections, batch-signed records, one record a request) against
#   1. the embedded SQLite store, one `provenance serve`;
#   2. a PostgreSQL store, one replica;
#   3. the same kind of PostgreSQL store, two replicas (32 connections each, one wrk each).
# PostgreSQL is a throwaway cluster this script starts on loopback with durable commits
# (fsync and synchronous_commit on, as SQLite's synchronous=FULL), pg_stat_statements loaded
# so each run reports the statements the database ran per call, and stops at the end.
# Each run prints calls/s, p50/p99, the servers' CPU per call and the bytes the state grew by
# per call; the summary gives the PostgreSQL/SQLite ratios.
#
# Environment: PROVENANCE_BIN, DURATION (default 10), CALLS (default 60000), as for http.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_tools postgres.sh wrk python3 awk psql
bin=/usr/lib/postgresql/15/bin
[ -x "$bin/initdb" ] || { echo "postgres.sh: PostgreSQL 15 is required (apt-get install postgresql)" >&2; exit 2; }
find_provenance postgres.sh
export PROVENANCE_BIN=$BIN
export RUNS="realtime deferred"
export DURATION=${DURATION:-10} CALLS=${CALLS:-60000}

folder=$(mktemp -d /tmp/provenance-bench-pg-XXXXXX)
as=()
if [ "$(id -u)" -eq 0 ]; then chown postgres "$folder"; as=(/usr/sbin/runuser -u postgres --); fi
stop() { "${as[@]}" "$bin/pg_ctl" -D "$folder/data" -m fast -w stop >/dev/null 2>&1 || true; rm -rf "$folder"; }
trap stop EXIT
"${as[@]}" "$bin/initdb" -D "$folder/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${as[@]}" "$bin/pg_ctl" -D "$folder/data" -l "$folder/log" -w -t 60 \
  -o "-p $port -k $folder -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_preload_libraries=pg_stat_statements" \
  start >/dev/null </dev/null
server="postgres://postgres@127.0.0.1:$port"
database() {  # a fresh database with pg_stat_statements, as a URL
  psql "$server/postgres" -qAtX -c "CREATE DATABASE $1" >/dev/null
  psql "$server/$1" -qAtX -c "CREATE EXTENSION pg_stat_statements" >/dev/null
  echo "$server/$1"
}

here=$(dirname "${BASH_SOURCE[0]}")
sqlite=$(bash "$here/http.sh" | grep -v '^==>')
echo "$sqlite"
one=$(DATABASE=$(database one) REPLICAS=1 bash "$here/http.sh" | grep -v '^==>')
echo "$one"
two=$(DATABASE=$(database two) REPLICAS=2 bash "$here/http.sh" | grep -v '^==>')
echo "$two"

rate() { echo "$1" | awk -v what="$2" 'index($0, what) == 1 { for (i = 1; i + 2 <= NF; i++) if ($(i+2) ~ /^calls\/s/) { print $i; exit } }'; }
echo
echo "summary (calls/s; ratio to SQLite)"
for what in "real-time" "deferred"; do
  s=$(rate "$sqlite" "$what"); o=$(rate "$one" "$what"); t=$(rate "$two" "$what")
  printf '%-10s SQLite %6s   PostgreSQL 1 replica %6s (%.2f×)   2 replicas %6s (%.2f×)\n' "$what" "$s" "$o" \
    "$(awk "BEGIN { print $o / $s }")" "$t" "$(awk "BEGIN { print $t / $s }")"
done
