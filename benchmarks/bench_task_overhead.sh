#!/usr/bin/env bash
# Does an Airflow task encode slower than a plain process? The same fp32 encoding (the step-0
# validation pass of xlir_train: 2,047 MLQA-R sentences), once inside a real task of a local stack
# and once alone just before and just after it, with the task paused (SIGSTOP) meanwhile.
#   bash benchmarks/bench_task_overhead.sh    # prints the three times; nothing else may run meanwhile
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
export XLIR_STACK_DIR="$work/stack" XLIR_CACHE_DIR="$work/cache"
mkdir -p "$XLIR_CACHE_DIR/locks"
ln -s "$HOME/.cache/xlir/models" "$XLIR_CACHE_DIR/models"   # the prepared encoder, nothing re-converted
flock "$XLIR_CACHE_DIR/locks/compute-0.lock" sleep 3600 & holder=$!   # the task waits at the slot
.venv/bin/xlir stack up > /dev/null
.venv/bin/xlir stack run > "$work/run.log" 2>&1 & runner=$!
until grep -q "waiting for a compute slot" "$XLIR_STACK_DIR"/airflow/logs/dag_id=xlir_train/*/task_id=train/attempt=1.log 2>/dev/null; do sleep 2; done
task=$(pgrep -f "airflow worker -- " | head -1)
kill -STOP "$task"
XLIR_CACHE_DIR="$work/alone" .venv/bin/python benchmarks/calibrate_encoding.py --label "alone, before the task"
kill "$holder"; kill -CONT "$task"
until grep -q '"texts": 2047' "$XLIR_CACHE_DIR/embeddings/ledger.jsonl" 2>/dev/null; do sleep 1; done
kill -STOP "$task"
echo "in the Airflow task: $(grep '"texts": 2047' "$XLIR_CACHE_DIR/embeddings/ledger.jsonl" | head -1)"
XLIR_CACHE_DIR="$work/alone" .venv/bin/python benchmarks/calibrate_encoding.py --label "alone, after the task"
kill -CONT "$task"; kill "$runner" 2>/dev/null || true
.venv/bin/xlir stack down > /dev/null
