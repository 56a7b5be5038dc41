#!/usr/bin/env bash
# Run every benchmark once, each printing ratios against its own in-run baseline.
# Uses ./.venv (make it with `bash run-tests.sh` or `pip install -e '.[test]'`).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
for bench in bench_hook bench_writer bench_host bench_backfill bench_aggregate bench_verify; do
  echo "=== $bench"
  "$py" "bench/$bench.py"
done
