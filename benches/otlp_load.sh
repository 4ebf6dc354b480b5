#!/usr/bin/env bash
# What one tokwatch sustains over OTLP (BENCHMARKS.md, "Fleet: OTLP ingest
# (issue 12)"; docs/fleet.md, "What one tokwatch sustains"):
#
#   benches/otlp_load.sh                       # defaults below
#   TRACES=50000 CONCURRENCY=8 benches/otlp_load.sh
#
# Builds tokwatch and examples/otlp_load in release mode (CARGO_TARGET_DIR,
# default target/ of this checkout), starts ONE tokwatch with an OTLP/HTTP and
# an OTLP/gRPC listener on loopback (ports chosen by the system, read from
# its stderr; a tokwatch without --otlp-grpc skips the grpc phase), and, in
# turn:
#   1. http   — the generator over OTLP/HTTP protobuf, as fast as acknowledged;
#   2. grpc   — the same workload shape (other ids) over OTLP/gRPC;
#   3. steady — OTLP/HTTP at a fixed STEADY_RATE spans/s for STEADY_SECONDS,
#               where tokwatch's memory and CPU are sampled at steady state;
#   4. file   — the Collector file-exporter route: the same spans as OTLP/JSON
#               lines in a file, read by a second tokwatch with --follow.
# After each phase it waits (deadline) until tokwatch counts every call the
# generator had acknowledged, and checks calls, every token bucket, the exact
# cost and unpriced calls against what was sent: nothing lost, nothing counted
# twice. RSS (VmRSS, sampled every 0.5 s) and VmHWM come from /proc, CPU from
# /proc/PID/stat (user+system ticks over the phase's wall time); the
# generator's own CPU from /usr/bin/time (it shares the machine).
#
# tokwatch reports through --jsonl snapshots (every 1 s); when it has
# --metrics, /metrics is scraped too and its sums are checked as well. With
# HEADLESS=1 (needs --headless and --metrics) tokwatch runs headless and the
# totals come from /metrics alone.
set -euo pipefail

TRACES=${TRACES:-40000}            # traces per burst phase (5 spans each by default)
CHATS=${CHATS:-3}                  # chat spans per trace (spans per trace = CHATS + 2)
CONCURRENCY=${CONCURRENCY:-4}      # requests in flight
SPANS_PER_REQUEST=${SPANS_PER_REQUEST:-512}   # an SDK batch processor exports at most 512
STEADY_RATE=${STEADY_RATE:-10000}  # spans/s in the steady phase (0: skip it)
STEADY_SECONDS=${STEADY_SECONDS:-60}
FILE_PHASE=${FILE_PHASE:-1}
HEADLESS=${HEADLESS:-0}
PHASES=${PHASES:-http grpc steady file}

here=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$here/target}
export CARGO_TARGET_DIR=$target
echo "== building (release, CARGO_TARGET_DIR=$target)"
(cd "$here" && cargo build --release --quiet --bin tokwatch --example otlp_load)
tw=$target/release/tokwatch
gen=$target/release/examples/otlp_load

dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

has_flag() { "$tw" --help 2>/dev/null | grep -q -- "$1"; }
metrics=0
has_flag '--metrics' && metrics=1
if [ "$HEADLESS" = 1 ] && { [ "$metrics" = 0 ] || ! has_flag '--headless'; }; then
  echo "HEADLESS=1 needs --headless and --metrics, which this tokwatch lacks" >&2
  exit 2
fi

grpc=0
has_flag '--otlp-grpc' && grpc=1
args=(--otlp 127.0.0.1:0)
[ "$grpc" = 1 ] && args+=(--otlp-grpc 127.0.0.1:0)
[ "$metrics" = 1 ] && args+=(--metrics 127.0.0.1:0)
if [ "$HEADLESS" = 1 ]; then
  args+=(--headless)
else
  args+=(--jsonl --interval 1s --top 1)
fi
"$tw" "${args[@]}" >"$dir/out.jsonl" 2>"$dir/err" &
tw_pid=$!
pids+=("$tw_pid")

