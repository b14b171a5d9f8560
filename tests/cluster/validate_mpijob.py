#!/usr/bin/python3
"""validate_mpijob.py: offline validation of a Kubeflow MPIJob (v2beta1)
manifest for trtconv, the way the API server and the MPI Operator's
controller would judge it, plus trtconv's own launch rules.

  validate_mpijob.py CRD_SPEC.yaml MANIFEST.yaml [--strict] [--print-launch]

1. Schema: the MPIJob CRD's openAPIV3Schema (CRD_SPEC.yaml, transcribed from
   kubeflow/mpi-operator; see its header), in which the pod template is
   expanded into a JSON schema built from the Kubernetes API models of
   Debian's python3-kubernetes (every PodTemplateSpec field, its type, its
   required fields). --strict adds additionalProperties: false wherever the
   schema lists the allowed properties, so a misspelt field is an error, not
   a silently pruned one (cluster.md §3.3).
2. Controller rules the CRD does not encode (mpi-operator
   pkg/apis/kubeflow/validation/validation.go): replica types Launcher and
   Worker only, Launcher replicas == 1, Worker replicas >= 1, at least one
   container, the cleanPodPolicy and restartPolicy enums, the worker pod
   names as DNS-1035 labels.
3. trtconv's launch rules: mpirun -np == slotsPerWorker x Worker replicas;
   each worker's nvidia.com/gpu == slotsPerWorker (one rank per GPU);
   --tp_size x --pp_size == -np; a trtconv --timeout below the job's
   activeDeadlineSeconds (trtconv stops with its own message first); the
   model and output directories on volumes every worker mounts, the output
   writable and shared (a persistentVolumeClaim or nfs, not emptyDir or
   hostPath, with more than one worker).
--print-launch prints the launcher's command line as JSON (for the test that
runs it). Exit status 1 on any problem, each printed as "NAME: PATH: MESSAGE".
"""
import inspect
import json
import re
import sys

import jsonschema
import kubernetes.client as k8s
import yaml

QUANTITY = {"anyOf": [{"type": "integer"}, {"type": "number"}, {"type": "string"}]}
# Fields of type Quantity (int-or-string in the API, 'str' in the Python models).
QUANTITY_FIELDS = {("V1ResourceRequirements", "limits"), ("V1ResourceRequirements", "requests"),
                   ("V1EmptyDirVolumeSource", "size_limit"), ("V1PodSpec", "overhead")}
PRIMITIVES = {"str": {"type": "string"}, "int": {"type": "integer"}, "float": {"type": "number"},
              "bool": {"type": "boolean"}, "datetime": {"type": "string"},
              "date": {"type": "string"}, "object": {}}


def _required(cls, attr):
    """The generated models refuse None for required fields in their setters."""
    try:
        return "must not be `None`" in inspect.getsource(getattr(cls, attr).fset)
    except (OSError, TypeError, AttributeError):
        return False


def _type_schema(typ, defs, owner, attr):
    if (owner, attr) in QUANTITY_FIELDS:
        inner = QUANTITY
        return {"type": "object", "additionalProperties": inner} if typ.startswith("dict(") else inner
    if typ in PRIMITIVES:
        return dict(PRIMITIVES[typ])
    m = re.fullmatch(r"list\[(.+)\]", typ)
    if m:
        return {"type": "array", "items": _type_schema(m.group(1), defs, owner, attr)}
    m = re.fullmatch(r"dict\(str, (.+)\)", typ)
    if m:
        return {"type": "object", "additionalProperties": _type_schema(m.group(1), defs, owner, attr)}
    return _model_schema(typ, defs)


def _model_schema(name, defs):
    ref = {"$ref": "#/definitions/" + name}
    if name in defs:
        return ref
    cls = getattr(k8s, name)
    defs[name] = {}  # placeholder: models refer to themselves (JSONSchemaProps-like cycles)
    props = {cls.attribute_map[a]: _type_schema(t, defs, name, a) for a, t in cls.openapi_types.items()}
    schema = {"type": "object", "properties": props, "additionalProperties": False}
    req = [cls.attribute_map[a] for a in cls.openapi_types if _required(cls, a)]
    if req:
        schema["required"] = req
    defs[name] = schema
    return ref


