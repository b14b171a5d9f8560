#!/bin/bash
# Fault injection (durability-and-failures.md §2.3, §4, §5): a rank killed
# with SIGKILL while reading, while writing, after its rank file but before
# its record, and before the commit; ENOSPC and EIO from write/fsync/read
# (LD_PRELOAD shim tests/faults/fault_shim.c); a real full disk (tmpfs); a
# truncated input; a hung rank under --timeout; SIGTERM. Each must end with
# every rank exited non-zero within seconds, a message naming the cause, no
# config.json, `trtconv verify` refusing the directory, and a --resume run
# that completes with bytes identical to an uninterrupted run.
. "$(dirname "$0")/lib.sh"
: "${FAULT_SHIM:?}"

M=$WORK/model
gen --out "$M" --layers 4 --hidden 64 --heads 4 --kv_heads 2 --intermediate 128 --vocab 96 \
    --dtype float16 --shards 2 --seed 21
SHARD1=model-00001-of-00002.safetensors
SHARD2=model-00002-of-00002.safetensors
LAYOUT=(--tp_size 2 --pp_size 2)
EXTRA=""
REF=$WORK/ref
run_np 4 --model_dir "$M" --output_dir "$REF" "${LAYOUT[@]}" || { cat "$WORK/last.log"; exit 1; }
"$TRTCONV" verify "$REF" >/dev/null || { fail "reference does not verify"; finish; }

# The manifest's digest is reproducible with coreutils (sha256.h).
tree_digest() {
    split -b 64M --filter=sha256sum "$1" | cut -c1-64 | tr -d '\n' | tr a-f A-F |
        basenc --base16 -d | sha256sum | cut -c1-64
}
# A rank file of three chunks (165 MB) and the four small ones of $REF.
gen --out "$WORK/wide" --layers 1 --hidden 2048 --heads 16 --intermediate 256 --vocab 20000 \
    --dtype float16 --seed 5
run_np 1 --model_dir "$WORK/wide" --output_dir "$WORK/wide_out" || cat "$WORK/last.log"
ok=1
for f in "$WORK/wide_out/rank0.safetensors" "$REF"/rank*.safetensors; do
    d=$(tree_digest "$f")
    grep -q "\"sha256_tree\":[[:space:]]*\"$d\"" "$(dirname "$f")/trtconv-manifest.json" || ok=0
done
[ $ok = 1 ] && [ "$(stat -c %s "$WORK/wide_out/rank0.safetensors")" -gt $((128 << 20)) ] &&
    pass "manifest digests (1 and 3 chunks) equal the coreutils recipe of sha256.h" ||
    fail "manifest digest differs from the coreutils recipe"

# fault_run OUT ENV...: trtconv on 4 ranks with the shim and the TC_FAULT_*
# settings given as NAME=VALUE; log in $WORK/last.log, rc in $RC, seconds in $DT.
fault_run() {
    local out=$1
    shift
    local xs=(-x LD_PRELOAD="$FAULT_SHIM") kv
    for kv in "$@"; do xs+=(-x "$kv"); done
    local t0=$SECONDS
    RC=0
    timeout 120 "$MPIEXEC" -np 4 "${xs[@]}" "$TRTCONV" --progress none --model_dir "$M" \
        --output_dir "$out" "${LAYOUT[@]}" $EXTRA >"$WORK/last.log" 2>&1 || RC=$?
    DT=$((SECONDS - t0))
}

# after_fault NAME OUT RC_REGEX MESSAGE_REGEX: the failed run's promises.
after_fault() {
    local name=$1 out=$2 rc_re=$3 re=$4
    if ! grep -q "^fault_shim: \|fault_shim: " "$WORK/last.log" && [ "$re" != "-" ]; then
        [ "${NEEDS_SHIM:-1}" = 1 ] && { fail "$name: the fault was never injected"; cat "$WORK/last.log"; return 1; }
    fi
    if [ "$RC" -eq 0 ] || ! [[ $RC =~ ^($rc_re)$ ]]; then
        fail "$name: exit $RC, expected $rc_re"; cat "$WORK/last.log"; return 1
    fi
    if [ "$re" != "-" ] && ! grep -Eq -- "$re" "$WORK/last.log"; then
        fail "$name: message /$re/ not found"; cat "$WORK/last.log"; return 1
    fi
    [ $DT -le 30 ] || { fail "$name: took ${DT}s"; return 1; }
    [ ! -e "$out/config.json" ] || { fail "$name: config.json exists after the failure"; return 1; }
    if "$TRTCONV" verify "$out" >/dev/null 2>&1; then
        fail "$name: verify accepts the failed output"; return 1
    fi
    return 0
}

