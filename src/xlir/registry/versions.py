"""Registered versions of the encoder: register once per pipeline run, read metrics and aliases.

State lives in the registry itself, readable in the MLflow UI:

- version tags: ``pipeline_run_id`` (idempotency key), ``baseline``, ``eval.key`` / ``eval.config``
  (the gating evaluation's config), ``gate.*`` (decision), ``promoted_by`` / ``champion.previous``;
- aliases: ``champion`` and ``previous-champion``;
- a version's metrics are those of its MLflow run (logged by ``register_model`` if not yet there).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xlir.errors import XlirError
from xlir.registry.gates import languages_of, metric_prefix
from xlir.registry.lock import RegistryLock, lock_lease
from xlir.registry.mlflow_errors import DENIED, EXISTS, INVALID, MISSING, is_error
from xlir.registry.tracking import (
    EVAL_KEY_FIELDS,
    EXPERIMENT,
    PipelineRun,
    check_run_key,
    connect,
    eval_config_dict,
    eval_key,
    headline_metrics,
)

log = logging.getLogger(__name__)

MODEL_NAME = "xlir-encoder"
CHAMPION = "champion"
PREVIOUS = "previous-champion"
TAG_PIPELINE = "pipeline_run_id"
TAG_BASELINE = "baseline"
TAG_EVAL_KEY = "eval.key"
TAG_EVAL_CONFIG = "eval.config"
TAG_GATE_STATUS = "gate.status"
TAG_PREVIOUS = "champion.previous"
GATED_PRECISION = "fp32"
"""The only precision a registered version's metrics (and so a gate decision) may come from."""

Evaluator = Callable[[Any], Any]  # EvalConfig -> EvalResult | dict[str, float]


class RegistryError(XlirError):
    """A registry operation cannot be done as asked (no such version, nothing to roll back to...)."""


def check_gated_precision(eval_config, what: str) -> None:
    """Raise unless ``eval_config`` is an fp32 evaluation: registered metrics feed the gates, and a
    promotion is decided in fp32 only (int8 is the labelled fast path)."""
    precision = eval_config_dict(eval_config).get("precision") or GATED_PRECISION
    if precision != GATED_PRECISION:
        raise RegistryError(
            f"{what}: the evaluation ran at precision {precision!r}, and registry versions carry "
            f"{GATED_PRECISION} evaluations only (the gates decide on them); evaluate with --precision {GATED_PRECISION}"
        )


def default_evaluator(cfg):
    from xlir.evaluation import evaluate

    return evaluate(cfg, progress=False)


def metrics_of(result) -> dict[str, float]:
    return dict(result.metrics) if hasattr(result, "metrics") else dict(result)