def _tighten(node):
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node \
                and not node.get("x-kubernetes-preserve-unknown-fields"):
            node.setdefault("additionalProperties", False)
        for v in node.values():
            _tighten(v)
    elif isinstance(node, list):
        for v in node:
            _tighten(v)


def _expand_templates(node, pod_ref):
    if isinstance(node, dict):
        for k, v in list(node.items()):
            if isinstance(v, dict) and v.get("x-trtconv-pod-template-spec"):
                node[k] = dict(pod_ref)
            else:
                _expand_templates(v, pod_ref)
    elif isinstance(node, list):
        for v in node:
            _expand_templates(v, pod_ref)


def build_schema(crd_path, strict):
    with open(crd_path) as f:
        crd = yaml.safe_load(f)
    schema = crd["openAPIV3Schema"]
    if strict:
        _tighten(schema)
    defs = {}
    pod_ref = _model_schema("V1PodTemplateSpec", defs)
    _expand_templates(schema, pod_ref)
    schema["properties"]["metadata"] = _model_schema("V1ObjectMeta", defs)
    schema["definitions"] = defs
    return schema


DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _containers(spec, role):
    return (spec.get("mpiReplicaSpecs", {}).get(role, {}).get("template", {})
            .get("spec", {}).get("containers", []))


def _launch_argv(spec):
    c = _containers(spec, "Launcher")
    if not c:
        return []
    return list(c[0].get("command", [])) + list(c[0].get("args", []))


def _opt(argv, name, default=None):
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return default


def _int(v, what, errs):
    try:
        return int(v)
    except (TypeError, ValueError):
        errs.append(f"{what}: '{v}' is not an integer")
        return None


def controller_rules(job):
    errs = []
    name = job.get("metadata", {}).get("name", "")
    spec = job.get("spec", {})
    reps = spec.get("mpiReplicaSpecs", {})
    for role in reps:
        if role not in ("Launcher", "Worker"):
            errs.append(f"spec/mpiReplicaSpecs/{role}: replica type must be Launcher or Worker")
    if reps.get("Launcher", {}).get("replicas", 1) != 1:
        errs.append("spec/mpiReplicaSpecs/Launcher/replicas: must be 1")
    workers = reps.get("Worker", {}).get("replicas", 1)
    if "Worker" not in reps or not isinstance(workers, int) or workers < 1:
        errs.append("spec/mpiReplicaSpecs/Worker/replicas: trtconv needs at least one worker")
    for role, r in reps.items():
        if not r.get("template", {}).get("spec", {}).get("containers"):
            errs.append(f"spec/mpiReplicaSpecs/{role}/template/spec/containers: at least one container")
        if r.get("restartPolicy", "Never") not in ("Always", "OnFailure", "Never", "ExitCode"):
            errs.append(f"spec/mpiReplicaSpecs/{role}/restartPolicy: must be Always, OnFailure, Never or ExitCode")
    if spec.get("runPolicy", {}).get("cleanPodPolicy", "Running") not in ("All", "Running", "None"):
        errs.append("spec/runPolicy/cleanPodPolicy: must be All, Running or None")
    if isinstance(workers, int) and workers >= 1:
        last = f"{name}-worker-{workers - 1}"
        if len(last) > 63 or not DNS1035.match(last):
            errs.append(f"metadata/name: worker pod name '{last}' is not a DNS-1035 label")
    return errs


def _mount_for(path, mounts):
    best = None
    for m in mounts:
        mp = m.get("mountPath", "").rstrip("/") or "/"
        if path == mp or path.startswith(mp + "/") or mp == "/":
            if best is None or len(mp) > len(best.get("mountPath", "")):
                best = m
    return best


