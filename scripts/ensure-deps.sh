#!/usr/bin/env bash
# Installs the system packages Provenance builds and tests with, when any is missing:
# libgit2 (the git library), libdivsufsort (span-match's suffix arrays), SQLite (GRDB links it; the tests read the index with sqlite3),
# and the git CLI (the tests' oracle).
set -euo pipefail
missing=()
pkg-config --exists libgit2 2>/dev/null || missing+=(libgit2-dev pkg-config)
pkg-config --exists libdivsufsort 2>/dev/null || missing+=(libdivsufsort-dev pkg-config)
pkg-config --exists sqlite3 2>/dev/null || missing+=(libsqlite3-dev)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v git >/dev/null || missing+=(git)
# PostgreSQL 15: the second half of `make test` runs the suites with every store in a database.
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "Installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
