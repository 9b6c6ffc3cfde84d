#!/usr/bin/env bash
# An end-to-end walk through Provenance on a temporary store: two contributors add data,
# a third dataset is imported from an existing git history, and the git CLI checks it all.
set -euo pipefail
# With DEMO_DIR set, the walk-through runs there and keeps the store (.provenance) afterwards,
# e.g. for `provenance serve --store "$DEMO_DIR/.provenance"` and the explorer's browser tests.
# With DEMO_DATABASE=postgres://USER@HOST:PORT/DB, the store keeps its state in that database.
provenance="${1:?usage: [DEMO_DIR=FOLDER] demo.sh PATH_TO_PROVENANCE}"
if [ -n "${DEMO_DIR:-}" ]; then
  mkdir -p "$DEMO_DIR"
  work=$(cd "$DEMO_DIR" && pwd)
else
  work=$(mktemp -d -t provenance-demo-XXXXXX)
  trap 'rm -rf "$work"' EXIT
fi
cd "$work"
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { step "provenance $*"; "$provenance" "$@"; }

if [ -n "${DEMO_DATABASE:-}" ]; then run init --database "$DEMO_DATABASE"; else run init; fi

mkdir -p poems/byron
printf 'She walks in beauty, like the night\nOf cloudless climes and starry skies;\n' > poems/byron/she-walks.txt
printf 'So, we'"'"'ll go no more a roving\nSo late into the night,\n' > poems/byron/roving.txt
run add poems poems --contributor "Ada Lovelace <ada@example.org>" -m "Byron, two poems"

printf 'Nevertheless, it moves.\n' > notes.txt
mkdir -p poems/hopper
printf 'The most dangerous phrase in the language is "we have always done it this way".\n' > poems/hopper/quote.txt
run add poems poems/hopper/quote.txt --contributor "Grace Hopper <grace@example.org>"
run add poems notes.txt --to annotations --contributor "Grace Hopper <Grace@Example.org>" -m "Annotations"

step "git init wiki-source && (three authors, a branch and a merge, with the git CLI)"
mkdir wiki-source && cd wiki-source
git init -q -b main
commit() { GIT_AUTHOR_NAME="$1" GIT_AUTHOR_EMAIL="$2" GIT_COMMITTER_NAME="$1" GIT_COMMITTER_EMAIL="$2" git commit -q -m "$3"; }
echo "Alan Turing proposed the imitation game." > turing.md; git add -A; commit "Alan Turing" alan@example.org "Turing"
git checkout -q -b edits
echo "Claude Shannon founded information theory." > shannon.md; git add -A; commit "Claude Shannon" claude@example.org "Shannon"
git checkout -q main
echo "Alonzo Church invented the lambda calculus." > church.md; git add -A; commit "Alonzo Church" alonzo@old.example "Church"
printf 'Alonzo Church <alonzo@example.org> <alonzo@old.example>\n' > .mailmap; git add -A; commit "Alan Turing" alan@example.org "mailmap"
GIT_AUTHOR_NAME="Alan Turing" GIT_AUTHOR_EMAIL=alan@example.org GIT_COMMITTER_NAME="Alan Turing" GIT_COMMITTER_EMAIL=alan@example.org \
  git merge -q --no-ff edits -m "Merge edits"
cd "$work"
run add wiki --from ./wiki-source

run datasets
run log poems
run contributors poems
run contributors wiki
run log wiki
run manifest poems

# Developers register model versions: a base, a fine-tune of it, and a fine-tune of that.
mkdir -p logs weights
printf 'step 1 loss 3.21\nstep 2 loss 2.87\n' > logs/pretrain.log
printf 'step 1 loss 1.02\n' > logs/chat.log
head -c 65536 /dev/zero | tr '\0' 'w' > weights/base.safetensors
mkdir -p law && printf 'A contract needs offer, acceptance and consideration.\n' > law/contracts.txt
"$provenance" add law law --contributor "Ruth Ginsburg <ruth@example.org>" >/dev/null
mkdir -p dialogue && printf 'Q: Who wrote the first program?\nA: Ada Lovelace.\n' > dialogue/qa.txt
"$provenance" add dialogue dialogue --contributor "Grace Hopper <grace@example.org>" >/dev/null
run model register base@1.0 --developer "Lab <lab@example.org>" --dataset wiki --dataset poems@HEAD~2 \
  --training-log logs/pretrain.log --weights weights/base.safetensors
