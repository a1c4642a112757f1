#!/usr/bin/env bash
# `make run` on a fresh cache and stack (existing venv), timed, with a calibration pass before and after
# (benchmarks/calibrate_encoding.py: this machine's speed drifts over a day) and its encodings counted.
#   bash benchmarks/time_make_run.sh LABEL    # -> benchmarks/results/make_run.log, make_run_ledger.jsonl, calibration.jsonl, encodings.json
set -euo pipefail
cd "$(dirname "$0")/.."
label=${1:?usage: time_make_run.sh LABEL}
work=$(mktemp -d)
.venv/bin/python benchmarks/calibrate_encoding.py --label "$label: before"
XLIR_CACHE_DIR="$work/cache" XLIR_STACK_DIR="$work/stack" /usr/bin/time -v make run > benchmarks/results/make_run.log 2>&1
XLIR_STACK_DIR="$work/stack" .venv/bin/xlir stack down
.venv/bin/python benchmarks/calibrate_encoding.py --label "$label: after"
.venv/bin/python benchmarks/count_encodings.py --cache "$work/cache" --label "$label"
cp "$work/cache/embeddings/ledger.jsonl" benchmarks/results/make_run_ledger.jsonl   # each pass's seconds
grep "Elapsed (wall clock)" benchmarks/results/make_run.log
