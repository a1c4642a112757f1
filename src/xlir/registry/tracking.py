"""One MLflow run per pipeline run: configs as params, every metric, loss curves, artifacts.

``track_pipeline_run(pipeline_run_id)`` opens the run tagged with that id, creating it the first
time; a retried or later task (an Airflow task reopening the DAG run's run) gets the same run
back. Inside, ``PipelineRun.child(name)`` does the same for a nested run (one per training
strategy). Every ``log_*`` is safe to repeat: params already there with the same value and
metrics already logged are skipped; a param whose value changed is an error (a different config
is a different pipeline run).

The tracking URI is ``tracking_uri`` or ``MLFLOW_TRACKING_URI``; an http(s) server is checked
with ``/health`` first, so an unreachable server is one clear ``TrackingError``, not minutes of
client retries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from xlir.errors import XlirError
from xlir.paths import REPO_ROOT

log = logging.getLogger(__name__)

EXPERIMENT = "xlir"
TAG_PIPELINE = "xlir.pipeline_run_id"
TAG_KIND = "xlir.run_kind"  # pipeline | child
TAG_CHILD = "xlir.child"
TAG_PARENT = "mlflow.parentRunId"
_LOSS_NAMES = {"loss": "train.loss", "eval_loss": "train.validation_loss"}
_NOT_CURVES = {"step", "time", "epoch"}


def _curve_name(key: str) -> str:
    """The MLflow name of a train-log field: the retrieval validation under its stable ``val.*`` names."""
    if key.startswith("eval_retrieval_"):
        from xlir.training.selection import trainer_metrics_to_val

        return next(iter(trainer_metrics_to_val({key: 0.0})))
    return _LOSS_NAMES.get(key, f"train.{key}")


class TrackingError(XlirError):
    """The tracking server cannot be used (not configured, unreachable) or a log would corrupt a run."""


# ---------------------------------------------------------------- connection


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    uri = (tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "").strip()
    if not uri:
        raise TrackingError(
            "no MLflow tracking server configured: set MLFLOW_TRACKING_URI (e.g. http://127.0.0.1:5000) or pass "
            "--tracking-uri; start a local one with `python -m xlir.registry.server --root .xlir/mlflow`"
        )
    return uri


def check_server(uri: str, timeout: float = 5.0) -> None:
    """Raise ``TrackingError`` unless an http(s) tracking server answers ``/health``."""
    if not uri.startswith(("http://", "https://")):
        return
    from xlir.registry.server import healthy

    if not healthy(uri, timeout=timeout):
        raise TrackingError(
            f"MLflow tracking server {uri} is unreachable (no answer on {uri.rstrip('/')}/health within {timeout:.0f} s); "
            "start it, or point MLFLOW_TRACKING_URI / --tracking-uri at a running one. Nothing was logged or registered."
        )


def connect(tracking_uri: str | None = None):
    """An ``MlflowClient`` on a checked server; also the URI MLflow's fluent model logging uses."""
    uri = resolve_tracking_uri(tracking_uri)
    check_server(uri)
    import mlflow
    from mlflow import MlflowClient

    if mlflow.get_tracking_uri() != uri:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def check_run_key(value: str, what: str = "pipeline_run_id") -> str:
    value = str(value or "").strip()
    if not value or "'" in value or len(value) > 250:
        raise TrackingError(f"bad {what} {value!r}: need 1-250 characters without single quotes")
    return value


def code_version() -> dict[str, str]:
    """``code.git_sha`` (``XLIR_GIT_SHA`` where the checkout has no .git), dirty flag, package version."""
    from importlib.metadata import PackageNotFoundError, version

    sha = os.environ.get("XLIR_GIT_SHA", "").strip()
    dirty = ""
    if not sha:
        try:
            sha = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                                 timeout=10, check=True).stdout.strip()
            status = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10).stdout
            dirty = "true" if status.strip() else "false"
        except (OSError, subprocess.SubprocessError):
            sha = "unknown"
    try:
        pkg = version("xlir")
    except PackageNotFoundError:
        pkg = "unknown"
    return {"code.git_sha": sha, "code.git_dirty": dirty or "unknown", "code.xlir_version": pkg}


# ---------------------------------------------------------------- helpers


def param_value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def eval_config_dict(cfg) -> dict:
    """An ``EvalConfig`` (or its dict) as JSON-ready data, without its output folder."""
    data = cfg.model_dump(mode="json") if hasattr(cfg, "model_dump") else dict(cfg)
    data.pop("output_dir", None)
    return data


# What makes two evaluations comparable; batch size, top_k (TREC depth), train_languages
# (only the seen/unseen split of averages) and the output folder do not change gated metrics.
EVAL_KEY_FIELDS = ("dataset", "split", "max_questions_per_lang", "seed", "candidate_text", "max_seq_length", "precision")


