#!/usr/bin/env bash
# Set up (idempotent) and run the test suite. GPU-only tests skip with their reason.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -ra "$@"
