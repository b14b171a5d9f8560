#!/bin/bash
# Multi-host run on one machine (shared/spec/cluster.md §4): two network
# namespaces joined by a veth pair, each with its own hostname (unshare
# --uts), Open MPI over TCP through a plm_rsh_agent that enters the
# namespace. Checks: trtconv tp 2 x pp 2 on 4 ranks over 2 "hosts" equals the
# single-host run byte for byte; a rank killed on the second host ends the
# job within 30 s with mpirun naming the rank and host, no config.json, and
# --resume across the hosts completes; a cut link mid-conversion: every
# trtconv rank ends at its --timeout (exit 6), mpirun (--timeout as the
# backstop, since its daemons cannot reach the cut host) ends non-zero, no
# trtconv process is left and no config.json. Needs root and iproute2
# (skips with 77 otherwise); uses 10.77.<n>.0/24 inside namespaces it
# creates and removes.
. "$(dirname "$0")/lib.sh"
: "${FAULT_SHIM:?}"

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! command -v unshare >/dev/null ||
    ! ip netns add "tcprobe$$" 2>/dev/null; then
    echo "SKIP: needs root, iproute2 and unshare (network namespaces)"
    exit 77
fi
ip netns del "tcprobe$$"
A=tch1x$$ B=tch2x$$
NET=10.77.$(($$ % 200 + 20))
cleanup() {
    ip netns del "$A" 2>/dev/null
    ip netns del "$B" 2>/dev/null
    rm -rf "/etc/netns/$A" "/etc/netns/$B"
    pkill -9 -f -- "--output_dir $WORK/" 2>/dev/null
    # The Open MPI daemon of host B outlives a cut link (mpirun cannot reach
    # it to stop it); its command line names this test's rsh agent.
    pkill -9 -f -- "$WORK/agent" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
ip netns add "$A" && ip netns add "$B" &&
    ip link add "v$A" type veth peer name "v$B" &&
    ip link set "v$A" netns "$A" && ip link set "v$B" netns "$B" &&
    ip -n "$A" addr add "$NET.1/24" dev "v$A" && ip -n "$B" addr add "$NET.2/24" dev "v$B" &&
    ip -n "$A" link set lo up && ip -n "$B" link set lo up &&
    ip -n "$A" link set "v$A" up && ip -n "$B" link set "v$B" up || { fail "namespace setup"; finish; }
mkdir -p "/etc/netns/$A" "/etc/netns/$B"
for h in "$A" "$B"; do
    printf '127.0.0.1 localhost\n%s.1 %s\n%s.2 %s\n' "$NET" "$A" "$NET" "$B" >"/etc/netns/$h/hosts"
done
cat >"$WORK/agent" <<'AGENT'
#!/bin/sh
host=$1; shift
# Open MPI may prefix the daemon command with "PATH=... ; export PATH ; ...":
# run it as shell text, not through exec.
exec ip netns exec "$host" unshare --uts /bin/sh -c "hostname $host && $*"
AGENT
chmod +x "$WORK/agent"
printf '%s slots=2\n%s slots=2\n' "$A" "$B" >"$WORK/hostfile"

# mh_run SECONDS MPIRUN_ARGS... : mpirun inside host A; log in $WORK/last.log.
mh_run() {
    local limit=$1
    shift
    timeout "$limit" ip netns exec "$A" unshare --uts /bin/sh -c "hostname $A && exec $MPIEXEC \
        --allow-run-as-root -np 4 --hostfile $WORK/hostfile --mca plm_rsh_agent $WORK/agent \
        --mca plm_rsh_no_tree_spawn 1 --mca btl tcp,self,vader --mca btl_tcp_if_include $NET.0/24 \
        --mca oob_tcp_if_include $NET.0/24 $*" >"$WORK/last.log" 2>&1
}

M=$WORK/model
gen --out "$M" --layers 4 --hidden 64 --heads 4 --kv_heads 2 --intermediate 128 --vocab 96 \
    --dtype float16 --shards 2 --seed 31
ARGS="--model_dir $M --tp_size 2 --pp_size 2 --progress none"
run_np 4 $ARGS --output_dir "$WORK/single" || { cat "$WORK/last.log"; finish; }

# 1. Two hosts, same bytes.
rc=0; mh_run 120 "$TRTCONV" $ARGS --output_dir "$WORK/multi" || rc=$?
[ $rc = 0 ] && same_dir "$WORK/single" "$WORK/multi" && "$TRTCONV" verify "$WORK/multi" >/dev/null &&
    grep -q "trtconv\[0/4 $A\]" "$WORK/last.log" &&
    pass "4 ranks on 2 network-namespace hosts ($A, $B): byte-identical to the single-host run" ||
    { fail "multi-host run (rc $rc)"; cat "$WORK/last.log"; }

# 2. A rank killed on host B mid-write.
out=$WORK/killed
t0=$SECONDS; rc=0
mh_run 120 -x LD_PRELOAD="$FAULT_SHIM" -x TC_FAULT_OP=pwrite -x TC_FAULT_PATH=.partial \
    -x TC_FAULT_RANK=3 -x TC_FAULT_AFTER=2 "$TRTCONV" $ARGS --output_dir "$out" || rc=$?
dt=$((SECONDS - t0))
if [ $rc -ne 0 ] && [ $dt -le 30 ] && [ ! -e "$out/config.json" ] &&
    grep -q "rank 3 .*on node $B exited on signal 9" "$WORK/last.log"; then
    pass "rank 3 killed on $B: job ends in ${dt}s (exit $rc), mpirun names rank and host, no config.json"
else
    fail "kill on host B: rc $rc in ${dt}s"; cat "$WORK/last.log"
fi
rc=0; mh_run 120 "$TRTCONV" $ARGS --output_dir "$out" --resume || rc=$?
[ $rc = 0 ] && same_dir "$WORK/single" "$out" && pass "--resume across the two hosts equals the single-host run" ||
    { fail "--resume across hosts (rc $rc)"; cat "$WORK/last.log"; }

# 3. The link to host B cut while rank 3 (on B) is inside a read: nothing
# reports an error (MPI over TCP just waits); --timeout 8 ends every trtconv
# rank, mpirun --timeout 30 ends mpirun, whose daemon on B is unreachable.
out=$WORK/cut
t0=$SECONDS; rc=0
mh_run 120 --timeout 30 -x LD_PRELOAD="$FAULT_SHIM" -x TC_FAULT_OP=pread -x TC_FAULT_PATH=model-00002 \
    -x TC_FAULT_RANK=3 -x TC_FAULT_ACTION=hang "$TRTCONV" $ARGS --output_dir "$out" --timeout 8 &
pid=$!
for _ in $(seq 100); do grep -q "fault_shim" "$WORK/last.log" 2>/dev/null && break; sleep 0.2; done
ip -n "$B" link set "v$B" down
wait $pid || rc=$?
dt=$((SECONDS - t0))
sleep 1
left=$(pgrep -f -- "--output_dir $out" | wc -l)
if [ $rc -ne 0 ] && [ $dt -le 45 ] && [ "$left" = 0 ] && [ ! -e "$out/config.json" ] &&
    grep -q -- "--timeout 8 s reached" "$WORK/last.log"; then
    pass "link to $B cut: trtconv ranks stop at --timeout 8, the job ends in ${dt}s (exit $rc), no process left, no config.json"
else
    fail "link cut: rc $rc in ${dt}s, $left process(es) left"; cat "$WORK/last.log"
fi
finish