run model register chat@1.0 --developer "Tuner <tuner@example.org>" --dataset poems --dataset dialogue --base base@1.0 --training-log logs/chat.log
run model register chat-legal@0.1 --developer "Tuner <tuner@example.org>" --dataset law --base chat@1.0 \
  --base-share 300000000 --plugin data-volume
run model list
run trace chat-legal@0.1
step "provenance trace chat-legal@0.1 --format dot | head -8"
"$provenance" trace chat-legal@0.1 --format dot | sed -n 1,8p
step "provenance export-attestation base@1.0 | head -12"
"$provenance" export-attestation base@1.0 | sed -n 1,12p
run reindex

# Attribution: each model has one active plugin; swapping it changes the weights, and the
# history of swaps is kept (as commits in the model's repository).
run plugins
run attribute chat@1.0
run model set-plugin chat data-volume --by "Tuner <tuner@example.org>"
run attribute chat@1.0
run attribute chat@1.0 --unit lines
run model plugin-history chat
run attribute chat-legal@0.1

# Settlement: price the models, fund a caller, register a node, and call.
run model price base --input-per-1k 0.002 --output-per-1k 0.006 --min-fee 0.0001 \
  --split developer=2000,data=5000,node=2000,platform=1000
run model price chat --input-per-1k 0.004 --output-per-1k 0.012 --slo-ms 800 --slo-penalty-bps 5000 \
  --split developer=2500,data=4000,node=2000,platform=500,router=1000
run account deposit alice@example.org 25
run account deposit node:gpu-1 10
run node add gpu-1 --stake 5
run call base@1.0 --caller alice@example.org --node gpu-1 --input-tokens 1200 --output-tokens 400 --latency-ms 350
run invoice show 0
for i in 1 2 3 4 5 6; do
  "$provenance" call chat@1.0 --caller alice@example.org --node gpu-1 --router router@example.org \
    --input-tokens $((500 * i)) --output-tokens $((200 * i)) --latency-ms $((300 * i)) --defer --idempotency-key "chat-$i" >/dev/null
  "$provenance" call base@1.0 --caller alice@example.org --node gpu-1 \
    --input-tokens $((900 * i)) --output-tokens $((100 * i)) --latency-ms 200 --defer --idempotency-key "base-$i" >/dev/null
done
step "(12 deferred calls on base@1.0 (equal-share) and chat@1.0 (data-volume), fees reserved)"
run account balance alice@example.org
run settle
step "payouts per contributor"
for who in ada@example.org grace@example.org alan@example.org alonzo@example.org claude@example.org \
           lab@example.org tuner@example.org node:gpu-1 router@example.org platform alice@example.org; do
  printf '  %-22s %s\n' "$who" "$("$provenance" account balance "$who" 2>/dev/null || echo 0)"
done
run account statement grace@example.org --invoices   # one line per batch; --invoices lists the invoices it sums

# Per-call attribution: under span-match a call pays whoever's words its output reproduced.
run model set-plugin base span-match --by "Lab <lab@example.org>"
printf 'As the poet wrote: She walks in beauty, like the night\nOf cloudless climes and starry skies; and so on.\n' > answer.txt
run attribute base@1.0 --output-file answer.txt
run call base@1.0 --caller alice@example.org --node gpu-1 --input-tokens 800 --output-tokens 300 --latency-ms 250 --output-file answer.txt
run invoice show 13
run ledger checkpoint
run ledger proof 5
run verify

step "git fsck --strict && git log (the git CLI reads the same repositories)"
for repo in .provenance/datasets/*.git .provenance/models/*.git; do
  git -C "$repo" fsck --strict && echo "$(basename "$repo"): fsck ok"
done
git -C .provenance/datasets/wiki.git log --format='%h %aN <%aE> %s'
step "git -C .provenance/models/base.git show 1.0:provenance.json | head -12"
git -C .provenance/models/base.git show 1.0:provenance.json | sed -n 1,12p
