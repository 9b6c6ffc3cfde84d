#!/usr/bin/env bash
# Benchmark for `provenance add DATASET --from REPO`: time and peak memory of importing a
# history with many authors, against `git clone --no-local --bare` of the same repository
# (git's own pack transfer). See Benchmarks/README.md.
#
# Environment:
#   PROVENANCE_BIN       use this binary instead of building the release one
#   COMMITS              commits in the generated repository (default 5000)
#   AUTHORS              distinct authors (default 1200)
#   FILES                text files (default 200)
#   RUNS                 timed runs of each (default 5)
#   SEED                 random seed of the generator (default 1)
#   RATIO_LIMIT          pass when provenance/git is at most this (default 3)
#   RSS_LIMIT_MB         pass when provenance's peak RSS is at most this (default 100)
#   BENCH_TMPDIR         where to create the scratch directory (default $TMPDIR or /tmp)
#   BENCH_KEEP=1         keep the scratch directory
set -euo pipefail

COMMITS=${COMMITS:-5000}
AUTHORS=${AUTHORS:-1200}
FILES=${FILES:-200}
RUNS=${RUNS:-5}
SEED=${SEED:-1}
RATIO_LIMIT=${RATIO_LIMIT:-3}
RSS_LIMIT_MB=${RSS_LIMIT_MB:-100}

for var in COMMITS AUTHORS FILES RUNS SEED RSS_LIMIT_MB; do
    if ! [[ ${!var} =~ ^[1-9][0-9]*$ ]]; then
        echo "import.sh: $var must be a positive integer, got '${!var}'" >&2
        exit 2
    fi
done

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_tools import.sh git python3
if ! /usr/bin/time -v true >/dev/null 2>&1; then
    echo "import.sh: GNU time (/usr/bin/time -v) is required for peak RSS (Debian/Ubuntu: apt-get install time)" >&2
    exit 2
fi
find_provenance import.sh
echo "==> $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) (other load makes the times noisy)"

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/provenance-import-bench.XXXXXX")
cleanup() {
    if [[ -n ${BENCH_KEEP:-} ]]; then echo "==> Kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
SOURCE="$WORK/source.git"

echo "==> Generating $COMMITS commits by $AUTHORS authors over $FILES files (git fast-import, seed $SEED)"
git -c init.defaultBranch=main init -q --bare "$SOURCE"
python3 - "$COMMITS" "$AUTHORS" "$FILES" "$SEED" <<'PY' | git -C "$SOURCE" fast-import --quiet
import random, sys
commits, authors, files, seed = map(int, sys.argv[1:5])
rng = random.Random(seed)
out = sys.stdout.buffer
WORDS = "data model token corpus weight sample batch layer river stone cloud light north amber delta".split()
contents = {}
for n in range(1, commits + 1):
    a = rng.randrange(authors)
    when = 1_700_000_000 + n * 600
    out.write(b"commit refs/heads/main\nmark :%d\n" % n)
    out.write(f"author Person {a} <p{a}@example.org> {when} +0000\ncommitter Person {a} <p{a}@example.org> {when} +0000\n".encode())
    msg = f"Commit {n}\n".encode()
    out.write(b"data %d\n%s\n" % (len(msg), msg))
    for f in ([n - 1] if n <= files else rng.sample(range(files), rng.choice((1, 1, 2)))):
        lines = contents.setdefault(f, [])
        for _ in range(rng.randint(1, 6)):
            text = " ".join(rng.choices(WORDS, k=rng.randint(3, 10))) + f" ({a}, {n})"
            if lines and rng.random() < 0.5:
                lines[rng.randrange(len(lines))] = text
            else:
                lines.insert(rng.randrange(len(lines) + 1), text)
        body = "".join(l + "\n" for l in lines).encode()
        out.write(f"M 100644 inline corpus/part{f:04d}.txt\n".encode())
        out.write(b"data %d\n%s\n" % (len(body), body))
    out.write(b"\n")
PY
git -C "$SOURCE" symbolic-ref HEAD refs/heads/main
git -C "$SOURCE" gc --quiet
echo "    $(git -C "$SOURCE" count-objects -vH | awk '/size-pack/ {print $2, $3}') packed, $(git -C "$SOURCE" rev-list --count HEAD) commits"

echo "==> Timing $RUNS runs each (GNU time; a new store or clone every run, creating the store untimed)"
python3 - "$WORK" "$RUNS" "$BIN" "$SOURCE" <<'PY' >"$WORK/summary.txt"
import os, re, shutil, statistics, subprocess, sys

work, runs, binary, source = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

def timed(command):
    os.sync()
    result = subprocess.run(["/usr/bin/time", "-v"] + command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        sys.exit(f"import.sh: {' '.join(command)} failed:\n{result.stderr}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", result.stderr)
    seconds = int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1)) / 1024
    return seconds, rss

times = {"provenance": [], "git": []}
rss = {"provenance": [], "git": []}
for i in range(runs):
    store = os.path.join(work, f"store-{i}")
    subprocess.run([binary, "init", "--store", store], check=True, stdout=subprocess.DEVNULL)
    s, r = timed([binary, "add", "corpus", "--from", source, "--store", store, "--quiet"])
    times["provenance"].append(s); rss["provenance"].append(r)
    s, r = timed(["git", "clone", "-q", "--no-local", "--bare", source, os.path.join(work, f"clone-{i}.git")])
    times["git"].append(s); rss["git"].append(r)
    print(f"    run {i + 1}/{runs}: provenance {times['provenance'][-1]:.2f} s ({rss['provenance'][-1]:.1f} MiB), "
          f"git clone {times['git'][-1]:.2f} s ({rss['git'][-1]:.1f} MiB)", file=sys.stderr, flush=True)
    shutil.rmtree(store); shutil.rmtree(os.path.join(work, f"clone-{i}.git"))
p, g = statistics.median(times["provenance"]), statistics.median(times["git"])
print(f"{p:.2f} {g:.2f} {p / g:.2f} {max(rss['provenance']):.1f} {max(rss['git']):.1f}")
PY
read -r PROV GIT RATIO PROV_RSS GIT_RSS <"$WORK/summary.txt"
VERDICT=$(python3 -c "import sys; print('PASS' if float(sys.argv[1]) <= float(sys.argv[2]) and float(sys.argv[3]) <= float(sys.argv[4]) else 'FAIL')" \
    "$RATIO" "$RATIO_LIMIT" "$PROV_RSS" "$RSS_LIMIT_MB")
echo
echo "import, $COMMITS commits by $AUTHORS authors, $FILES files:"
echo "  provenance add --from     median $PROV s, peak RSS $PROV_RSS MiB"
echo "  git clone --no-local --bare median $GIT s, peak RSS $GIT_RSS MiB"
echo "  ratio $RATIO (limit $RATIO_LIMIT), peak RSS limit $RSS_LIMIT_MB MiB: $VERDICT"
[[ $VERDICT == PASS ]]
