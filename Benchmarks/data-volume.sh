#!/usr/bin/env bash
# Benchmark for the `data-volume` attribution plugin: `provenance attribute` with an empty
# authorship cache (cold) and with it filled (warm), against the git CLI doing the same work
# (`git blame --line-porcelain` over every file of HEAD). Also checks that the per-author byte
# totals agree with git blame. See Benchmarks/README.md.
#
# Environment:
#   PROVENANCE_BIN       use this binary instead of building the release one
#   COMMITS              commits in the generated repository (default 2000)
#   AUTHORS              distinct authors, a<n>@example.org (default 20)
#   FILES                text files (default 50)
#   RUNS                 timed runs of each of cold, warm and git (default 3)
#   SEED                 random seed of the generator (default 1)
#   BENCH_TMPDIR         where to create the scratch directory (default $TMPDIR or /tmp)
#   BENCH_KEEP=1         keep the scratch directory (source repository and store)
set -euo pipefail

COMMITS=${COMMITS:-2000}
AUTHORS=${AUTHORS:-20}
FILES=${FILES:-50}
RUNS=${RUNS:-3}
SEED=${SEED:-1}
DEVELOPER="Dev <dev@example.org>"

for var in COMMITS AUTHORS FILES RUNS SEED; do
    if ! [[ ${!var} =~ ^[1-9][0-9]*$ ]]; then
        echo "data-volume.sh: $var must be a positive integer, got '${!var}'" >&2
        exit 2
    fi
done
if (( COMMITS < FILES )); then
    echo "data-volume.sh: COMMITS ($COMMITS) must be at least FILES ($FILES): the first FILES commits create the files" >&2
    exit 2
fi

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_tools data-volume.sh git python3 sqlite3
find_provenance data-volume.sh
echo "==> $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) (other load makes the times noisy)"

