#!/bin/bash
# Slurm launches for real (issue 7): a private single-node Slurm with four
# fake GPUs (tests/cluster/slurm_local.sh, after shared/spec/cluster.md §2)
# runs the batch scripts of slurm/ with sbatch --wait, and each output is
# compared byte for byte with a plain mpirun run of the same conversion.
# Also: GPU binding as the ranks saw it (srun --gpus-per-task=1: one device
# each; mpirun: all devices, distinct node-local ranks), a rank killed under
# srun (the job fails within seconds, no config.json, --resume completes),
# the singleton refusal (trtconv run without srun in a 4-task allocation),
# srun --mpi=none, and the --timeout trtconv-slurm derives from the job's
# time limit ending a hung rank before Slurm would. Needs root; installs
# Debian's slurmctld, slurmd, slurm-client and munge when missing (skips with
# 77 when it cannot). Stops its daemons on exit.
. "$(dirname "$0")/lib.sh"
: "${FAULT_SHIM:?}"
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$ROOT/tests/cluster/slurm_local.sh"

SL=$WORK/slurm
slurm_local_start "$SL" 4 4
rc=$?
if [ $rc -eq 1 ]; then # once more on other ports (slurm_local.sh picks them per directory)
    slurm_local_stop "$SL"
    SL=$WORK/slurm2
    slurm_local_start "$SL" 4 4
    rc=$?
fi
if [ $rc -eq 77 ]; then echo "SKIP: a private Slurm needs root and Debian's slurm/munge packages"; exit 77; fi
cleanup() { slurm_local_stop "$SL"; rm -rf "$WORK"; }
trap cleanup EXIT
[ $rc -eq 0 ] || { fail "private Slurm did not start"; finish; }
pass "private slurmctld + slurmd + munged started ($(sinfo -h -o '%P %T %N %G'))"

# trtconv-slurm and trtconv are found on PATH on the (only) node.
BIN=$WORK/bin
mkdir -p "$BIN"
ln -s "$TRTCONV" "$BIN/trtconv"
ln -s "$ROOT/slurm/trtconv-slurm" "$BIN/trtconv-slurm"
export PATH=$BIN:$PATH

MODEL=$WORK/model
gen --out "$MODEL" --layers 4 --shards 2 --hidden 128 --intermediate 256
SHARD2=$MODEL/model-00002-of-00002.safetensors
run_np 4 --model_dir "$MODEL" --output_dir "$WORK/ref" --tp_size 2 --pp_size 2 ||
    { fail "reference mpirun run"; cat "$WORK/last.log"; finish; }

# job NAME SBATCH_ARGS... -- SCRIPT TRTCONV_ARGS...: sbatch --wait; the job's
# output in $WORK/NAME.out, its exit status in $JOB_RC, seconds in $JOB_SECONDS.
job() {
    local name=$1 s; shift
    s=$(date +%s.%N)
    timeout 600 sbatch --wait --quiet --job-name="$name" --output="$WORK/$name.out" "$@"
    JOB_RC=$?
    JOB_SECONDS=$(echo "$(date +%s.%N) - $s" | bc)
}
CONV=(--model_dir "$MODEL" --tp_size 2 --pp_size 2 --progress none)

# 1. srun --mpi=pmix, --gpus-per-task=1: one fake GPU per task.
job srun1 --ntasks-per-node=4 --cpus-per-task=1 --gpus-per-task=1 --time=5 \
    "$ROOT/slurm/convert-1node.sbatch" "${CONV[@]}" --output_dir "$WORK/s1" --log_level verbose
if [ $JOB_RC -eq 0 ] && same_dir "$WORK/ref" "$WORK/s1" && "$TRTCONV" verify "$WORK/s1" >/dev/null; then
    pass "convert-1node.sbatch (srun --mpi=pmix, 4 tasks) = mpirun bytes, verify OK (${JOB_SECONDS} s)"
