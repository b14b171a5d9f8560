#!/bin/bash
# slurm_local.sh: a private single-node Slurm (slurmctld + slurmd + munged)
# for the cluster tests, after shared/spec/cluster.md §2, without touching
# /etc/slurm or a system munged: everything lives in one directory and the
# clients find it through SLURM_CONF.
#
#   source tests/cluster/slurm_local.sh
#   slurm_local_start DIR [CPUS] [GPUS]   # exports SLURM_CONF; returns 77 when impossible
#   ... sbatch / srun ...
#   slurm_local_stop DIR                  # kills the daemons it started
#
# Needs root and Debian's slurmctld, slurmd, slurm-client and munge packages
# (slurm_local_install installs them with apt-get). GPUS fake GPUs are
# character devices (/dev/null's numbers) that gres.conf hands out, so
# --gpus-per-task sets CUDA_VISIBLE_DEVICES as on a GPU node.

slurm_local_install() {
    local need=()
    command -v slurmctld >/dev/null || need+=(slurmctld)
    command -v slurmd >/dev/null || need+=(slurmd)
    command -v sbatch >/dev/null || need+=(slurm-client)
    command -v munged >/dev/null || need+=(munge)
    [ ${#need[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null || return 77
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" \
        >/dev/null || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; } || return 77
}

slurm_local_start() {
    local dir=$1 cpus=${2:-4} gpus=${3:-4}
    [ "$(id -u)" -eq 0 ] || { echo "slurm_local: needs root"; return 77; }
    slurm_local_install || { echo "slurm_local: cannot install slurm/munge"; return 77; }
    local host; host=$(hostname -s)
    mkdir -p "$dir"/{spool/ctld,spool/d,log,munge,run,dev}
    chmod 700 "$dir/munge"
    # Ports away from a system Slurm's 6817/6818, distinct per test directory,
    # below Linux's ephemeral range (32768-60999: MPI tests running beside
    # this one take ports there) and not in use now.
    local base=$(( 20000 + $(cksum <<<"$dir" | cut -d' ' -f1) % 12000 ))
    while ss -Htan "( sport = :$base or sport = :$((base + 1)) )" 2>/dev/null | grep -q .; do
        base=$(( base + 2 < 32766 ? base + 2 : 20000 ))
    done
    local g files=""
    for ((g = 0; g < gpus; g++)); do
        mknod "$dir/dev/fakegpu$g" c 1 3 2>/dev/null || return 77
    done
    [ "$gpus" -gt 0 ] && printf 'NodeName=%s Name=gpu File=%s/dev/fakegpu[0-%d]\n' \
        "$host" "$dir" $((gpus - 1)) > "$dir/gres.conf"
    cat > "$dir/slurm.conf" <<CONF
ClusterName=trtconvtest
SlurmctldHost=$host
SlurmctldPort=$base
SlurmdPort=$((base + 1))
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
MpiDefault=pmix
GresTypes=gpu
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmdParameters=config_overrides
SlurmUser=root
SlurmdUser=root
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmdSpoolDir=$dir/spool/d
StateSaveLocation=$dir/spool/ctld
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MessageTimeout=30
KillWait=5
NodeName=$host Gres=gpu:$gpus CPUs=$cpus Boards=1 SocketsPerBoard=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=30 State=UP OverSubscribe=YES
CONF
    [ "$gpus" -gt 0 ] || sed -i -e '/^GresTypes/d' -e 's/ Gres=gpu:0//' "$dir/slurm.conf"
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
    /usr/sbin/munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" \
        --seed-file="$dir/munge/seed" || return 1
    export SLURM_CONF=$dir/slurm.conf
    /usr/sbin/slurmctld -f "$SLURM_CONF" || return 1
    /usr/sbin/slurmd -f "$SLURM_CONF" || return 1
    local i
    for ((i = 0; i < 60; i++)); do
        # A controller that died (a port taken after all) would make every
        # client call wait MessageTimeout: stop at once instead.
        if ! kill -0 "$(cat "$dir/run/slurmctld.pid" 2>/dev/null)" 2>/dev/null && [ $i -gt 2 ]; then
            echo "slurm_local: slurmctld is not running"; tail -3 "$dir/log/slurmctld.log"
            return 1
        fi
        timeout 10 sinfo -h -o '%T' 2>/dev/null | grep -qx idle && return 0
        timeout 10 scontrol update nodename="$host" state=resume >/dev/null 2>&1
        sleep 0.5
    done
    echo "slurm_local: node never became idle"; sinfo 2>&1; tail -5 "$dir"/log/*.log
    return 1
}

slurm_local_stop() {
    local dir=$1 f
    for f in run/slurmd.pid run/slurmctld.pid munge/munged.pid; do
        [ -s "$dir/$f" ] && kill "$(cat "$dir/$f")" 2>/dev/null
    done
    sleep 1
    for f in run/slurmd.pid run/slurmctld.pid munge/munged.pid; do
        [ -s "$dir/$f" ] && kill -9 "$(cat "$dir/$f")" 2>/dev/null
    done
    unset SLURM_CONF
    return 0
}