# resume_ok NAME OUT [MIN_KEPT]: --resume (no fault) completes, the bytes equal
# the uninterrupted run, verify passes, at least MIN_KEPT rank files kept.
resume_ok() {
    local name=$1 out=$2 min_kept=${3:-0}
    if ! run_np 4 --model_dir "$M" --output_dir "$out" "${LAYOUT[@]}" --resume; then
        fail "$name: --resume failed"; cat "$WORK/last.log"; return
    fi
    local kept
    kept=$(grep -c "resume: keeping" "$WORK/last.log")
    if ! same_dir "$REF" "$out"; then fail "$name: resumed output differs"; return; fi
    if ! "$TRTCONV" verify "$out" >/dev/null; then fail "$name: resumed output fails verify"; return; fi
    if [ "$kept" -lt "$min_kept" ]; then
        fail "$name: --resume kept $kept rank files, expected >= $min_kept"; return
    fi
    pass "$name: exit $RC in ${DT}s, no config.json; --resume kept $kept of 4 and equals the uninterrupted run"
}

scenario() { # NAME RC_RE MSG_RE MIN_KEPT FAULT_ENV...
    local name=$1 rc_re=$2 re=$3 min_kept=$4
    shift 4
    local out=$WORK/o_$name
    fault_run "$out" "$@"
    after_fault "$name" "$out" "$rc_re" "$re" && resume_ok "$name" "$out" "$min_kept"
}

# SIGKILL: mpirun reports the signal (137) and ends the others.
scenario kill_during_read 137 "signal 9|Killed" 0 \
    TC_FAULT_OP=pread TC_FAULT_PATH=$SHARD2 TC_FAULT_RANK=3 TC_FAULT_AFTER=2
scenario kill_during_write 137 "signal 9|Killed" 0 \
    TC_FAULT_OP=pwrite TC_FAULT_PATH=.partial TC_FAULT_RANK=1 TC_FAULT_AFTER=3
# Rank 2's file is renamed but its record never written: not trusted, rewritten.
scenario kill_before_record 137 "signal 9|Killed" 0 \
    TC_FAULT_OP=rename TC_FAULT_PATH=.trtconv-rank2.json.tmp TC_FAULT_RANK=2
grep -q "rewriting rank2.safetensors: no record" "$WORK/last.log" &&
    pass "kill_before_record: the unrecorded rank2 file is rewritten" ||
    fail "kill_before_record: rank2 not rewritten for want of a record"
# Every rank file and record done, the manifest written, config.json not:
# --resume keeps all four files.
scenario kill_before_commit 137 "signal 9|Killed" 4 \
    TC_FAULT_OP=rename TC_FAULT_PATH=.config.json.tmp TC_FAULT_RANK=0

# I/O errors: exit 4 on every rank, the file and errno named.
scenario enospc_during_write 4 "rank2.safetensors.partial: write of .*No space left on device" 0 \
    TC_FAULT_OP=pwrite TC_FAULT_PATH=.partial TC_FAULT_RANK=2 TC_FAULT_AFTER=2 TC_FAULT_ACTION=enospc
scenario fsync_eio 4 "rank1.safetensors.partial: fsync failed: Input/output error" 0 \
    TC_FAULT_OP=fsync TC_FAULT_PATH=.partial TC_FAULT_RANK=1 TC_FAULT_ACTION=eio
scenario read_eio 4 "$SHARD1.*Input/output error" 0 \
    TC_FAULT_OP=pread TC_FAULT_PATH=$SHARD1 TC_FAULT_RANK=0 TC_FAULT_AFTER=1 TC_FAULT_ACTION=eio
