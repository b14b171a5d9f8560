#!/bin/bash
# test_hostile.sh: inputs that used to hang a job, lose data or commit a
# broken checkpoint (docs/durability.md, "What trtconv guarantees"):
#  1. a FIFO as model.safetensors, config.json, the index, --calib_dataset,
#     --calib_stats, or as the external raw storage of an HDF5 dataset:
#     refused at once (no hang until --timeout), naming the file;
#  2. statistics whose maxima are all 0, or 3e38: refused naming the layer
#     (division by zero) or the non-finite tensor (overflow); nothing
#     committed; a negative maximum is called negative; verify refuses an
#     Inf scale in a rank file;
#  3. "\u0000" inside a config.json key and inside an index shard name;
#  4. a calibration file with a line over the 64 MiB limit after normal
#     lines: an error naming the line, never a silent end of file;
#  5. --resume after a data byte of an input changed with size and mtime
#     kept: the rank files are rewritten.
source "$(dirname "$0")/lib.sh"
: "${MKHOSTILE:?}" "${STATS:?}"

M=$WORK/M
gen --out "$M" --layers 2 --hidden 64 --heads 4 --vocab 64 --seed 5
CALIB=$WORK/calib.jsonl
for i in 1 2 3 4; do echo '{"input_ids": [1, 5, 9, 13, 2, 7]}'; done >"$CALIB"

quick_fail() { # WHAT NEEDLE ARGS...: fails within 20 s (no hang) naming the rule
    local what=$1 needle=$2 rc=0 t0=$SECONDS
    shift 2
    timeout 20 "$MPIEXEC" -np 1 "$TRTCONV" --progress none "$@" >"$WORK/last.log" 2>&1 </dev/null || rc=$?
    if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q -- "$needle" "$WORK/last.log"; then
        pass "$what: exit $rc in $((SECONDS - t0)) s, \"$needle\""
    else
        fail "$what: exit $rc"; cat "$WORK/last.log"
    fi
}

# ---- 1. FIFOs ----
for f in model.safetensors config.json; do
    cp -r "$M" "$WORK/F"
    rm "$WORK/F/$f" && mkfifo "$WORK/F/$f"
    quick_fail "FIFO as $f" "FIFO" --model_dir "$WORK/F" --output_dir "$WORK/o"
    rm -rf "$WORK/F" "$WORK/o"
done
gen --out "$WORK/S" --layers 2 --hidden 64 --heads 4 --vocab 64 --shards 2 --seed 5
rm "$WORK/S/model.safetensors.index.json" && mkfifo "$WORK/S/model.safetensors.index.json"
quick_fail "FIFO as the index" "FIFO" --model_dir "$WORK/S" --output_dir "$WORK/o"
mkfifo "$WORK/calib.fifo"
quick_fail "FIFO as --calib_dataset" "FIFO" --model_dir "$M" --output_dir "$WORK/o" \
    --int8_kv_cache --calib_dataset "$WORK/calib.fifo"
quick_fail "FIFO as --calib_stats" "FIFO" --model_dir "$M" --output_dir "$WORK/o" \
    --int8_kv_cache --calib_stats "$WORK/calib.fifo"
if "$MKHOSTILE" external "$M" "$WORK/ext.h5" "$WORK/calib.fifo"; then
    quick_fail "HDF5 dataset stored in an external FIFO" "keeps its data in external files" \
        --model_dir "$M" --output_dir "$WORK/o" --int8_kv_cache --calib_stats "$WORK/ext.h5"
else
    fail "tc-mkhostile external"
fi

# ---- 2. statistics that break the scales ----
"$MKHOSTILE" stats "$M" "$WORK/zero.h5" 0 && "$MKHOSTILE" stats "$M" "$WORK/huge.h5" 3e38 &&
    "$MKHOSTILE" stats "$M" "$WORK/neg.h5" -1 || fail "tc-mkhostile stats"
for v in "--smoothquant 0.5" "--smoothquant 0.5 --per_channel --per_token --int8_kv_cache" "--int8_kv_cache"; do
    rc=0; run_np 2 --model_dir "$M" --output_dir "$WORK/z" --tp_size 2 $v --calib_stats "$WORK/zero.h5" </dev/null || rc=$?
    [ $rc = 3 ] && grep -q "every .* maximum of layer 0 .* is 0: its quantization scale (127 / max) would divide by zero" \
        "$WORK/last.log" && [ ! -e "$WORK/z/config.json" ] &&
        pass "all-zero statistics ($v): refused naming layer 0" || { fail "zero statistics ($v): rc $rc"; cat "$WORK/last.log"; }
    rm -rf "$WORK/z"
done
for v in "--smoothquant 0.5" "--smoothquant 0.5 --per_channel --per_token --int8_kv_cache"; do
    rc=0; run_np 2 --model_dir "$M" --output_dir "$WORK/h" --tp_size 2 $v --calib_stats "$WORK/huge.h5" </dev/null || rc=$?
    [ $rc = 3 ] && grep -q "transformer.layers.0.* is not finite: the statistics of layer 0" "$WORK/last.log" &&
        [ ! -e "$WORK/h/config.json" ] && ! ls -a "$WORK/h" | grep -q partial &&
        pass "3e38 statistics ($v): the non-finite tensor named, nothing committed" ||
        { fail "3e38 statistics ($v): rc $rc"; cat "$WORK/last.log"; }
    rm -rf "$WORK/h"
