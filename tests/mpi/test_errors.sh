#!/bin/bash
# Every bad input of the conversion core ends the whole job: a message that
# names the file/tensor/rule, a non-zero exit on every rank within seconds,
# and no new config.json in the output directory. The output directory holds
# the config.json of an "earlier run" and --overwrite is given: a failure
# found during setup leaves it untouched; a later one has removed it first.
. "$(dirname "$0")/lib.sh"

M=$WORK/base
gen --out "$M" --layers 4 --hidden 64 --heads 4 --kv_heads 2 --intermediate 128 --vocab 64 \
    --dtype float16 --shards 2 --seed 11

fresh() { rm -rf "$WORK/m"; cp -r "$M" "$WORK/m"; }

# expect_fail NAME EXIT_CODE MESSAGE_REGEX NP trtconv-args...
expect_fail() {
    local name=$1 code=$2 re=$3 np=$4
    shift 4
    local out=$WORK/out_$name
    mkdir -p "$out"
    echo '{}' >"$out/config.json" # from an "earlier run"
    local t0=$SECONDS rc=0
    run_np "$np" --output_dir "$out" --overwrite "$@" || rc=$?
    local dt=$((SECONDS - t0))
    if [ $rc -eq 0 ]; then fail "$name: exit 0"; cat "$WORK/last.log"; return; fi
    if [ "$code" != any ] && [ $rc -ne "$code" ]; then
        fail "$name: exit $rc, expected $code"; cat "$WORK/last.log"; return
    fi
    if ! grep -Eq "$re" "$WORK/last.log"; then
        fail "$name: message /$re/ not found"; cat "$WORK/last.log"; return
    fi
    if [ -e "$out/config.json" ]; then
        if ! grep -q "failed during setup" "$WORK/last.log" ||
            [ "$(cat "$out/config.json")" != '{}' ]; then
            fail "$name: config.json present after a failure past setup"; return
        fi
    fi
    if ls "$out" | grep -q partial; then fail "$name: partial files left behind"; return; fi
    if [ $dt -gt 30 ]; then fail "$name: took ${dt}s"; return; fi
    pass "$name (exit $rc in ${dt}s)"
}

