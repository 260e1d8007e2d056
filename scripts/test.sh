#!/usr/bin/env bash
# Set up (idempotent), then the linter, the formatter's check, the import contract, and the test suite.
# GPU-only tests skip with their reason. For the inner loop: .venv/bin/python -m pytest -m "not slow".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports
exec .venv/bin/python -m pytest -ra "$@"
