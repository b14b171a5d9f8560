# bench_lib.sh (sourced by bench/bench_*.sh): timing helpers shared by the
# benchmarks. The caller sets BENCH_OUT (the output directory each run
# starts without) and BENCH_LOG (where a run's output goes).
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# timeit CMD...: seconds of CMD (its output in $BENCH_LOG); a failing CMD
# prints its log and ends the benchmark.
timeit() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >"$BENCH_LOG" 2>&1 || { cat "$BENCH_LOG" >&2; exit 1; }
    t1=$(date +%s.%N)
    awk "BEGIN { print $t1 - $t0 }"
}
# run_n CMD...: the median seconds of REPEAT runs of CMD, each after removing
# $BENCH_OUT and a sync.
run_n() {
    local i t all=()
    for ((i = 0; i < REPEAT; i++)); do
        rm -rf "$BENCH_OUT"
        sync
        t=$(timeit "$@")
        all+=("$t")
    done
    printf '%s\n' "${all[@]}" | median
}