scenario manifest_write_eio 4 "trtconv-manifest.json.tmp: write of .* failed: Input/output error" 4 \
    TC_FAULT_OP=pwrite TC_FAULT_PATH=trtconv-manifest TC_FAULT_RANK=0 TC_FAULT_ACTION=eio

# A rank hangs (a dead peer, a cut link): --timeout ends every rank with exit 6.
EXTRA="--timeout 5" scenario hang_timeout 6 "--timeout 5 s reached" 0 \
    TC_FAULT_OP=pread TC_FAULT_PATH=$SHARD2 TC_FAULT_RANK=3 TC_FAULT_ACTION=hang

# SIGTERM (Slurm time limit, preemption) while a rank is stuck.
out=$WORK/o_sigterm
t0=$SECONDS
RC=0
timeout 120 "$MPIEXEC" -np 4 -x LD_PRELOAD="$FAULT_SHIM" -x TC_FAULT_OP=pread \
    -x TC_FAULT_PATH=$SHARD2 -x TC_FAULT_RANK=3 -x TC_FAULT_ACTION=hang "$TRTCONV" --progress none \
    --model_dir "$M" --output_dir "$out" "${LAYOUT[@]}" >"$WORK/last.log" 2>&1 &
pid=$!
for _ in $(seq 50); do grep -q "fault_shim" "$WORK/last.log" 2>/dev/null && break; sleep 0.2; done
sleep 1
# The ranks only (as Slurm signals its tasks), not mpirun.
pkill -TERM -f -- "^$TRTCONV .*--output_dir $out" || true
wait $pid || RC=$?
DT=$((SECONDS - t0))
after_fault sigterm "$out" "[0-9]+" "terminated by a signal.*--resume" && resume_ok sigterm "$out" 0

# A real full disk: a tmpfs with room for the checkpoint, nearly filled by
# another file. The run fails before writing; once space is freed --resume
# completes.
if mkdir -p "$WORK/small" && mount -t tmpfs -o size=16m tmpfs "$WORK/small" 2>/dev/null; then
    head -c 15000000 /dev/zero >"$WORK/small/filler"
    RC=0; t0=$SECONDS
    run_np 4 --model_dir "$M" --output_dir "$WORK/small/out" "${LAYOUT[@]}" || RC=$?
    DT=$((SECONDS - t0))
    NEEDS_SHIM=0 after_fault full_disk "$WORK/small/out" 4 "not enough free disk space" &&
        { rm "$WORK/small/filler"; resume_ok full_disk "$WORK/small/out" 0; }
    umount "$WORK/small"
else
    echo "SKIP: cannot mount a tmpfs here (not root?): real full-disk test not run"
fi

# A truncated input: exit 3 naming the shard; restored (same bytes and
# mtime), --resume completes.
cp -p "$M/$SHARD2" "$WORK/shard2.bak"
truncate -s -64 "$M/$SHARD2"
RC=0; t0=$SECONDS
run_np 4 --model_dir "$M" --output_dir "$WORK/o_truncated" "${LAYOUT[@]}" || RC=$?
DT=$((SECONDS - t0))
NEEDS_SHIM=0 after_fault truncated_input "$WORK/o_truncated" 3 "$SHARD2.*(MetadataIncompleteBuffer|incomplete)"
cp -p "$WORK/shard2.bak" "$M/$SHARD2"
resume_ok truncated_input "$WORK/o_truncated" 0

# --resume never trusts a file whose bytes changed after it was recorded.
# (A fresh conversion: the restore of the truncated shard above changed its
# ctime, which the input fingerprint holds, so REF's records no longer match.)
out=$WORK/o_tamper
run_np 4 --model_dir "$M" --output_dir "$out" "${LAYOUT[@]}" || fail "tamper: first run"
rm "$out/config.json"
printf '\x01' | dd of="$out/rank3.safetensors" bs=1 seek=$(($(stat -c %s "$out/rank3.safetensors") - 2)) \
    conv=notrunc 2>/dev/null
