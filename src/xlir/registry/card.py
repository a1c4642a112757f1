"""The model card of a registered version: data, languages, strategy, metrics against the
champion and the baseline, and the gate decision. Markdown, logged as ``model_card.md`` in the
version's run; the version's description holds the outcome and a one-line summary."""

from __future__ import annotations

import json

from xlir.registry.gates import GateDecision, languages_of, metric_prefix
from xlir.registry.report import format_delta, format_metric, version_report
from xlir.registry.tracking import HEADLINE

_ROWS = [("map.mo", "Mo. mAP"), ("map.cr", "Cr. mAP"), ("map.mul", "Mul. mAP"), ("r1.mo", "Mo. R@1"),
         ("r1.cr", "Cr. R@1"), ("r10.mul", "Mul. R@10"), ("rank_distance", "mean rank distance (lower is better)")]


def _json(text: str | None, default=None):
    try:
        return json.loads(text) if text else default
    except ValueError:
        return text


def _training_rows(params: dict, metrics: dict) -> list[str]:
    """Recipe, checkpoint selection and WiSE-FT merge of a trained version (nothing for the baseline)."""
    if "train.steps" not in params:
        return []
    align = params.get("train.align_weight")
    recipe = (f"{params['train.steps']} steps of {params.get('train.batch_size', '–')} triplets, lr {params.get('train.lr', '–')} "
              f"({params.get('train.lr_schedule', '–')}, warm-up {params.get('train.warmup_ratio', '–')}), "
              f"loss scale {params.get('train.scale', '–')}"
              + (f", alignment weight {align}" if align not in (None, "0.0", "0") else ""))
    step = metrics.get("train.selected_step")
    chosen = (f"step {int(step)} of {params['train.steps']}, by the {params.get('train.select')} validation criterion"
              if step is not None else "the last step")
    lam = metrics.get("train.merge_lambda")
    how = "chosen on the validation criterion" if params.get("train.merge_with_base") == "auto" else "fixed"
    merge = ("not merged" if lam is None else f"not merged (lambda 1, {how})" if lam == 1.0
             else f"(1 - {lam:g}) x base + {lam:g} x fine-tuned ({how})")
    rows = [f"| recipe | {recipe} |", f"| returned checkpoint | {chosen} |", f"| WiSE-FT merge with the base | {merge} |"]
    val = {k: metrics.get(f"returned.val.{k}") for k in ("map.mo", "map.cr", "map.mul", "rank_distance")}
    base = {k: metrics.get(f"base.val.{k}") for k in val}
    if val["map.mul"] is not None:
        rows.append("| held-out validation (training-side ids) | Mo./Cr./Mul. mAP "
                    + "/".join(format_metric(val[k]) for k in ("map.mo", "map.cr", "map.mul"))
                    + f", rank distance {format_metric(val['rank_distance'], 0)} (base encoder "
                    + "/".join(format_metric(base[k]) for k in ("map.mo", "map.cr", "map.mul"))
                    + f", {format_metric(base['rank_distance'], 0)}) |")
    return rows


def ingest_record(run_tags: dict, version: str) -> dict:
    """What the pipeline run recorded about ingested data version ``version`` (tag ``data.ingest.<version>``)."""
    return _json(run_tags.get(f"{INGEST_TAG}.{version}"), {}) or {}


INGEST_TAG = "data.ingest"
"""Run tags of the data lineage: ``data.ingest.versions`` (JSON list), ``data.ingest.<version>`` (JSON:
landed files, validation report, rows, the named dataset it equals, the ingest's MLflow run and asset event)."""


def _ingest_lines(run_tags: dict) -> list[str]:
    lines = []
    for version in _json(run_tags.get(f"{INGEST_TAG}.versions"), []) or []:
        r = ingest_record(run_tags, version)
        files = ", ".join(f"`{f}`" for f in r.get("files") or []) or "–"
        same = f"; its content equals the named dataset `{r['same_as']}` (trained on once)" if r.get("same_as") else ""
        event = r.get("asset_event") or {}
        via = (f"; announced by asset event of `{event.get('source_dag_id')}` run `{event.get('source_run_id')}`"
               if event.get("source_run_id") else "")
        lines.append(f"- ingested data version `{version}`: landed file(s) {files}, {r.get('rows', '–')} questions, "
                     f"validation {'passed' if r.get('passed') else 'NOT passed'} (report `{r.get('report', '–')}`, "
                     f"artifact `{r.get('artifact', '–')}`){same}{via}")
    return lines


def _validation(run_tags: dict) -> str:
    passed = run_tags.get("data.validation.passed")
    if passed is None:
        return "not recorded"
    where = "the ingest reports above" if run_tags.get(f"{INGEST_TAG}.versions") else "artifact `validation/report.json`"
    return f"{'passed' if passed == 'true' else 'NOT passed'} ({where})"