# --- scratch space and helpers ----------------------------------------------------------

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/provenance-data-volume-bench.XXXXXX")
cleanup() {
    if [[ -n ${BENCH_KEEP:-} ]]; then
        echo "==> Kept $WORK (source: $WORK/source, store: $WORK/store)"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Git without the user's or system's configuration (no signing, hooks, fsmonitor...).
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null

SOURCE="$WORK/source"
STORE="$WORK/store"

now() { date +%s.%N; }
elapsed() { python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.1f}")' "$1" "$2"; }

# --- 1. the source repository -----------------------------------------------------------

echo "==> Generating $COMMITS commits by $AUTHORS authors over $FILES files (git fast-import, seed $SEED)"
T0=$(now)
git -c init.defaultBranch=main init -q --bare "$SOURCE"
python3 - "$COMMITS" "$AUTHORS" "$FILES" "$SEED" 2>"$WORK/generator.log" <<'PY' | git -C "$SOURCE" fast-import --quiet
import random, sys

commits, authors, files, seed = map(int, sys.argv[1:5])
rng = random.Random(seed)
out = sys.stdout.buffer
MAX_LINES = 300  # above this an edit removes lines instead of appending

WORDS = ("data model token corpus weight gradient sample batch layer train eval loss "
         "vector matrix river stone cloud light north quiet amber delta signal noise "
         "alpha beta gamma kernel tensor field value index cache store ledger").split()

def line(author, n):
    if rng.random() < 0.04:
        return ""  # some blank lines, as real text has
    words = rng.choices(WORDS, k=rng.randint(2, 12))
    return f"{' '.join(words)} ({author}, {n})"

def data(raw):
    out.write(b"data %d\n" % len(raw))
    out.write(raw)
    out.write(b"\n")

def edit(lines, a, n):
    """Overwrite a few lines (usually other authors'), then insert, append or trim."""
    for _ in range(rng.randint(1, 4)):
        lines[rng.randrange(len(lines))] = line(a, n)
    if len(lines) > MAX_LINES:
        for _ in range(rng.randint(2, 6)):
            del lines[rng.randrange(len(lines))]
    elif rng.random() < 0.3:  # insert in the middle
        at = rng.randrange(len(lines) + 1)
        lines[at:at] = [line(a, n) for _ in range(rng.randint(1, 3))]
    else:  # append
        lines.extend(line(a, n) for _ in range(rng.randint(1, 4)))

FOLDERS = ["text", "text/archive", "notes", "data/raw"]
paths = [f"text/file{f:03d}.txt" for f in range(files)]  # file number -> current path
main = {}   # path -> lines, on main
side = None  # (fork snapshot, side contents, side mark, commits left) while a side branch is open
tips = {"main": None, "side": None}
mark = 0
renames = merges = 0

written = {"main": {}, "side": {}}  # branch -> path -> text of its last commit

def write_commit(branch, a, n, tree, parents, message):
    """Writes a commit whose tree is `tree`, listing only what differs from the branch's last commit."""
    global mark
    mark += 1
    when = 1_700_000_000 + n * 3600
    author = f"Author {a} <a{a}@example.org>"
    out.write(b"commit refs/heads/%s\nmark :%d\n" % (branch.encode(), mark))
    out.write(f"author {author} {when} +0000\ncommitter {author} {when} +0000\n".encode())
    data(message.encode())
    if parents:
        out.write(b"from :%d\n" % parents[0])
        for p in parents[1:]:
            out.write(b"merge :%d\n" % p)
    before = written[branch]
    after = {path: "".join(l + "\n" for l in lines) for path, lines in tree.items()}
    for path in sorted(before):
        if path not in after:
            out.write(f"D {path}\n".encode())
    for path in sorted(after):
        if before.get(path) != after[path]:
            out.write(f"M 100644 inline {path}\n".encode())
            data(after[path].encode())
    out.write(b"\n")
    written[branch] = after
    return mark

for n in range(1, commits + 1):
    a = rng.randrange(authors)
    if n <= files:
        main[paths[n - 1]] = [line(a, n) for _ in range(rng.randint(20, 60))]
        tips["main"] = write_commit("main", a, n, main, [tips["main"]] if tips["main"] else [], f"Commit {n}: add {paths[n - 1]}\n")
        continue
    if side is None and rng.random() < 0.03:
        # Open a side branch: a few commits edit files there while main goes on.
        side = [{p: list(l) for p, l in main.items()}, {p: list(l) for p, l in main.items()}, tips["main"], rng.randint(3, 12)]
        written["side"] = dict(written["main"])
    if side is not None and side[3] == 0:
        # Merge it: each file takes both sides' changes (main's lines, then the side's new ones).
        fork, theirs, side_tip, _ = side
        for p, lines in theirs.items():
            if p not in main or lines == fork.get(p):
                continue
            if main[p] == fork.get(p):
                main[p] = list(lines)
            else:
                seen = set(main[p])
                main[p] = main[p] + [l for l in lines if l not in seen]
        tips["main"] = write_commit("main", a, n, main, [tips["main"], side_tip], f"Commit {n}: merge a side branch\n")
        merges += 1
        side = None
        continue
    on_side = side is not None and rng.random() < 0.5
    tree = side[1] if on_side else main
    if not on_side and rng.random() < 0.02:
        # Rename or move a file, usually with a few edits in the same commit.
        f = rng.randrange(files)
        old = paths[f]
        new = f"{rng.choice(FOLDERS)}/" + (old.rsplit("/", 1)[1] if rng.random() < 0.5 else f"moved{n}-file{f:03d}.txt")
        if new not in tree and old in tree:
            tree[new] = tree.pop(old)
            paths[f] = new
            if rng.random() < 0.7:
                edit(tree[new], a, n)
            renames += 1
            tips["main"] = write_commit("main", a, n, main, [tips["main"]], f"Commit {n}: move {old} to {new}\n")
            continue
    changed = rng.sample(range(files), rng.choice((1, 1, 2)))
    for f in changed:
        if paths[f] in tree:
            edit(tree[paths[f]], a, n)
    message = f"Commit {n}: edit {', '.join(f'file{f:03d}' for f in changed)}\n"
    if on_side:
        side[2] = write_commit("side", a, n, tree, [side[2]], message)
        side[3] -= 1
    else:
        tips["main"] = write_commit("main", a, n, main, [tips["main"]], message)
        if side is not None:
            side[3] -= 1
print(f"{renames} renames, {merges} merges", file=sys.stderr)
PY
git -C "$SOURCE" symbolic-ref HEAD refs/heads/main
# Leave the repository as git itself would: packed, with a commit-graph.
git -C "$SOURCE" gc --quiet
HEAD_COMMIT=$(git -C "$SOURCE" rev-parse HEAD)
read -r NFILES NLINES NBYTES MAXLINES < <(
    git -C "$SOURCE" ls-tree -r --name-only HEAD |
    while IFS= read -r f; do git -C "$SOURCE" cat-file blob "HEAD:$f" | wc -lc; done |
    awk '{ files++; lines += $1; bytes += $2; if ($1 > max) max = $1 } END { print files, lines, bytes, max }')
T1=$(now)
echo "    $NFILES files, $NLINES lines, $NBYTES bytes at HEAD ${HEAD_COMMIT:0:12} (largest file $MAXLINES lines; history: $(cat "$WORK/generator.log")), $(elapsed "$T0" "$T1") s"

# --- 2. the store -----------------------------------------------------------------------

echo "==> Importing into a new store and registering m@1 (plugin data-volume)"
T0=$(now)
"$BIN" init --store "$STORE" >/dev/null
if ! "$BIN" add corpus --from "$SOURCE" --store "$STORE" >/dev/null 2>"$WORK/add.log"; then
    echo "data-volume.sh: provenance add corpus --from $SOURCE failed:" >&2
    cat "$WORK/add.log" >&2
    exit 1
fi
"$BIN" model register m@1 --developer "$DEVELOPER" --dataset corpus --plugin data-volume --store "$STORE" >/dev/null
T1=$(now)
echo "    $(elapsed "$T0" "$T1") s"

# --- 3. timing --------------------------------------------------------------------------

# One run is: empty the authorship cache, time `attribute` (cold), time it again (warm), time
# the git blame loop. The kinds are interleaved so that a change of machine load hits all of
# them alike. Afterwards the fixed cost of `attribute` is timed with equal-share.
echo "==> Timing: $RUNS runs of cold, warm and the git blame loop, then equal-share (python3 time.perf_counter)"
python3 - "$WORK" "$RUNS" "$BIN" "$STORE" "$SOURCE" <<'PY'
import json, os, statistics, subprocess, sys, time

work, runs, binary, store, source = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
registry = os.path.join(store, "registry.sqlite")
attribute = [binary, "attribute", "m@1", "--store", store, "--json"]
git_loop = ["bash", "-c", 'cd "$1" && git ls-tree -r --name-only HEAD | '
            'while IFS= read -r f; do git blame --line-porcelain HEAD -- "$f" >/dev/null; done', "_", source]

def clear_cache():
    subprocess.run(["sqlite3", registry, "DELETE FROM file_authorship; DELETE FROM authorship_commits;"], check=True)
    rows = subprocess.run(["sqlite3", registry, "SELECT (SELECT count(*) FROM file_authorship) + (SELECT count(*) FROM authorship_commits);"],
                          check=True, capture_output=True, text=True).stdout.strip()
    if rows != "0":
        sys.exit(f"data-volume.sh: the authorship cache still has {rows} rows after DELETE")

def timed(command, output=None):
    os.sync()
    start = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.PIPE if output else subprocess.DEVNULL, check=True)
    seconds = time.perf_counter() - start
    if output:
        with open(output, "wb") as f:
            f.write(result.stdout)
    return seconds

