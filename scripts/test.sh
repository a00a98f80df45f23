#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite against the real servers.
#   ./scripts/test.sh                 everything: static checks, unit and integration tests
#   ./scripts/test.sh -k kafka        extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
.venv/bin/cems infra up
echo "[test] static checks: ruff, mypy, import contracts"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy .
.venv/bin/lint-imports
echo "[test] pytest"
exec .venv/bin/python -m pytest "$@"
