#!/usr/bin/env bash
# Set up (if needed) and run the main job: the local infrastructure, then the live pipeline
# (gateway -> Kafka -> detection worker -> InfluxDB) fed by the simulated fleet of the sample
# registry with the demo fault scenario. Ctrl-C stops the pipeline; `.venv/bin/cems infra
# down` stops the servers. Extra arguments go to `cems run` (e.g. --speed 10).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
.venv/bin/cems infra up
.venv/bin/cems topics ensure
exec .venv/bin/cems run --simulate demo "$@"
