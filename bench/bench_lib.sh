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
# llama8b_model BUILD DIR LAYERS DTYPE: the Llama-3-8B-shaped model the
# benchmarks share (hidden 4096, 32 heads, 8 KV heads, intermediate 14336,
# vocab 128256, llama3 rope, 4 shards) in DIR/model, made once and again
# when LAYERS changes.
llama8b_model() {
    local b=$1 dir=$2 layers=$3 dtype=$4
    if [ ! -f "$dir/model/config.json" ] || [ "$(cat "$dir/layers" 2>/dev/null)" != "$layers" ]; then
        "$b/trtconv-genmodel" --out "$dir/model" --layers "$layers" --hidden 4096 --heads 32 \
            --kv_heads 8 --intermediate 14336 --vocab 128256 --dtype "$dtype" --rope_theta 500000 \
            --rope_scaling llama3 --max_pos 131072 --shards 4 >/dev/null
        echo "$layers" >"$dir/layers"
    fi
}
# random_ids SEQS LEN: SEQS lines of {"input_ids": [LEN random ids < 128000]}
# (seeded, the same on every run) on stdout.
random_ids() {
    python3 - "$1" "$2" <<'PY'
import json, random, sys
n, L = int(sys.argv[1]), int(sys.argv[2])
r = random.Random(0)
for _ in range(n):
    print(json.dumps({"input_ids": [r.randrange(128000) for _ in range(L)]}))
PY
}
