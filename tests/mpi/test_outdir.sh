#!/bin/bash
# test_outdir.sh: the output directory guards (src/output/outdir.c, issue "never
# lose a user's data"):
#  1. an output directory that is, contains or lies inside an input (model,
#     symlink to it, tokenizer dir, calibration and statistics files) is
#     refused before anything is touched, with --overwrite and --resume too;
#     the input stays byte for byte as it was;
#  2. one job per output directory: a second job started while the first
#     runs fails at once (exit 4, naming the directory, host and pid), the
#     first commits intact; a stale lock of a SIGKILLed job is taken over;
#     a lock of "another host" is honoured while refreshed and taken over
#     once stale; a job whose lock was taken over publishes nothing;
#  3. SIGTERM leaves neither partial files nor the lock behind.
source "$(dirname "$0")/lib.sh"

M=$WORK/M
gen --out "$M" --layers 2 --hidden 64 --heads 4 --vocab 64 --seed 3
gen --out "$WORK/BIG" --layers 4 --hidden 1024 --heads 8 --intermediate 4096 --vocab 32000 --seed 4
(cd "$M" && sha256sum config.json model.safetensors) >"$WORK/m.sha"
same_model() { (cd "$M" && sha256sum -c --quiet "$WORK/m.sha") && [ "$(ls -A "$M" | wc -l)" = 2 ]; }

refused() { # WHAT NEEDLE NP ARGS...
    local what=$1 needle=$2 np=$3 rc=0
    shift 3
    run_np "$np" "$@" </dev/null || rc=$?
    if [ $rc = 2 ] && grep -q -- "$needle" "$WORK/last.log" && same_model; then
        pass "$what: refused (exit 2), input untouched"
    else
        fail "$what: exit $rc"; cat "$WORK/last.log"
    fi
}
refused "output == model dir, --overwrite" "is the same directory as --model_dir" 2 \
    --model_dir "$M" --output_dir "$M" --tp_size 2 --overwrite
refused "output == model dir, --resume" "is the same directory as --model_dir" 1 \
    --model_dir "$M" --output_dir "$M" --resume
ln -s "$M" "$WORK/link"
refused "output is a symlink to the model dir" "is the same directory as --model_dir" 1 \
    --model_dir "$M" --output_dir "$WORK/link" --overwrite
refused "output inside the model dir" "lies inside --model_dir" 1 \
    --model_dir "$M" --output_dir "$M/out"
[ ! -e "$M/out" ] && pass "nothing created inside the model dir" || fail "$M/out was created"
refused "output contains the model dir" "contains --model_dir" 1 \
    --model_dir "$M" --output_dir "$WORK"
cp -r "$M" "$WORK/M2"
refused "output == tokenizer dir" "is the same directory as --tokenizer_dir" 1 \
    --model_dir "$WORK/M2" --output_dir "$M" --int8_kv_cache --tokenizer_dir "$M" \
    --calib_dataset "$M/config.json"
refused "output contains the calibration file" "contains --calib_dataset" 1 \
    --model_dir "$WORK/M2" --output_dir "$M" --int8_kv_cache --calib_dataset "$M/config.json"
refused "output contains the statistics file" "contains --calib_stats" 1 \
    --model_dir "$WORK/M2" --output_dir "$M" --int8_kv_cache --calib_stats "$M/model.safetensors"

# ---- 2. one job per output directory ----
O=$WORK/O
( run_np 2 --model_dir "$WORK/BIG" --output_dir "$O" --tp_size 2 --dtype float32 </dev/null
  echo $? >"$WORK/j1.rc"; cp "$WORK/last.log" "$WORK/j1.log" ) &
for _ in $(seq 100); do [ -e "$O/.trtconv-lock" ] && break; sleep 0.05; done
rc=0; timeout 60 "$MPIEXEC" -np 2 "$TRTCONV" --progress none --model_dir "$WORK/BIG" --output_dir "$O" \
    --tp_size 2 --dtype bfloat16 --overwrite >"$WORK/j2.log" 2>&1 </dev/null || rc=$?
wait
if [ $rc = 4 ] && grep -q "in use by another trtconv job (host $(hostname), pid [0-9]*" "$WORK/j2.log" &&
    [ "$(cat "$WORK/j1.rc")" = 0 ] && grep -q '"dtype": "float32"' "$O/config.json" &&
    "$TRTCONV" verify "$O" >/dev/null && [ ! -e "$O/.trtconv-lock" ]; then
    pass "second job on the same directory: exit 4 naming host and pid; the first committed intact"