def render_model_card(
    *,
    name: str,
    version: int,
    run_params: dict,
    run_tags: dict,
    version_tags: dict,
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    champion_version: int | None,
    baseline: dict[str, float] | None,
    baseline_version: int | None,
    decision: GateDecision | None,
    outcome: str,
    dataset: str = "xquad-r",
) -> str:
    """The model card of one registered version, as Markdown.

    A reviewer deciding whether to trust ``champion`` needs the version's provenance, its numbers
    beside the champion's and the untuned baseline's, and the reason the gates gave, in one page.
    This function builds that page from plain dicts and talks to no server, so it can be tested
    and previewed; ``write_model_card`` gathers the inputs from MLflow and logs the result as
    ``model_card.md``.

    The card holds: a title ``# {name} v{version}: {outcome}``; provenance (model URI, pipeline and
    MLflow run, git sha, base model, whether it is the baseline, batch strategy with alpha) and,
    for a trained version (``train.steps`` in ``run_params``), the recipe, the returned checkpoint,
    the WiSE-FT merge and its held-out validation numbers against the base encoder's; the data
    (training datasets and versions, languages, data validation, the gating evaluation's config and
    eval key); the headline metrics (Mo./Cr./Mul. mAP, R@1, R@10, rank distance) and per-language
    Mul. mAP for candidate, champion and baseline; the gate decision with every check; and how to
    load the model. Missing values print as ``–`` (an unknown question count as ``all``).

    Args:
        name: the registered model's name.
        version: the version the card describes.
        run_params: params of the version's MLflow run (``train.*``, ``data.version.*``,
            ``code.git_sha``, ...), as MLflow stores them (strings).
        run_tags: tags of that run; ``_run_id`` is the run id to print.
        version_tags: tags of the model version (``eval.config``, ``eval.key``, ``baseline``,
            ``pipeline_run_id``).
        candidate: the version's metrics, stable names (``xquad_r.map.mul``, ``train.selected_step``,
            ``returned.val.map.mo``, ...).
        champion: the metrics of the champion it was compared with, or None.
        champion_version: that champion's version, or None.
        baseline: the untuned baseline's metrics on the same evaluation key, or None.
        baseline_version: the baseline's version (given with ``baseline=None``, the card says its
            numbers are not comparable).
        decision: the gate decision, or None (not gated: the baseline, or no decision recorded).
        outcome: a few words for the title (``promoted to champion``, ``rejected by the gates``).
        dataset: the gating dataset, whose metric prefix the tables read.

    Returns:
        The Markdown text, ending with a newline.

    Example:
        ```python
        from xlir.registry.card import render_model_card

        text = render_model_card(
            name="xlir-encoder", version=2, run_params={"train.strategy": "hybrid", "train.alpha": "0.5"},
            run_tags={"_run_id": "4f2a9c"}, version_tags={"pipeline_run_id": "manual__2026-12-01"},
            candidate={"xquad_r.map.mo": 0.765, "xquad_r.map.mul": 0.527},
            champion={"xquad_r.map.mo": 0.776, "xquad_r.map.mul": 0.286}, champion_version=1,
            baseline=None, baseline_version=None, decision=None, outcome="rejected by the gates",
        )
        text.splitlines()[0]     # "# xlir-encoder v2: rejected by the gates"
        ```
    """
    p = metric_prefix(dataset)
    eval_cfg = _json(version_tags.get("eval.config"), {}) or {}
    strategy = run_params.get("train.strategy", "–")
    if strategy == "hybrid" and "train.alpha" in run_params:
        strategy += (f" (alpha {run_params['train.alpha']}: probability that a batch of a multilingual source is "
                     "monolingual; a single-language source's batches are always monolingual)")
    train_sets = _json(run_params.get("train.train_datasets"), []) or []
    data_versions = {k.removeprefix("data.version."): v for k, v in run_params.items() if k.startswith("data.version.")}
    langs = _json(run_params.get("data.languages")) or _json(run_params.get("train.languages")) or "–"
    base = run_params.get("base_model") or run_params.get("train.base_model", "–")
    head = f"# {name} v{version}: {outcome}"
    lines = [
        head, "",
        "| | |", "|---|---|",
        f"| registered model | `{name}` version {version} (`models:/{name}/{version}`) |",
        f"| pipeline run | `{version_tags.get('pipeline_run_id', '–')}` |",
        f"| MLflow run | `{run_tags.get('_run_id', '–')}` |",
        f"| code | `{run_params.get('code.git_sha', '–')}` (dirty: {run_params.get('code.git_dirty', '–')}) |",
        f"| base model | `{base}` |",
        f"| baseline | {'yes: the untuned base encoder' if version_tags.get('baseline') == 'true' else 'no'} |",
        f"| batch strategy | {strategy} |",
        *_training_rows(run_params, candidate),
        "",
        "## Data", "",
        f"- training datasets: {', '.join(map(str, train_sets)) or '–'}",
        f"- data versions: {', '.join(f'{k} {v}' for k, v in sorted(data_versions.items())) or '–'}",
        f"- training languages: {', '.join(langs) if isinstance(langs, list) else langs}",
        *_ingest_lines(run_tags),
        f"- training data validation: {_validation(run_tags)}",
        f"- gating evaluation: {eval_cfg.get('dataset', dataset)} (data version {eval_cfg.get('dataset_version') or '–'}), "
        f"{eval_cfg.get('max_questions_per_lang') or 'all'} questions per language (seed {eval_cfg.get('seed', '–')}), "
        f"candidates as {eval_cfg.get('candidate_text', '–')}, max length {eval_cfg.get('max_seq_length', '–')}; "
        f"eval key `{version_tags.get('eval.key', '–')}`",
        "",
        "## Metrics", "",
        f"| metric | candidate v{version} | champion {('v' + str(champion_version)) if champion_version else '–'} | "
        f"baseline {('v' + str(baseline_version)) if baseline_version else '–'} |",
        "|---|---:|---:|---:|",
    ]
    for key, label in _ROWS:
        n = f"{p}.{key}"
        lines.append(f"| {label} | {format_metric(candidate.get(n))} | {format_metric((champion or {}).get(n))} | {format_metric((baseline or {}).get(n))} |")
    lang_list = languages_of(candidate, p)
    if lang_list:
        lines += ["", "Per-language Mul. mAP:", "", "| language | candidate | champion | baseline |", "|---|---:|---:|---:|"]
        for x in lang_list:
            n = f"{p}.map.mul.{x}"
            lines.append(f"| {x} | {format_metric(candidate.get(n))} | {format_metric((champion or {}).get(n))} | {format_metric((baseline or {}).get(n))} |")
    if champion is not None and decision is not None and decision.reference.get("reevaluated"):
        lines += ["", f"The champion was re-evaluated on this version's evaluation config (its own differs in "
                      f"{decision.reference.get('differs')})."]
    if baseline is None and baseline_version is not None:
        lines += ["", f"Baseline v{baseline_version} was evaluated on another config; its numbers are not comparable here."]
    lines += ["", "## Gate decision", ""]
    if decision is None:
        lines.append("Not gated (the baseline becomes the first champion)." if version_tags.get("baseline") == "true"
                     else "No decision recorded.")
    else:
        lines += [
            f"**{decision.status.upper()}** with profile `{decision.profile}` of gate file version {decision.gates_version}"
            + (" (forced)" if decision.forced else "") + (f"; failed: {', '.join(decision.failed)}" if decision.failed else ""),
            "",
            "| check | candidate | reference | threshold | result |", "|---|---:|---:|---:|---|",
        ]
        for c in decision.checks:
            result = "skipped" if c.skipped else ("pass" if c.passed else "**FAIL**")
            lines.append(f"| {c.name} | {format_metric(c.candidate, 4)} | {format_metric(c.reference, 4)} | {c.op} {format_metric(c.threshold, 4)} | {result} |")
        lines += ["", f"Full record: artifact `gate/decision.json`; overrides: {decision.gates.get('overrides') or 'none'}."]
    lines += ["", "## Use", "", "```python", "import mlflow.sentence_transformers",
              f'model = mlflow.sentence_transformers.load_model("models:/{name}@champion")  # or models:/{name}/{version}',
              'model.encode_query(["..."]); model.encode_document(["..."])  # E5 prefixes are the model\'s prompts', "```", ""]
    return "\n".join(lines)