times = {"cold": [], "warm": [], "git": [], "equal": []}
for i in range(runs):
    clear_cache()
    times["cold"].append(timed(attribute, os.path.join(work, f"cold-{i}.json")))
    times["warm"].append(timed(attribute, os.path.join(work, f"warm-{i}.json")))
    times["git"].append(timed(git_loop))
    print(f"    run {i + 1}/{runs}: cold {times['cold'][-1]:.3f} s, warm {times['warm'][-1]:.3f} s, "
          f"git {times['git'][-1]:.3f} s", flush=True)
for i in range(runs):
    times["equal"].append(timed(attribute + ["--plugin", "equal-share"]))
json.dump(times, open(os.path.join(work, "times.json"), "w"))
PY

# --- 4. totals against git blame --------------------------------------------------------

echo "==> Checking per-author byte totals against git blame --line-porcelain"
python3 - "$WORK" "$RUNS" "$SOURCE" >"$WORK/check.txt" <<'PY'
import collections, json, subprocess, sys

work, runs, source = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def git(*args):
    return subprocess.run(["git", "-C", source, *args], check=True, capture_output=True).stdout

expected = collections.Counter()
for path in git("ls-tree", "-r", "-z", "--name-only", "HEAD").split(b"\0"):
    if not path:
        continue
    path = path.decode()
    content = git("cat-file", "blob", f"HEAD:{path}")
    # Each line's bytes with its newline; a last line without one counts as it is.
    pieces = content.split(b"\n")
    lengths = [len(l) + 1 for l in pieces[:-1]] + ([len(pieces[-1])] if pieces[-1] else [])
    index, email = 0, None
    for row in git("blame", "--line-porcelain", "HEAD", "--", path).split(b"\n"):
        if row.startswith(b"author-mail "):
            email = row[len(b"author-mail "):].decode().strip().strip("<>").lower()
        elif row.startswith(b"\t"):
            expected[email] += lengths[index]
            index += 1
    if index != len(lengths):
        sys.exit(f"git blame of {path} covers {index} lines, the file has {len(lengths)}")

