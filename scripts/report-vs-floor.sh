#!/usr/bin/env bash
# `tokwatch report FILE` (default settings) against its floor
# (examples/report_floor.rs: memchr line split + serde_json typed borrowed
# parse + four hash-map folds, one thread), measured side by side:
# ROUNDS rounds, each running the floor then the report, after a page-cache
# warm-up. Prints every round, then per side the best and the median wall
# time and CPU time (user + system), and the ratios report / floor.
#
#   cargo build --release --bin tokwatch --example report_floor
#   scripts/report-vs-floor.sh [FILE] [ROUNDS]
#
# FILE defaults to /tmp/bench1m.jsonl, generated when missing (the
# 1,000,000-event native corpus, seed 7); ROUNDS to 7. TOKWATCH_BIN and
# FLOOR_BIN override the binaries; REPORT_ARGS adds arguments to the report.
set -euo pipefail
file=${1:-/tmp/bench1m.jsonl}
rounds=${2:-7}
bin=${TOKWATCH_BIN:-target/release/tokwatch}
floor=${FLOOR_BIN:-target/release/examples/report_floor}
for b in "$bin" "$floor"; do
  [[ -x $b ]] || { echo "missing $b: cargo build --release --bin tokwatch --example report_floor" >&2; exit 1; }
done
[[ -f $file ]] || "$bin" generate bench --out "$file" --events 1000000
cat "$file" >/dev/null
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "file $file ($(stat -c %s "$file") bytes); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
# shellcheck disable=SC2086
"$floor" "$file"
measure() { # prints "wall cpu" in seconds
  /usr/bin/time -f '%e %U %S' -o "$out" "$@" >/dev/null
  awk '{ printf "%.3f %.3f\n", $1, $2 + $3 }' "$out"
}
floor_runs=()
report_runs=()
for i in $(seq "$rounds"); do
  f=$(measure "$floor" "$file")
  # shellcheck disable=SC2086
  r=$(measure "$bin" report "$file" ${REPORT_ARGS:-})
  floor_runs+=("$f")
  report_runs+=("$r")
  echo "round $i: floor wall/cpu $f s · report wall/cpu $r s · load $(cut -d' ' -f1 /proc/loadavg)"
done
summary() { # best and median of column $1 over the runs given
  local col=$1
  shift
  printf '%s\n' "$@" | awk -v c="$col" '{ print $c }' | sort -n |
    awk '{ v[NR] = $1 } END { printf "%.3f %.3f\n", v[1], (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
read -r fw_best fw_med <<<"$(summary 1 "${floor_runs[@]}")"
read -r fc_best fc_med <<<"$(summary 2 "${floor_runs[@]}")"
read -r rw_best rw_med <<<"$(summary 1 "${report_runs[@]}")"
read -r rc_best rc_med <<<"$(summary 2 "${report_runs[@]}")"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "floor : wall best $fw_best s, median $fw_med s; cpu best $fc_best s, median $fc_med s"
echo "report: wall best $rw_best s, median $rw_med s; cpu best $rc_best s, median $rc_med s"
echo "report / floor: wall best $(ratio "$rw_best" "$fw_best")x, median $(ratio "$rw_med" "$fw_med")x; cpu best $(ratio "$rc_best" "$fc_best")x, median $(ratio "$rc_med" "$fc_med")x"
