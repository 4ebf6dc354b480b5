#!/usr/bin/env bash
# Compare tokwatch with ccusage on a Claude Code corpus: speed, peak memory,
# token totals and cost. Run by hand (Linux, GNU time); not part of CI.
#
#   scripts/compare-ccusage.sh [CORPUS_DIR]
#
# CORPUS_DIR is a CLAUDE_CONFIG_DIR-style directory (it contains projects/).
# Without it, a corpus is generated into a temporary directory with
# `tokwatch generate claude-code --out DIR --bytes $BYTES --seed $SEED`.
#
# Environment:
#   TOKWATCH        tokwatch binary (default: target/release/tokwatch)
#   CCUSAGE         ccusage binary (default: ccusage $CCUSAGE_VERSION, installed
#                   with npm into $CCUSAGE_DIR if it is not there yet; the native
#                   binary is used, not the Node.js launcher)
#   CCUSAGE_VERSION default 20.0.24
#   CCUSAGE_DIR     default ${TMPDIR:-/tmp}/tokwatch-ccusage-$CCUSAGE_VERSION
#   ROUNDS          timed runs of each tool, interleaved (default 3)
#   BYTES, SEED     size and seed of a generated corpus (default 100000000, 1)
#   COST_TOLERANCE  allowed relative cost difference (default 0.005)
#   KEEP            1 keeps the work directory (outputs, generated corpus)
#
# Each round runs `ccusage claude session --json --offline` and
# `tokwatch report --claude --format json` with CLAUDE_CONFIG_DIR set to the
# corpus (the order alternates between rounds, after one untimed warm-up run of
# each), wall time from bash's $EPOCHREALTIME and peak RSS from
# `/usr/bin/time -f '%M'`. The table shows the median
# wall time and peak RSS and the ratios ccusage/tokwatch.
#
# Totals: token buckets (input, output, cache creation, cache read) must be
# equal and the cost within COST_TOLERANCE, after two known, documented
# differences are taken out (see docs: formats.md §2.4, §3.4):
#   1. ccusage 20.0.24 counts a sub-agent file's replay of a parent message
#      (same message.id, new requestId, isSidechain) as a second call; the rule
#      is to count it once, keeping the parent's usage. The replay lines are
#      extracted and measured with ccusage, and subtracted from its totals.
#   2. Long context: above 200k input tokens ccusage prices only the tokens
#      above 200k of each token type at the premium rate; Anthropic prices every
#      token of the request at the premium rate. The >200k calls are extracted
#      and priced by both tools; that difference is allowed.
# Exit status: 0 when the totals agree, 1 when they do not, 2 on usage errors.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOKWATCH=${TOKWATCH:-$root/target/release/tokwatch}
CCUSAGE_VERSION=${CCUSAGE_VERSION:-20.0.24}
CCUSAGE_DIR=${CCUSAGE_DIR:-${TMPDIR:-/tmp}/tokwatch-ccusage-$CCUSAGE_VERSION}
ROUNDS=${ROUNDS:-3}
BYTES=${BYTES:-100000000}
SEED=${SEED:-1}
COST_TOLERANCE=${COST_TOLERANCE:-0.005}
KEEP=${KEEP:-0}

die() {
    echo "compare-ccusage: $*" >&2
    exit 2
}

