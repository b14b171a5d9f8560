#!/bin/bash
# run_fuzz.sh TARGET SEED_DIR SECONDS: run one libFuzzer target for SECONDS
# from the seed corpus (read-only; new inputs go to a scratch corpus), then
# print its final statistics. Any crash, leak, UBSan report or timeout makes
# the test fail; the reproducer is kept under $FUZZ_ARTIFACTS (default: a
# scratch directory that is printed).
set -uo pipefail
target=$1 seeds=$2 seconds=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/trtconv-fuzz.XXXXXX")
art=${FUZZ_ARTIFACTS:-$work/artifacts}
mkdir -p "$work/corpus" "$art"
rc=0
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
    "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$art/" "$work/corpus" "$seeds" >"$work/log" 2>&1 || rc=$?
grep -E "^(stat::|#[0-9]+ +DONE)|cov:" "$work/log" | tail -12
if [ $rc -ne 0 ]; then
    echo "FUZZ FAILURE (rc $rc): $(basename "$target"); reproducer(s) in $art:"
    ls -la "$art"
    grep -E "ERROR|runtime error|SUMMARY" "$work/log" | head -20
    exit 1
fi
echo "$(basename "$target"): no crash in ${seconds}s; $(ls "$work/corpus" | wc -l) new corpus inputs"
rm -rf "$work"
