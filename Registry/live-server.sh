# Shared by Registry/schemathesis.sh and Benchmarks/http.sh, which both run `provenance serve`
# on a scratch store. Source it after setting PROVENANCE_BIN and work (a scratch folder).

# pv ARGS...: provenance on the scratch store.
pv() { "$PROVENANCE_BIN" "$@" --store "$store"; }

# seed_store: a store with one dataset `text` (Ann and Bo) and a model m@1 trained on it.
# With DATABASE (a postgres:// URL of an empty database), the store keeps its state there.
seed_store() {
  store="$work/store"
  "$PROVENANCE_BIN" init --store "$store" ${DATABASE:+--database "$DATABASE"} >/dev/null
  (cd "$work" && printf 'a\n' > a.txt && printf 'b\n' > b.txt \
    && pv add text a.txt --contributor "Ann <ann@example.org>" >/dev/null \
    && pv add text b.txt --contributor "Bo <bo@example.org>" >/dev/null)
  pv model register m@1 --developer "Dev <dev@example.org>" --dataset text >/dev/null
}

# seed_calls CALLERS: on a seeded store, m priced at 1 a thousand input tokens, node gpu1, and
# CALLERS funded accounts caller0, caller1, ...; sets token (a node token for gpu1).
seed_calls() {
  pv model price m --input-per-1k 1 --output-per-1k 0 >/dev/null
  pv node add gpu1 >/dev/null
  for caller in $(seq 0 $(($1 - 1))); do pv account deposit "caller$caller" 1000000000 >/dev/null; done
  token=$(pv token create --role node --subject gpu1 2>/dev/null)
}

# start_server LOG_LEVEL: serves the store on a free loopback port; sets port and server (its
# pid) and waits until /healthz answers. Logs go to $work/server.log.
start_server() {
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  "$PROVENANCE_BIN" serve --store "$store" --host 127.0.0.1 --port "$port" --log-level "$1" >"$work/server${2:-}.log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/healthz')" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "the server did not answer /healthz; its log:" >&2
  cat "$work/server${2:-}.log" >&2
  return 1
}
