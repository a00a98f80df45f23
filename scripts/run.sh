#!/usr/bin/env bash
# Set up (if needed) and run the main job: the local infrastructure, then the live pipeline
# (gateway -> Kafka -> detection worker -> InfluxDB, the notifier and the case console) fed by
# the simulated fleet of the sample registry with the demo fault scenario. Ctrl-C stops the
# pipeline; `.venv/bin/cems infra down` stops the servers. Extra arguments go to `cems run`
# (e.g. --speed 10).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
.venv/bin/cems infra up
.venv/bin/cems topics ensure
port=${CEMS_CONSOLE_PORT:-8600}
echo
echo "case console: http://127.0.0.1:${port}/  (the demo's alerts appear there as cases)"
.venv/bin/cems console users demo --quiet
echo
exec .venv/bin/cems run --simulate demo "$@"