else
    fail "concurrent jobs: second rc $rc, first $(cat "$WORK/j1.rc")"; cat "$WORK/j2.log" "$WORK/j1.log"
fi

# A job killed with SIGKILL leaves its lock; the next run on this host sees
# that the pid is gone and takes it over.
K=$WORK/K
"$MPIEXEC" -np 2 "$TRTCONV" --progress none --model_dir "$WORK/BIG" --output_dir "$K" \
    --tp_size 2 --dtype float32 >/dev/null 2>&1 </dev/null &
for _ in $(seq 100); do [ -e "$K/.trtconv-lock" ] && break; sleep 0.05; done
pkill -KILL -f -- "--output_dir $K" ; wait
if [ -e "$K/.trtconv-lock" ] && [ ! -e "$K/config.json" ]; then
    run_np 2 --model_dir "$WORK/BIG" --output_dir "$K" --tp_size 2 --dtype float32 --resume </dev/null &&
        grep -q "took over the lock of an earlier job (host $(hostname), pid [0-9]*): its process is gone" \
            "$WORK/last.log" && "$TRTCONV" verify "$K" >/dev/null &&
        pass "stale lock of a killed job taken over, --resume completes" ||
        { fail "takeover after SIGKILL"; cat "$WORK/last.log"; }
else
    fail "SIGKILLed job left no lock to take over (or it finished first)"
fi

# A lock of another host: honoured while its mtime is fresh, taken over
# once it is older than 30 s (TC_LOCK_STALE_S) by the server's clock.
X=$WORK/X
mkdir -p "$X"
echo "trtconv-lock 1 0123456789abcdef0123456789abcdef otherhost 4242 99" >"$X/.trtconv-lock"
rc=0; run_np 1 --model_dir "$M" --output_dir "$X" </dev/null || rc=$?
[ $rc = 4 ] && grep -q "host otherhost, pid 4242" "$WORK/last.log" && [ ! -e "$X/config.json" ] &&
    pass "fresh lock of another host honoured (exit 4)" || { fail "fresh foreign lock: rc $rc"; cat "$WORK/last.log"; }
touch -d '-5 minutes' "$X/.trtconv-lock"
run_np 1 --model_dir "$M" --output_dir "$X" </dev/null &&
    grep -q "took over the lock of an earlier job (host otherhost, pid 4242): its holder stopped refreshing it" \
        "$WORK/last.log" && [ -f "$X/config.json" ] && [ ! -e "$X/.trtconv-lock" ] &&
    pass "stale lock of another host taken over" || { fail "stale foreign lock"; cat "$WORK/last.log"; }

# A job whose lock is taken over while it runs (an operator removed it and
# another job took it) publishes nothing and fails.
T=$WORK/T
( run_np 2 --model_dir "$WORK/BIG" --output_dir "$T" --tp_size 2 --dtype float32 </dev/null
  echo $? >"$WORK/t.rc"; cp "$WORK/last.log" "$WORK/t.log" ) &
for _ in $(seq 100); do [ -e "$T/.trtconv-lock" ] && break; sleep 0.05; done
echo "trtconv-lock 1 ffffffffffffffffffffffffffffffff otherhost 7 1" >"$T/.trtconv-lock.new"
mv "$T/.trtconv-lock.new" "$T/.trtconv-lock"
wait
[ "$(cat "$WORK/t.rc")" = 4 ] && grep -q "no longer holds the output directory's lock" "$WORK/t.log" &&
    [ ! -e "$T/config.json" ] && ! ls "$T" | grep -q '^rank' &&
    pass "lock taken over mid-run: nothing published, exit 4" ||
    { fail "lock stolen mid-run: rc $(cat "$WORK/t.rc")"; cat "$WORK/t.log"; ls -a "$T"; }

# ---- 3. SIGTERM: no partial files, no lock ----
S=$WORK/S
"$MPIEXEC" -np 2 "$TRTCONV" --progress none --model_dir "$WORK/BIG" --output_dir "$S" \
    --tp_size 2 --dtype float32 >"$WORK/s.log" 2>&1 </dev/null &
for _ in $(seq 200); do ls -a "$S" 2>/dev/null | grep -q partial && break; sleep 0.02; done
pkill -TERM -f -- "$TRTCONV --progress none --model_dir $WORK/BIG --output_dir $S"; wait
sleep 0.5
if ls -a "$S" | grep -q partial || [ -e "$S/.trtconv-lock" ] || [ -e "$S/config.json" ]; then
    fail "SIGTERM left: $(ls -a "$S" | tr '\n' ' ')"; cat "$WORK/s.log"
else
    pass "SIGTERM: no partial file, no lock, no config.json left"
fi
finish