else
    fail "convert-1node.sbatch rc=$JOB_RC"; cat "$WORK/srun1.out"
fi
devs=$(grep -o 'placement: node-local rank [0-9] of 4, no GPU in use, CUDA_VISIBLE_DEVICES=[0-9,]*' \
    "$WORK/srun1.out" | sed 's/.*rank \([0-9]\) of 4.*DEVICES=/\1:/' | sort | tr '\n' ' ')
[ "$devs" = "0:0 1:1 2:2 3:3 " ] && pass "srun --gpus-per-task=1: ranks saw CUDA_VISIBLE_DEVICES $devs" ||
    { fail "srun GPU binding: '$devs'"; cat "$WORK/srun1.out"; }
grep -q 'trtconv-slurm: job [0-9]*: 4 task(s) on 1 node(s).*launcher srun, --timeout 2[0-9][0-9] (job time left' \
    "$WORK/srun1.out" && pass "trtconv-slurm derived --timeout from the 5-minute limit" ||
    { fail "no derived --timeout"; head -3 "$WORK/srun1.out"; }

# 2. The mpirun variant: every rank sees all four, node-local ranks differ.
job mpirun1 --ntasks-per-node=4 --cpus-per-task=1 --gpus-per-node=4 --time=5 \
    "$ROOT/slurm/convert-mpirun.sbatch" "${CONV[@]}" --output_dir "$WORK/s2" --log_level verbose
if [ $JOB_RC -eq 0 ] && same_dir "$WORK/ref" "$WORK/s2"; then
    pass "convert-mpirun.sbatch (mpirun inside the allocation) = mpirun bytes (${JOB_SECONDS} s)"
else
    fail "convert-mpirun.sbatch rc=$JOB_RC"; cat "$WORK/mpirun1.out"
fi
devs=$(grep -o 'placement: node-local rank [0-9] of 4, no GPU in use, CUDA_VISIBLE_DEVICES=[0-9,]* SLURM_LOCALID=[0-9]*' \
    "$WORK/mpirun1.out" | sed 's/.*rank \([0-9]\) of 4.*DEVICES=\([0-9,]*\) SLURM_LOCALID=\([0-9]*\)/\1:\2:\3/' | sort | tr '\n' ' ')
[ "$devs" = "0:0,1,2,3:0 1:0,1,2,3:0 2:0,1,2,3:0 3:0,1,2,3:0 " ] &&
    pass "mpirun in sbatch: all GPUs visible, SLURM_LOCALID 0 everywhere, node-local ranks 0-3 (rank:devices:localid $devs)" ||
    { fail "mpirun placement: '$devs'"; cat "$WORK/mpirun1.out"; }

# 3. The multi-node script, shrunk to the one node this Slurm has.
job multi1 --nodes=1 --ntasks-per-node=4 --cpus-per-task=1 --gpus-per-task=1 --time=5 \
    "$ROOT/slurm/convert-multinode.sbatch" "${CONV[@]}" --output_dir "$WORK/s3"
[ $JOB_RC -eq 0 ] && same_dir "$WORK/ref" "$WORK/s3" &&
    pass "convert-multinode.sbatch (--nodes=1) = mpirun bytes" ||
    { fail "convert-multinode.sbatch rc=$JOB_RC"; cat "$WORK/multi1.out"; }

# 4. A rank killed under srun: --kill-on-bad-exit ends the step, the job
#    fails, no config.json; --resume in a new job completes the same bytes.
export LD_PRELOAD=$FAULT_SHIM TC_FAULT_OP=pread TC_FAULT_PATH=$SHARD2 TC_FAULT_RANK=3 TC_FAULT_AFTER=1
job kill1 --ntasks-per-node=4 --cpus-per-task=1 --gpus-per-task=1 --time=5 \
    "$ROOT/slurm/convert-1node.sbatch" "${CONV[@]}" --output_dir "$WORK/s4"
