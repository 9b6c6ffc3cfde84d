#!/usr/bin/env bash
# `make test`: builds once, runs every suite with the stores on the embedded SQLite backend,
# then runs the suites that touch a store again with every store in PostgreSQL, on a throwaway
# cluster this script starts (initdb + pg_ctl in a temporary folder, loopback only) and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
swift="${SWIFT:-swift}"
"$swift" build --build-tests
"$swift" test --skip-build --parallel

bin=/usr/lib/postgresql/15/bin
folder=$(mktemp -d /tmp/provenance-test-pg-XXXXXX)
as=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$folder"
  as=(/usr/sbin/runuser -u postgres --)
fi
stop() {
  "${as[@]}" "$bin/pg_ctl" -D "$folder/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$folder"
}
trap stop EXIT
"${as[@]}" "$bin/initdb" -D "$folder/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The server's output goes to its log, never to this script's pipes (a test runner's pipes
# held open by the server would never see their end).
"${as[@]}" "$bin/pg_ctl" -D "$folder/data" -l "$folder/log" -w -t 60 \
  -o "-p $port -k $folder -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  start >/dev/null </dev/null
echo "PostgreSQL on 127.0.0.1:$port: the store, settlement, ledger, registry and plugin suites again, every store in a database"
# Unit suites that open no store, and suites that run PostgreSQL themselves, are not repeated.
PROVENANCE_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port" "$swift" test --skip-build --parallel \
  --skip 'GitKitTests|ProvenanceCoreTests|CallBodyParserTests|ExplorerBrowserTests|MigrateTests|ReplicaTests|RemoteClientGenerationTests'