run_np 4 --model_dir "$M" --output_dir "$out" "${LAYOUT[@]}" --resume &&
    grep -q "rewriting rank3.safetensors: .*SHA-256" "$WORK/last.log" &&
    [ "$(grep -c 'resume: keeping' "$WORK/last.log")" = 3 ] && same_dir "$REF" "$out" &&
    pass "--resume rewrites a rank file whose data changed (hash mismatch), keeps the 3 others" ||
    { fail "tampered rank file"; cat "$WORK/last.log"; }

# Other options or inputs: nothing is reused.
out=$WORK/o_other
cp -r "$REF" "$out"
run_np 4 --model_dir "$M" --output_dir "$out" "${LAYOUT[@]}" --resume --dtype bfloat16 &&
    [ "$(grep -c 'written with other inputs or options' "$WORK/last.log")" = 4 ] &&
    "$TRTCONV" verify "$out" >/dev/null &&
    pass "--resume with another dtype rewrites every rank file" ||
    { fail "--resume with other options"; cat "$WORK/last.log"; }
# trtconv verify refuses each kind of damage, naming file and rule.
verify_refuses() { # NAME REGEX DIR [verify args]
    local name=$1 re=$2 dir=$3 rc=0
    shift 3
    "$TRTCONV" verify "$@" "$dir" >"$WORK/verify.log" 2>&1 || rc=$?
    [ $rc -eq 3 ] && grep -Eq -- "$re" "$WORK/verify.log" && pass "verify: $name (exit 3)" ||
        { fail "verify: $name: rc $rc"; cat "$WORK/verify.log"; }
}
v=$WORK/v1; cp -r "$REF" "$v"; sed -i 's/"vocab_size": 96/"vocab_size": 97/' "$v/config.json"
verify_refuses "config.json edited" "config.json: SHA-256 .* the manifest records" "$v"
# The manifest updated to match: now the tensors contradict the config.
sed -i "s/\"config_sha256\":[^,]*/\"config_sha256\":\t\"$(sha256sum "$v/config.json" | cut -c1-64)\"/" \
    "$v/trtconv-manifest.json"
verify_refuses "tensors contradict config.json" \
    "rank0.safetensors: tensor transformer.vocab_embedding.weight is F16 \[96, 64\], the format requires F16 .97, 64." "$v"
v=$WORK/v2; cp -r "$REF" "$v"; rm "$v/rank2.safetensors"
verify_refuses "rank file missing" "rank2.safetensors: missing" "$v"
v=$WORK/v3; cp -r "$REF" "$v"
printf '\x01' | dd of="$v/rank1.safetensors" bs=1 seek=$(($(stat -c %s "$v/rank1.safetensors") - 2)) \
    conv=notrunc 2>/dev/null
verify_refuses "data byte changed" "rank1.safetensors: sha256_tree [0-9a-f]+, the manifest records" "$v"
"$TRTCONV" verify --no-hash "$v" >/dev/null && pass "verify --no-hash: headers and tensors still fine" ||
    fail "verify --no-hash"
v=$WORK/v4; cp -r "$REF" "$v"; rm "$v/trtconv-manifest.json"
verify_refuses "manifest missing" "trtconv-manifest.json" "$v"
v=$WORK/v5; cp -r "$REF" "$v"; rm "$v/config.json"
verify_refuses "not committed" "config.json: missing: the checkpoint was never committed" "$v"
v=$WORK/v6; cp -r "$REF" "$v"; truncate -s -1 "$v/rank3.safetensors"
verify_refuses "truncated rank file" "rank3.safetensors: [0-9]+ bytes, the manifest records" "$v"

touch "$M/$SHARD1"
run_np 4 --model_dir "$M" --output_dir "$out" "${LAYOUT[@]}" --resume --dtype bfloat16 &&
    [ "$(grep -c 'written with other inputs or options' "$WORK/last.log")" = 4 ] &&
    pass "--resume after an input changed (mtime) rewrites every rank file" ||
    { fail "--resume after input change"; cat "$WORK/last.log"; }
finish
