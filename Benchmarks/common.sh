# Shared by the benchmark scripts: source it, then call require_tools and find_provenance.
# Both take the calling script's name first, for their error messages.

# require_tools NAME TOOL...: exits 2 unless every TOOL is on PATH.
require_tools() {
    local name=$1; shift
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$name: '$tool' is required but not installed" >&2; exit 2; }
    done
}

# require_key_kind NAME VARIABLE VALUE: exits 2 unless VALUE is a kind of idempotency key that
# call_signing.py makes (sequential, uuid: random version 4, uuid7: time-ordered).
require_key_kind() {
    [[ $3 == sequential || $3 == uuid || $3 == uuid7 ]] || { echo "$1: $2 must be sequential, uuid or uuid7, not '$3'" >&2; exit 2; }
}

# require_signing NAME: exits 2 unless python3 can import the cryptography package, which
# call_signing.py signs the records with.
require_signing() {
    python3 -c 'import cryptography' 2>/dev/null \
        || { echo "$1: python3's cryptography package is required (apt-get install python3-cryptography)" >&2; exit 2; }
}

# two_builds NAME ARG...: exits 2 with NAME's usage unless the ARGs are two executable files;
# sets A and B to their full paths.
two_builds() {
    local name=$1; shift
    [[ $# -eq 2 && -x $1 && -x $2 ]] || { echo "usage: Benchmarks/$name BINARY_A BINARY_B (two executable files)" >&2; exit 2; }
    A=$(realpath "$1"); B=$(realpath "$2")
}

# find_provenance NAME: sets BIN to $PROVENANCE_BIN, or builds the release binary once
# into .build-release. Leaves the working directory at the package root (PACKAGE_ROOT).
find_provenance() {
    local name=$1
    PACKAGE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    cd "$PACKAGE_ROOT"
    if [[ -n ${PROVENANCE_BIN:-} ]]; then
        if [[ ! -x $PROVENANCE_BIN ]]; then
            echo "$name: PROVENANCE_BIN=$PROVENANCE_BIN is not an executable file" >&2
            exit 2
        fi
        BIN=$(cd "$(dirname "$PROVENANCE_BIN")" && pwd)/$(basename "$PROVENANCE_BIN")
    else
        echo "==> Building the release binary (swift build -c release --scratch-path .build-release)"
        swift build -c release --product provenance --scratch-path .build-release
        BIN="$PACKAGE_ROOT/.build-release/release/provenance"
        [[ -x $BIN ]] || BIN="$(swift build -c release --product provenance --scratch-path .build-release --show-bin-path)/provenance"
    fi
    echo "==> Using $BIN"
}

# scratch_for_a_server: a scratch folder in $work, and on exit, the server in $server stopped (if
# one runs: Registry/live-server.sh's start_server sets it) and the folder removed.
scratch_for_a_server() {
    work=$(mktemp -d)
    server=""
    trap 'if [[ -n $server ]] && kill -0 "$server" 2>/dev/null; then kill -TERM "$server"; wait "$server" || true; fi; rm -rf "$work"' EXIT
}

# send_calls FILE COUNT: sends every line of FILE (written by call_signing.py) once to
# `POST /v1/calls` of the server on $port with $token, 64 connections; a wrk thread stops at the
# end of its share. For filling a store, not for timing it.
send_calls() {
    wrk -t 2 -c 64 -d "$(( $2 / 1000 + 10 ))s" --timeout 30s -s "$PACKAGE_ROOT/Benchmarks/calls.lua" "http://127.0.0.1:$port" \
        -- "$1" 2 "$token" /v1/calls >/dev/null
}

# ran_out_note THREADS_THAT_RAN_OUT SETTING: a warning for a wrk run whose threads sent every
# record before the run's end. wrk still reports the whole duration, so the rate printed is the
# records' count over it, less than the server could do; nothing when none ran out.
ran_out_note() {
  [[ ${1:-0} -gt 0 ]] && printf '  RAN OUT of records: the server did at least this rate; raise %s' "$2"
  true
}
