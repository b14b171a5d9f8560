# lib.sh: helpers shared by the MPI integration tests (sourced, bash).
#
# Environment (set by ctest, see tests/CMakeLists.txt): TRTCONV, GENMODEL,
# REFCONV, STCOMPARE, MPIEXEC, TRTCONV_GOLDEN_DIR. Each test gets a scratch
# directory $WORK that is removed on exit.
set -uo pipefail

: "${TRTCONV:?}" "${GENMODEL:?}" "${MPIEXEC:=mpirun}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
# Keep Open MPI on shared memory/loopback so tests run in sandboxes.
export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo

WORK=$(mktemp -d "${TMPDIR:-/tmp}/trtconv-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PASSED=0
FAILED=0

pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }

finish() {
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
    exit $?
}

# run_np N ARGS...: trtconv on N ranks; output in $WORK/last.log.
run_np() {
    local np=$1
    shift
    timeout 300 "$MPIEXEC" -np "$np" "$TRTCONV" --progress none "$@" >"$WORK/last.log" 2>&1
}

gen() { "$GENMODEL" "$@" >/dev/null; }

# same_ranks EXPECTED_DIR ACTUAL_DIR: every rank file of EXPECTED, same bytes.
same_ranks() {
    local f n=0
    for f in "$1"/rank*.safetensors; do
        cmp -s "$f" "$2/$(basename "$f")" || { echo "  differs: $(basename "$f")"; return 1; }
        n=$((n + 1))
    done
    [ "$n" -gt 0 ] && [ "$(ls "$2" | grep -c '^rank')" = "$n" ]
}

# same_dir A B: every rank*.safetensors and config.json identical.
same_dir() {
    local a=$1 b=$2 f
    [ -f "$a/config.json" ] && [ -f "$b/config.json" ] || return 1
    cmp -s "$a/config.json" "$b/config.json" || return 1
    for f in "$a"/rank*.safetensors; do
        cmp -s "$f" "$b/$(basename "$f")" || { echo "differs: $(basename "$f")"; return 1; }
    done
    [ "$(ls "$a" | grep -c '^rank')" = "$(ls "$b" | grep -c '^rank')" ]
}

# check NAME MODEL NP trtconv-args...: trtconv on NP ranks against
# tc-refconv (same arguments up to --workers), every rank file byte for byte.
check() {
    local name=$1 model=$2 np=$3
    shift 3
    local a=$WORK/$name.trt b=$WORK/$name.ref
    mkdir -p "$b"
    if ! run_np "$np" --model_dir "$model" --output_dir "$a" "$@"; then
        fail "$name: trtconv failed"; cat "$WORK/last.log"; return
    fi
    local args=() x
    for x in "$@"; do [ "$x" = --workers ] && break; args+=("$x"); done
    if ! "$REFCONV" --model_dir "$model" --output_dir "$b" "${args[@]}"; then
        fail "$name: refconv failed"; return
    fi
    local f ok=1
    for f in "$b"/rank*.safetensors; do
        cmp -s "$f" "$a/$(basename "$f")" || { ok=0; "$STCOMPARE" "$f" "$a/$(basename "$f")"; }
    done
    [ "$(ls "$a" | grep -c '^rank')" = "$(ls "$b" | grep -c '^rank')" ] || ok=0
    [ -f "$a/config.json" ] || ok=0
    # trtconv verify derives the expected tensors from config.json alone.
    "$TRTCONV" verify "$a" >"$WORK/verify.log" 2>&1 || { ok=0; cat "$WORK/verify.log"; }
    [ $ok = 1 ] && pass "$name (bytes; verify OK)" || fail "$name"
}
