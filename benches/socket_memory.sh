#!/usr/bin/env bash
# Peak memory of live mode fed N distinct keys over a unix socket
# (BENCHMARKS.md, "Memory at scale"):
#
#   benches/socket_memory.sh target/release/tokwatch runs 1000000
#   benches/socket_memory.sh target/release/tokwatch agents 1000000
#
# Starts `tokwatch --listen unix:SOCK --jsonl`, sends N native lines from
# benches/distinct_keys.py, waits for a snapshot counting all N events, and
# prints that snapshot's totals and tokwatch's peak RSS (VmHWM).
set -euo pipefail
bin=${1:?tokwatch binary}
kind=${2:-runs}
n=${3:-1000000}
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
sock=$dir/tw.sock
"$bin" --listen "unix:$sock" --jsonl --interval 1s >"$dir/out.jsonl" 2>"$dir/err" &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
start=$(date +%s.%N)
python3 "$here/distinct_keys.py" "$kind" "$n" --socket "$sock"
for _ in $(seq 600); do
  last=$(tail -n 1 "$dir/out.jsonl")
  events=$(printf '%s' "$last" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read() or "{}").get("totals",{}).get("events",0))' 2>/dev/null || echo 0)
  [ "$events" = "$n" ] && break
  sleep 0.5
done
end=$(date +%s.%N)
printf '%s' "$last" | python3 -c '
import json, sys
s = json.loads(sys.stdin.read())
t = s["totals"]
print("events", t["events"], "tokens", t["total_tokens"], "cost_usd", t["cost_usd"],
      "runs held", t["runs"], "runs evicted", t.get("runs_evicted", 0),
      "agents listed", len(s["by_agent"]), "last agent row", s["by_agent"][-1]["agent"])'
echo "seconds to count all: $(echo "$end - $start" | bc)"
grep -E 'VmHWM|VmRSS' "/proc/$pid/status"