[[ $# -le 1 ]] || die "usage: $0 [CORPUS_DIR]"
command -v python3 >/dev/null || die "python3 is required"
/usr/bin/time -f '%e %M' -o /dev/null true 2>/dev/null || die "GNU time (/usr/bin/time -f) is required"
[[ -x $TOKWATCH ]] || die "no tokwatch binary at $TOKWATCH (cargo build --release, or set TOKWATCH)"

work=$(mktemp -d "${TMPDIR:-/tmp}/compare-ccusage.XXXXXX")
if [[ $KEEP == 1 ]]; then
    trap 'echo "work directory kept: $work" >&2' EXIT
else
    trap 'rm -rf "$work"' EXIT
fi

# --- the corpus -------------------------------------------------------------
if [[ $# -eq 1 ]]; then
    corpus=$(cd "$1" && pwd)
    [[ -d $corpus/projects ]] || die "$corpus has no projects/ directory"
else
    corpus=$work/corpus
    echo "generating a corpus of $BYTES bytes (seed $SEED) in $corpus" >&2
    "$TOKWATCH" generate claude-code --out "$corpus" --bytes "$BYTES" --seed "$SEED" >&2
fi

# --- ccusage ------------------------------------------------------------------
if [[ -z ${CCUSAGE:-} ]]; then
    find_ccusage() {
        local native
        for native in "$CCUSAGE_DIR"/node_modules/@ccusage/ccusage-*/bin/ccusage; do
            [[ -x $native ]] && { echo "$native"; return; }
        done
        [[ -x $CCUSAGE_DIR/node_modules/.bin/ccusage ]] && echo "$CCUSAGE_DIR/node_modules/.bin/ccusage"
        return 0
    }
    CCUSAGE=$(find_ccusage)
    if [[ -z $CCUSAGE ]]; then
        command -v npm >/dev/null || die "npm is required to install ccusage (or set CCUSAGE)"
        echo "installing ccusage@$CCUSAGE_VERSION into $CCUSAGE_DIR" >&2
        mkdir -p "$CCUSAGE_DIR"
        npm install --prefix "$CCUSAGE_DIR" --no-audit --no-fund --loglevel=error \
            "ccusage@$CCUSAGE_VERSION" >&2
        CCUSAGE=$(find_ccusage)
        [[ -n $CCUSAGE ]] || die "npm did not install a ccusage binary into $CCUSAGE_DIR"
    fi
fi
[[ -x $CCUSAGE ]] || die "ccusage is not executable: $CCUSAGE"

ccusage_cmd=("$CCUSAGE" claude session --json --offline)
tokwatch_cmd=("$TOKWATCH" report --claude --format json)

echo "corpus:   $corpus ($(du -sh "$corpus" | cut -f1), $(find "$corpus/projects" -name '*.jsonl' | wc -l) files)"
echo "ccusage:  $CCUSAGE ($("$CCUSAGE" --version 2>&1 | head -n1))"
echo "tokwatch: $TOKWATCH ($("$TOKWATCH" --version 2>&1 | head -n1))"

# run NAME CONFIG_DIR OUT TIMES_FILE CMD... : one measured run.
run() {
    local name=$1 config=$2 out=$3 times=$4
    shift 4
    # Wall time from the shell's microsecond clock (GNU time's %e has 10 ms
    # steps, too coarse for a corpus read in 40 ms); peak RSS from GNU time.
    local start end
    start=$EPOCHREALTIME
    if ! CLAUDE_CONFIG_DIR=$config /usr/bin/time -f '%M' -o "$work/time" "$@" >"$out" 2>"$work/stderr"; then
        echo "compare-ccusage: $name failed:" >&2
        cat "$work/stderr" "$work/time" >&2
        exit 1
    fi
    end=$EPOCHREALTIME
    echo "$(python3 -c "print(f'{$end - $start:.4f}')") $(tail -n1 "$work/time")" >>"$times"
}

: >"$work/ccusage.times"
: >"$work/tokwatch.times"
run ccusage "$corpus" "$work/ccusage.json" /dev/null "${ccusage_cmd[@]}"
run tokwatch "$corpus" "$work/tokwatch.json" /dev/null "${tokwatch_cmd[@]}"
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2)); then
        run ccusage "$corpus" "$work/ccusage.json" "$work/ccusage.times" "${ccusage_cmd[@]}"
        run tokwatch "$corpus" "$work/tokwatch.json" "$work/tokwatch.times" "${tokwatch_cmd[@]}"
    else
        run tokwatch "$corpus" "$work/tokwatch.json" "$work/tokwatch.times" "${tokwatch_cmd[@]}"
        run ccusage "$corpus" "$work/ccusage.json" "$work/ccusage.times" "${ccusage_cmd[@]}"
    fi
    echo "round $round/$ROUNDS: ccusage $(tail -n1 "$work/ccusage.times"), tokwatch $(tail -n1 "$work/tokwatch.times") (s KB)" >&2
done

# --- the known differences: extract the lines that explain them -------------
# Applies ccusage's dedupe in its file order (sorted paths; key (message.id,
# requestId or none), the largest usage wins) plus the sidechain rule, and
# writes: replays/ (sidechain replays of parent messages, one line per key),
# long/ (the kept calls with more than 200k input tokens) and expected.json.
python3 - "$corpus" "$work" <<'PY'
import json, os, sys

corpus, work = sys.argv[1], sys.argv[2]
files = []
for d, _, names in os.walk(os.path.join(corpus, "projects")):
    files += [os.path.join(d, n) for n in names if n.endswith(".jsonl")]
files.sort()

def total(u):
    return sum(u.get(k) or 0 for k in ("input_tokens", "output_tokens",
               "cache_creation_input_tokens", "cache_read_input_tokens"))

kept, by_id, replays = [], {}, {}
for path in files:
    with open(path, "rb") as fh:
        for raw in fh:
            if b'"usage":{' not in raw:
                continue
            try:
                v = json.loads(raw)
                m = v["message"]
                u = m["usage"]
            except (ValueError, KeyError, TypeError):
                continue
            mid = m.get("id")
            if not mid or not v.get("timestamp") or m.get("model") == "<synthetic>":
                continue
            e = {"req": v.get("requestId"), "side": v.get("isSidechain") is True,
                 "u": u, "total": total(u), "line": raw}
            same = [i for i in by_id.get(mid, ()) if kept[i]["req"] == e["req"]]
            if same:
                if e["total"] > kept[same[0]]["total"]:
                    kept[same[0]] = e
                continue
            # Same message.id, another requestId, either one on a sidechain:
            # a replay; the non-sidechain (parent) entry counts.
            other = [i for i in by_id.get(mid, ()) if e["side"] or kept[i]["side"]]
            if other:
                i = other[0]
                if e["side"]:
                    key = (mid, e["req"])
                    if key not in replays or e["total"] > replays[key]["total"]:
                        replays[key] = e
                else:  # the parent after its replay
                    replays[(mid, kept[i]["req"])] = kept[i]
                    kept[i] = e
                continue
            by_id.setdefault(mid, []).append(len(kept))
            kept.append(e)

def dump(name, entries):
    d = os.path.join(work, name, "projects", "extract")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name + ".jsonl"), "wb") as out:
        for e in entries:
            out.write(e["line"].rstrip(b"\n") + b"\n")