def write_model_card(reg, version: int, result, reference_metrics: dict[str, float] | None = None) -> str:
    """Render the card for ``version`` after ``result`` (a ``PromotionResult``) and log it; log the
    comparison charts against the champion the decision compared with (``reference_metrics``: its
    full metrics on the candidate's evaluation, else the decision's key metrics); set the version's
    description, and its run's, to the outcome, the headline table and the charts, in Markdown."""
    v = reg.version(version)
    run = reg.client.get_run(v.run_id)
    tags, params = _with_parent(reg, run)
    decision = result.decision
    dataset = (decision.gates.get("dataset") if decision else None) or v.eval_config.get("dataset", "xquad-r")
    champion = champion_version = None
    if decision is not None and decision.reference.get("version"):
        champion_version = decision.reference["version"]
        champion = decision.reference.get("metrics")
    baseline = baseline_version = None
    bases = [b for b in reg.versions() if b.baseline and b.version != version]
    if bases:
        same = [b for b in bases if b.eval_key == v.eval_key]
        pick = (same or bases)[-1]
        baseline_version = pick.version
        baseline = reg.version_metrics(pick) if same else None
    outcome = {"passed": "promoted to champion", "rejected": "rejected by the gates", "already-champion": "champion",
               "baseline": "baseline, first champion"}.get(
        result.status, result.status)
    text = render_model_card(
        name=reg.name, version=version, run_params=params, run_tags={**tags, "_run_id": v.run_id},
        version_tags=v.tags, candidate=run.data.metrics, champion=champion, champion_version=champion_version,
        baseline=baseline, baseline_version=baseline_version, decision=decision, outcome=outcome, dataset=dataset,
    )
    reg.client.log_text(v.run_id, text, "model_card.md")
    charts = {}
    if champion_version is not None:
        charts = _log_charts(reg, v.run_id, run.data.metrics, reference_metrics or champion or {}, dataset,
                             f"v{version}", f"champion v{champion_version}")
    summary = decision.summary() if decision else outcome
    description = render_description(version_report(reg, version), outcome, summary, v.run_id, charts)
    reg.client.update_model_version(reg.name, str(version), description=description)
    reg.client.set_tag(v.run_id, RUN_DESCRIPTION, description)  # the run page shows it above its metrics
    return text


