#!/usr/bin/env bash
# Runs tokwatch's property tests (proptest) for a while each, round after
# round, each round with a fresh random seed. Generated inputs start from
# the real lines of sample_logs/ and tests/fixtures/formats/ (and the shipped
# config and themes), then get hostile values swapped in and bytes changed.
#
#   scripts/fuzz.sh [MINUTES] [FILTER]
#
#   MINUTES         per property (default 1, or $FUZZ_MINUTES); decimals work
#   FILTER          only properties whose name contains it (e.g. fast_path)
#   PROPTEST_CASES  cases per round (default 5000)
#   FUZZ_RELEASE=1  build the tests optimized (slower build, ~10x the cases)
#
# Stops at the first failure: proptest shrinks it to a minimal input, prints
# it, and saves its seed next to the test (tests/properties.proptest-regressions
# or proptest-regressions/…), where every later `cargo test` replays it first.
# Commit that file, and turn the case into a named regression test beside the
# fix. CI runs the same properties at proptest's default 256 cases.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=${1:-${FUZZ_MINUTES:-1}}
filter=${2:-}
cases=${PROPTEST_CASES:-5000}
profile=()
if [ "${FUZZ_RELEASE:-0}" = 1 ]; then
  profile=(--release)
fi

echo "== building the test binaries"
mapfile -t binaries < <(
  cargo test "${profile[@]}" --lib --test properties --no-run --message-format=json 2>/dev/null |
    grep -o '"executable":"[^"]*"' | sed 's/"executable":"\(.*\)"/\1/'
)
if [ "${#binaries[@]}" -eq 0 ]; then
  echo "fuzz: no test binary was built (run cargo test --no-run to see why)" >&2
  exit 2
fi

# Every property: "<binary> <test name>".
properties=()
for binary in "${binaries[@]}"; do
  while IFS= read -r name; do
    case "$name" in
      *prop_*"$filter"* | *"$filter"*prop_*) properties+=("$binary $name") ;;
    esac
  done < <("$binary" --list 2>/dev/null | sed -n 's/: test$//p' | grep 'prop_')
done
if [ "${#properties[@]}" -eq 0 ]; then
  echo "fuzz: no property matches '$filter'" >&2
  exit 2
fi

seconds=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')
echo "== ${#properties[@]} properties, ${minutes} min each, ${cases} cases a round"
total=0
for entry in "${properties[@]}"; do
  binary=${entry%% *}
  name=${entry#* }
  rounds=0
  deadline=$((SECONDS + seconds))
  while :; do
    if ! PROPTEST_CASES=$cases "$binary" --exact "$name" --quiet >/tmp/tokwatch-fuzz.$$ 2>&1; then
      cat /tmp/tokwatch-fuzz.$$
      rm -f /tmp/tokwatch-fuzz.$$
      echo "fuzz: $name FAILED after $rounds rounds (the minimal case is above)" >&2
      exit 1
    fi
    rounds=$((rounds + 1))
    [ "$SECONDS" -lt "$deadline" ] || break
  done
  rm -f /tmp/tokwatch-fuzz.$$
  total=$((total + rounds * cases))
  printf '%-90s %6d rounds  %9d cases\n' "$name" "$rounds" "$((rounds * cases))"
done
echo "== all properties held: $total cases"
