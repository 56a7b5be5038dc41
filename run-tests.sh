#!/usr/bin/env bash
# Install wn-persist with its test extras into ./.venv, then lint, type-check and run the tests.
# PostgreSQL tests use WN_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres);
# they skip when it is unreachable, except under CI=true, where they fail.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