outputs = [open(f"{work}/{kind}-{i}.json", "rb").read() for kind in ("cold", "warm") for i in range(runs)]
same = all(o == outputs[0] for o in outputs)
result = json.loads(outputs[0])
got = {w["id"].lower(): int(w["raw"]) for w in result["weights"] if w.get("raw")}
want = {k: v for k, v in expected.items() if v}
differences = [(k, got.get(k, 0), want.get(k, 0)) for k in sorted(set(got) | set(want), key=lambda k: (len(k), k))
               if got.get(k, 0) != want.get(k, 0)]
print("yes" if not differences else "no")
print("yes" if same else "no")
print(len(want), sum(want.values()), sum(got.values()))
for author, p, g in differences:
    print(f"{author} provenance {p} git {g}")
PY
{ read -r AGREE; read -r SAME; read -r NAUTHORS GIT_TOTAL PROV_TOTAL; } <"$WORK/check.txt"
echo "    $NAUTHORS authors with bytes at HEAD; bytes: git blame $GIT_TOTAL, provenance $PROV_TOTAL; every cold and warm output identical: $SAME"
if [[ $AGREE != yes ]]; then
    echo "    totals DISAGREE for $(( $(wc -l <"$WORK/check.txt") - 3 )) author(s); first: $(sed -n 4p "$WORK/check.txt")"
    sed -n '4,13p' "$WORK/check.txt" | sed 's/^/      /'
fi

# --- summary ----------------------------------------------------------------------------

read -r COLD WARM GIT EQUAL RATIO_COLD RATIO_WARM < <(python3 - "$WORK/times.json" <<'PY'
import json, statistics, sys
t = {k: statistics.median(v) for k, v in json.load(open(sys.argv[1])).items()}
def s(x):
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}" if x >= 0.1 else f"{x:.3f}"
print(s(t["cold"]), s(t["warm"]), s(t["git"]), s(t["equal"]), f"{t['cold'] / t['git']:.2f}", f"{t['warm'] / t['git']:.3f}")
PY
)

echo
echo "data-volume, $COMMITS commits by $AUTHORS authors, $FILES files:"
echo "  provenance cold  median $COLD s"
echo "  provenance warm  median $WARM s"
echo "  git blame loop   median $GIT s"
echo "  ratio cold/git $RATIO_COLD, warm/git $RATIO_WARM; totals agree with git blame: $AGREE"
echo "  (fixed cost: attribute --plugin equal-share median $EQUAL s; $RUNS runs each)"

[[ $AGREE == yes && $SAME == yes ]] || exit 1
