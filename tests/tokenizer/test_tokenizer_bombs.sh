#!/bin/bash
# Tokenizer files that used to stall or exhaust a rank (issue: "CPU bombs"),
# each with a time bound about ten times what it takes now, so the test
# fails only on a real regression (docs/tokenizer.md, "Limits"):
#  - tokenizer.model with four 1 MiB pieces: refused at once (per-piece
#    limit; merge generation was quadratic in a piece's length);
#  - 300 pieces of 1000 bytes: refused (total merge work limit);
#  - 32000 short pieces: loads and encodes;
#  - 4000 added tokens against 400 KB of text: encoded in well under a second
#    (a trie of the added tokens; the old matcher compared every token at
#    every position);
#  - 16 ByteLevel steps in a Sequence: refused, naming the expansion limit,
#    instead of doubling the text 16 times.
set -uo pipefail
: "${TOKENIZE:?}"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
python3 "$(dirname "$0")/make_bombs.py" "$W" || { echo "FAIL: make_bombs.py"; exit 1; }
passed=0 failed=0
check() { # NAME LIMIT_S EXPECT(ok|fail) NEEDLE ARGS...
    local name=$1 limit=$2 expect=$3 needle=$4 rc=0
    shift 4
    local t0=${EPOCHREALTIME/./} ms ok=0
    timeout $((limit * 3)) "$TOKENIZE" "$@" --output none >"$W/out" 2>&1 || rc=$?
    ms=$(( (${EPOCHREALTIME/./} - t0) / 1000 ))
    if [ "$expect" = ok ]; then [ $rc = 0 ] && ok=1; else [ $rc != 0 ] && [ $rc != 124 ] && grep -q -- "$needle" "$W/out" && ok=1; fi
    if [ $ok = 1 ] && [ $ms -lt $((limit * 1000)) ]; then
        echo "PASS: $name ($expect) in $ms ms (bound $limit s)"
        passed=$((passed + 1))
    else
        echo "FAIL: $name: rc $rc in $ms ms (bound $limit s)"; head -5 "$W/out"
        failed=$((failed + 1))
    fi
}
check "tokenizer.model with four 1 MiB pieces" 5 fail "over the limit of 1024" \
    --tokenizer_dir "$W/spm_long" --source model --input "$W/text.jsonl"
check "tokenizer.model with 300 pieces of 1000 bytes" 5 fail "too long in total" \
    --tokenizer_dir "$W/spm_work" --source model --input "$W/text.jsonl"
check "tokenizer.model with 32000 short pieces" 10 ok "" \
    --tokenizer_dir "$W/spm_ok" --source model --input "$W/text.jsonl"
check "4000 added tokens, 400 KB of text" 5 ok "" \
    --tokenizer_dir "$W/added" --source json --input "$W/added.jsonl"
check "16 ByteLevel steps" 5 fail "turn .* bytes of text into more than" \
    --tokenizer_dir "$W/bytelevel16" --source json --input "$W/text.jsonl"
echo "$passed passed, $failed failed"
[ $failed = 0 ]
