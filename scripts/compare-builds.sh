#!/bin/bash
# compare-builds.sh OLD_BUILD NEW_BUILD: the bytes of two builds side by side,
# for a change that must not change any output (issue 18's restructuring).
# Both builds convert the same models (made by OLD_BUILD's trtconv-genmodel):
# Hugging Face safetensors (bf16, GQA, 2 shards; tied + attention bias +
# llama3 rope), Meta (2 model-parallel shards) and .bin, in 16 modes: plain
# tp/pp on 3 and 4 ranks, both embedding shardings with sharing, float32,
# weight-only int8 sm80 / int4 sm90 / int8 sm70 / without the plugin, Meta,
# .bin, SmoothQuant (calibrated on text, then three variants from the
# statistics), INT8 KV alone, --save_config_only, no --model_dir. Exits 1
# and prints the differing files unless every rank file and config.json is
# byte-identical (manifests and rank records differ by design: they name
# the tool version and the inputs' inode/ctime).
set -euo pipefail
cd "$(dirname "$0")/.."
old=$(cd "$1" && pwd); new=$(cd "$2" && pwd)
W=${COMPARE_DIR:-/tmp/trtconv-compare}
bash scripts/compare-builds-run.sh "$old/trtconv-genmodel" "$old" "$W/old" >"$W.old.sha"
bash scripts/compare-builds-run.sh "$old/trtconv-genmodel" "$new" "$W/new" >"$W.new.sha"
if grep -q FAIL "$W.old.sha" "$W.new.sha"; then grep FAIL "$W.old.sha" "$W.new.sha"; exit 1; fi
if diff "$W.old.sha" "$W.new.sha"; then
    echo "identical: $(wc -l <"$W.new.sha") files (rank files and config.json) in 16 modes"
else
    exit 1
fi