def logged_model_name(name: str) -> str:
    """A logged model's name from a run name (``hybrid-a0.5`` -> ``hybrid-a0_5``): MLflow refuses
    ``/ : . % " '`` in it; letters, digits, ``_`` and ``-`` are kept."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:100] or "model"


def pip_requirements() -> list[str]:
    """Explicit requirements of a logged encoder (skips MLflow's slow inference)."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("sentence-transformers", "transformers", "torch", "tokenizers")]


@dataclass(frozen=True)
class VersionInfo:
    version: int
    run_id: str | None
    tags: dict
    source: str
    description: str = ""

    @property
    def eval_key(self) -> str | None:
        return self.tags.get(TAG_EVAL_KEY)

    @property
    def eval_config(self) -> dict:
        try:
            return json.loads(self.tags.get(TAG_EVAL_CONFIG, "{}"))
        except ValueError:
            return {}

    @property
    def baseline(self) -> bool:
        return self.tags.get(TAG_BASELINE) == "true"


def _info(mv) -> VersionInfo:
    return VersionInfo(int(mv.version), mv.run_id or None, dict(mv.tags or {}), mv.source, mv.description or "")


class Registry:
    """The registered model ``name`` on one tracking server."""

    def __init__(self, tracking_uri: str | None = None, name: str = MODEL_NAME, *, experiment: str = EXPERIMENT,
                 client=None, lock_ttl: float | None = None, lock_timeout: float = 300.0, download_dir: Path | None = None):
        self.name = name
        self.download_dir = download_dir
        self.experiment = experiment
        self.tracking_uri = tracking_uri
        self.client = client or connect(tracking_uri)
        self.lock_ttl, self.lock_timeout = lock_lease() if lock_ttl is None else lock_ttl, lock_timeout

    # -- basics

    def lock(self, purpose: str) -> RegistryLock:
        return RegistryLock(self.client, self.name, purpose=purpose, ttl=self.lock_ttl, timeout=self.lock_timeout)

    def ensure_model(self) -> None:
        try:
            self.client.create_registered_model(
                self.name, description="xlir multilingual retrieval encoder; `champion` moves only through the promotion gates",
                tags={"xlir": "true"})
        except Exception as e:  # noqa: BLE001
            if not is_error(e, EXISTS):
                raise

    def exists(self) -> bool:
        try:
            self.client.get_registered_model(self.name)
            return True
        except Exception as e:  # noqa: BLE001
            if is_error(e, MISSING):
                return False
            raise

    def version(self, version: int | str) -> VersionInfo:
        try:
            return _info(self.client.get_model_version(self.name, str(version)))
        except Exception as e:  # noqa: BLE001
            if is_error(e, MISSING, INVALID):
                raise RegistryError(f"no version {version} of registered model {self.name!r}; see `xlir registry show`") from None
            raise

    def alias(self, alias: str) -> VersionInfo | None:
        """The version behind ``alias`` read fresh from the server (never from a search result)."""
        try:
            return _info(self.client.get_model_version_by_alias(self.name, alias))
        except Exception as e:  # noqa: BLE001
            if is_error(e, MISSING, INVALID) or (is_error(e, DENIED) and not self.exists()):
                return None  # MLflow's auth app answers 403, not 404, to a non-admin about a model that does not exist
            raise

    def champion(self) -> VersionInfo | None:
        return self.alias(CHAMPION)

    def versions(self) -> list[VersionInfo]:
        if not self.exists():
            return []
        found = self.client.search_model_versions(f"name='{self.name}'", max_results=10000)
        return sorted((_info(v) for v in found), key=lambda v: v.version)

    def find_version(self, pipeline_run_id: str) -> VersionInfo | None:
        """The version registered by ``pipeline_run_id`` (the idempotency key), if any."""
        if not self.exists():
            return None
        found = self.client.search_model_versions(
            f"name='{self.name}' and tags.{TAG_PIPELINE} = '{pipeline_run_id}'", max_results=10)
        found = sorted(found, key=lambda v: int(v.version))
        if len(found) > 1:
            log.warning("pipeline run %s has %d versions (%s); using the first", pipeline_run_id, len(found),
                        [v.version for v in found])
        return _info(found[0]) if found else None

    def version_metrics(self, version: int | str | VersionInfo) -> dict[str, float]:
        v = version if isinstance(version, VersionInfo) else self.version(version)
        if not v.run_id:
            raise RegistryError(f"version {v.version} of {self.name!r} has no run; its metrics are unknown")
        return dict(self.client.get_run(v.run_id).data.metrics)

    def set_tags(self, version: int, tags: dict[str, Any]) -> None:
        for k, val in tags.items():
            self.client.set_model_version_tag(self.name, str(version), k, "" if val is None else str(val))

    # -- registration

    def register_model(
        self,
        model,
        run_id: str,
        pipeline_run_id: str,
        metrics: dict[str, float],
        eval_config,
        *,
        dataset_version: str | None = None,
        baseline: bool = False,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        required_metrics: tuple[str, ...] = ("map.mo", "map.cr", "map.mul", "rank_distance"),
    ) -> int:
        """Log ``model`` (a folder or a SentenceTransformer) with the sentence-transformers flavor and
        register it; returns the version. Idempotent: a version tagged with ``pipeline_run_id`` is
        returned as is, so a retried task never registers a second one.

        Checked before anything is written: the run exists, ``metrics`` hold the gating
        evaluation's key metrics (``required_metrics`` under the dataset's prefix) as finite numbers.
        """
        pipeline_run_id = check_run_key(pipeline_run_id)
        existing = self.find_version(pipeline_run_id)
        if existing is not None:
            log.info("pipeline run %s already registered version %d", pipeline_run_id, existing.version)
            return existing.version
        cfg = eval_config_dict(eval_config)
        check_gated_precision(cfg, f"cannot register for pipeline run {pipeline_run_id!r}")
        dataset_version = dataset_version or cfg.pop("dataset_version", None)
        prefix = metric_prefix(cfg.get("dataset") or "")
        missing = [f"{prefix}.{m}" for m in required_metrics
                   if not isinstance(metrics.get(f"{prefix}.{m}"), (int, float)) or not math.isfinite(metrics[f"{prefix}.{m}"])]
        if "map.mul" in required_metrics and not languages_of(metrics, prefix):
            missing.append(f"{prefix}.map.mul.LANG (per-language)")
        if missing:
            raise RegistryError(
                f"cannot register for pipeline run {pipeline_run_id!r}: the metrics lack {missing} (finite numbers) of "
                f"the gating evaluation on {cfg.get('dataset')!r}; nothing was registered"
            )
        try:
            run = self.client.get_run(run_id)
        except Exception as e:  # noqa: BLE001
            raise RegistryError(f"no MLflow run {run_id!r} to register from ({type(e).__name__}); nothing was registered") from None
        tracked = PipelineRun(self.client, run_id, pipeline_run_id, run.info.experiment_id)
        tracked.log_metrics(metrics)
        model_id, model_uri = self._log_model(model, tracked, run.info.run_name or ("baseline" if baseline else "model"),
                                              {"baseline": "true" if baseline else "false"})
        self._link_headline(tracked, model_id, {**run.data.metrics, **metrics}, cfg.get("dataset") or "",
                            dataset_version)
        key = eval_key(cfg, dataset_version)
        version_tags = {
            TAG_PIPELINE: pipeline_run_id,
            TAG_BASELINE: "true" if baseline else "false",
            TAG_EVAL_KEY: key,
            TAG_EVAL_CONFIG: json.dumps({**cfg, "dataset_version": dataset_version}, sort_keys=True),
            TAG_GATE_STATUS: "baseline" if baseline else "pending",
            **(tags or {}),
        }
        self.ensure_model()
        with self.lock(f"register {pipeline_run_id}"):
            again = self.find_version(pipeline_run_id)  # a racing retry may have won
            if again is not None:
                log.warning("pipeline run %s registered version %d concurrently; logged model %s stays unregistered",
                            pipeline_run_id, again.version, model_id)
                return again.version
            mv = self.client.create_model_version(
                self.name, source=model_uri, run_id=run_id, tags=version_tags, model_id=model_id,
                description=description or ("baseline: the untuned base encoder" if baseline else f"pipeline run {pipeline_run_id}"),
            )
        return int(mv.version)

    def _log_model(self, model, run: PipelineRun, name: str, tags: dict[str, str]) -> tuple[str, str]:
        """The encoder as an MLflow 3 logged model (the sentence-transformers flavor) of ``run``, named
        after the run (the variant, or ``baseline``): the experiment's Models tab lists it."""
        import mlflow.sentence_transformers
        from mlflow.entities import LoggedModelOutput

        from xlir.registry.signature import encoder_signature

        if isinstance(model, (str, Path)):
            from xlir.models import load_encoder

            model = load_encoder(str(model), device="cpu")
        dim = model.get_embedding_dimension()
        signature = encoder_signature(dim)  # with the prompt param `mlflow models serve` forwards to encode
        lm = self.client.create_logged_model(experiment_id=run.experiment_id, name=logged_model_name(name),
                                             source_run_id=run.run_id,
                                             tags={TAG_PIPELINE: run.pipeline_run_id, **tags})
        try:
            # no run_id: given one, MLflow links every metric of the run to the model (one history request
            # per metric); the model is the run's output here and carries the headline only (_link_headline)
            info = mlflow.sentence_transformers.log_model(
                model, name=logged_model_name(name), model_id=lm.model_id, signature=signature,
                input_example=["query: what is the capital of France?", "passage: Paris is the capital of France."],
                pip_requirements=pip_requirements(),
            )
            self.client.log_outputs(run.run_id, [LoggedModelOutput(lm.model_id, step=0)])
        except BaseException:
            self.client.finalize_logged_model(lm.model_id, "FAILED")
            raise
        return lm.model_id, info.model_uri

    def _link_headline(self, run: PipelineRun, model_id: str, metrics: dict[str, float], gating: str,
                       gating_version: str | None) -> int:
        """The headline metrics (``HEADLINE``) of every dataset the run was evaluated on, linked to the
        logged model with that evaluation's dataset: the Models tab's metric columns. Returns how many."""
        from mlflow.entities import Metric

        datasets = {gating: gating_version}
        for d in run.datasets("evaluation"):
            datasets.setdefault(d.dataset.name, d.dataset.digest)
        linked = []
        for name, digest in datasets.items():
            for key in headline_metrics(metrics, metric_prefix(name)) if name else ():
                # the run's own entry (same value, time and step), so the run's history gains no second point
                m = max(self.client.get_metric_history(run.run_id, key), key=lambda m: (m.step == 0, m.timestamp))
                linked.append(Metric(key, m.value, m.timestamp, m.step, model_id=model_id,
                                     dataset_name=name if digest else None, dataset_digest=digest or None))
        if linked:
            self.client.log_batch(run.run_id, metrics=linked)
        return len(linked)

    # -- reading a version's model

    def download(self, version: int) -> Path:
        """The version's sentence-transformers folder, cached under the xlir cache."""
        import mlflow.artifacts

        from xlir.paths import cache_dir

        v = self.version(version)
        target = Path(self.download_dir or cache_dir() / "registry") / f"{self.name}-v{v.version}-{hashlib.sha1(v.source.encode()).hexdigest()[:8]}"
        folder = target / "model.sentence_transformer"
        if (folder / "modules.json").is_file():
            return folder
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
        try:
            mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{self.name}/{v.version}", dst_path=str(tmp))
            if not (tmp / "model.sentence_transformer" / "modules.json").is_file():
                raise RegistryError(f"version {v.version} of {self.name!r} is not a sentence-transformers model ({v.source})")
            try:
                os.replace(tmp, target)
            except OSError:  # another process put it there first
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return folder

    # -- table

    def table(self, limit: int | None = 50, dataset: str = "xquad-r") -> list[dict]:
        """One row per version, newest first: aliases, gate status, key metrics, provenance."""
        p = metric_prefix(dataset)
        aliases: dict[int, list[str]] = {}
        try:
            for a, v in (self.client.get_registered_model(self.name).aliases or {}).items():
                aliases.setdefault(int(v), []).append(a)
        except Exception as e:  # noqa: BLE001
            if is_error(e, MISSING):
                return []
            raise
        for alias in (CHAMPION, PREVIOUS):  # aliases read one by one are authoritative
            v = self.alias(alias)
            for names in aliases.values():
                if alias in names:
                    names.remove(alias)
            if v is not None:
                aliases.setdefault(v.version, []).append(alias)
        rows = []
        for v in sorted(self.versions(), key=lambda x: -x.version)[:limit]:
            m = self.client.get_run(v.run_id).data.metrics if v.run_id else {}
            rows.append({
                "version": v.version,
                "aliases": sorted(aliases.get(v.version, []), key=lambda a: (a != CHAMPION, a)),
                "gate": v.tags.get(TAG_GATE_STATUS, ""),
                "failed": v.tags.get("gate.failed", ""),
                "baseline": v.baseline,
                "map.mul": m.get(f"{p}.map.mul"),
                "map.mo": m.get(f"{p}.map.mo"),
                "map.cr": m.get(f"{p}.map.cr"),
                "rank_distance": m.get(f"{p}.rank_distance"),
                "eval_key": v.eval_key,
                "pipeline_run_id": v.tags.get(TAG_PIPELINE, ""),
                "promoted_by": v.tags.get("promoted_by", ""),
                "run_id": v.run_id,
            })
        return rows


__all__ = [
    "CHAMPION",
    "MODEL_NAME",
    "PREVIOUS",
    "Registry",
    "RegistryError",
    "VersionInfo",
    "eval_key",
]
