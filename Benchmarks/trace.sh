#!/usr/bin/env bash
# Benchmark for `provenance trace` on a large lineage: a three-level model chain trained on
# 1,000 registered dataset commits with 10,000 distinct contributors (with the defaults).
# Prints the median and minimum wall time of `trace --format json|tree|dot` and checks the
# json median against a limit. See Benchmarks/README.md.
#
# Environment:
#   PROVENANCE_BIN       use this binary instead of building the release one
#   DATASETS             source repositories / datasets (default 100)
#   COMMITS_PER_DATASET  commits in each source repository, each by a distinct author (default 100)
#   REGISTER_EVERY       tag and register every Nth commit (default 10)
#   RUNS                 timed runs of each format, after one warm-up (default 7)
#   LIMIT_MS             limit for the json median in milliseconds (default 200)
#   JOBS                 datasets imported in parallel (default 2; the store serializes writes)
#   BENCH_TMPDIR         where to create the scratch directory (default $TMPDIR or /tmp)
#   BENCH_NO_HYPERFINE=1 time with the python3 loop even if hyperfine is installed
#   BENCH_KEEP=1         keep the scratch directory (sources and store) for profiling
set -euo pipefail

DATASETS=${DATASETS:-100}
COMMITS_PER_DATASET=${COMMITS_PER_DATASET:-100}
REGISTER_EVERY=${REGISTER_EVERY:-10}
RUNS=${RUNS:-7}
LIMIT_MS=${LIMIT_MS:-200}
JOBS=${JOBS:-2}
DEVELOPER="Lab <lab@example.org>"

for var in DATASETS COMMITS_PER_DATASET REGISTER_EVERY RUNS LIMIT_MS JOBS; do
    if ! [[ ${!var} =~ ^[1-9][0-9]*$ ]]; then
        echo "trace.sh: $var must be a positive integer, got '${!var}'" >&2
        exit 2
    fi
done
if (( REGISTER_EVERY > COMMITS_PER_DATASET )); then
    echo "trace.sh: REGISTER_EVERY ($REGISTER_EVERY) must not exceed COMMITS_PER_DATASET ($COMMITS_PER_DATASET)" >&2
    exit 2
fi

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_tools trace.sh git python3
find_provenance trace.sh
echo "==> $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) (other load makes the times noisy)"

