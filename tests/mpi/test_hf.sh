#!/bin/bash
# test_hf.sh: --output_format hf (issue 22, docs/hf-output.md).
#  - for each format (unquantized, FP8, FP8 per channel, NVFP4, FP8 with an
#    FP8 KV cache, NVFP4 with excluded modules): every tensor of every shard
#    equals an independent plain-Python reference (tests/mpi/hf_reference.py)
#    computed from the source weights and the run's statistics, byte for
#    byte; the index maps every tensor to its shard; config.json carries
#    ModelOpt's quantization_config, hf_quant_config.json its quantization;
#    the tokenizer and generation files are copied; `trtconv verify` passes;
#  - byte identity: 1, 2 and 3 ranks, and a tp 2 calibration layout with the
#    same statistics, write the same directory;
#  - verify catches a changed byte and an index that lies; --resume keeps
#    the intact shards and rewrites a missing one;
#  - refusals: NVFP4 on a linear whose input is not a multiple of 16, a
#    mixture of experts.
. "$(dirname "$0")/lib.sh"
STATS_TOOL=${STATS:?}
REF=$(dirname "$0")/hf_reference.py

M=$WORK/m
gen --out "$M" --layers 3 --hidden 128 --heads 4 --kv_heads 2 --intermediate 256 --vocab 384 \
    --dtype bfloat16 --shards 2 --outlier_channels 3
printf '{"max_new_tokens": 7}\n' >"$M/generation_config.json"
printf '{"model_max_length": 4096}\n' >"$M/tokenizer_config.json"
python3 - >"$WORK/ids.jsonl" <<'PY'
import json, random
r = random.Random(7)
for _ in range(12):
    print(json.dumps({"input_ids": [r.randrange(380) for _ in range(r.randrange(8, 40))]}))
PY
CAL=(--calib_dataset "$WORK/ids.jsonl" --calib_batch_size 3)

# convert NAME NP ARGS...: an hf conversion with small shards.
convert() {
    local name=$1 np=$2
    shift 2
    rm -rf "${WORK:?}/$name"
    run_np "$np" --model_dir "$M" --output_dir "$WORK/$name" --output_format hf \
        --max_shard_size 150KB "$@" </dev/null
}

