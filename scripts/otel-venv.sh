#!/usr/bin/env bash
# Creates target/otel-venv: a Python virtualenv with the official OpenTelemetry SDK and its
# OTLP/HTTP and OTLP/gRPC exporters, pinned by tests/otel/requirements.txt, for the real-client
# tests (tests/fleet.rs). .ci/run runs it; a developer runs it once, then `cargo test --test fleet`.
#
#   scripts/otel-venv.sh            # create or update (nothing to do when up to date)
#   scripts/otel-venv.sh --force    # start over
#
# PYTHON picks the interpreter (default python3, 3.9 or newer). Idempotent: the venv records
# the checksum of the requirements it was built from, and is rebuilt only when they change.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/otel-venv
req=tests/otel/requirements.txt
python=${PYTHON:-python3}
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)

if [ "${1:-}" = "--force" ]; then
  rm -rf "$venv"
elif [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c 'import opentelemetry.sdk' 2>/dev/null; then
  echo "otel-venv: $venv is up to date"
  exit 0
fi

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
  echo "otel-venv: $python is missing or older than 3.9" >&2
  exit 1
fi
if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "otel-venv: $python cannot create a virtualenv (on Debian: apt-get install python3-venv)" >&2
  exit 1
fi

# The stamp is written last: an interrupted run leaves none, and the next run starts over.
rm -rf "$venv"
mkdir -p target
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
"$venv/bin/python" -m pip check
echo "$want" > "$stamp"
"$venv/bin/python" -c 'from importlib.metadata import version as v; print("otel-venv: opentelemetry-sdk", v("opentelemetry-sdk"), "in '"$venv"'")'
