#!/usr/bin/env bash
# Benchmark for `provenance add`: peak memory on one big file, and speed on many small
# files compared with git. See Benchmarks/README.md.
#
# Environment:
#   PROVENANCE_BIN  use this binary instead of building the release one
#   BIG_MB          size of the big random file in MiB (default 1024)
#   SMALL_FILES     number of small files (default 10000)
#   RUNS            timed runs of each small-file command (default 5)
#   RSS_LIMIT_MB    peak RSS limit for the big add in MiB (default 100)
#   BENCH_TMPDIR    where to create the scratch directory (default $TMPDIR or /tmp)
#   BENCH_NO_GNU_TIME=1  measure RSS by polling /proc even if /usr/bin/time exists
set -euo pipefail

BIG_MB=${BIG_MB:-1024}
SMALL_FILES=${SMALL_FILES:-10000}
RUNS=${RUNS:-5}
RSS_LIMIT_MB=${RSS_LIMIT_MB:-100}
CONTRIBUTOR="Bench <bench@example.org>"

for var in BIG_MB SMALL_FILES RUNS RSS_LIMIT_MB; do
    if ! [[ ${!var} =~ ^[1-9][0-9]*$ ]]; then
        echo "add.sh: $var must be a positive integer, got '${!var}'" >&2
        exit 2
    fi
done

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_tools add.sh git python3
find_provenance add.sh

# --- scratch space and helpers ----------------------------------------------------------

echo "==> $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) (other load makes the times noisy)"

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/provenance-bench.XXXXXX")
cleanup() {
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Git without the user's or system's configuration (no signing, hooks, fsmonitor...).
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
GIT=(git -c init.defaultBranch=main -c user.name=Bench -c user.email=bench@example.org)

now() { date +%s.%N; }
elapsed() { python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.3f}")' "$1" "$2"; }
median() { python3 -c 'import statistics, sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.3f}")' "$@"; }
fmt1() { python3 -c 'import sys; print(f"{float(sys.argv[1]):.1f}")' "$1"; }

HAVE_GNU_TIME=0
if [[ -z ${BENCH_NO_GNU_TIME:-} ]] && command -v /usr/bin/time >/dev/null && /usr/bin/time -v true >/dev/null 2>&1; then
    HAVE_GNU_TIME=1
else
    echo "NOTE: GNU time (/usr/bin/time -v) is missing or disabled (Debian/Ubuntu: apt-get install time)."
    echo "      Falling back to polling VmHWM in /proc/PID/status, which can miss a peak in the"
    echo "      last few milliseconds before the process exits."
fi

# measure OUT_PREFIX CMD...: runs CMD, stores wall seconds in $OUT_PREFIX.wall and peak
# RSS in KiB in $OUT_PREFIX.rss; CMD's stdout/stderr go to $OUT_PREFIX.log.
measure() {
    local out=$1; shift
    local start end status=0
    if (( HAVE_GNU_TIME )); then
        start=$(now)
        /usr/bin/time -v -o "$out.time" "$@" >"$out.log" 2>&1 || status=$?
        end=$(now)
        sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): *//p' "$out.time" >"$out.rss"
    else
        local hwm=0 value pid
        start=$(now)
        "$@" >"$out.log" 2>&1 &
        pid=$!
        while kill -0 "$pid" 2>/dev/null; do
            value=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status" 2>/dev/null || true)
            if [[ -n $value ]] && (( value > hwm )); then hwm=$value; fi
            sleep 0.02
        done
        wait "$pid" || status=$?
        end=$(now)
        echo "$hwm" >"$out.rss"
    fi
    elapsed "$start" "$end" >"$out.wall"
    if (( status != 0 )); then
        echo "add.sh: command failed with status $status: $*" >&2
        sed 's/^/    /' "$out.log" >&2
        exit 1
    fi
}