done
rc=0; run_np 1 --model_dir "$M" --output_dir "$WORK/n" --int8_kv_cache --calib_stats "$WORK/neg.h5" </dev/null || rc=$?
[ $rc = 3 ] && grep -q "negative maximum -1 in the" "$WORK/last.log" && ! grep -q "NaN or Inf" "$WORK/last.log" &&
    pass "negative statistic reported as negative" || { fail "negative statistic: rc $rc"; cat "$WORK/last.log"; }
# verify: an Inf scale in a committed checkpoint
"$MKHOSTILE" stats "$M" "$WORK/one.h5" 1 || fail "tc-mkhostile stats 1"
run_np 1 --model_dir "$M" --output_dir "$WORK/v" --int8_kv_cache --calib_stats "$WORK/one.h5" </dev/null &&
    "$TRTCONV" verify "$WORK/v" >/dev/null || fail "INT8 KV conversion with unit statistics"
f=$WORK/v/rank0.safetensors
hlen=$(od -An -t u8 -N 8 "$f" | tr -d ' ')
off=$(grep -ao '"transformer.layers.0.attention.kv_cache_scaling_factor":{[^}]*}' "$f" |
      sed 's/.*data_offsets":\[\([0-9]*\),.*/\1/')
printf '\x00\x00\x80\x7f' | dd of="$f" bs=1 seek=$((8 + hlen + off)) conv=notrunc 2>/dev/null
rc=0; "$TRTCONV" verify --no-hash "$WORK/v" >"$WORK/verify.log" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "kv_cache_scaling_factor\[0\] = inf is not finite" "$WORK/verify.log" &&
    pass "verify refuses an Inf scale" || { fail "verify missed an Inf scale (rc $rc)"; cat "$WORK/verify.log"; }

# ---- 3. NUL inside JSON keys and strings ----
cp -r "$M" "$WORK/N"
sed -i 's/"num_hidden_layers"/"num_hidden_layers\\u0000evil": 9, "num_hidden_layers"/' "$WORK/N/config.json"
quick_fail "NUL inside a config.json key" 'config.json: a string or key holds a NUL character' \
    --model_dir "$WORK/N" --output_dir "$WORK/o"
cp -r "$WORK/S" "$WORK/I"
rm -f "$WORK/I/model.safetensors.index.json"
gen --out "$WORK/S2" --layers 2 --hidden 64 --heads 4 --vocab 64 --shards 2 --seed 5
sed 's/model-00001-of-00002.safetensors/model-00001-of-00002.safetensors\\u0000x/' \
    "$WORK/S2/model.safetensors.index.json" >"$WORK/I/model.safetensors.index.json"
grep -q 'u0000x' "$WORK/I/model.safetensors.index.json" || fail "index NUL edit"
quick_fail "NUL inside an index shard name" 'a string or key holds a NUL character' \
    --model_dir "$WORK/I" --output_dir "$WORK/o"

# ---- 4. a line past the limit is an error, not the end of the file ----
{ cat "$CALIB"; printf '{"input_ids": [1'; head -c $((65 << 20)) /dev/zero | tr '\0' ' '; echo ']}'; cat "$CALIB"; } \
    >"$WORK/long.jsonl"
quick_fail "65 MiB calibration line after 4 normal ones" "long.jsonl:5: line longer than the limit" \
    --model_dir "$M" --output_dir "$WORK/o" --int8_kv_cache --calib_dataset "$WORK/long.jsonl"
rm -f "$WORK/long.jsonl"

# ---- 5. --resume: a data byte changed, size and mtime kept ----
R=$WORK/R
cp -r "$M" "$WORK/MR"
run_np 2 --model_dir "$WORK/MR" --output_dir "$R" --tp_size 2 </dev/null || fail "resume: first run"
rm "$R/config.json"
f=$WORK/MR/model.safetensors
mt=$(stat -c %y "$f")
size=$(stat -c %s "$f")
printf '\x55' | dd of="$f" bs=1 seek=$((size - 3)) conv=notrunc 2>/dev/null
touch -d "$mt" "$f"
[ "$(stat -c %s "$f")" = "$size" ] && [ "$(stat -c %y "$f")" = "$mt" ] || fail "resume: size/mtime not kept"
run_np 2 --model_dir "$WORK/MR" --output_dir "$R" --tp_size 2 --resume </dev/null &&
    [ "$(grep -c 'rewriting rank.*written with other inputs' "$WORK/last.log")" = 2 ] &&
    ! grep -q "resume: keeping" "$WORK/last.log" &&
    pass "--resume after a data byte changed (size and mtime kept): both rank files rewritten" ||
    { fail "resume with a changed input byte"; cat "$WORK/last.log"; }
finish