RUN_DESCRIPTION = "mlflow.note.content"
"""The run tag MLflow's run page renders as the run's description (Markdown)."""


def _with_parent(reg, run) -> tuple[dict, dict]:
    """A run's tags and params over its parent's (the pipeline run holds the data lineage)."""
    tags, params = dict(run.data.tags), dict(run.data.params)
    parent_id = tags.get("mlflow.parentRunId")
    if parent_id:
        parent = reg.client.get_run(parent_id)
        tags, params = {**parent.data.tags, **tags}, {**parent.data.params, **params}
    return tags, params


def _log_charts(reg, run_id: str, candidate: dict, reference: dict, dataset: str, cand_label: str,
                ref_label: str) -> dict[str, str]:
    """The comparison PNGs in the run's ``comparison/`` folder; ``{kind: artifact path}``."""
    import tempfile
    from pathlib import Path

    from xlir.registry.charts import COMPARISON_DIR, write_comparison_charts

    with tempfile.TemporaryDirectory() as tmp:
        written = write_comparison_charts(candidate, reference, metric_prefix(dataset), Path(tmp),
                                          candidate_label=cand_label, reference_label=ref_label, dataset=dataset)
        for path in written.values():
            reg.client.log_artifact(run_id, str(path), COMPARISON_DIR)
    return {kind: f"{COMPARISON_DIR}/{path.name}" for kind, path in written.items()}


def artifact_url(run_id: str, path: str) -> str:
    """An artifact of a run as the MLflow server serves it to its UI (relative to the UI's root)."""
    from urllib.parse import urlencode

    return "get-artifact?" + urlencode({"path": path, "run_uuid": run_id})


def render_description(report: dict, outcome: str, summary: str, run_id: str, charts: dict[str, str]) -> str:
    """A version's description in Markdown (the MLflow UI renders it): the outcome and the gate's
    summary, the headline metrics (``HEADLINE``) against the reference with their change, the charts."""
    from xlir.registry.charts import CAPTIONS

    ref = report["reference_version"]
    ref_name = (f"v{ref}" + (" (baseline)" if report["reference_is_baseline"] else "")) if ref else "no champion"
    lines = [f"{outcome}: {summary}", "", f"| dataset | metric | v{report['version']} | {ref_name} | change |",
             "|---|---|---:|---:|---:|"]
    for r in report["rows"]:
        if r["name"].split(".", 1)[1] in HEADLINE:
            lines.append(f"| {r['dataset']} | {r['metric']} | {format_metric(r['candidate'])} | "
                         f"{format_metric(r['reference'])} | {format_delta(r)} |")
    d = report["decision"]
    if d is not None:
        lines += ["", f"Gate: **{d['status']}** ({d['checks']} checks, profile `{d['profile']}`)"
                  + (" [forced]" if d["forced"] else "") + (f"; failed: {', '.join(d['failed'])}" if d["failed"] else "")]
    for kind, path in charts.items():
        lines += ["", f"![{CAPTIONS[kind]}]({artifact_url(run_id, path)})"]
    lines += ["", f"Model card: artifact `model_card.md` of run `{run_id}`"
              + ("; decision: `gate/decision.json`." if d is not None else ".")]
    return "\n".join(lines)