listening() { sed -n "s/^tokwatch: $1 listening on \([^ ]*\).*/\1/p" "$dir/err" | head -n 1; }
for _ in $(seq 200); do
  http_addr=$(listening otlp-http); grpc_addr=$(listening otlp-grpc)
  [ -n "$http_addr" ] && { [ "$grpc" = 0 ] || [ -n "$grpc_addr" ]; } && break
  kill -0 "$tw_pid" 2>/dev/null || { cat "$dir/err" >&2; exit 1; }
  sleep 0.1
done
[ -n "$http_addr" ] && { [ "$grpc" = 0 ] || [ -n "$grpc_addr" ]; } || { echo "tokwatch did not say where it listens" >&2; cat "$dir/err" >&2; exit 1; }
metrics_addr=""
[ "$metrics" = 1 ] && metrics_addr=$(listening metrics)
echo "== tokwatch $("$tw" --version 2>/dev/null | head -n 1): otlp-http $http_addr, otlp-grpc ${grpc_addr:-(this tokwatch has no --otlp-grpc)}${metrics_addr:+, metrics $metrics_addr}"
echo "   $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

clk=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# Samples tokwatch's VmRSS (kB) every 0.5 s into $1 until stopped.
sample_rss() {
  while kill -0 "$tw_pid" 2>/dev/null; do status_kb "$tw_pid" VmRSS >>"$1"; sleep 0.5; done
}

# The cumulative totals tokwatch must reach, as JSON (sum of the phases' "expected").
expected_file=$dir/expected.json
echo '{}' >"$expected_file"
add_expected() { # $1: generator summary file
  python3 - "$expected_file" "$1" <<'EOF'
import json, sys
from decimal import Decimal
total = json.load(open(sys.argv[1]))
new = json.load(open(sys.argv[2]))["expected"]
for k, v in new.items():
    if k == "calls_by_model":
        continue
    if k == "cost_usd":
        total[k] = str(Decimal(total.get(k, "0")) + Decimal(v))
    else:
        total[k] = total.get(k, 0) + v
json.dump(total, open(sys.argv[1], "w"))
EOF
}

# /metrics (Prometheus text) summed into the shape of a --jsonl snapshot's totals.
metrics_to_totals='
import re, sys
from decimal import Decimal
sums = {}
for line in sys.stdin:
    m = re.match(r"^(tokwatch_[a-z_0-9]+)(\{[^}]*\})? (\S+)", line)
    if not m:
        continue
    name, labels = m.group(1), m.group(2) or ""
    kind = re.search(r"kind=\"([^\"]*)\"", labels)
    key = name + (":" + kind.group(1) if name == "tokwatch_tokens_total" and kind else "")
    sums[key] = sums.get(key, Decimal(0)) + Decimal(m.group(3))
tok = lambda k: int(sums.get("tokwatch_tokens_total:" + k, 0))
kinds = ["uncached_input", "cache_read", "cache_write_5m", "cache_write_1h", "output"]
print("{\"totals\": {" + ", ".join(f"\"{k}\": {v}" for k, v in {
    "events": int(sums.get("tokwatch_calls_total", 0)),
    "uncached_input_tokens": tok("uncached_input"),
    "cache_read_tokens": tok("cache_read"),
    "cache_write_tokens": tok("cache_write_5m") + tok("cache_write_1h"),
    "output_tokens": tok("output"),
    "reasoning_tokens": int(sums.get("tokwatch_reasoning_tokens_total", 0)),
    "total_tokens": sum(tok(k) for k in kinds),
    "cost_usd": sums.get("tokwatch_cost_usd_total", 0),
    "unpriced_events": int(sums.get("tokwatch_unpriced_calls_total", 0)),
    "runs": int(sums.get("tokwatch_runs_total", 0)),
}.items()) + "}}")
'

# What tokwatch says now: totals from the last --jsonl snapshot, or /metrics.
observed() {
  if [ "$HEADLESS" = 1 ]; then
    curl -sf "http://$metrics_addr/metrics" | python3 -c "$metrics_to_totals"
  else
    tail -n 1 "$dir/out.jsonl"
  fi
}