def tin(u):
    return sum(u.get(k) or 0 for k in ("input_tokens", "cache_creation_input_tokens",
                                       "cache_read_input_tokens"))

long_ = [e for e in kept if tin(e["u"]) > 200_000]
dump("replays", replays.values())
dump("long", long_)
json.dump({"calls": len(kept), "replays": len(replays), "long_context_calls": len(long_)},
          open(os.path.join(work, "expected.json"), "w"))
PY

for part in replays long; do
    if [[ -s $work/$part/projects/extract/$part.jsonl ]]; then
        run "ccusage ($part)" "$work/$part" "$work/ccusage-$part.json" /dev/null "${ccusage_cmd[@]}"
    else
        echo '{}' >"$work/ccusage-$part.json"
    fi
done
if [[ -s $work/long/projects/extract/long.jsonl ]]; then
    run "tokwatch (long)" "$work/long" "$work/tokwatch-long.json" /dev/null "${tokwatch_cmd[@]}"
else
    echo '{}' >"$work/tokwatch-long.json"
fi

# --- report -----------------------------------------------------------------
python3 - "$work" "$COST_TOLERANCE" <<'PY'
import json, os, statistics, sys

work, tolerance = sys.argv[1], float(sys.argv[2])
load = lambda name: json.load(open(os.path.join(work, name)))

def times(name):
    rows = [line.split() for line in open(os.path.join(work, name + ".times")) if line.strip()]
    return [float(r[0]) for r in rows], [int(r[1]) for r in rows]

