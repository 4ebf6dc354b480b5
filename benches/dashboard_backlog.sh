#!/usr/bin/env bash
# Time until the dashboard shows every line of a backlog (issue 3's "first frame" side).
# usage: benches/dashboard_backlog.sh FILE LINES [BINARY]
#   FILE: e.g. the live bench's corpus, $TMPDIR/tokwatch-backlog-1024mb-unknown.jsonl
#   LINES: its line count (the Overview prints "ingest LINES lines" once all are in)
# Needs tmux and bc. Prints when the first frame appeared and when every line was on screen.
set -euo pipefail
file=$1
lines=$2
bin=${3:-target/release/tokwatch}
session=tokwatch-backlog-$$
start=$(date +%s.%N)
tmux new-session -d -s "$session" -x 200 -y 50 "$bin --follow $file"
trap 'tmux kill-session -t "$session" 2>/dev/null || true' EXIT
first=""
while true; do
  screen=$(tmux capture-pane -t "$session" -p)
  now=$(date +%s.%N)
  if [ -z "$first" ] && grep -q "Overview" <<<"$screen"; then first=$(echo "$now - $start" | bc); fi
  if grep -q "ingest $lines lines" <<<"$screen"; then
    echo "first frame after ${first}s; every line on screen after $(echo "$now - $start" | bc)s"
    break
  fi
  if [ "$(echo "$now - $start > 120" | bc)" = 1 ]; then echo "gave up after 120 s"; exit 1; fi
  sleep 0.05
done