def eval_key(eval_config, dataset_version: str | None = None) -> str:
    """12 hex chars over the fields that make two evaluations comparable (and the data version)."""
    cfg = eval_config_dict(eval_config)
    ident = {k: cfg.get(k) for k in EVAL_KEY_FIELDS}
    if ident["precision"] in (None, "fp32"):  # keys made before precision existed stay the same
        del ident["precision"]
    ident["dataset_version"] = dataset_version or cfg.get("dataset_version")
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]


HEADLINE = ("map.mo", "map.cr", "map.mul", "rank_distance", "map")
"""The headline of an evaluation, per dataset prefix: Mo./Cr./Mul. mAP and rank distance of a LAReQA
set, ``map`` of a single-pool one (DREAM). A small, stable set: what the logged model carries, what
the Models tab and the version's description show first; every other metric stays on the run."""


def headline_metrics(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    """The headline metrics of ``prefix`` found in ``metrics``, in ``HEADLINE`` order."""
    return {f"{prefix}.{h}": float(metrics[f"{prefix}.{h}"]) for h in HEADLINE if f"{prefix}.{h}" in metrics}


DATA_CONTEXT = "mlflow.data.context"


def _chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


# ---------------------------------------------------------------- the run


class PipelineRun:
    """A handle on one MLflow run; every method logs through ``MlflowClient`` with this run id."""

    def __init__(self, client, run_id: str, pipeline_run_id: str, experiment_id: str):
        self.client, self.run_id, self.pipeline_run_id, self.experiment_id = client, run_id, pipeline_run_id, experiment_id

    def __repr__(self) -> str:
        return f"PipelineRun(run_id={self.run_id!r}, pipeline_run_id={self.pipeline_run_id!r})"

    @property
    def run(self):
        return self.client.get_run(self.run_id)

    # -- params, tags, metrics

    def log_params(self, params: dict[str, Any], prefix: str = "") -> None:
        """Flattened (``a.b.c``); equal values already logged are skipped, changed ones refused."""
        from mlflow.entities import Param

        new = {f"{prefix}{k}": param_value(v) for k, v in flatten(params).items()}
        have = self.run.data.params
        changed = {k: (have[k], v) for k, v in new.items() if k in have and have[k] != v}
        if changed:
            raise TrackingError(
                f"run {self.run_id} (pipeline run {self.pipeline_run_id!r}) already has other values for "
                f"{sorted(changed)} (e.g. {next(iter(changed.items()))}); a changed config is a new pipeline run"
            )
        todo = [Param(k, v) for k, v in new.items() if k not in have]
        for chunk in _chunks(todo, 100):
            self.client.log_batch(self.run_id, params=chunk)

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, param_value(v)) for k, v in tags.items()]
        for chunk in _chunks(items, 100):
            self.client.log_batch(self.run_id, tags=chunk)

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> int:
        """Metrics at ``step``; a metric already at this value is not logged twice. Returns how many were logged."""
        from mlflow.entities import Metric

        have = self.run.data.metrics
        now = int(time.time() * 1000)
        todo = [
            Metric(k, float(v), now, step) for k, v in metrics.items()
            if v is not None and not (k in have and have[k] == float(v))
        ]
        for chunk in _chunks(todo, 1000):
            self.client.log_batch(self.run_id, metrics=chunk)
        return len(todo)

    def log_code_version(self) -> dict[str, str]:
        """The code a run started with, as params (first task wins); a later task of the same run on
        other code (a retry after a deploy, an edited checkout) is recorded as ``code.changed`` tags
        instead of failing the run."""
        code = code_version()
        have = self.run.data.params
        first = {k: v for k, v in code.items() if k not in have}
        self.log_params(first)
        if not first:
            changed = {k: v for k, v in code.items() if have.get(k) != v}
            if changed:
                self.set_tags({"code.changed": "true", **{f"code.changed.{k.removeprefix('code.')}": v
                                                          for k, v in changed.items()}})
        else:
            self.set_tags({"mlflow.source.git.commit": code["code.git_sha"]})
        return code

    # -- dataset inputs (the experiment's Datasets column)

    def log_dataset(self, name: str, digest: str, source: str, *, context: str = "training",
                    profile: dict | None = None, tags: dict[str, Any] | None = None) -> None:
        """``name`` at ``digest`` as a dataset input of the run (MLflow keeps one per name and digest, so
        a repeat is a no-op); ``source`` is where it lives, ``profile`` a few JSON-ready facts about it."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        ds = Dataset(name=name, digest=str(digest), source_type="local", source=json.dumps({"uri": str(source)}),
                     profile=json.dumps(profile, sort_keys=True, default=str) if profile else None)
        input_tags = [InputTag(DATA_CONTEXT, context), *(InputTag(k, param_value(v)) for k, v in (tags or {}).items())]
        self.client.log_inputs(self.run_id, [DatasetInput(ds, input_tags)])

    def datasets(self, context: str | None = None) -> list:
        """The run's dataset inputs (``mlflow.entities.DatasetInput``), those of ``context`` when given."""
        inputs = self.run.inputs.dataset_inputs if self.run.inputs else []
        return [d for d in inputs if context is None or {t.key: t.value for t in d.tags}.get(DATA_CONTEXT) == context]

    def copy_datasets(self, other: PipelineRun, context: str = "training") -> int:
        """Log ``other``'s dataset inputs of ``context`` on this run too (a child shows its parent's data)."""
        found = other.datasets(context)
        if found:
            self.client.log_inputs(self.run_id, found)
        return len(found)

    # -- artifacts

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        self.client.log_text(self.run_id, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", artifact_file)

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(local_path), artifact_path)

    # -- pipeline stages

    def log_config(self, train=None, evaluation=None) -> None:
        """The whole training config as ``train.*`` and an evaluation config as ``eval.<dataset>.*``."""
        if train is not None:
            data = train.model_dump(mode="json") if hasattr(train, "model_dump") else dict(train)
            data.pop("output_dir", None)
            self.log_params(data, "train.")
            self.log_params({"base_model": data.get("base_model")})
        if evaluation is not None:
            data = eval_config_dict(evaluation)
            data.pop("model", None)  # the evaluated model is the run's own (or base_model), not a param
            from xlir.registry.gates import metric_prefix

            self.log_params(data, f"eval.{metric_prefix(data.get('dataset', 'eval'))}.")

    def log_training(self, result) -> dict[str, Any]:
        """A training run folder: config, data versions, base model, loss curves, summary, files.

        ``result`` is a ``TrainResult``, its ``as_dict()``, or the run folder.
        """
        if isinstance(result, (str, Path)):
            out, summary = Path(result), _read_json(Path(result) / "train_result.json") or {}
        else:
            summary = result.as_dict() if hasattr(result, "as_dict") else dict(result)
            out = Path(summary["output_dir"])
        saved = _read_json(out / "train_config.json")
        if saved is None:
            raise TrackingError(f"{out} holds no train_config.json; is it a training run folder (xlir train --output)?")
        cfg = dict(saved.get("config", {}))
        cfg.pop("output_dir", None)
        self.log_params(cfg, "train.")
        self.log_params({"base_model": cfg.get("base_model")})
        if saved.get("validation_precision"):  # what validation_precision (auto) ran at on this machine
            self.log_params({"train.validation_precision_used": saved["validation_precision"]})
        versions = saved.get("data_versions") or summary.get("data_versions") or {}
        self.log_params({f"data.version.{k}": v for k, v in versions.items()})
        if saved.get("languages"):
            self.log_params({"data.languages": saved["languages"]})
        self.set_tags({"xlir.strategy": cfg.get("strategy", "")})
        steps = self.log_loss_curve(out / "train_log.jsonl")
        numbers = {f"train.{k}": summary[k] for k in ("final_loss", "validation_loss", "best_validation_loss", "seconds",
                                                       "pairs_per_second", "steps", "selected_step", "merge_lambda")
                   if summary.get(k) is not None}
        numbers.update({f"returned.{k}": v for k, v in (summary.get("validation") or {}).items()})
        numbers.update({f"base.{k}": v for k, v in (summary.get("validation_base") or {}).items()})
        self.log_metrics(numbers)
        for name in ("train_config.json", "train_log.jsonl", "train_result.json", "selection.json"):
            if (out / name).is_file():
                self.log_artifact(out / name, "training")
        return {"curve_points": steps, "data_versions": versions}

    def log_loss_curve(self, path: str | Path) -> int:
        """Every numeric field of ``train_log.jsonl`` as ``train.<field>`` at its step (loss -> train.loss).

        Only steps after the last one already logged are sent, so a repeat logs nothing.
        """
        from mlflow.entities import Metric

        path = Path(path)
        if not path.is_file():
            return 0
        history = self.client.get_metric_history(self.run_id, "train.loss")
        done = max((m.step for m in history), default=-1)
        todo = []
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            step = int(rec.get("step", 0))
            if step <= done:
                continue
            ts = int(float(rec.get("time", time.time())) * 1000)
            for k, v in rec.items():
                if k in _NOT_CURVES or isinstance(v, bool) or not isinstance(v, (int, float)):
                    continue
                todo.append(Metric(_curve_name(k), float(v), ts, step))
        for chunk in _chunks(todo, 1000):
            self.client.log_batch(self.run_id, metrics=chunk)
        return len(todo)

    def log_evaluation(self, result, artifact_path: str | None = None) -> dict:
        """An ``EvalResult``: config as ``eval.<prefix>.*``, every metric by its name, the results folder."""
        from xlir.registry.gates import metric_prefix

        info = result.info
        prefix = metric_prefix(info["dataset"])
        cfg = eval_config_dict(info["config"])
        key = eval_key(cfg, info.get("dataset_version"))
        cfg.pop("model", None)  # a folder path; the run is the model's record
        self.log_params(cfg, f"eval.{prefix}.")
        self.log_params({f"eval.{prefix}.dataset_version": info.get("dataset_version"),
                         f"eval.{prefix}.questions": info.get("questions"),
                         f"eval.{prefix}.candidates": info.get("candidates")})
        self.set_tags({f"eval.{prefix}.key": key})
        if info.get("dataset_version"):
            self.log_dataset(info["dataset"], info["dataset_version"], f"xlir dataset {info['dataset']}",
                             context="evaluation", profile={k: info.get(k) for k in ("questions", "candidates", "languages")})
        self.log_metrics(result.metrics)
        self.log_artifacts(result.output_dir, artifact_path or f"evaluation/{prefix}")
        return {"prefix": prefix, "metrics": len(result.metrics)}

    def log_validation_report(self, report, artifact_file: str = "validation/report.json") -> None:
        """The training data's ``ValidationReport`` (or a path to its JSON)."""
        if isinstance(report, (str, Path)):
            self.log_artifact(report, str(Path(artifact_file).parent))
            passed = (_read_json(Path(report)) or {}).get("passed")
        else:
            with tempfile.TemporaryDirectory() as tmp:
                path = report.write_json(Path(tmp) / Path(artifact_file).name)
                self.log_artifact(path, str(Path(artifact_file).parent))
            passed = report.passed
        self.set_tags({"data.validation.passed": str(passed).lower()})

    # -- nesting

    @contextmanager
    def child(self, name: str, tags: dict | None = None, finish: bool = True) -> Iterator[PipelineRun]:
        """A nested run (e.g. one training strategy), reopened by (pipeline run id, name) on retries."""
        name = check_run_key(name, "child run name")
        with _open_run(self.client, self.experiment_id, self.pipeline_run_id, run_name=name, finish=finish,
                       tags={TAG_KIND: "child", TAG_CHILD: name, TAG_PARENT: self.run_id, **(tags or {})},
                       filter_extra=f" and tags.`{TAG_CHILD}` = '{name}'") as run:
            yield run


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def experiment_id(client, name: str = EXPERIMENT) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    try:
        return client.create_experiment(name, tags={"xlir": "true"})
    except Exception:  # noqa: BLE001 - created concurrently
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