def trtconv_rules(job):
    errs = []
    spec = job.get("spec", {})
    slots = spec.get("slotsPerWorker", 1)
    workers = spec.get("mpiReplicaSpecs", {}).get("Worker", {}).get("replicas", 1)
    argv = _launch_argv(spec)
    if not argv or argv[0] != "mpirun":
        return errs + ["Launcher: the first container's command must be mpirun"]
    if "trtconv" not in argv:
        return errs + ["Launcher: mpirun must start trtconv"]
    mpi_argv, conv_argv = argv[:argv.index("trtconv")], argv[argv.index("trtconv") + 1:]
    ranks = slots * workers if isinstance(slots, int) and isinstance(workers, int) else None
    np_ = _int(_opt(mpi_argv, "-np", _opt(mpi_argv, "-n")), "Launcher: mpirun -np", errs)
    if np_ is not None and ranks is not None and np_ != ranks:
        errs.append(f"Launcher: mpirun -np {np_} != slotsPerWorker x Worker replicas = {ranks}")
    tp = _int(_opt(conv_argv, "--tp_size", "1"), "trtconv --tp_size", errs)
    pp = _int(_opt(conv_argv, "--pp_size", "1"), "trtconv --pp_size", errs)
    if tp and pp and np_ is not None and tp * pp != np_:
        errs.append(f"trtconv: --tp_size {tp} x --pp_size {pp} = {tp * pp} != mpirun -np {np_}")
    deadline = spec.get("runPolicy", {}).get("activeDeadlineSeconds")
    timeout = _opt(conv_argv, "--timeout")
    if timeout is None:
        errs.append("trtconv: no --timeout (a hung rank would wait for the job's deadline)")
    elif deadline is not None:
        t = _int(timeout, "trtconv --timeout", errs)
        if t is not None and t >= deadline:
            errs.append(f"trtconv: --timeout {t} must be below runPolicy.activeDeadlineSeconds {deadline}")
    wspec = spec.get("mpiReplicaSpecs", {}).get("Worker", {}).get("template", {}).get("spec", {})
    volumes = {v.get("name"): v for v in wspec.get("volumes", [])}
    for c in wspec.get("containers", []):
        gpus = c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
        if gpus is None or _int(gpus, "Worker nvidia.com/gpu", errs) != slots:
            errs.append(f"Worker container {c.get('name')}: resources.limits nvidia.com/gpu must equal "
                        f"slotsPerWorker ({slots}), one rank per GPU")
    wc = wspec.get("containers", [{}])[0]
    for flag, writable in (("--model_dir", False), ("--meta_ckpt_dir", False), ("--output_dir", True)):
        path = _opt(conv_argv, flag)
        if path is None:
            if flag != "--meta_ckpt_dir" and not (flag == "--model_dir" and _opt(conv_argv, "--meta_ckpt_dir")):
                errs.append(f"trtconv: {flag} missing")
            continue
        m = _mount_for(path, wc.get("volumeMounts", []))
        if m is None:
            errs.append(f"trtconv {flag} {path}: not on a volume the workers mount")
            continue
        if writable and m.get("readOnly"):
            errs.append(f"trtconv {flag} {path}: its volume is mounted readOnly")
        vol = volumes.get(m.get("name"), {})
        if isinstance(workers, int) and workers > 1 and ("emptyDir" in vol or "hostPath" in vol):
            errs.append(f"trtconv {flag} {path}: volume '{m.get('name')}' is not shared between "
                        f"workers (use a ReadWriteMany persistentVolumeClaim)")
    return errs


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    strict = "--strict" in argv
    schema = build_schema(args[0], strict)
    validator = jsonschema.Draft7Validator(schema)
    with open(args[1]) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    jobs = [d for d in docs if d.get("kind") == "MPIJob"]
    if not jobs:
        print(f"{args[1]}: no MPIJob document")
        return 1
    failed = 0
    for job in jobs:
        name = job.get("metadata", {}).get("name", "?")
        if job.get("apiVersion") != "kubeflow.org/v2beta1":
            msgs = [f"apiVersion: '{job.get('apiVersion')}' is not kubeflow.org/v2beta1"]
        else:
            msgs = []
        msgs += [f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}"
                 for e in sorted(validator.iter_errors(job), key=lambda e: list(map(str, e.absolute_path)))]
        msgs += controller_rules(job) + trtconv_rules(job)
        for m in msgs:
            print(f"{name}: {m}")
        print(f"{name}: {'FAIL' if msgs else 'ok'}{' (strict)' if strict else ''}")
        failed += bool(msgs)
        if "--print-launch" in argv and not msgs:
            print("LAUNCH " + json.dumps(_launch_argv(job["spec"])))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
