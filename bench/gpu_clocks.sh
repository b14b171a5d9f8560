# gpu_clocks.sh (sourced): what the GPU's clocks and power did during a
# run. The dense float16 peak of 989 TFLOP/s is at the H100 SXM's 1,830 MHz
# boost clock; a GEMM that runs at 1,600 MHz under its power cap cannot pass
# 87% of it, so a timing that is compared with the peak needs the clock it
# ran at (issue 23 item 3).
#   clocks_start TAG   sample every 100 ms in the background
#   clocks_stop        stop, print one line: SM clock median / min / max,
#                      power mean / max, the throttle reasons seen (bits of
#                      clocks_event_reasons.active, by name), and append the
#                      samples to $OUT/clocks.csv
_clk_pid= _clk_tag= _clk_file=
clocks_start() {
    _clk_tag=$1 _clk_file=$(mktemp)
    nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_event_reasons.active \
        --format=csv,noheader,nounits -lms 100 >"$_clk_file" 2>/dev/null &
    _clk_pid=$!
}
clocks_stop() {
    [ -n "$_clk_pid" ] || return 0
    kill "$_clk_pid" 2>/dev/null
    wait "$_clk_pid" 2>/dev/null
    _clk_pid=
    sed "s/^/$_clk_tag, /" "$_clk_file" >>"$OUT/clocks.csv"
    python3 - "$_clk_tag" "$_clk_file" <<'EOF'
import sys, statistics
tag, path = sys.argv[1], sys.argv[2]
names = {0x1: "idle", 0x2: "app-clock", 0x4: "sw-power-cap", 0x8: "hw-slowdown",
         0x20: "sw-thermal", 0x40: "hw-thermal", 0x80: "hw-power-brake"}
sm, pw, seen = [], [], set()
for line in open(path):
    f = [x.strip() for x in line.split(",")]
    if len(f) < 6:
        continue
    try:
        s, p, r = float(f[1]), float(f[3]), int(f[5], 16)
    except ValueError:
        continue
    if p < 150:  # the GPU between runs, not running one
        continue
    sm.append(s); pw.append(p)
    seen |= {n for b, n in names.items() if r & b}
if not sm:
    print(f"clocks {tag}: no busy samples")
else:
    print(f"clocks {tag}: SM {statistics.median(sm):.0f} MHz median ({min(sm):.0f}-{max(sm):.0f}) over "
          f"{len(sm)} busy samples; power {statistics.mean(pw):.0f} W mean, {max(pw):.0f} W max; "
          f"reasons: {' '.join(sorted(seen)) or 'none'}")
EOF
    rm -f "$_clk_file"
}