@contextmanager
def _open_run(client, exp_id: str, pipeline_run_id: str, *, run_name: str | None, tags: dict, finish: bool,
              filter_extra: str = "") -> Iterator[PipelineRun]:
    flt = f"tags.`{TAG_PIPELINE}` = '{pipeline_run_id}' and tags.`{TAG_KIND}` = '{tags[TAG_KIND]}'" + filter_extra
    runs = client.search_runs([exp_id], filter_string=flt, max_results=10, order_by=["attributes.start_time ASC"])
    if runs:
        run_id = runs[0].info.run_id
        if runs[0].info.status != "RUNNING":
            client.update_run(run_id, status="RUNNING")
    else:
        run_id = client.create_run(exp_id, run_name=run_name, tags={TAG_PIPELINE: pipeline_run_id, **tags}).info.run_id
    run = PipelineRun(client, run_id, pipeline_run_id, exp_id)
    try:
        yield run
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    else:
        if finish:
            client.set_terminated(run_id, status="FINISHED")


@contextmanager
def track_pipeline_run(
    pipeline_run_id: str,
    *,
    tracking_uri: str | None = None,
    experiment: str = EXPERIMENT,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    finish: bool = True,
    log_code: bool = True,
) -> Iterator[PipelineRun]:
    """The MLflow run of ``pipeline_run_id`` (created once, reopened afterwards).

    On leaving: FINISHED (or left RUNNING with ``finish=False``, for a task that is not the
    last), FAILED when an exception escapes. The code version is logged as params.
    """
    pipeline_run_id = check_run_key(pipeline_run_id)
    client = connect(tracking_uri)
    exp_id = experiment_id(client, experiment)
    with _open_run(client, exp_id, pipeline_run_id, run_name=run_name or pipeline_run_id, finish=finish,
                   tags={TAG_KIND: "pipeline", **(tags or {})}) as run:
        if log_code:
            run.log_code_version()
        yield run
