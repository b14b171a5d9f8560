#!/bin/bash
# Command-line behaviour of the trtconv binary under mpirun.
. "$(dirname "$0")/lib.sh"
M=$WORK/model
gen --out "$M" --layers 2 --hidden 64 --heads 4 --intermediate 128 --vocab 64 --dtype bfloat16 --seed 3

rc=0; run_np 1 --help || rc=$?
[ $rc -eq 0 ] && grep -q -- "--model_dir" "$WORK/last.log" && grep -q -- "--use_parallel_embedding" "$WORK/last.log" &&
    pass "--help" || fail "--help rc $rc"

rc=0; run_np 2 --model_dir "$M" --no_such_flag || rc=$?
[ $rc -eq 2 ] && [ "$(grep -c "unrecognized" "$WORK/last.log")" = 1 ] &&
    pass "unknown flag: exit 2, one message from rank 0" || { fail "unknown flag rc $rc"; cat "$WORK/last.log"; }

rc=0; run_np 1 --model_dir "$M" --tp_size two || rc=$?
[ $rc -eq 2 ] && grep -q "tp_size" "$WORK/last.log" && pass "bad integer" || fail "bad integer rc $rc"

rc=0; run_np 1 --model_dir "$M" --meta_ckpt_dir "$M" || rc=$?
[ $rc -eq 2 ] && grep -q "exclude each other" "$WORK/last.log" &&
    pass "--model_dir with --meta_ckpt_dir refused" || { fail "model+meta rc $rc"; cat "$WORK/last.log"; }

for flag in "--per_group"; do
    rc=0; run_np 1 --model_dir "$M" $flag || rc=$?
    [ $rc -eq 2 ] && grep -q "not supported" "$WORK/last.log" && pass "refused: $flag" ||
        { fail "$flag rc $rc"; cat "$WORK/last.log"; }
done

rc=0; run_np 1 --model_dir "$M" --output_dir "$WORK/auto" --dtype auto || rc=$?
[ $rc -eq 0 ] && grep -q '"dtype": "bfloat16"' "$WORK/auto/config.json" &&
    grep -aq '"dtype":"BF16"' "$WORK/auto/rank0.safetensors" && pass "--dtype auto takes torch_dtype" ||
    fail "--dtype auto rc $rc"

rc=0; run_np 2 --model_dir "$M" --output_dir "$WORK/cfgonly" --tp_size 2 --save_config_only || rc=$?
run_np 2 --model_dir "$M" --output_dir "$WORK/cfgfull" --tp_size 2 >/dev/null || rc=$?
[ $rc -eq 0 ] && [ -f "$WORK/cfgonly/config.json" ] && ! ls "$WORK/cfgonly" | grep -q rank &&
    cmp -s "$WORK/cfgonly/config.json" "$WORK/cfgfull/config.json" &&
    pass "--save_config_only writes config.json only, the same bytes as the full conversion" ||
    fail "--save_config_only rc $rc"

# Without --model_dir: json.dump(from_cli_args(args)) of v0.12, whole file
# (expected text written by Python: tests/data/config/make_cli_configs.py).
CFG=$(cd "$(dirname "$0")/../data/config" && pwd)
rc=0; run_np 1 --output_dir "$WORK/fake" --n_layer 4 --n_head 8 --n_kv_head 2 --n_embd 512 \
    --vocab_size 1000 --inter_size 1024 --tp_size 2 || rc=$?
[ $rc -eq 0 ] && cmp "$CFG/cli_defaults_l4_h8_kv2_tp2.json" "$WORK/fake/config.json" &&
    pass "no --model_dir: config.json equals upstream's from_cli_args dump" || fail "fake config rc $rc"
rc=0; run_np 1 --output_dir "$WORK/fake2" --n_layer 4 --n_head 8 --n_kv_head 2 --n_embd 512 \
    --vocab_size 1000 --inter_size 1024 --tp_size 2 --multiple_of 256 --ffn_dim_multiplier 1.3 || rc=$?
[ $rc -eq 0 ] && cmp "$CFG/cli_l4_h8_kv2_tp2.json" "$WORK/fake2/config.json" &&
    pass "no --model_dir, --multiple_of/--ffn_dim_multiplier: equals from_cli_args dump" ||
    fail "fake config with multiple_of rc $rc"

rc=0; run_np 1 --model_dir "$M" --output_dir "$WORK/lbs" --load_by_shard || rc=$?
[ $rc -eq 0 ] && grep -q "no effect" "$WORK/last.log" && pass "--load_by_shard accepted with a notice" ||
    fail "--load_by_shard rc $rc"

# Progress lines when stderr is not a terminal.
# TRTCONV_LOG_ELAPSED stamps every line with the seconds since the rank
# started and its resident / peak host memory (peak >= resident > 0).
rc=0; TRTCONV_LOG_ELAPSED=1 timeout 120 "$MPIEXEC" -x TRTCONV_LOG_ELAPSED -np 2 "$TRTCONV" \
    --model_dir "$M" --output_dir "$WORK/prog" --tp_size 2 --progress lines >"$WORK/prog.log" 2>&1 || rc=$?
[ $rc -eq 0 ] && grep -q "progress: 100%" "$WORK/prog.log" && pass "progress lines" ||
    { fail "progress rc $rc"; cat "$WORK/prog.log"; }
stamps=$(grep -cE '^trtconv\[[01]/2 [^]]*\] \+[0-9]+\.[0-9]{3} s rss [0-9]+/[0-9]+ MiB ' "$WORK/prog.log")
lines=$(grep -c '^trtconv\[' "$WORK/prog.log")
bad=$(sed -nE 's/.* rss ([0-9]+)\/([0-9]+) MiB .*/\1 \2/p' "$WORK/prog.log" | awk '$1 < 1 || $2 < $1' | wc -l)
[ "$stamps" -gt 0 ] && [ "$stamps" = "$lines" ] && [ "$bad" = 0 ] &&
    pass "TRTCONV_LOG_ELAPSED: time and host memory on all $lines lines" ||
    { fail "elapsed stamps: $stamps of $lines lines, $bad implausible"; head -5 "$WORK/prog.log"; }

# Rerunning into a complete checkpoint is refused (exit 2, checkpoint intact)
# unless --overwrite replaces it.
cp "$WORK/prog/config.json" "$WORK/prog.config"
rc=0; run_np 2 --model_dir "$M" --output_dir "$WORK/prog" --tp_size 2 --dtype float32 || rc=$?
[ $rc -eq 2 ] && grep -q "holds a complete checkpoint.*--overwrite" "$WORK/last.log" &&
    cmp -s "$WORK/prog.config" "$WORK/prog/config.json" && "$TRTCONV" verify "$WORK/prog" >/dev/null &&
    pass "rerun without --overwrite refused, checkpoint intact" || fail "rerun refusal rc $rc"
rc=0; run_np 2 --model_dir "$M" --output_dir "$WORK/prog" --tp_size 2 --dtype float32 --overwrite || rc=$?
[ $rc -eq 0 ] && grep -q '"dtype": "float32"' "$WORK/prog/config.json" &&
    "$TRTCONV" verify "$WORK/prog" >/dev/null && pass "--overwrite replaces the checkpoint" ||
    fail "rerun --overwrite rc $rc"
finish