unset LD_PRELOAD TC_FAULT_OP TC_FAULT_PATH TC_FAULT_RANK TC_FAULT_AFTER
if [ $JOB_RC -ne 0 ] && [ ! -e "$WORK/s4/config.json" ] && grep -q 'task 3' "$WORK/kill1.out" &&
    [ "$(echo "$JOB_SECONDS < 30" | bc)" = 1 ]; then
    pass "rank 3 killed under srun: job failed (rc $JOB_RC) in ${JOB_SECONDS} s, srun names task 3, no config.json"
else
    fail "killed rank: rc=$JOB_RC ${JOB_SECONDS} s"; cat "$WORK/kill1.out"
fi
job resume1 --ntasks-per-node=4 --cpus-per-task=1 --gpus-per-task=1 --time=5 \
    "$ROOT/slurm/convert-1node.sbatch" "${CONV[@]}" --output_dir "$WORK/s4" --resume
[ $JOB_RC -eq 0 ] && same_dir "$WORK/ref" "$WORK/s4" && pass "--resume job after the kill = mpirun bytes" ||
    { fail "resume job rc=$JOB_RC"; cat "$WORK/resume1.out"; }

# 5. Singletons: trtconv started by the batch script itself in a 4-task
#    allocation refuses before touching the output; srun --mpi=none fails.
job single1 --ntasks=4 --cpus-per-task=1 --time=5 \
    --wrap="trtconv --model_dir $MODEL --output_dir $WORK/s5 --tp_size 2 --pp_size 2"
if [ $JOB_RC -eq 5 ] && grep -q 'singleton (world size 1) but the launcher environment says SLURM_NTASKS=4' \
    "$WORK/single1.out" && [ ! -e "$WORK/s5" ]; then
    pass "trtconv without srun in a 4-task allocation refused (exit 5, names SLURM_NTASKS=4, no output dir)"
else
    fail "singleton in batch script: rc=$JOB_RC"; cat "$WORK/single1.out"
fi
job single2 --ntasks=2 --cpus-per-task=1 --time=5 \
    --wrap="srun --mpi=none trtconv --model_dir $MODEL --output_dir $WORK/s6 --tp_size 2"
[ $JOB_RC -ne 0 ] && [ ! -e "$WORK/s6/config.json" ] &&
    pass "srun --mpi=none: job failed (rc $JOB_RC), no config.json" ||
    { fail "srun --mpi=none rc=$JOB_RC"; cat "$WORK/single2.out"; }

# 6. A hung rank: trtconv-slurm's --timeout (time limit 2 min - margin 80 s)
#    stops every rank with exit 6 before Slurm's own kill at 120 s.
export LD_PRELOAD=$FAULT_SHIM TC_FAULT_OP=pread TC_FAULT_PATH=$SHARD2 TC_FAULT_RANK=2 TC_FAULT_ACTION=hang
export TRTCONV_SLURM_MARGIN=80
job hang1 --ntasks-per-node=4 --cpus-per-task=1 --gpus-per-task=1 --time=2 \
    "$ROOT/slurm/convert-1node.sbatch" "${CONV[@]}" --output_dir "$WORK/s7"
unset LD_PRELOAD TC_FAULT_OP TC_FAULT_PATH TC_FAULT_RANK TC_FAULT_ACTION TRTCONV_SLURM_MARGIN
if [ $JOB_RC -eq 6 ] && [ ! -e "$WORK/s7/config.json" ] && grep -q -- '--timeout' "$WORK/hang1.out" &&
    [ "$(echo "$JOB_SECONDS < 100" | bc)" = 1 ]; then
    pass "hung rank: every rank stopped at the derived --timeout, job exit 6 in ${JOB_SECONDS} s (limit 120 s), no config.json"
else
    fail "hung rank: rc=$JOB_RC ${JOB_SECONDS} s"; cat "$WORK/hang1.out"
fi
[ -z "$(squeue -h)" ] && pass "no job left in the queue" || { fail "jobs left"; squeue; }
finish