# Waits until tokwatch counts $1 calls, or steadily more (deadline 180 s); prints the seconds waited.
wait_for_calls() {
  local want=$1 t0 now got prev=-1
  t0=$(date +%s.%N)
  for _ in $(seq 360); do
    got=$(observed | python3 -c 'import json,sys; s=json.loads(sys.stdin.read() or "{}"); print(s.get("totals",{}).get("events",0))' 2>/dev/null || echo 0)
    [ "$got" = "$want" ] && break
    # More than sent, and still so half a second later: a mismatch check_totals reports.
    [ "$got" -gt "$want" ] && [ "$got" = "$prev" ] && break
    prev=$got
    sleep 0.5
  done
  now=$(date +%s.%N)
  echo "$now - $t0" | bc
}

check_totals() { # $1: label
  observed >"$dir/observed.json"
  local scrape=""
  if [ "$metrics" = 1 ] && [ "$HEADLESS" != 1 ]; then
    curl -sf "http://$metrics_addr/metrics" >"$dir/metrics.txt" && scrape=$dir/metrics.txt
  fi
  python3 - "$expected_file" "$dir/observed.json" "$1" "$scrape" <<'EOF'
import json, sys
from decimal import Decimal
want = json.load(open(sys.argv[1]))
snap = json.loads(open(sys.argv[2]).read(), parse_float=Decimal)
label, scrape = sys.argv[3], sys.argv[4]
t = snap["totals"]
pairs = [
    ("calls", want["calls"], t["events"]),
    ("uncached_input_tokens", want["uncached_input_tokens"], t["uncached_input_tokens"]),
    ("cache_read_tokens", want["cache_read_tokens"], t["cache_read_tokens"]),
    ("cache_write_tokens", want["cache_write_tokens"], t["cache_write_tokens"]),
    ("output_tokens", want["output_tokens"], t["output_tokens"]),
    ("reasoning_tokens", want["reasoning_tokens"], t["reasoning_tokens"]),
    ("total_tokens", want["total_tokens"], t["total_tokens"]),
    ("cost_usd", Decimal(want["cost_usd"]), Decimal(str(t["cost_usd"]))),
    ("unpriced_calls", want["unpriced_calls"], t["unpriced_events"]),
]
bad = [(k, w, g) for k, w, g in pairs if w != g]
runs = t.get("runs", 0) + t.get("runs_evicted", 0)
print(f"   totals after {label}: calls {t['events']:,}, tokens {t['total_tokens']:,}, cost ${t['cost_usd']}, "
      f"unpriced calls {t['unpriced_events']:,}; runs held {t.get('runs', 0):,} + evicted {t.get('runs_evicted', 0):,} "
      f"(traces sent: {want['traces']:,})")
ingest = snap.get("ingest", {})
for s in ingest.get("sources", []):
    if s["name"].startswith(("otlp", "/", "traces")) or s["name"].endswith(".json"):
        extra = {k: v for k, v in s.items() if k not in ("name", "formats") and v}
        print(f"   source {s['name']}: {extra}")
if "malformed" in ingest:
    print(f"   ingest: lines {ingest.get('lines')}, events {ingest.get('events')}, duplicates {ingest.get('duplicates')}, "
          f"revised {ingest.get('revised')}, malformed {ingest.get('malformed')}, dropped {ingest.get('dropped')}")
if scrape:
    import re
    sums = {}
    for line in open(scrape):
        m = re.match(r'^(tokwatch_[a-z_]+)(\{[^}]*\})? (\S+)$', line.strip())
        if m:
            name, labels, value = m.group(1), m.group(2) or "", m.group(3)
            key = name
            if name == "tokwatch_tokens_total":
                kind = re.search(r'kind="([^"]*)"', labels)
                key = f"{name}:{kind.group(1) if kind else ''}"
            sums[key] = sums.get(key, Decimal(0)) + Decimal(value)
    mpairs = [
        ("metrics cost", Decimal(want["cost_usd"]), sums.get("tokwatch_cost_usd_total")),
        ("metrics uncached_input", want["uncached_input_tokens"], sums.get("tokwatch_tokens_total:uncached_input")),
        ("metrics cache_read", want["cache_read_tokens"], sums.get("tokwatch_tokens_total:cache_read")),
        ("metrics output", want["output_tokens"], sums.get("tokwatch_tokens_total:output")),
        ("metrics reasoning", want["reasoning_tokens"], sums.get("tokwatch_reasoning_tokens_total")),
        ("metrics unpriced calls", want["unpriced_calls"], sums.get("tokwatch_unpriced_calls_total")),
    ]
    for k, w, g in mpairs:
        if g is None:
            print(f"   {k}: not exported")
        elif abs(Decimal(w) - g) > Decimal("0.000001"):
            bad.append((k, w, g))
    print("   /metrics sums checked against the generator" if not [b for b in bad if b[0].startswith("metrics")] else "")
if bad:
    for k, w, g in bad:
        print(f"   MISMATCH {k}: sent {w}, tokwatch says {g}")
    sys.exit(1)
print(f"   OK: every acknowledged call counted once ({want['calls']:,} calls, ${want['cost_usd']})")
EOF
}