cw, cm = times("ccusage")
tw, tm = times("tokwatch")
print()
print(f"{'':10} {'median wall':>12} {'median peak RSS':>16}   runs (wall s / RSS MB)")
for name, w, m in (("ccusage", cw, cm), ("tokwatch", tw, tm)):
    runs = "  ".join(f"{a:.3f}/{b / 1024:.0f}" for a, b in zip(w, m))
    print(f"{name:10} {statistics.median(w):>10.3f} s {statistics.median(m) / 1024:>13.1f} MB   {runs}")
ratio = lambda a, b: f"{a / b:.2f}x" if b else "n/a"
print(f"{'ccusage/tw':10} {ratio(statistics.median(cw), statistics.median(tw)):>12} "
      f"{ratio(statistics.median(cm), statistics.median(tm)):>16}")

def cc_totals(doc):
    t = doc.get("totals") or {}
    return {"input": t.get("inputTokens", 0), "output": t.get("outputTokens", 0),
            "cache_creation": t.get("cacheCreationTokens", 0),
            "cache_read": t.get("cacheReadTokens", 0), "cost": t.get("totalCost", 0.0)}

def tw_totals(doc):
    t = doc.get("totals") or {}
    return {"input": t.get("uncached_input_tokens", 0), "output": t.get("output_tokens", 0),
            "cache_creation": t.get("cache_write_tokens", 0),
            "cache_read": t.get("cache_read_tokens", 0), "cost": t.get("cost_usd") or 0.0}

cc_doc, tw_doc = load("ccusage.json"), load("tokwatch.json")
cc, tw = cc_totals(cc_doc), tw_totals(tw_doc)
rep = cc_totals(load("ccusage-replays.json"))
cc_long, tw_long = cc_totals(load("ccusage-long.json")), tw_totals(load("tokwatch-long.json"))
expected = load("expected.json")
adj = {k: cc[k] - rep[k] for k in cc}
ok = True
print()
print(f"{'bucket':15} {'ccusage':>16} {'- replays':>14} {'= expected':>16} {'tokwatch':>16}  check")
for k in ("input", "output", "cache_creation", "cache_read"):
    same = adj[k] == tw[k]
    ok &= same
    note = "ok" if same else f"DIFF {tw[k] - adj[k]:+d}" + (" (equals raw ccusage)" if tw[k] == cc[k] else "")
    print(f"{k:15} {cc[k]:>16,} {rep[k]:>14,} {adj[k]:>16,} {tw[k]:>16,}  {note}")
# Allowed long-context difference: the same >200k calls priced by each tool.
long_delta = tw_long["cost"] - cc_long["cost"]
expected_cost = adj["cost"] + long_delta
rel = abs(tw["cost"] - expected_cost) / expected_cost if expected_cost else 0.0
cost_ok = rel <= tolerance
ok &= cost_ok
print(f"{'cost USD':15} {cc['cost']:>16,.4f} {rep['cost']:>14,.4f} {expected_cost:>16,.4f} {tw['cost']:>16,.4f}  "
      f"{'ok' if cost_ok else 'DIFF'} ({rel * 100:.3f}% vs {tolerance * 100:.2f}% allowed)")
print(f"  long context: {expected['long_context_calls']} calls >200k input, ccusage ${cc_long['cost']:,.4f}, "
      f"tokwatch ${tw_long['cost']:,.4f} (allowed difference {long_delta:+,.4f})")
print(f"  raw cost ratio tokwatch/ccusage: {tw['cost'] / cc['cost']:.5f}" if cc["cost"] else "")
print(f"  calls: expected {expected['calls']:,} (sidechain replays not counted: {expected['replays']}), "
      f"tokwatch events {tw_doc['totals'].get('events', 'n/a')}")
print(f"  sessions: ccusage {len(cc_doc.get('sessions', []))}, tokwatch runs {tw_doc['totals'].get('runs', 'n/a')} "
      f"(informative: ccusage credits a resumed session's replayed messages to the first file by path)")
print()
print("totals agree" if ok else "TOTALS DIFFER")
sys.exit(0 if ok else 1)
PY
