#!/usr/bin/env bash
# What a group commit writes to SQLite's write-ahead log, b-tree by b-tree: `provenance serve` on
# a store that already holds PRELOAD calls takes MEASURE more through `POST /v1/calls` (64
# connections, batch-signed records) while a reader holds the log open, so that no checkpoint
# can reset it; then every frame the measured calls wrote is read back from the log and named by
# the table or index its page belongs to (sqlite3's dbstat). Each page a commit changes is one
# whole frame in the log, and the checkpointer copies it to the database again: the pages a
# commit dirties, not the bytes it adds, are what the disk and the kernel's page cache carry.
#
# Usage: Benchmarks/wal-frames.sh
# Environment:
#   PROVENANCE_BIN  the binary (default: builds the release one into .build-release)
#   PRELOAD         calls settled before measuring, so that the indexes are not new (default 60000)
#   MEASURE         calls whose frames are counted (default 20000)
#   MODE            deferred (default) or realtime
#   KEYS            sequential (default, "deferred-17"), uuid (random, version 4, as many clients
#                   key requests) or uuid7 (time-ordered, RFC 9562, as `provenance call` keys them)
# Needs wrk, sqlite3 (with dbstat, as Debian's is) and python3 with the cryptography package.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PRELOAD=${PRELOAD:-60000}; MEASURE=${MEASURE:-20000}; MODE=${MODE:-deferred}; KEYS=${KEYS:-sequential}
# The settings first: a mistyped one is told before any tool is looked for or binary built.
[[ $MODE == deferred || $MODE == realtime ]] || { echo "wal-frames.sh: MODE must be deferred or realtime, not '$MODE'" >&2; exit 2; }
require_key_kind wal-frames.sh KEYS "$KEYS"
require_tools wal-frames.sh wrk python3 sqlite3
require_signing wal-frames.sh
find_provenance wal-frames.sh

work=$(mktemp -d)
server=""; reader=""
cleanup() {
  [[ -n $reader ]] && kill "$reader" 2>/dev/null || true
  if [[ -n $server ]] && kill -0 "$server" 2>/dev/null; then kill -TERM "$server"; wait "$server" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

PROVENANCE_BIN=$BIN
store="$work/store"
source "$PACKAGE_ROOT/Registry/live-server.sh"
seed_store
seed_calls 64
db="$store/registry.sqlite"

sign() {  # sign FILE FIRST COUNT
  python3 "$PACKAGE_ROOT/Benchmarks/call_signing.py" "$store/keys/node-gpu1.ed25519" "$1" "$3" "$MODE" "$KEYS" "$2"
}
[[ $PRELOAD -gt 0 ]] && sign "$work/preload.tsv" 0 "$PRELOAD"
sign "$work/measure.tsv" "$PRELOAD" "$MEASURE"

start_server error
[[ $PRELOAD -gt 0 ]] && send_calls "$work/preload.tsv" "$PRELOAD"
# A reader's snapshot from before the measured calls: checkpoints copy nothing past it and the
# log is not restarted, so it keeps every frame they write. It writes a row just before it
# starts reading, so that its snapshot is in the log (one taken with the whole log copied
# would not hold it). The log's salts and length are noted then, and checked at the end.
python3 - "$db" >"$work/reader.log" 2>&1 <<'PY' &
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("CREATE TABLE IF NOT EXISTS wal_frames_pin (x)")
connection.execute("INSERT INTO wal_frames_pin VALUES (1)")
connection.execute("BEGIN")
print("reading", connection.execute("SELECT count(*) FROM calls").fetchone()[0], flush=True)
time.sleep(3600)
PY
reader=$!
for _ in $(seq 1 100); do grep -q reading "$work/reader.log" 2>/dev/null && break; sleep 0.1; done
grep -q reading "$work/reader.log" || { echo "wal-frames.sh: the reader did not start: $(cat "$work/reader.log")" >&2; exit 1; }
wal_frames() {  # wal_frames FILE: the log's two salts and how many frames carry them
  python3 - "$1" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
_, _, page_size, _, salt1, salt2, _, _ = struct.unpack(">IIIIIIII", data[:32])
offset, frames = 32, 0
while offset + 24 + page_size <= len(data) and struct.unpack(">II", data[offset + 8:offset + 16]) == (salt1, salt2):
    frames += 1
    offset += 24 + page_size
print(salt1, salt2, frames)
PY
}
read -r salt1 salt2 skip <<<"$(wal_frames "$db-wal")"
calls_before=$(awk '/^reading/ { print $2 }' "$work/reader.log")
send_calls "$work/measure.tsv" "$MEASURE"
cp "$db-wal" "$work/measured.wal"
kill "$reader"; wait "$reader" 2>/dev/null || true; reader=""
kill -TERM "$server"; wait "$server" || true; server=""
calls=$(( $(sqlite3 "$db" "SELECT count(*) FROM calls") - calls_before ))
[[ $calls -gt $(( MEASURE * 9 / 10 )) ]] || { echo "wal-frames.sh: only $calls of $MEASURE calls were stored" >&2; exit 1; }
read -r after1 after2 _ <<<"$(wal_frames "$work/measured.wal")"
[[ $after1 == "$salt1" && $after2 == "$salt2" ]] || { echo "wal-frames.sh: the log was restarted while measuring; run it again" >&2; exit 1; }
sqlite3 "$db" "SELECT name, pageno FROM dbstat" >"$work/pages.txt"

echo "wal-frames.sh: $MODE, $KEYS keys, $calls calls measured after $PRELOAD, $BIN"
python3 - "$work/measured.wal" "$work/pages.txt" "$calls" "$skip" <<'PY'
import collections, struct, sys
wal, pages, calls, skip = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
owner = {}
for line in open(pages):
    name, page = line.rstrip("\n").rsplit("|", 1)
    owner[int(page)] = name
data = open(wal, "rb").read()
_, _, page_size, _, salt1, salt2, _, _ = struct.unpack(">IIIIIIII", data[:32])
frame = 24 + page_size
offset = 32 + skip * frame  # the frames before the reader's snapshot are the preload's
frames, commits, per_tree = 0, 0, collections.Counter()
while offset + frame <= len(data):
    page, commit_size, s1, s2 = struct.unpack(">IIII", data[offset:offset + 16])
    if (s1, s2) != (salt1, salt2):
        break
    frames += 1
    per_tree[owner.get(page, "(freed)")] += 1
    if commit_size:
        commits += 1
    offset += frame
print(f"{frames} frames of {page_size} bytes in {commits} commits: {frames / commits:.1f} pages a commit, "
      f"{calls / commits:.1f} calls a commit, {frames * frame / calls:,.0f} log bytes a call")
for name, count in per_tree.most_common():
    print(f"  {name:32s} {count:7d} frames  {count / commits:6.2f} a commit  {count * page_size / calls:7,.0f} bytes a call")
PY