run_id=0
phase() { # $1: label; rest: generator arguments
  local label=$1; shift
  run_id=$((run_id + 1))
  echo
  echo "== $label: otlp_load $*"
  echo "   load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  : >"$dir/rss.$label"
  sample_rss "$dir/rss.$label" &
  local sampler=$!
  local c0 c1 t0 t1
  c0=$(cpu_ticks "$tw_pid"); t0=$(date +%s.%N)
  /usr/bin/time -o "$dir/gen.$label.time" -f '%U %S' \
    "$gen" --run-id "$run_id" --chats "$CHATS" --concurrency "$CONCURRENCY" \
    --spans-per-request "$SPANS_PER_REQUEST" "$@" >"$dir/gen.$label.json" 2>"$dir/gen.$label.err" || {
    cat "$dir/gen.$label.err" >&2; cat "$dir/gen.$label.json" >&2; echo "   generator failed" >&2; }
  c1=$(cpu_ticks "$tw_pid"); t1=$(date +%s.%N)
  add_expected "$dir/gen.$label.json"
  local want waited c2 t2
  want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["calls"])' "$expected_file")
  waited=$(wait_for_calls "$want")
  c2=$(cpu_ticks "$tw_pid"); t2=$(date +%s.%N)
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  python3 - "$dir/gen.$label.json" "$dir/rss.$label" "$c0" "$c1" "$c2" "$t0" "$t1" "$t2" "$clk" "$waited" \
    "$(status_kb "$tw_pid" VmHWM)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(tail -n 1 "$dir/gen.$label.time")" <<'EOF' 2>/dev/null || true
