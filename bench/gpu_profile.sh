#!/bin/bash
# gpu_profile.sh: where the calibration's time goes on the GPU machine (issue
# 23 item 3: 60% of the dense float16 peak), in one call: build
# (gpu_setup.sh), the Llama-3-8B-shaped model with LAYERS layers (default
# 32), SEQS x LEN random ids (512 x 512), then for each method of METHODS
# (';'-separated flag sets, after the defaults so that they override them,
# e.g. --calib_batch_size 16; default SmoothQuant per-channel per-token +
# INT8 KV, and FP8 + FP8 KV) a plain run (the total) and one with
# TRTCONV_FWD_PROFILE=$PROFILE (default `events`: the GPU time per
# operation class from CUDA events, no waits, and the time the GPU did none
# of them; `1`: every operation synchronised, the shares, not the total).
# CTEST_RE (default cuda_fwd; empty: none) runs that ctest selection of the
# CUDA build first, so that no timing is of a wrong kernel; then
# bench_fwd_kernels times the non-GEMM kernels alone against a copy. With
# .carry/old-src.tar.gz (scripts/prepare-gpu-carry.sh with OLD_REV) that
# commit is built too, its bench_fwd_kernels and plain runs follow, then
# the new build's runs again: a baseline in the same call. GEMM_SEQ (default 1): bench/gemm_algos.cu
# seq. NCU (kernel names): Nsight Compute on them (below). FUSED_AB=1: the new build with
# TRTCONV_CALIB_MAXIMA=fused too (below). LAYERS70: the 70B shape too
# (PROFILE70=events: those runs profiled, bench_calib_70b.sh; METHODS70, ENV70: below;
# OLD70=0: not the old build's). PROFILE8=0: the 8B runs unprofiled only. ENV8: below.
# NCU_ENGINE: Nsight Compute inside a run (below). RAM_AB=1: the new build's
# plain runs again with the checkpoint written to memory (below). Every run and gemm_algos
# seq also print the SM clock, power and throttle reasons they ran at
# (gpu_clocks.sh; samples in $OUT/clocks.csv). Logs under $OUT.
set -uo pipefail
. "$(dirname "$0")/gpu_setup.sh"
. "$(dirname "$0")/bench_lib.sh"
. "$(dirname "$0")/gpu_clocks.sh"
if [ -n "${CTEST_RE-cuda_fwd}" ]; then
    (cd build-gpu && ctest -j4 -R "${CTEST_RE:-cuda_fwd}" --output-on-failure) >"$OUT/ctest.log" 2>&1
    rc=$?
    echo "ctest -R ${CTEST_RE:-cuda_fwd}: $(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tr '\n' ' ')"
    grep -E "FAIL|Failed|\*\*\*" "$OUT/ctest.log" | head -20
    [ $rc = 0 ] || { echo "tests failed: no timings"; exit 1; }
fi
# The non-GEMM kernels alone against a device copy (bench/fwd_kernels.c).
echo "== bench_fwd_kernels"
build-gpu/bench_fwd_kernels 2>&1 | tee "$OUT/fwd_kernels.log"
# NCU: space-separated kernel names (e.g. "silu_mul_max_kernel flash_attn_kernel"):
# Nsight Compute's speed of light, occupancy and warp stalls of each one's
# fourth launch in bench_fwd_kernels, the key lines here, all in $OUT/ncu.txt.
for k in ${NCU:-}; do
    echo "== ncu $k"
    /usr/local/cuda/bin/ncu -k "regex:^$k" -s 3 -c 1 --section SpeedOfLight --section Occupancy \
        --section WarpStateStats --section LaunchStats build-gpu/bench_fwd_kernels >"$OUT/ncu_$k.txt" 2>&1
    cat "$OUT/ncu_$k.txt" >>"$OUT/ncu.txt"
    grep -E "^  [a-z_]+.*\(|Duration|DRAM Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Block Limit|Warp Cycles Per Issued|Issue Slot|Stall|stall" \
        "$OUT/ncu_$k.txt" | head -24
done
# GEMM_SEQ=1 (default): the layer's GEMMs in the engine's order with cold and
# hot weights, at 8 and 16 sequences per micro-batch (bench/gemm_algos.cu).
if [ "${GEMM_SEQ:-1}" = 1 ]; then
    echo "== gemm_algos seq"
    nvcc -O2 -arch=sm_90 bench/gemm_algos.cu -o /tmp/gemm_algos -lcublasLt -lcublas &&
        { clocks_start gemm_seq; /tmp/gemm_algos seq 4096 && /tmp/gemm_algos seq 8192; clocks_stop; }
