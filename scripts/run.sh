#!/usr/bin/env bash
# Set up (if needed) and run the main job: the local infrastructure with the project's
# topics, then its status.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
.venv/bin/cems infra up
.venv/bin/cems topics ensure