import json, sys, statistics
g = json.load(open(sys.argv[1]))
rss = [int(x) for x in open(sys.argv[2]).read().split() if x.strip()]
c0, _c1, c2 = (int(x) for x in sys.argv[3:6])
t0, t1, t2 = (float(x) for x in sys.argv[6:9])
clk, waited, hwm, load = int(sys.argv[9]), float(sys.argv[10]), int(sys.argv[11]), sys.argv[12]
gen_cpu = sum(float(x) for x in sys.argv[13].split())
cpu = (c2 - c0) / clk
spans = g["spans_acked"]
steady = rss[len(rss) // 5:] or rss
print(f"   sent {g['spans_sent']:,} spans in {g['requests']:,} requests; acknowledged {spans:,} in {g['seconds']} s "
      f"= {g['spans_per_s_acked']:,.0f} spans/s ({g['expected']['calls']:,} calls, {g['expected']['traces']:,} traces)")
print(f"   request latency p50 {g['latency_ms']['p50']} ms, p99 {g['latency_ms']['p99']} ms, max {g['latency_ms']['max']} ms")
print(f"   pushed back (429/RESOURCE_EXHAUSTED/503) {g['throttled']:,} times, retried {g['retries']:,}, "
      f"transport errors {g['transport_errors']}, rejected spans {g['spans_rejected']}, failed requests {g['failed_requests']}"
      + (f" ({g['first_error']})" if g.get('first_error') else ""))
print(f"   tokwatch counted the last call {waited:.1f} s after the generator finished")
print(f"   tokwatch CPU {cpu:.1f} s over {t2 - t0:.1f} s wall = {100 * cpu / (t2 - t0):.0f} % of one core; "
      f"{1e6 * cpu / max(spans, 1):.1f} µs CPU per span; the generator used {gen_cpu:.1f} s CPU")
if rss:
    print(f"   tokwatch RSS during the phase: {min(rss)/1024:.0f}–{max(rss)/1024:.0f} MiB "
          f"(median of the last 80 %: {statistics.median(steady)/1024:.0f} MiB); VmHWM so far {hwm/1024:.0f} MiB")
    if len(rss) >= 20:
        tenths = [rss[min(len(rss) - 1, len(rss) * k // 10)] for k in range(1, 11)]
        print("   RSS at each tenth of the phase (MiB): " + " ".join(f"{x / 1024:.0f}" for x in tenths))
print(f"   load average at end: {load}")
EOF
  check_totals "$label"
}

for p in $PHASES; do
  case $p in
    http) phase http --http "http://$http_addr/v1/traces" --traces "$TRACES" ;;
    grpc)
      if [ "$grpc" = 1 ]; then phase grpc --grpc "http://$grpc_addr" --traces "$TRACES"
      else echo; echo "== grpc: skipped, this tokwatch has no --otlp-grpc"; fi ;;
    steady)
      [ "$STEADY_RATE" -gt 0 ] || continue
      phase steady --http "http://$http_addr/v1/traces" --rate "$STEADY_RATE" \
        --duration "${STEADY_SECONDS}s" --traces 100000000 ;;
    file)
      [ "$FILE_PHASE" = 1 ] || continue
      echo
      echo "== file: the same workload as OTLP/JSON lines, read by a second tokwatch --follow"
      "$gen" --write-json "$dir/traces.json" --traces "$TRACES" --chats "$CHATS" \
        --spans-per-request "$SPANS_PER_REQUEST" --run-id 99 >"$dir/file.expected.json"
      calls=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["calls"])' "$dir/file.expected.json")
      spans=$((TRACES * (CHATS + 2)))
      echo "   $(du -h "$dir/traces.json" | cut -f1) of OTLP/JSON, $spans spans, $calls calls"
      t0=$(date +%s.%N)
      "$tw" --follow "$dir/traces.json" --jsonl --interval 1s --top 1 >"$dir/file.jsonl" 2>"$dir/file.err" &
      fpid=$!
      pids+=("$fpid")
      for _ in $(seq 600); do
        got=$(tail -n 1 "$dir/file.jsonl" 2>/dev/null | python3 -c 'import json,sys; s=json.loads(sys.stdin.read() or "{}"); print(s.get("totals",{}).get("events",0))' 2>/dev/null || echo 0)
        [ "$got" = "$calls" ] && break
        sleep 0.2
      done
      t1=$(date +%s.%N)
      python3 - "$dir/file.expected.json" "$dir/file.jsonl" "$t0" "$t1" "$spans" "$(status_kb "$fpid" VmHWM)" <<'EOF'
import json, sys
from decimal import Decimal
want = json.load(open(sys.argv[1]))
snap = json.loads(open(sys.argv[2]).read().splitlines()[-1], parse_float=Decimal)
t = snap["totals"]
secs = float(sys.argv[4]) - float(sys.argv[3])
spans = int(sys.argv[5])
ok = (t["events"] == want["calls"] and t["total_tokens"] == want["total_tokens"]
      and Decimal(str(t["cost_usd"])) == Decimal(want["cost_usd"]))
print(f"   counted {t['events']:,} calls, ${t['cost_usd']} in {secs:.1f} s (start included, 1 s snapshots) "
      f"≈ {spans / secs:,.0f} spans/s; VmHWM {int(sys.argv[6]) / 1024:.0f} MiB; "
      + ("totals equal what was written" if ok else f"MISMATCH: want {want}"))
sys.exit(0 if ok else 1)
EOF
      kill "$fpid" 2>/dev/null || true; wait "$fpid" 2>/dev/null || true
      ;;
  esac
done
echo
echo "== tokwatch at the end: VmRSS $(( $(status_kb "$tw_pid" VmRSS) / 1024 )) MiB, VmHWM $(( $(status_kb "$tw_pid" VmHWM) / 1024 )) MiB"