# wait_for_background_git DIR: `git commit` of 10,000 new loose objects (over gc.auto's 6,700)
# starts a detached `git gc --auto`, which repacks for seconds after the timed command has
# returned. Left running, it takes the CPUs from whatever is timed next (the next provenance
# run, or the next git run), so wait until no process works in DIR any more. Not timed.
wait_for_background_git() {
    local dir=$1 proc cwd busy
    for _ in $(seq 1 1200); do
        busy=0
        [[ -e $dir/.git/gc.pid ]] && busy=1
        for proc in /proc/[0-9]*; do
            cwd=$(readlink "$proc/cwd" 2>/dev/null) || continue
            if [[ $cwd == "$dir" || $cwd == "$dir"/* ]]; then busy=1; break; fi
        done
        (( busy )) || return 0
        sleep 0.1
    done
    echo "add.sh: git is still working in $dir after 120 s; going on" >&2
}

kib_to_mib() { python3 -c 'import sys; print(f"{int(sys.argv[1]) / 1024:.1f}")' "$1"; }

# --- 1. memory: one big random file -----------------------------------------------------

if (( BIG_MB % 1024 == 0 )); then BIG_LABEL="$((BIG_MB / 1024)) GiB"; else BIG_LABEL="$BIG_MB MiB"; fi
echo
echo "==> Memory: provenance add of one $BIG_LABEL random file"
mkdir -p "$WORK/big"
head -c "${BIG_MB}M" /dev/urandom >"$WORK/big/bigfile.bin"
"$BIN" init --store "$WORK/big/store" >/dev/null
sync

(cd "$WORK/big" && measure "$WORK/big/prov" "$BIN" add big bigfile.bin --contributor "$CONTRIBUTOR" --store "$WORK/big/store")
BIG_RSS_KB=$(cat "$WORK/big/prov.rss")
BIG_WALL=$(cat "$WORK/big/prov.wall")
if [[ -z $BIG_RSS_KB ]]; then
    echo "add.sh: could not read the peak RSS" >&2
    exit 1
fi
BIG_RSS_MB=$(kib_to_mib "$BIG_RSS_KB")
if (( BIG_RSS_KB < RSS_LIMIT_MB * 1024 )); then BIG_VERDICT=PASS; else BIG_VERDICT=FAIL; fi
echo "    provenance add:       $(fmt1 "$BIG_WALL") s, peak RSS $BIG_RSS_MB MiB -> $BIG_VERDICT (limit $RSS_LIMIT_MB MiB)"
echo "    commit: $(head -n 1 "$WORK/big/prov.log")"

"${GIT[@]}" init -q --bare "$WORK/big/bare.git"
sync
measure "$WORK/big/git" "${GIT[@]}" --git-dir="$WORK/big/bare.git" hash-object -w "$WORK/big/bigfile.bin"
GIT_BIG_WALL=$(cat "$WORK/big/git.wall")
echo "    git hash-object -w:   $(fmt1 "$GIT_BIG_WALL") s, peak RSS $(kib_to_mib "$(cat "$WORK/big/git.rss")") MiB"
echo "    store size: provenance $(du -sh "$WORK/big/store" | cut -f1), git $(du -sh "$WORK/big/bare.git" | cut -f1)"
rm -rf "$WORK/big"

# --- 2. speed: many small files ---------------------------------------------------------

echo
echo "==> Speed: $SMALL_FILES small files in ~100 folders, $RUNS runs each"
# Stores and repositories are kept until the end and the disk is synced before each timed
# command: on ext4, creating files right after deleting many (dirty inode tables) makes the
# kernel's inode allocator skip "recently deleted" inodes, which can multiply the times.
mkdir -p "$WORK/small"
python3 - "$WORK/small/data" "$SMALL_FILES" <<'PY'
import os, random, sys
root, count = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
words = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()
folders = min(100, count)
for i in range(count):
    folder = os.path.join(root, f"d{i % folders:03d}")
    os.makedirs(folder, exist_ok=True)
    size = rng.randint(100, 2000)
    text, length = [], 0
    while length < size:
        line = " ".join(rng.choice(words) for _ in range(8)) + f" {rng.getrandbits(32):08x}\n"
        text.append(line)
        length += len(line)
    with open(os.path.join(folder, f"f{i:05d}.txt"), "w") as f:
        f.write("".join(text)[:size])
PY
echo "    data: $(find "$WORK/small/data" -type f | wc -l) files, $(du -sh "$WORK/small/data" | cut -f1)"

PROV_TIMES=()
GIT_TIMES=()
for run in $(seq 1 "$RUNS"); do
    store="$WORK/small/store-$run"
    "$BIN" init --store "$store" >/dev/null
    sync
    (cd "$WORK/small" && measure "$WORK/small/prov-$run" "$BIN" add small data --contributor "$CONTRIBUTOR" --store "$store")
    PROV_TIMES+=("$(cat "$WORK/small/prov-$run.wall")")
    if (( run == 1 )); then
        # Sanity check: the dataset holds every file.
        files=$("$BIN" datasets --json --store "$store" | python3 -c 'import json, sys; print(next(d["files"] for d in json.load(sys.stdin) if d["name"] == "small"))')
        if [[ $files != "$SMALL_FILES" ]]; then
            echo "add.sh: dataset 'small' holds $files files, expected $SMALL_FILES" >&2
            exit 1
        fi
    fi

    repo="$WORK/small/git-$run"
    mkdir -p "$repo"
    cp -r "$WORK/small/data" "$repo/data"
    sync
    (cd "$repo" && measure "$WORK/small/git-$run" sh -c '"$@" init -q && "$@" add -A && "$@" commit -qm add' sh "${GIT[@]}")
    GIT_TIMES+=("$(cat "$WORK/small/git-$run.wall")")
    wait_for_background_git "$repo"
    echo "    run $run: provenance $(cat "$WORK/small/prov-$run.wall") s (peak RSS $(kib_to_mib "$(cat "$WORK/small/prov-$run.rss")") MiB), git add+commit $(cat "$WORK/small/git-$run.wall") s"
done
PROV_MEDIAN=$(median "${PROV_TIMES[@]}")
GIT_MEDIAN=$(median "${GIT_TIMES[@]}")
RATIO=$(python3 -c 'import sys; print(f"{float(sys.argv[1]) / float(sys.argv[2]):.2f}")' "$PROV_MEDIAN" "$GIT_MEDIAN")

# --- summary ----------------------------------------------------------------------------

echo
echo "==> Summary"
echo "add $BIG_LABEL: peak RSS $BIG_RSS_MB MiB (limit $RSS_LIMIT_MB MiB) $BIG_VERDICT, $(fmt1 "$BIG_WALL") s (git hash-object -w: $(fmt1 "$GIT_BIG_WALL") s)"
echo "add $SMALL_FILES small files: provenance median $(python3 -c 'import sys; print(f"{float(sys.argv[1]):.2f}")' "$PROV_MEDIAN") s, git add+commit median $(python3 -c 'import sys; print(f"{float(sys.argv[1]):.2f}")' "$GIT_MEDIAN") s, ratio $RATIO"

[[ $BIG_VERDICT == PASS ]]
