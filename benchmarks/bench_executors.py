"""The same tiny pipeline on the two local engines, side by side in one run: LocalExecutor on SQLite
(``make run``'s stack) and CeleryExecutor on PostgreSQL + Redis with Celery workers
(``XLIR_EXECUTOR=celery``).

For each engine: start the stack in a fresh folder (timed), trigger ``xlir_train`` through the REST
API with the tiny encoder (2 steps, 3 questions per language, XQuAD-R only) ``--runs`` times one after
the other (the first also registers the untuned baseline), and read every task instance back. Per run:
the wall time (trigger to success), the task time (sum of the task durations along the DAG's chain:
prepare, train, evaluate, register, gate, promote, finish) and the gaps between them per task
((wall - chain) / chain length); a task's duration already holds a worker taking it and its process
starting (Airflow's start_date is set when it is queued), so the engines' difference in wall time
is their whole difference.

    python benchmarks/bench_executors.py            # about 10 minutes on a 2-core machine
    python benchmarks/bench_executors.py --runs 3

Writes benchmarks/results/executors.json (raw: every task instance) and executors.md (the table).
Needs the Debian packages postgresql and redis-server (``make pg-server redis-server``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("results")
CHAIN = ("prepare", "train", "evaluate", "register", "gate", "promote", "finish")
TINY = {"base_model": "tiny", "steps": 2, "batch_size": 4, "max_seq_length": 32, "eval_max_seq_length": 32,
        "checkpoint_every": 1, "validation_fraction": 0.0, "eval_questions_per_lang": 3, "eval_datasets": ["xquad-r"],
        "gate_profile": "smoke", "gate_overrides": {"retrieval.min_gain_mul": -1.0}, "registered_model": "bench-enc"}
ENGINES = {"local-sqlite": {"executor": "local", "db": "sqlite"},
           "celery-postgres-redis": {"executor": "celery", "db": "postgres", "workers": 1}}


def measure_run(api, conf: dict) -> dict:
    t0 = time.perf_counter()
    run = api.trigger("xlir_train", conf)
    done = api.follow("xlir_train", run["dag_run_id"], echo=lambda *_: None, poll=1, timeout=1800)
    wall = time.perf_counter() - t0
    if done["state"] != "success":
        raise SystemExit(f"xlir_train run {run['dag_run_id']} {done['state']}")
    tis = api.task_instances("xlir_train", run["dag_run_id"])
    chain = sum(t["duration"] or 0.0 for t in tis if t["task_id"] in CHAIN)
    return {"run_id": run["dag_run_id"], "wall_s": round(wall, 1), "chain_task_s": round(chain, 1),
            "overhead_per_task_s": round((wall - chain) / len(CHAIN), 2),
            "task_instances": [{k: t.get(k) for k in ("task_id", "map_index", "state", "queue", "hostname", "try_number",
                                                       "scheduled_when", "queued_when", "start_date", "end_date",
                                                       "duration")} for t in tis]}


def bench_engine(name: str, spec: dict, conf: dict, runs: int) -> dict:
    from xlir.net import free_port
    from xlir.stack.processes import LocalStack
    from xlir.stack.run import api_for

    state = Path(tempfile.mkdtemp(prefix=f"xlir-bench-{name}-"))
    state.chmod(0o755)  # the PostgreSQL and Redis servers run as their own users when started by root
    stack = LocalStack(state / "stack", mlflow_port=free_port(), api_port=free_port(), postgres_port=free_port(),
                       redis_port=free_port(), **spec)
    out = {"engine": name, **spec, "runs": []}
    try:
        t0 = time.perf_counter()
        stack.up(echo=lambda *_: None)
        api = api_for(stack)
        api.wait_for_dag("xlir_train")
        api.unpause("xlir_train")
        out["stack_up_s"] = round(time.perf_counter() - t0, 1)
        out["services"] = list(stack.services)
        for i in range(runs):
            r = measure_run(api, conf)
            r["first"] = i == 0
            out["runs"].append(r)
            print(f"{name}: run {i + 1}: {r['wall_s']} s wall, {r['chain_task_s']} s in tasks, "
                  f"{r['overhead_per_task_s']} s engine overhead per task", flush=True)
    finally:
        stack.down(echo=lambda *_: None)
        shutil.rmtree(state, ignore_errors=True)
    return out


NOTE = ("\nThe engines share one embedding cache, run one after the other: the first run of the first engine "
        "also builds the tiny encoder and encodes the evaluation pool with the untuned encoder for the baseline; "
        "every first run registers the baseline. Compare the later runs. Engine overhead per task: (wall - the "
        "chain's task durations) / 7 tasks, the gaps between one task's end and the next one's start as Airflow "
        "records them (scheduling, queueing). Airflow sets a task's start_date when the task is queued, so a "
        "worker taking the task from the broker and the task process starting fall inside its duration: the "
        "difference in wall time between the engines is the whole cost.\n")


def table(results: list[dict]) -> str:
    rows = ["| engine | stack up | run | wall | in tasks (chain) | engine overhead per task |",
            "|---|---|---|---|---|---|"]
    for e in results:
        for i, r in enumerate(e["runs"], 1):
            rows.append(f"| {e['engine']} | {e['stack_up_s']} s | {i}{' (with baseline)' if r['first'] else ''} | "
                        f"{r['wall_s']} s | {r['chain_task_s']} s | {r['overhead_per_task_s']} s |")
    return "\n".join(rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=2, help="xlir_train runs per engine (the first registers the baseline)")
    ap.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    args = ap.parse_args()

    sys.path.insert(0, str(REPO / "tests"))
    from mlqa_slice import write_mlqa_slice

    work = Path(tempfile.mkdtemp(prefix="xlir-bench-"))
    conf = {**TINY, "train_datasets": [write_mlqa_slice(work / "train.jsonl", slice(0, 30))]}
    # the deployment's defaults (a conf may not loosen the gates); a fresh cache, so no compute slot is
    # shared with other work on this machine; one torch thread (the tiny encoder gains nothing from more)
    os.environ.update(XLIR_PIPELINE_DEFAULTS=json.dumps(conf), XLIR_CACHE_DIR=str(work / "cache"), XLIR_TORCH_THREADS="1")
    try:
        results = [bench_engine(name, ENGINES[name], conf, args.runs) for name in args.engines]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    meta = {"date": datetime.now().astimezone().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
            "python": platform.python_version(), "load_average_at_end": [round(x, 2) for x in load],
            "conf": {k: v for k, v in conf.items() if k != "train_datasets"}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "executors.json").write_text(json.dumps({"meta": meta, "engines": results}, indent=2) + "\n")
    md = (f"# xlir_train, tiny encoder: LocalExecutor/SQLite vs CeleryExecutor/PostgreSQL/Redis\n\n"
          f"`python benchmarks/bench_executors.py --runs {args.runs}`, {meta['date']}, {meta['cpus']} CPUs, "
          f"load average at the end {meta['load_average_at_end']} (other work was running on this machine).\n\n"
          + table(results) + NOTE)
    (RESULTS / "executors.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
