#!/usr/bin/env bash
# Fuzzes the live registry with schemathesis (PyPI) against Registry/openapi.yaml: every check
# on (no 5xx, status codes, content types, headers and bodies as documented, bad input refused,
# auth enforced, 405 with Allow), at least 1,000 generated requests.
#
# Usage: Registry/schemathesis.sh [extra schemathesis options]
#   PROVENANCE_BIN  the provenance executable (default: build it with swift build)
#   SCHEMATHESIS    the schemathesis command (default: schemathesis on PATH, else one installed
#                   from PyPI into a virtual environment under ~/.cache/provenance-schemathesis)
#   MAX_EXAMPLES    test cases per operation and phase (default 60)
#   REPORT_DIR      keep schemathesis' JUnit and NDJSON reports here (default: a temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ -z "${PROVENANCE_BIN:-}" ]; then
  swift build --product provenance >&2
  PROVENANCE_BIN="$(swift build --show-bin-path)/provenance"
fi
if [ -z "${SCHEMATHESIS:-}" ]; then
  if command -v schemathesis >/dev/null; then
    SCHEMATHESIS=schemathesis
  else
    venv="${XDG_CACHE_HOME:-$HOME/.cache}/provenance-schemathesis"
    [ -x "$venv/bin/schemathesis" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet schemathesis; } >&2
    SCHEMATHESIS="$venv/bin/schemathesis"
  fi
fi

work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then
    if kill -0 "$server" 2>/dev/null; then kill -TERM "$server"; wait "$server" || true
    else echo "the server died; its log:"; cat "$work/server.log"; fi
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A store with something in it, so reads find datasets, models, invoices and proofs.
source "$root/Registry/live-server.sh"
seed_store
pv model price m --input-per-1k 1 --output-per-1k 2 >/dev/null
pv account deposit alice 100 >/dev/null
pv node add gpu1 >/dev/null
pv call m@1 --caller alice --node gpu1 --input-tokens 1000 --output-tokens 10 --latency-ms 50 --idempotency-key seed-1 >/dev/null
pv call m@1 --caller alice --node gpu1 --input-tokens 500 --output-tokens 0 --latency-ms 50 --idempotency-key seed-2 --defer >/dev/null
token=$(pv token create --role admin --subject schemathesis 2>/dev/null)

start_server warning

report=${REPORT_DIR:-$work/report}
status=0
"$SCHEMATHESIS" --config-file "$root/Registry/schemathesis.toml" run "$root/Registry/openapi.yaml" \
  --url "http://127.0.0.1:$port" \
  --header "Authorization: Bearer $token" \
  --checks all \
  --max-examples "${MAX_EXAMPLES:-60}" \
  --seed "${SEED:-20261121}" \
  --workers 1 \
  --report junit,ndjson --report-dir "$report" \
  "$@" || status=$?

# Count the requests sent, and tabulate the answers by status.
requests=$(python3 - "$report" <<'EOF'
import collections, json, pathlib, sys
statuses = collections.Counter()
def walk(value):
    if isinstance(value, dict):
        request, response = value.get("request"), value.get("response")
        if isinstance(request, dict) and isinstance(response, dict) and "status_code" in response:
            statuses[response["status_code"]] += 1
        for item in value.values():
            walk(item)
    elif isinstance(value, list):
        for item in value:
            walk(item)
for path in pathlib.Path(sys.argv[1]).glob("*.ndjson"):
    for line in path.read_text().splitlines():
        walk(json.loads(line))
print("answers by status: " + " ".join(f"{code}:{count}" for code, count in sorted(statuses.items())), file=sys.stderr)
print(sum(statuses.values()))
EOF
)
echo "schemathesis sent $requests requests"

kill -TERM "$server"
wait "$server" || { echo "the server did not stop cleanly:"; cat "$work/server.log"; exit 1; }
server=""
if grep -q '"error"\|level=error\| error ' "$work/server.log"; then
  echo "server errors:"; cat "$work/server.log"
fi
if [ "$requests" -lt 1000 ]; then echo "only $requests requests (need at least 1000)"; exit 1; fi
exit $status
