#!/bin/bash
# Kubernetes MPIJob (issue 7 item 3), offline: k8s/mpijob.yaml against the
# MPI Operator's v2beta1 CRD schema (tests/cluster/mpijob-v2beta1-crd-spec.yaml,
# pod template from Debian's python3-kubernetes models) in strict mode, the
# controller's rules and trtconv's launch rules; ten broken variants must be
# refused with the right message; then the launcher's exact mpirun command
# line runs here (16 ranks, tp 8 x pp 2, SmoothQuant + INT8 KV) with the
# volume paths pointed at a generated model, and the result passes
# trtconv verify. Needs /usr/bin/python3 with python3-yaml,
# python3-jsonschema and python3-kubernetes (scripts/install-deps.sh).
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3
CRD=$ROOT/tests/cluster/mpijob-v2beta1-crd-spec.yaml
VALIDATE=$ROOT/tests/cluster/validate_mpijob.py
MANIFEST=$ROOT/k8s/mpijob.yaml
if ! $PY -c 'import yaml, jsonschema, kubernetes.client' 2>/dev/null; then
    echo "SKIP: needs python3-yaml, python3-jsonschema and python3-kubernetes"
    exit 77
fi

if $PY "$VALIDATE" "$CRD" "$MANIFEST" --strict >"$WORK/v.log" 2>&1; then
    pass "k8s/mpijob.yaml valid (CRD schema strict, controller and trtconv rules): $(tail -1 "$WORK/v.log")"
else
    fail "k8s/mpijob.yaml refused"; cat "$WORK/v.log"
fi

# mutate NAME PYTHON-STATEMENT EXPECTED [--strict|--lax]: the manifest with one
# change (job = the parsed document, spec/launcher/worker shortcuts) must be
# refused with EXPECTED in the output.
mutate() {
    local name=$1 stmt=$2 want=$3 mode=${4:---strict}
    $PY - "$MANIFEST" "$WORK/$name.yaml" "$stmt" <<'PYEOF'
import sys, yaml
job = yaml.safe_load(open(sys.argv[1]))
spec = job["spec"]
launcher = spec["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]
worker = spec["mpiReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
def set_arg(flag, value):
    a = launcher["args"]; a[a.index(flag) + 1] = value
exec(sys.argv[3])
yaml.safe_dump(job, open(sys.argv[2], "w"), sort_keys=False)
PYEOF
    local args=("$CRD" "$WORK/$name.yaml")
    [ "$mode" = --strict ] && args+=(--strict)
    if $PY "$VALIDATE" "${args[@]}" >"$WORK/$name.log" 2>&1; then
        fail "$name: accepted"; return
    fi
    grep -qF -- "$want" "$WORK/$name.log" && pass "$name refused: $(grep -F -- "$want" "$WORK/$name.log" | head -1)" ||
        { fail "$name: message"; cat "$WORK/$name.log"; }
}
mutate typo_slots 'spec["slotPerWorker"] = spec.pop("slotsPerWorker")' "'slotPerWorker' was unexpected"
mutate typo_container 'worker["volumeMount"] = worker.pop("volumeMounts")' "'volumeMount' was unexpected"
mutate replicas_type 'spec["mpiReplicaSpecs"]["Worker"]["replicas"] = "2"' "'2' is not of type 'integer'" --lax
mutate mpi_enum 'spec["mpiImplementation"] = "MPICH"' "'MPICH' is not one of ['OpenMPI', 'Intel']" --lax
mutate clean_policy 'spec["runPolicy"]["cleanPodPolicy"] = "Sometimes"' "cleanPodPolicy: must be All, Running or None" --lax
mutate two_launchers 'spec["mpiReplicaSpecs"]["Launcher"]["replicas"] = 2' "Launcher/replicas: must be 1"
mutate np_mismatch 'set_arg("-np", "12")' "mpirun -np 12 != slotsPerWorker x Worker replicas = 16"
mutate gpu_mismatch 'worker["resources"]["limits"]["nvidia.com/gpu"] = 4' "nvidia.com/gpu must equal slotsPerWorker (8)"
mutate tp_mismatch 'set_arg("--tp_size", "4")' "--tp_size 4 x --pp_size 2 = 8 != mpirun -np 16"
mutate timeout_late 'set_arg("--timeout", "7200")' "--timeout 7200 must be below runPolicy.activeDeadlineSeconds 7200"
mutate output_ro 'worker["volumeMounts"][1]["readOnly"] = True' "its volume is mounted readOnly"
mutate output_local 'spec["mpiReplicaSpecs"]["Worker"]["template"]["spec"]["volumes"][1] = {"name": "ckpt", "emptyDir": {}}' \
    "is not shared between workers"
mutate no_container_name 'del worker["name"]' "'name' is a required property"

# The launcher's command, run here: /models and /ckpt point at scratch
# directories holding a generated model (tp 8 needs 8 heads) and ids.
launch=$($PY "$VALIDATE" "$CRD" "$MANIFEST" --strict --print-launch | sed -n 's/^LAUNCH //p')
mkdir -p "$WORK/models/calib" "$WORK/ckpt"
gen --out "$WORK/models/Meta-Llama-3-70B" --layers 2 --heads 8 --kv_heads 8 --hidden 128 --intermediate 256
for i in $(seq 1 8); do
    printf '{"input_ids": [1, %d, %d, %d, %d, 7, 9]}\n' $((i * 11)) $((i * 13 % 500)) $((i * 29 % 500)) $((i + 100))
done >"$WORK/models/calib/cnn_dailymail_ids.jsonl"
mapfile -t argv < <($PY -c '
import json, sys
argv = json.loads(sys.argv[1])
root = sys.argv[2]
for a in argv:
    if a.startswith("/models/") or a.startswith("/ckpt/"):
        a = root + a
    print(a)' "$launch" "$WORK")
argv[0]=$MPIEXEC
for i in "${!argv[@]}"; do [ "${argv[$i]}" = trtconv ] && argv[$i]=$TRTCONV; done
if timeout 600 "${argv[@]}" --progress none >"$WORK/launch.log" 2>&1 &&
    "$TRTCONV" verify "$WORK/ckpt/llama3-70b-sq-tp8-pp2" >"$WORK/verify.log" 2>&1; then
    pass "the launcher's mpirun line (16 ranks, tp 8 x pp 2, SmoothQuant + INT8 KV) converted; verify OK"
else
    fail "the launcher's mpirun line"; tail -20 "$WORK/launch.log"; cat "$WORK/verify.log"
fi
finish