# --- scratch space and helpers ----------------------------------------------------------

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/provenance-trace-bench.XXXXXX")
cleanup() {
    if [[ -n ${BENCH_KEEP:-} ]]; then
        echo "==> Kept $WORK (store: $WORK/store, trace: provenance trace ft2@1 --store $WORK/store)"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Git without the user's or system's configuration (no signing, hooks, fsmonitor...).
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null

SOURCES="$WORK/sources"
STORE="$WORK/store"
LOGS="$WORK/logs"
mkdir -p "$SOURCES" "$LOGS"

now() { date +%s.%N; }
elapsed() { python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.1f}")' "$1" "$2"; }

TAGS_PER_DATASET=$(( COMMITS_PER_DATASET / REGISTER_EVERY ))
EXPECTED_COMMITS=$(( DATASETS * TAGS_PER_DATASET ))
EXPECTED_CONTRIBUTORS=$(( DATASETS * TAGS_PER_DATASET * REGISTER_EVERY ))

# --- 1. source repositories -------------------------------------------------------------

echo "==> Generating $DATASETS source repositories of $COMMITS_PER_DATASET commits (git fast-import)"
T0=$(now)
python3 - "$SOURCES" "$DATASETS" "$COMMITS_PER_DATASET" "$REGISTER_EVERY" <<'PY'
import os, subprocess, sys

root, datasets, commits, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
FILES = 7  # commits 1-7 add a file, later ones change one of them

def data(text):
    raw = text.encode()
    return b"data %d\n%s\n" % (len(raw), raw)

for d in range(datasets):
    repo = os.path.join(root, f"src{d}")
    subprocess.run(["git", "-c", "init.defaultBranch=main", "init", "-q", repo], check=True)
    out = []
    for n in range(1, commits + 1):
        when = 1_700_000_000 + d * 100_000 + n * 60
        out.append(b"commit refs/heads/main\nmark :%d\n" % n)
        out.append(f"author Contributor {d}-{n} <c{d}-{n}@example.org> {when} +0000\n".encode())
        out.append(f"committer Bench <bench@example.org> {when} +0000\n".encode())
        out.append(data(f"Commit {n} of source {d}"))
        out.append(f"M 644 inline file{(n - 1) % FILES}.txt\n".encode())
        out.append(data(f"source {d}, commit {n}, by c{d}-{n}\n" + "x" * (n % 40) + "\n"))
    for n in range(every, commits + 1, every):
        # `reset` without a commit makes a lightweight tag.
        out.append(b"reset refs/tags/r%d\nfrom :%d\n\n" % (n, n))
    subprocess.run(["git", "-C", repo, "fast-import", "--quiet"], input=b"".join(out), check=True)
    subprocess.run(["git", "-C", repo, "symbolic-ref", "HEAD", "refs/heads/main"], check=True)
PY
T1=$(now)
GENERATE_S=$(elapsed "$T0" "$T1")

# --- 2. imports -------------------------------------------------------------------------

"$BIN" init --store "$STORE" >/dev/null
TAGS=()
for (( n = REGISTER_EVERY; n <= COMMITS_PER_DATASET; n += REGISTER_EVERY )); do TAGS+=("r$n"); done

echo "==> Importing ${#TAGS[@]} tags of each dataset ($EXPECTED_COMMITS imports, $JOBS at a time)"
import_dataset() {
    local d=$1 tag
    for tag in $TAGS_LIST; do
        if ! "$BIN" add "ds$d" --from "$SOURCES/src$d" --rev "$tag" --store "$STORE" \
                >/dev/null 2>>"$LOGS/ds$d.log"; then
            echo "trace.sh: import of ds$d@$tag failed:" >&2
            cat "$LOGS/ds$d.log" >&2
            return 1
        fi
    done
}
export -f import_dataset
export BIN STORE SOURCES LOGS
export TAGS_LIST="${TAGS[*]}"
T0=$(now)
seq 0 $(( DATASETS - 1 )) | xargs -P "$JOBS" -I{} bash -c 'import_dataset "$1"' _ {}
T1=$(now)
IMPORT_S=$(elapsed "$T0" "$T1")

# --- 3. models --------------------------------------------------------------------------

# Registered commits in order (ds0 r10, ds0 r20, ..., ds1 r10, ...), as full commit ids:
# an import fetches the source's tags into a quarantine only, so the dataset repository
# does not know the tag names.
REFS_FILE="$WORK/refs"
for (( d = 0; d < DATASETS; d++ )); do
    for tag in "${TAGS[@]}"; do
        echo "ds$d@$(git -C "$SOURCES/src$d" rev-parse "$tag^{commit}")"
    done
done >"$REFS_FILE"
mapfile -t REFS <"$REFS_FILE"
TOTAL=${#REFS[@]}
FIRST=$(( TOTAL / 3 )); (( FIRST >= 1 )) || FIRST=1
SECOND=$(( 2 * TOTAL / 3 )); (( SECOND >= FIRST )) || SECOND=$FIRST

dataset_args() {  # dataset_args FROM TO: --dataset options for REFS[FROM..TO)
    local i
    for (( i = $1; i < $2; i++ )); do printf '%s\n' --dataset "${REFS[i]}"; done
}

echo "==> Registering base@1 ($FIRST dataset commits), ft@1 ($(( SECOND - FIRST ))), ft2@1 ($(( TOTAL - SECOND )))"
T0=$(now)
mapfile -t ARGS < <(dataset_args 0 "$FIRST")
"$BIN" model register base@1 --developer "$DEVELOPER" "${ARGS[@]}" --store "$STORE" >/dev/null
mapfile -t ARGS < <(dataset_args "$FIRST" "$SECOND")
"$BIN" model register ft@1 --developer "$DEVELOPER" --base base@1 ${ARGS[@]+"${ARGS[@]}"} --store "$STORE" >/dev/null
mapfile -t ARGS < <(dataset_args "$SECOND" "$TOTAL")
"$BIN" model register ft2@1 --developer "$DEVELOPER" --base ft@1 ${ARGS[@]+"${ARGS[@]}"} --store "$STORE" >/dev/null
T1=$(now)
REGISTER_S=$(elapsed "$T0" "$T1")

# --- 4. check the lineage ---------------------------------------------------------------

"$BIN" trace ft2@1 --store "$STORE" --format json >"$WORK/trace.json"
read -r CONTRIBUTORS COMMITS ENTRIES JSON_BYTES < <(python3 - "$WORK/trace.json" <<'PY'
import json, os, sys
path = sys.argv[1]
node = json.load(open(path))
contributors, commits, entries = set(), set(), 0
while node:
    for dataset in node["datasets"]:
        commits.add((dataset["dataset"], dataset["commit"]))
        for c in dataset["contributors"]:
            contributors.add(c["id"])
            entries += 1
    node = node.get("base")
print(len(contributors), len(commits), entries, os.path.getsize(path))
PY
)
COUNTS_OK=1
[[ $CONTRIBUTORS == "$EXPECTED_CONTRIBUTORS" && $COMMITS == "$EXPECTED_COMMITS" ]] || COUNTS_OK=0

# --- 5. timing --------------------------------------------------------------------------

TIMER=python3
if [[ -z ${BENCH_NO_HYPERFINE:-} ]] && command -v hyperfine >/dev/null; then
    TIMER=hyperfine
else
    echo "NOTE: timing with a python3 loop (hyperfine is missing or disabled; apt-get install hyperfine)."
fi
HYPERFINE_SHELL=()
if [[ $TIMER == hyperfine ]] && hyperfine --help 2>/dev/null | grep -q -- '--shell'; then
    # Without a shell in between, when the installed hyperfine supports it.
    hyperfine -N --runs 2 true >/dev/null 2>&1 && HYPERFINE_SHELL=(-N)
fi

# time_format FORMAT: prints "MEDIAN_MS MIN_MS".
time_format() {
    local format=$1 out="$WORK/times-$1.json"
    if [[ $TIMER == hyperfine ]]; then
        local command
        command=$(printf '%q ' "$BIN" trace ft2@1 --store "$STORE" --format "$format")
        hyperfine ${HYPERFINE_SHELL[@]+"${HYPERFINE_SHELL[@]}"} --style basic --warmup 1 --runs "$RUNS" \
            --export-json "$out" -n "trace --format $format" "$command" >&2
    else
        python3 - "$out" "$RUNS" "$BIN" trace ft2@1 --store "$STORE" --format "$format" <<'PY'
import json, subprocess, sys, time
out, runs, command = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
times = []
for i in range(runs + 1):  # the first run is the warm-up
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
    if i:
        times.append(time.perf_counter() - start)
json.dump({"results": [{"times": times}]}, open(out, "w"))
PY
    fi
    python3 - "$out" <<'PY'
import json, statistics, sys
times = json.load(open(sys.argv[1]))["results"][0]["times"]
print(f"{statistics.median(times) * 1000:.1f} {min(times) * 1000:.1f}")
PY
}

echo "==> Timing trace ft2@1: $RUNS runs per format after one warm-up ($TIMER)"
declare -A MEDIAN MIN
for format in json tree dot; do
    read -r MEDIAN[$format] MIN[$format] < <(time_format "$format")
done

# --- summary ----------------------------------------------------------------------------

TOTAL_SETUP_S=$(python3 -c 'import sys; print(f"{sum(map(float, sys.argv[1:])):.1f}")' "$GENERATE_S" "$IMPORT_S" "$REGISTER_S")
VERDICT=$(python3 -c 'import sys; print("PASS" if float(sys.argv[1]) < float(sys.argv[2]) else "FAIL")' "${MEDIAN[json]}" "$LIMIT_MS")

echo
echo "setup: $DATASETS repos x $COMMITS_PER_DATASET commits generated in ${GENERATE_S} s, $EXPECTED_COMMITS imports in ${IMPORT_S} s, 3 model registrations in ${REGISTER_S} s (total ${TOTAL_SETUP_S} s)"
echo "lineage ft2@1: $CONTRIBUTORS distinct contributors (expected $EXPECTED_CONTRIBUTORS), $COMMITS dataset commits (expected $EXPECTED_COMMITS), $ENTRIES contributor entries, JSON $JSON_BYTES bytes$( (( COUNTS_OK )) || echo '  MISMATCH')"
for format in json tree dot; do
    echo "trace --format $format: median ${MEDIAN[$format]} ms, min ${MIN[$format]} ms ($RUNS runs, $TIMER)"
done
echo "trace --format json median ${MEDIAN[json]} ms (limit $LIMIT_MS ms): $VERDICT"

(( COUNTS_OK )) || exit 1
[[ $VERDICT == PASS ]] || exit 1
