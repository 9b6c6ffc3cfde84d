#!/usr/bin/env bash
# span-match on a generated corpus of at least 100 MB of text (release build): index build
# rate and size per text byte, span search for 2,000-byte outputs with the index warm, and
# settlement of calls with 2 KB outputs, each next to a naive baseline in the same run.
#   CORPUS_MB=100 Benchmarks/span-match.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
require_tools span-match.sh git python3 /usr/bin/time
find_provenance span-match.sh
BENCH="$(dirname "$BIN")/span-benchmark"
[[ -n ${PROVENANCE_BIN:-} && -x $BENCH ]] || swift build -c release --product span-benchmark --scratch-path .build-release >/dev/null

CORPUS_MB=${CORPUS_MB:-100}
WORK=$(mktemp -d /tmp/provenance-span-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export PROVENANCE_STORE="$WORK/store"
"$BIN" init >/dev/null

echo "==> Generating $CORPUS_MB MB of text in 1,000 files by 3 authors"
python3 - "$WORK/text" "$CORPUS_MB" <<'PY'
import os, random, sys
root, megabytes = sys.argv[1], int(sys.argv[2])
random.seed(7)
letters = "abcdefghijklmnopqrstuvwxyz"
vocabulary = ["".join(random.choice(letters) for _ in range(random.randint(2, 10))) for _ in range(20000)]
weights = [1.0 / (rank + 1) for rank in range(len(vocabulary))]  # Zipf-like, as words are
per_file = megabytes * 1_000_000 // 1000
for author in range(3):
    os.makedirs(f"{root}/{author}", exist_ok=True)
for number in range(1000):
    words, size, lines = [], 0, []
    while size < per_file:
        line = " ".join(random.choices(vocabulary, weights, k=random.randint(8, 16))).capitalize() + "."
        lines.append(line)
        size += len(line) + 1
    with open(f"{root}/{number % 3}/doc{number:04d}.txt", "w") as out:
        out.write("\n".join(lines) + "\n")
PY
for author in 0 1 2; do
    "$BIN" add corpus "$WORK/text/$author" --to "part$author" --contributor "Author $author <author$author@example.org>" --quiet >/dev/null
done
"$BIN" model register m@1 --developer "Dev <dev@example.org>" --dataset corpus --plugin span-match >/dev/null
TEXT_BYTES=$(du -sb "$WORK/text" | cut -f1)

echo "==> Index build (suffix array on one core, git blame on the other)"
/usr/bin/time -f "%e s, peak RSS %M KiB" -o "$WORK/build.time" "$BIN" index build m@1 --quiet
echo "build: $(cat "$WORK/build.time"); $(python3 -c "import sys; t=float(open('$WORK/build.time').read().split()[0]); print(f'{$TEXT_BYTES/1e6/t:.1f} MB/s of text')")"
echo "==> Naive baseline for the build: sort -u of every line (no suffixes, no positions)"
/usr/bin/time -f "%e s" -o "$WORK/sort.time" sh -c "cat $WORK/text/*/*.txt | LC_ALL=C sort -u >/dev/null"
echo "sort: $(cat "$WORK/sort.time")"

echo "==> Span search and settlement"
"$BENCH" "$PROVENANCE_STORE" m@1
