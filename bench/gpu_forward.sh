#!/bin/bash
# gpu_forward.sh: the forward-pass work of the GPU machine in one call
# (docs/forward.md):
#   1. build (bench/gpu_setup.sh);
#   2. references from transformers (tests/forward/make_reference.py) for
#      four small models, and trtconv-forward on the GPU and on the CPU in
#      seven layouts (tp/pp/dp) held to them with tc-fwdcompare;
#   3. the throughput benchmark (bench/bench_forward.sh) unless SKIP_BENCH=1.
# Logs and the reference files (to commit under tests/data/forward) go to $OUT.
set -uo pipefail
. "$(dirname "$0")/gpu_setup.sh"
W=/tmp/trtconv-fwd
rm -rf "$W"; mkdir -p "$W"
python3 tests/forward/make_reference.py --genmodel build-gpu/trtconv-genmodel --out "$W" \
    >"$OUT/make_reference.log" 2>&1
echo "make_reference rc=$?"; tail -5 "$OUT/make_reference.log"
cp "$W"/*.ref.safetensors "$W/ids.jsonl" "$W/reference-summary.json" "$OUT/" 2>/dev/null
fails=0; runs=0
for case in hf_gqa_bias gen_gqa_f16 gen_mha_bf16_dynamic gen_mqa_tied_linear; do
    for layout in "1 1 1" "2 2 1" "4 4 1" "2 1 2" "4 2 2" "2 1 1" "8 2 2"; do
        set -- $layout
        np=$1 tp=$2 pp=$3
        for dev in gpu cpu; do
            log="$OUT/fwd_${case}_np${np}_tp${tp}_pp${pp}_${dev}.log"
            timeout 300 mpirun -np "$np" --bind-to none build-gpu/trtconv-forward --model_dir "$W/$case/model" \
                --input "$W/ids.jsonl" --tp_size "$tp" --pp_size "$pp" --batch_size 2 --device "$dev" \
                --dump "$W/dump.safetensors" >"$log" 2>&1 &&
                build-gpu/tests/tc-fwdcompare "$W/dump.safetensors" "$W/$case.ref.safetensors" >>"$log" 2>&1
            rc=$?
            runs=$((runs + 1))
            worst=$(grep -E "^(logits|norm|layer)" "$log" | awk '{printf "%s=%s ", $1, $3}')
            echo "$case np$np tp$tp pp$pp $dev rc=$rc $worst"
            [ $rc -eq 0 ] || fails=$((fails + 1))
            rm -f "$W/dump.safetensors"
        done
    done
done
echo "forward verification: $runs runs, $fails failed"
if [ "${SKIP_BENCH:-0}" != 1 ]; then
    BENCH_DIR=/tmp/trtconv-bench bench/bench_forward.sh build-gpu >"$OUT/bench_forward.log" 2>&1
    echo "bench_forward rc=$?"; cat "$OUT/bench_forward.log"
fi