fi
W=/tmp/trtconv-bench/prof
LAYERS=${LAYERS:-32} SEQS=${SEQS:-512} LEN=${LEN:-512}
mkdir -p "$W"
llama8b_model build-gpu "$W" "$LAYERS" float16
random_ids "$SEQS" "$LEN" >"$W/ids.jsonl"
IFS=';' read -r -a methods <<<"${METHODS:---smoothquant 0.5 --per_channel --per_token --int8_kv_cache;--use_fp8 --fp8_kv_cache}"
B=build-gpu
# The conversion every run makes (calib, NCU_ENGINE), before its method's flags.
# OUTPUT_DIR: where the checkpoint goes (default $W/out, on the disk).
OD=${OUTPUT_DIR:-$W/out}
conv=(--model_dir "$W/model" --calib_dataset "$W/ids.jsonl"
      --calib_size "$SEQS" --calib_max_seq_length "$LEN" --calib_batch_size 8 --workers 8
      --progress none)
# calib TAG PROFILE FLAGS...: one conversion, its log in $OUT/TAG.log
calib() {
    local tag=$1 prof=$2
    shift 2
    rm -rf "$OD"
    clocks_start "$tag"
    # EV (runs, from ENV8): NAME=VALUE settings of this run, passed on by mpirun.
    local ev_x=() v
    for v in ${EV:-}; do ev_x+=(-x "${v%%=*}"); done
    # shellcheck disable=SC2086 # EV: NAME=VALUE words
    env ${EV:-} TRTCONV_FWD_PROFILE=$prof TRTCONV_LOG_ELAPSED=1 TRTCONV_CALIB_MAXIMA=${MAXIMA:-separate} \
        /usr/bin/time -f "wall %e s, max RSS %M KiB" \
        mpirun -np 1 --bind-to none -x TRTCONV_FWD_PROFILE -x TRTCONV_LOG_ELAPSED \
        -x TRTCONV_CALIB_MAXIMA "${ev_x[@]}" $B/trtconv "${conv[@]}" --output_dir "$OD" \
        --log_level verbose "$@" >"$W/$tag.log" 2>&1
    local rc=$?
    # One file for every run's log: the device tool returns few files.
    { echo "######## $tag (rc $rc): $*${EV:+ ($EV)}"; cat "$W/$tag.log"; } >>"$OUT/runs.log"
    echo "== $tag: $*${EV:+ ($EV)}, TRTCONV_FWD_PROFILE=$prof TRTCONV_CALIB_MAXIMA=${MAXIMA:-separate} (rc $rc)"
    # The lines that matter, without the log prefix (stdout comes back cut).
    grep -E "profile:|layer loop|calibrat|SmoothQuant|FP8|committed|wall|error" "$W/$tag.log" |
        sed -E 's/^trtconv\[[^]]*\] (\+[0-9.]+ s) rss ([0-9/]+ MiB) [a-z]+: /\1 \2 /' |
        tr -s " " | cut -c1-160 | tail -48
    # The output's digest: equal digests, equal bytes (new, fused, old, batch sizes).
    grep -o '"sha256_tree":[^,]*' "$OD/trtconv-manifest.json" 2>/dev/null | tr -d '\t"' | cut -c1-40
    clocks_stop
    rm -rf "$OD"
}
# ENV8: ';'-separated environment settings (e.g.
# 'TRTCONV_STREAM_PRIORITY=side;TRTCONV_STREAM_PRIORITY=main'): each method
# of the new build's runs once under each, in turn.
IFS=';' read -r -a envs8 <<<"${ENV8:-}"
[ ${#envs8[@]} -gt 0 ] || envs8=("")
runs() {
    local i=0 k
    for m in "${methods[@]}"; do
        i=$((i + 1))
        for k in "${!envs8[@]}"; do
            [ "$1" = new_ ] || [ "$k" = 0 ] || continue
            # shellcheck disable=SC2086 # a method is a set of flags
            EV=${envs8[$k]} calib "$1m${i}e$((k + 1))_plain" 0 $m
            # shellcheck disable=SC2086
            { [ "$1" = new_ ] || [ "$1" = fused_ ]; } && [ "${PROFILE8:-1}" = 1 ] &&
                EV=${envs8[$k]} calib "$1m${i}e$((k + 1))_profile" "${PROFILE:-events}" $m
        done
    done
}
runs new_
# NCU_ENGINE (a kernel-name regex, e.g. 'nvjet|gemm'): Nsight Compute's
# duration and SM clock of NCU_COUNT (default 15) matching launches of the
# first method's run after NCU_SKIP (default 3200: ten 8B layers of five
# GEMMs per micro-batch), then of gemm_algos seq, with the clocks and caches
# as the runs leave them (not ncu's locked base clock and flushed caches):
# is a GEMM slower in the engine than alone, and is it the same kernel?
if [ -n "${NCU_ENGINE:-}" ]; then
    nq=(/usr/local/cuda/bin/ncu --clock-control none --cache-control none --csv --print-units base
        --metrics gpu__time_duration.sum,smsp__cycles_elapsed.avg.per_second,launch__grid_size,launch__registers_per_thread
        -k "regex:${NCU_ENGINE}" -c "${NCU_COUNT:-15}")
    rm -rf "$OD"
    # shellcheck disable=SC2086 # a method is a set of flags
    mpirun -np 1 --bind-to none "${nq[@]}" -s "${NCU_SKIP:-3200}" build-gpu/trtconv \
        "${conv[@]}" --output_dir "$OD" ${methods[0]} >"$OUT/ncu_engine.csv" 2>&1
    echo "== ncu on the engine (${methods[0]}), rc $?"
    python3 bench/ncu_summary.py "$OUT/ncu_engine.csv"
    if [ -x /tmp/gemm_algos ]; then
        "${nq[@]}" -s 80 /tmp/gemm_algos seq 4096 >"$OUT/ncu_gemm_seq.csv" 2>&1
        echo "== ncu on gemm_algos seq 4096, rc $?"
        python3 bench/ncu_summary.py "$OUT/ncu_gemm_seq.csv"
    fi
fi
# RAM_AB=1: the plain runs with the checkpoint in /dev/shm (when it has 20
# GB free), so that the layer loop is timed without this VM's disk (about 1
# GB/s: the 8B SmoothQuant writes 0.22 GB a layer, the 70B shape 0.85 GB,
# and the hook waits for the writers when they fall behind).
if [ "${RAM_AB:-0}" = 1 ]; then
    shm_free=$(df -BG --output=avail /dev/shm 2>/dev/null | tail -1 | tr -dc 0-9)
    echo "== /dev/shm: ${shm_free:-?} GB free"
    if [ "${shm_free:-0}" -ge 20 ]; then
        OD=/dev/shm/trtconv-prof-out runs ram_
        runs back_
    fi
fi
# FUSED_AB=1: the same runs with TRTCONV_CALIB_MAXIMA=fused (the attention
# block's maxima inside its kernels), then the default's plain runs again.
if [ "${FUSED_AB:-0}" = 1 ]; then
    MAXIMA=fused runs fused_
    runs back_
fi
if [ -f .carry/old-src.tar.gz ]; then
    rm -rf /tmp/old && mkdir -p /tmp/old && tar -xzf .carry/old-src.tar.gz -C /tmp/old
    (cd /tmp/old && cmake -S . -B build -DTRTCONV_ENABLE_CUDA=ON \
        -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DBUILD_TESTING=OFF >/dev/null 2>&1 &&
        cmake --build build -j"$(nproc)" >/dev/null 2>&1) || { echo "old build failed"; exit 1; }
    B=/tmp/old/build
    echo "== bench_fwd_kernels (old build)"
    "$B/bench_fwd_kernels" 2>&1 | tee "$OUT/fwd_kernels_old.log"
    runs old_
    B=build-gpu
    runs again_
fi
rm -rf "$W"
# LAYERS70 (default 0: none): the Llama-3-70B shape with that many layers,
# each method once with the new build (and once with the old one, when
# there is one), through bench_calib_70b.sh; the model is generated once.
# METHODS70: the methods of those runs (';'-separated; default METHODS).
# ENV70: ';'-separated environment settings, each run of each method once
# under each (e.g. 'TRTCONV_SQ_WQ_THREADS=4;TRTCONV_SQ_WQ_THREADS=8').
if [ "${LAYERS70:-0}" -gt 0 ]; then
    builds=(build-gpu)
    [ -d /tmp/old/build ] && [ "${OLD70:-1}" = 1 ] && builds+=(/tmp/old/build)
    IFS=';' read -r -a envs70 <<<"${ENV70:-}"
    [ ${#envs70[@]} -gt 0 ] || envs70=("")
    methods70=("${methods[@]}")
    [ -n "${METHODS70:-}" ] && IFS=';' read -r -a methods70 <<<"$METHODS70"
    n=$((${#methods70[@]} * ${#builds[@]} * ${#envs70[@]})) k=0
    for m in "${methods70[@]}"; do
        for b in "${builds[@]}"; do
            for ev in "${envs70[@]}"; do
                k=$((k + 1))
                echo "== 70B shape, $LAYERS70 layers, $b: $m${ev:+ ($ev)}"
                keep=1
                [ $k = $n ] && keep=0
                clocks_start "70b_$k"
                # shellcheck disable=SC2086 # ev: NAME=VALUE settings
                env $ev PROFILE=${PROFILE70:-0} KEEP_MODEL=$keep LAYERS=$LAYERS70 METHOD="$m" \
                    BENCH_DIR=/tmp/trtconv-bench bash "$(dirname "$0")/bench_calib_70b.sh" "$b" 2>&1 |
                    grep -vE "^    |^[0-9.]+G"
                grep "layer loop" "$OUT/runs70.log" 2>/dev/null | tail -1 | sed 's/^trtconv[^:]*: /  /'
                clocks_stop
            done
        done
    done
fi
