#!/bin/bash
# PyTorch .bin model directories and Meta checkpoints (--meta_ckpt_dir)
# against the equivalent Hugging Face safetensors model: trtconv-genmodel
# writes the same model (same values) as safetensors, as pytorch_model.bin
# (one file and sharded with an index) and as a Meta directory with 1 and 2
# model-parallel shards (Meta's names, MP splits and interleaved rotary
# q/k rows); every rank file must be byte-identical to the safetensors
# conversion for tp 1/2/4 (with GQA KV duplication) and pp 1/2, and every
# output must pass `trtconv verify`. Then hostile inputs: a pickle calling
# os.system, a non-contiguous tensor, a missing or mismatched MP shard.
. "$(dirname "$0")/lib.sh"
: "${STCOMPARE:?}"
BAD=$(dirname "$0")/../badinput/files

M=$WORK/models
# hidden 128 and --multiple_of 256 give Meta's formula 256*ceil(341/256) =
# 512 = --intermediate, so params.json has no hidden_dim; the f32 model
# takes the hidden_dim path (192 is not what the formula gives).
A="--layers 2 --hidden 128 --heads 4 --kv_heads 2 --intermediate 512 --vocab 64 --dtype bfloat16 --seed 11"
B="--layers 4 --hidden 64 --heads 4 --intermediate 192 --vocab 32 --dtype float32 --special_values --seed 12 --rope_scaling llama3"
gen --out "$M/hf" $A
gen --out "$M/bin" $A --format bin
gen --out "$M/bin3" $A --format bin --shards 3
gen --out "$M/meta1" $A --format meta
gen --out "$M/meta2" $A --format meta --mp 2
gen --out "$M/hf_f32" $B
gen --out "$M/bin_f32" $B --format bin --shards 2
gen --out "$M/meta_f32_mp2" $B --format meta --mp 2
gen --out "$M/meta_f32_mp4" $B --format meta --mp 4

# same_ranks NAME REF OUT: every rank file of REF equals OUT's; OUT verifies.
same_ranks() {
    local name=$1 ref=$2 out=$3 f ok=1
    for f in "$ref"/rank*.safetensors; do
        cmp -s "$f" "$out/$(basename "$f")" || { ok=0; "$STCOMPARE" "$f" "$out/$(basename "$f")"; }
    done
    [ "$(ls "$ref" | grep -c '^rank')" = "$(ls "$out" | grep -c '^rank')" ] || ok=0
    "$TRTCONV" verify "$out" >"$WORK/verify.log" 2>&1 || { ok=0; cat "$WORK/verify.log"; }
    [ $ok = 1 ] && pass "$name: rank files byte-identical to safetensors; verify OK" || fail "$name"
}

# conv NAME NP ARGS...: convert, or fail with the log.
conv() {
    local name=$1 np=$2
    shift 2
    run_np "$np" --output_dir "$WORK/$name" "$@" || { fail "$name: trtconv failed"; cat "$WORK/last.log"; return 1; }
}

for layout in "1 1 1" "2 1 2" "2 2 4" "4 1 2"; do
    set -- $layout
    tp=$1 pp=$2 np=$3 tag="tp$1_pp$2"
    conv "hf_$tag" "$np" --model_dir "$M/hf" --tp_size "$tp" --pp_size "$pp" --dtype float16 || continue
    for src in bin bin3; do
        conv "${src}_$tag" "$np" --model_dir "$M/$src" --tp_size "$tp" --pp_size "$pp" --dtype float16 &&
            same_ranks "$src $tag" "$WORK/hf_$tag" "$WORK/${src}_$tag" &&
            cmp -s "$WORK/hf_$tag/config.json" "$WORK/${src}_$tag/config.json" &&
            pass "$src $tag: config.json identical" || fail "$src $tag: config.json differs"
    done
    for src in meta1 meta2; do
        conv "${src}_$tag" "$np" --meta_ckpt_dir "$M/$src" --tp_size "$tp" --pp_size "$pp" \
            --dtype float16 && same_ranks "$src $tag" "$WORK/hf_$tag" "$WORK/${src}_$tag"
    done
done