# Write a safetensors file from a header JSON and a data size (zeros).
write_st() { # FILE JSON DATA_BYTES
    local n=${#2} i hex=""
    for ((i = 0; i < 8; i++)); do hex+=$(printf '\\x%02x' $(((n >> (8 * i)) & 255))); done
    { printf "$hex"; printf '%s' "$2"; head -c "$3" /dev/zero; } >"$1"
}

SHARD1=model-00001-of-00002.safetensors
SHARD2=model-00002-of-00002.safetensors

fresh; truncate -s -10 "$WORK/m/$SHARD2"
expect_fail truncated_shard 3 "$SHARD2.*(MetadataIncompleteBuffer|incomplete)" 4 \
    --model_dir "$WORK/m" --tp_size 2 --pp_size 2

fresh; printf '\xff\xff\xff\xff\xff\xff\xff\x7f{}' >"$WORK/m/$SHARD1"
expect_fail bad_header 3 "$SHARD1.*HeaderTooLarge" 2 --model_dir "$WORK/m" --tp_size 2

fresh; write_st "$WORK/m/$SHARD1" '{"model.embed_tokens.weight":{"dtype":"F16","shape":[64,64],"data_offsets":[0,8192]},"model.norm.weight":{"dtype":"F16","shape":[64],"data_offsets":[8000,8128]}}' 8192
expect_fail overlapping_offsets 3 "InvalidOffset" 1 --model_dir "$WORK/m"

fresh; write_st "$WORK/m/$SHARD1" '{"model.norm.weight":{"dtype":"F16","shape":[64],"data_offsets":[0,128]},"model.norm.weight":{"dtype":"F16","shape":[64],"data_offsets":[128,256]}}' 256
expect_fail duplicate_names 3 "model.norm.weight.*(DuplicateKey|duplicate)" 1 --model_dir "$WORK/m"

fresh; sed -i 's/"model.layers.3.mlp.up_proj.weight": "[^"]*",\{0,1\}//' "$WORK/m/model.safetensors.index.json"
expect_fail missing_tensor 3 "model.layers.3.mlp.up_proj.weight" 2 --model_dir "$WORK/m" --pp_size 2

fresh; sed -i 's/"intermediate_size": 128/"intermediate_size": 96/' "$WORK/m/config.json"
expect_fail shape_vs_config 3 "mlp.gate_proj.weight.*config.json implies" 1 --model_dir "$WORK/m"

expect_fail tp_not_dividing_heads 3 "num_attention_heads = 4 is not divisible by tp_size = 3" 3 \
    --model_dir "$M" --tp_size 3
fresh; sed -i 's/"intermediate_size": 128/"intermediate_size": 126/' "$WORK/m/config.json"
expect_fail tp_not_dividing_intermediate 3 "intermediate_size = 126 is not divisible by tp_size = 4" \
    2 --model_dir "$WORK/m" --tp_size 4
expect_fail layers_not_dividing_pp 3 "num_hidden_layers = 4 is not divisible by pp_size = 3" 1 \
    --model_dir "$M" --pp_size 3

fresh; sed -i "s|\"$SHARD2\"|\"../../etc/$SHARD2\"|" "$WORK/m/model.safetensors.index.json"
expect_fail path_traversal 3 "traversal" 1 --model_dir "$WORK/m"

touch "$WORK/plainfile"
rc=0; run_np 2 --model_dir "$M" --output_dir "$WORK/plainfile/out" || rc=$?
[ $rc -eq 4 ] && grep -q "plainfile" "$WORK/last.log" && pass "unwritable output dir (exit 4)" ||
    { fail "unwritable output dir: rc $rc"; cat "$WORK/last.log"; }

# Not enough free disk: a 2 MiB tmpfs for a ~2.5 MB checkpoint.
if mkdir -p "$WORK/small" && mount -t tmpfs -o size=2m tmpfs "$WORK/small" 2>/dev/null; then
    gen --out "$WORK/big" --layers 2 --hidden 256 --heads 4 --intermediate 512 --vocab 512 --dtype float16
    rc=0; run_np 2 --model_dir "$WORK/big" --output_dir "$WORK/small/out" --tp_size 2 || rc=$?
    if [ $rc -eq 4 ] && grep -q "not enough free disk space" "$WORK/last.log" &&
        [ ! -e "$WORK/small/out/config.json" ] && ! ls "$WORK/small/out" | grep -q rank; then
        pass "not enough free disk space (exit 4, nothing written)"
    else
        fail "disk space: rc $rc"; cat "$WORK/last.log"; ls -la "$WORK/small/out"
    fi
    umount "$WORK/small"
else
    echo "SKIP: cannot mount a tmpfs here (not root?): disk-space test not run"
fi

# A failure on one rank only (the shard of the last stage's layers is bad):
# the ranks of the first stage must not wait forever.
fresh; truncate -s 100 "$WORK/m/$SHARD2"
expect_fail one_rank_fails 3 "rank [0-9]+ on .*$SHARD2" 4 --model_dir "$WORK/m" --pp_size 2 --tp_size 2

# A summary names how many ranks failed.
grep -q "rank(s) failed during plan" "$WORK/last.log" && pass "rank 0 prints a failure summary" ||
    fail "failure summary missing"

# A pytorch_model.bin that is not a torch.save archive is refused, naming it.
fresh; rm -f "$WORK/m"/*.safetensors "$WORK/m"/*.json.index; rm -f "$WORK/m/model.safetensors.index.json"
touch "$WORK/m/pytorch_model.bin"
expect_fail bin_not_a_zip 3 "pytorch_model.bin: not a zip archive" 1 --model_dir "$WORK/m"
finish