# same_hf A B: every file of A (shards, index, configs) identical in B.
same_hf() {
    local f n=0
    for f in "$1"/model-*.safetensors "$1"/*.json; do
        [ "$(basename "$f")" = trtconv-manifest.json ] && continue
        cmp -s "$f" "$2/$(basename "$f")" || { echo "  differs: $(basename "$f")"; return 1; }
        n=$((n + 1))
    done
    [ "$n" -gt 3 ] && [ "$(ls "$1" | grep -c '^model-')" = "$(ls "$2" | grep -c '^model-')" ]
}

check_format() { # check_format NAME ALGO KV EXCLUDE ARGS...
    local name=$1 algo=$2 kv=$3 ex=$4
    shift 4
    local st=""
    if [ "$algo" != none ] && [ "$algo" != FP8_PER_CHANNEL_PER_TOKEN ] || [ "$kv" = FP8 ]; then
        set -- "$@" "${CAL[@]}" --calib_stats_out "$WORK/$name.h5"
        st=$WORK/$name.stats.safetensors
    fi
    if ! convert "$name" 2 "$@"; then
        fail "$name: conversion"; tail -20 "$WORK/last.log"; return
    fi
    if [ -n "$st" ]; then
        "$STATS_TOOL" export "$WORK/$name.h5" --model_dir "$M" --out "$st" >/dev/null 2>&1 ||
            { fail "$name: stats export"; return; }
    fi
    if python3 "$REF" "$M" "$WORK/$name" "$algo" "$kv" "$st" "$ex" >"$WORK/ref.log" 2>&1; then
        pass "$name: every tensor equals the Python reference ($(tail -1 "$WORK/ref.log"))"
    else
        fail "$name: tensors differ from the reference"; head -20 "$WORK/ref.log"
    fi
    if "$TRTCONV" verify "$WORK/$name" >"$WORK/verify.log" 2>&1; then
        pass "$name: trtconv verify: $(tail -1 "$WORK/verify.log" | cut -c1-90)"
    else
        fail "$name: verify"; cat "$WORK/verify.log"
    fi
}

check_format plain none none ""
check_format fp8 FP8 none "" --use_fp8
check_format fp8pc FP8_PER_CHANNEL_PER_TOKEN none "" --use_fp8_rowwise
check_format nvfp4 NVFP4 none "" --use_nvfp4
check_format fp8kv FP8 FP8 "" --use_fp8 --fp8_kv_cache
check_format nvfp4ex NVFP4 none "model.layers.0.*,*.down_proj" --use_nvfp4 \
    --exclude_modules "model.layers.0.*,*.down_proj"

python3 - "$WORK" "$M" <<'PY' && pass "configs: quantization_config and hf_quant_config.json as ModelOpt writes them; lm_head and --exclude_modules listed; the source's config kept; tokenizer and generation files copied" ||
import json, os, sys
w, m = sys.argv[1:3]
src = json.load(open(os.path.join(m, "config.json")))
ok = True
def cfg(d): return json.load(open(os.path.join(w, d, "config.json")))
def hq(d): return json.load(open(os.path.join(w, d, "hf_quant_config.json")))
plain = cfg("plain")
ok &= "quantization_config" not in plain and not os.path.exists(os.path.join(w, "plain", "hf_quant_config.json"))
ok &= all(plain[k] == v for k, v in src.items() if k not in ("torch_dtype", "dtype"))
q = cfg("fp8kv")["quantization_config"]
ok &= q["quant_method"] == "modelopt" and q["quant_algo"] == "FP8" and q["ignore"] == ["lm_head"]
ok &= q["kv_cache_scheme"] == {"dynamic": False, "num_bits": 8, "type": "float"}
ok &= q["config_groups"]["group_0"]["weights"] == {"dynamic": False, "num_bits": 8, "type": "float"}
ok &= q["config_groups"]["group_0"]["targets"] == ["Linear"]
h = hq("fp8kv")["quantization"]
ok &= h == {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8", "exclude_modules": ["lm_head"]}
n = hq("nvfp4ex")["quantization"]
ok &= n["quant_algo"] == "NVFP4" and n["group_size"] == 16 and n["kv_cache_quant_algo"] is None
ok &= n["exclude_modules"] == ["*.down_proj", "lm_head", "model.layers.0.*"]
ok &= cfg("nvfp4")["quantization_config"]["config_groups"]["group_0"]["input_activations"]["group_size"] == 16
ok &= hq("fp8pc")["quantization"]["quant_algo"] == "FP8_PER_CHANNEL_PER_TOKEN"
ok &= "config_groups" not in cfg("fp8pc")["quantization_config"]
for f in ("generation_config.json", "tokenizer_config.json"):
    ok &= open(os.path.join(m, f), "rb").read() == open(os.path.join(w, "nvfp4", f), "rb").read()
idx = json.load(open(os.path.join(w, "nvfp4", "model.safetensors.index.json")))
ok &= list(idx["weight_map"]) == sorted(idx["weight_map"]) and len(set(idx["weight_map"].values())) > 1
sys.exit(0 if ok else 1)
PY
    fail "configs"

# Byte identity: ranks and the calibration layout change nothing.
S=(--calib_stats "$WORK/nvfp4.h5")
ok=1
for v in "1" "3" "2 --tp_size 2" "4 --tp_size 2 --pp_size 3"; do
    set -- $v
    np=$1
    shift
    convert id "$np" --use_nvfp4 "${S[@]}" "$@" && same_hf "$WORK/nvfp4" "$WORK/id" || {
        ok=0; echo "  ranks/layout: $v"; tail -5 "$WORK/last.log"; }
done
[ $ok = 1 ] && pass "NVFP4 with the same statistics: 1, 3 ranks, tp 2 and tp 2 x pp 3 on 4 ranks write the 2-rank directory byte for byte" ||
    fail "byte identity over ranks and layouts"
ok=1
for np in 1 3; do
    convert id "$np" --use_fp8 --fp8_kv_cache "${CAL[@]}" &&
        grep -q "with the writing overlapped" "$WORK/last.log" && same_hf "$WORK/fp8kv" "$WORK/id" ||
        ok=0
done
[ $ok = 1 ] && pass "FP8 + FP8 KV calibrated on 1 and 3 ranks (dp), written while calibrating: the same bytes as on 2" ||
    fail "calibrated FP8 over rank counts"
# The sequential run (statistics first: here three pipeline stages) writes
# the bytes of the overlapped one.
convert id 3 --use_fp8 --fp8_kv_cache --pp_size 3 "${CAL[@]}" &&
    ! grep -q "with the writing overlapped" "$WORK/last.log" &&
    grep -q "quantize+write" "$WORK/last.log" && same_hf "$WORK/fp8kv" "$WORK/id" &&
    pass "FP8 + FP8 KV calibrated in pp 3 (statistics first, then the writing): the overlapped run's bytes" ||
    { fail "sequential vs overlapped hf run"; tail -5 "$WORK/last.log"; }

# A shard write failing on rank 1 while the writing overlaps the
# calibration (EIO from the fault shim): every rank exits non-zero, the
# reason is printed, nothing is committed; --resume then completes and
# writes the uninterrupted run's bytes.
rm -rf "$WORK/flt"
rc=0
timeout 120 "$MPIEXEC" -np 3 -x LD_PRELOAD="$FAULT_SHIM" -x TC_FAULT_OP=pwrite -x TC_FAULT_PATH=.partial \
    -x TC_FAULT_RANK=1 -x TC_FAULT_AFTER=1 -x TC_FAULT_ACTION=eio "$TRTCONV" --progress none \
    --model_dir "$M" --output_dir "$WORK/flt" --output_format hf --max_shard_size 150KB --use_fp8 \
    --fp8_kv_cache "${CAL[@]}" </dev/null >"$WORK/last.log" 2>&1 || rc=$?
if grep -q "ASan runtime does not come first" "$WORK/last.log"; then
    echo "SKIP: write fault during the overlapped run: a sanitized build cannot preload the fault shim"
elif [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "fault_shim" "$WORK/last.log" &&
    grep -qi "input/output error" "$WORK/last.log" && [ ! -e "$WORK/flt/config.json" ] &&
    run_np 3 --model_dir "$M" --output_dir "$WORK/flt" --output_format hf --max_shard_size 150KB \
        --use_fp8 --fp8_kv_cache "${CAL[@]}" --resume </dev/null && same_hf "$WORK/fp8kv" "$WORK/flt"; then
    pass "a write failing while calibrating: job failed (rc $rc) with the reason, nothing committed; --resume wrote the same bytes"
else
    fail "write fault during the overlapped hf run (rc $rc)"; tail -8 "$WORK/last.log"
fi

# verify: a changed byte, an index that lies.
cp -r "$WORK/fp8" "$WORK/bad"
f=$(ls "$WORK/bad"/model-*.safetensors | head -1)
printf '\x01' | dd of="$f" bs=1 seek=$(($(stat -c %s "$f") - 3)) conv=notrunc 2>/dev/null
"$TRTCONV" verify "$WORK/bad" >"$WORK/verify.log" 2>&1
rc=$?
[ $rc = 3 ] && grep -q "sha256_tree" "$WORK/verify.log" && pass "verify: a changed byte in a shard fails (exit 3)" ||
    { fail "verify of a changed shard (rc $rc)"; cat "$WORK/verify.log"; }
rm -rf "$WORK/bad" && cp -r "$WORK/fp8" "$WORK/bad"
python3 - "$WORK/bad/model.safetensors.index.json" <<'PY'
import json, sys
p = sys.argv[1]
d = json.load(open(p))
names = sorted(d["weight_map"])
files = sorted(set(d["weight_map"].values()))
k = names[0]
d["weight_map"][k] = [f for f in files if f != d["weight_map"][k]][0]
json.dump(d, open(p, "w"))
PY
"$TRTCONV" verify --no-hash "$WORK/bad" >"$WORK/verify.log" 2>&1
rc=$?
[ $rc = 3 ] && grep -q "the index says" "$WORK/verify.log" && pass "verify: an index naming the wrong shard fails" ||
    { fail "verify of a lying index (rc $rc)"; cat "$WORK/verify.log"; }

# --resume: the shards of the earlier run are kept, a missing one rewritten.
convert res 2 --use_nvfp4 "${S[@]}" || fail "--resume: the first run"
rm "$WORK/res/model-00002-of-"*.safetensors "$WORK/res/config.json"
run_np 2 --model_dir "$M" --output_dir "$WORK/res" --output_format hf --max_shard_size 150KB \
    --use_nvfp4 "${S[@]}" --resume </dev/null
kept=$(grep -c "resume: keeping model-" "$WORK/last.log")
if [ "$kept" -ge 2 ] && grep -q "rewriting model-00002" "$WORK/last.log" && same_hf "$WORK/nvfp4" "$WORK/res"; then
    pass "--resume: $kept shards kept, the missing one rewritten, the directory as before"
else
    fail "--resume"; grep -i resume "$WORK/last.log" | head
fi

# trtconv eval reads the format: unquantized exactly the source; FP8 within
# its step and close to the TensorRT-LLM FP8 checkpoint of the same
# statistics; the FP8 KV cache adds error; NVFP4 refused by name.
run_np 2 --model_dir "$M" --output_dir "$WORK/trt_fp8" --dtype bfloat16 --use_fp8 \
    --calib_stats "$WORK/fp8.h5" </dev/null ||
    fail "the TensorRT-LLM FP8 checkpoint"
if timeout 300 "$MPIEXEC" -np 2 "$TRTCONV" eval --model_dir "$M" --checkpoint_dir "$WORK/plain" \
    --checkpoint_dir "$WORK/fp8" --checkpoint_dir "$WORK/fp8kv" --checkpoint_dir "$WORK/fp8pc" \
    --checkpoint_dir "$WORK/trt_fp8" --dataset "$WORK/ids.jsonl" --batch_size 3 \
    --output_json "$WORK/ev.json" >"$WORK/last.log" 2>&1; then
    python3 - "$WORK/ev.json" <<'PY' && pass "trtconv eval of the format: unquantized error 0 and ratio 1 (every linear too); FP8, FP8 per channel positive and finite; the FP8 KV cache adds error; FP8 within 5% of the TensorRT-LLM FP8 checkpoint's error" ||
import json, math, sys
c = {x["checkpoint_dir"].rsplit("/", 1)[-1]: x for x in json.load(open(sys.argv[1]))["checkpoints"]}
fin = {k: v["final_norm_rel_error"] for k, v in c.items()}
print(fin)
p = c["plain"]
ok = p["perplexity_ratio"] == 1.0 and p["kl_mean"] == 0.0 and fin["plain"] == 0.0
ok &= all(v == 0.0 for l in p["layers"] for v in l["linear_rel_error"].values())
ok &= all(0 < fin[k] < 0.5 and math.isfinite(fin[k]) for k in ("fp8", "fp8kv", "fp8pc", "trt_fp8"))
ok &= fin["fp8kv"] > fin["fp8"]
ok &= abs(fin["fp8"] - fin["trt_fp8"]) <= 0.05 * fin["trt_fp8"]
sys.exit(0 if ok else 1)
PY
        fail "eval of the format"
else
    fail "trtconv eval of the format"; tail -10 "$WORK/last.log"
fi
if timeout 300 "$MPIEXEC" -np 2 "$TRTCONV" eval --model_dir "$M" --checkpoint_dir "$WORK/fp8" \
    --checkpoint_dir "$WORK/nvfp4" --checkpoint_dir "$WORK/nvfp4ex" --dataset "$WORK/ids.jsonl" \
    --batch_size 3 --output_json "$WORK/ev4.json" >"$WORK/last.log" 2>&1; then
    python3 - "$WORK/ev4.json" <<'PY' && pass "eval of NVFP4 (weights and inputs in blocks of 16): error above FP8's at every layer and every linear; the excluded layer 0 exactly 0" ||
import json, sys
c = {x["checkpoint_dir"].rsplit("/", 1)[-1]: x for x in json.load(open(sys.argv[1]))["checkpoints"]}
f8, f4, ex = c["fp8"]["layers"], c["nvfp4"]["layers"], c["nvfp4ex"]["layers"]
print([round(l["local_rel_error"], 4) for l in f8], [round(l["local_rel_error"], 4) for l in f4])
ok = all(a["local_rel_error"] < b["local_rel_error"] for a, b in zip(f8, f4))
ok &= all(a["linear_rel_error"][k] < b["linear_rel_error"][k] for a, b in zip(f8, f4)
          for k in a["linear_rel_error"])
ok &= all(v == 0.0 for v in ex[0]["linear_rel_error"].values())
ok &= ex[1]["linear_rel_error"]["qkv"] > 0 and ex[0]["local_rel_error"] == 0.0
sys.exit(0 if ok else 1)
PY
        fail "NVFP4 eval ordering"
else
    fail "eval of NVFP4"; tail -5 "$WORK/last.log"
fi
rm -rf "$WORK/ev"
run_np 3 --model_dir "$M" --output_dir "$WORK/ev" --output_format hf --use_fp8_rowwise \
    --eval "$WORK/ids.jsonl" </dev/null && grep -q "top-1 agreement" "$WORK/last.log" &&
    pass "--eval after an hf conversion (FP8 per channel, 3 ranks)" ||
    { fail "--eval after an hf conversion"; tail -5 "$WORK/last.log"; }

# Refusals.
gen --out "$WORK/odd" --layers 1 --hidden 128 --heads 4 --intermediate 200 --vocab 384
rm -rf "$WORK/o"
run_np 1 --model_dir "$WORK/odd" --output_dir "$WORK/o" --output_format hf --use_nvfp4 \
    "${CAL[@]}" </dev/null
rc=$?
[ $rc = 3 ] && grep -q "down_proj.weight: NVFP4 needs the input dimension (200)" "$WORK/last.log" &&
    [ ! -f "$WORK/o/config.json" ] &&
    pass "NVFP4 on a 200-wide down_proj refused naming the tensor, before anything is written" ||
    { fail "NVFP4 refusal (rc $rc)"; tail -5 "$WORK/last.log"; }
rm -rf "$WORK/o"
run_np 1 --model_dir "$WORK/odd" --output_dir "$WORK/o" --output_format hf --use_nvfp4 \
    --exclude_modules '*.down_proj' "${CAL[@]}" </dev/null &&
    "$TRTCONV" verify "$WORK/o" >/dev/null 2>&1 &&
    pass "the same with --exclude_modules '*.down_proj': written and verified" ||
    { fail "NVFP4 with the excluded down_proj"; tail -5 "$WORK/last.log"; }
rm -rf "$WORK/o"
run_np 1 --model_dir "$M" --output_dir "$WORK/o" --output_format hf --use_fp8_rowwise \
    --exclude_modules 'model.layers.1.self_attn.k_proj' </dev/null
rc=$?
[ $rc = 2 ] && grep -q "self_attn.k_proj is excluded but model.layers.1.self_attn.q_proj is not" "$WORK/last.log" &&
    pass "an exclusion that splits a fused q/k/v refused (exit 2): the engines need the group alike" ||
    { fail "split fused exclusion (rc $rc)"; tail -3 "$WORK/last.log"; }
gen --out "$WORK/moe" --layers 1 --hidden 64 --heads 4 --intermediate 128 --vocab 128 --experts 4
rm -rf "$WORK/o"
run_np 1 --model_dir "$WORK/moe" --output_dir "$WORK/o" --output_format hf </dev/null
rc=$?
[ $rc = 2 ] && grep -q "mixture-of-experts models" "$WORK/last.log" &&
    pass "a mixture of experts refused (exit 2)" || { fail "MoE refusal (rc $rc)"; tail -3 "$WORK/last.log"; }
finish