# float32 sources with Inf/NaN/ties, cast to bf16 and f16; MP 4 re-split to tp 2.
for dt in bfloat16 float16; do
    conv "f32_hf_$dt" 2 --model_dir "$M/hf_f32" --tp_size 2 --dtype $dt || continue
    conv "f32_bin_$dt" 2 --model_dir "$M/bin_f32" --tp_size 2 --dtype $dt --workers 2 &&
        same_ranks "f32 bin -> $dt" "$WORK/f32_hf_$dt" "$WORK/f32_bin_$dt"
    for mp in 2 4; do
        conv "f32_meta${mp}_$dt" 2 --meta_ckpt_dir "$M/meta_f32_mp$mp" --tp_size 2 --dtype $dt &&
            same_ranks "f32 meta mp$mp -> tp2 $dt" "$WORK/f32_hf_$dt" "$WORK/f32_meta${mp}_$dt"
    done
done
conv f32_meta4_paremb 2 --meta_ckpt_dir "$M/meta_f32_mp4" --tp_size 2 --use_parallel_embedding \
    --embedding_sharding_dim 1 --dtype float16 &&
conv f32_hf_paremb 2 --model_dir "$M/hf_f32" --tp_size 2 --use_parallel_embedding \
    --embedding_sharding_dim 1 --dtype float16 &&
    same_ranks "meta mp4 parallel embedding dim 1" "$WORK/f32_hf_paremb" "$WORK/f32_meta4_paremb"

# config.json of a Meta conversion: TensorRT-LLM's from_meta_ckpt defaults.
conv meta_auto 1 --meta_ckpt_dir "$M/meta_f32_mp2" --dtype auto &&
    grep -q '"dtype": "bfloat16"' "$WORK/meta_auto/config.json" &&
    grep -q '"intermediate_size": 192' "$WORK/meta_auto/config.json" &&
    grep -q '"max_position_embeddings": 2048' "$WORK/meta_auto/config.json" &&
    grep -q '"type": "llama3"' "$WORK/meta_auto/config.json" &&
    pass "meta config.json: dtype auto = bfloat16, hidden_dim, 2048 positions, use_scaled_rope" ||
    { fail "meta config.json"; cat "$WORK/meta_auto/config.json"; }
grep -q '"intermediate_size": 512' "$WORK/meta1_tp1_pp1/config.json" &&
    pass "meta config.json: intermediate size from dim and multiple_of" || fail "meta multiple_of"

# Both cells of tp 2 on one rank (N < T x P) give the same files.
conv meta_one_rank 1 --meta_ckpt_dir "$M/meta2" --tp_size 2 --dtype float16 &&
    same_ranks "meta mp2 tp2 on one rank" "$WORK/hf_tp2_pp1" "$WORK/meta_one_rank"

# ---- hostile and broken inputs ----
expect_refusal() {
    local name=$1 re=$2
    shift 2
    local out=$WORK/out_$name rc=0
    run_np 2 --output_dir "$out" "$@" || rc=$?
    if [ $rc -eq 3 ] && grep -Eq "$re" "$WORK/last.log" && [ ! -f "$out/config.json" ] &&
        ! ls "$out" 2>/dev/null | grep -q partial; then
        pass "$name refused (exit 3): $(grep -Eo "$re" "$WORK/last.log" | head -1)"
    else
        fail "$name: exit $rc"; cat "$WORK/last.log"
    fi
}
rm -f /tmp/trtconv_pwned
mkdir -p "$M/evil" && cp "$M/bin/config.json" "$M/evil/" &&
    cp "$BAD/torch_os_system.bin" "$M/evil/pytorch_model.bin"
expect_refusal os_system "global os\.system is not allowed" --model_dir "$M/evil"
[ ! -e /tmp/trtconv_pwned ] && pass "the pickle's command did not run" || fail "os.system ran"
cp "$BAD/torch_transposed.bin" "$M/evil/pytorch_model.bin"
expect_refusal transposed "tensor 'w' is not contiguous" --model_dir "$M/evil"
cp "$BAD/torch_deflate.bin" "$M/evil/pytorch_model.bin"
expect_refusal deflate "is compressed \(method 8, deflate\)" --model_dir "$M/evil"

cp -r "$M/meta2" "$M/meta_gap" && rm "$M/meta_gap/consolidated.00.pth"
expect_refusal meta_missing_shard "consolidated\.00\.pth is missing" --meta_ckpt_dir "$M/meta_gap"
mkdir -p "$M/meta_mix" && cp "$M/meta2/params.json" "$M/meta2/consolidated.00.pth" "$M/meta_mix/" &&
    cp "$M/meta_f32_mp2/consolidated.01.pth" "$M/meta_mix/"
expect_refusal meta_mismatched_shard "differs in dtype or shape|is missing" --meta_ckpt_dir "$M/meta_mix"
expect_refusal meta_no_params "no params.json" --meta_ckpt_dir "$M/bin"
finish
