"""What a pipeline run's model achieved against the champion it was gated on, for people.

``version_report`` gathers, from the tracking server only, the candidate's metrics on every
dataset it was evaluated on, the reference's (the champion at decision time, from
``gate/decision.json``; the current champion when no decision was recorded) where the two were
evaluated on the same config (same ``eval.<dataset>.key``), and the gate decision.
``render_report`` prints it as a table. Both are used by ``xlir stack run`` and ``xlir registry report``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from xlir.registry.gates import DECISION_FILE, metric_prefix

COLUMNS = (("map.mo", "mAP Mo."), ("map.cr", "mAP Cr."), ("map.mul", "mAP Mul."), ("r1.mo", "R@1 Mo."),
           ("r10.mul", "R@10 Mul."), ("rank_distance", "rank distance"), ("map", "mAP"), ("r1", "R@1"),
           ("r10", "R@10"))
SINGLE_POOL = {"map", "r1", "r10"}
LOWER_IS_BETTER = {"rank_distance"}


def _decision(reg, run_id: str | None) -> dict | None:

    if not run_id:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = reg.client.download_artifacts(run_id, DECISION_FILE, tmp)
        except Exception:  # noqa: BLE001 - no decision recorded (promotion not requested, or baseline)
            return None
        return json.loads(Path(path).read_text())


def version_report(reg, version: int, datasets: list[str] | None = None) -> dict:
    """Candidate vs reference rows per dataset and metric (default: every dataset the candidate's run
    was evaluated on, the gating one first), the decision summary and the champion now."""
    cand = reg.version(version)
    cand_run = reg.client.get_run(cand.run_id) if cand.run_id else None
    cand_metrics = dict(cand_run.data.metrics) if cand_run else {}
    cand_tags = dict(cand_run.data.tags) if cand_run else {}
    decision = _decision(reg, cand.run_id)
    champion = reg.champion()
    ref_version = (decision or {}).get("reference", {}).get("version")
    if decision is None and champion is not None and champion.version != version:
        ref_version = champion.version
    ref = reg.version(ref_version) if ref_version else None
    ref_run = reg.client.get_run(ref.run_id) if ref and ref.run_id else None
    ref_metrics = dict(ref_run.data.metrics) if ref_run else {}
    ref_tags = dict(ref_run.data.tags) if ref_run else {}
    gated_ref = (decision or {}).get("reference", {}).get("metrics") or {}

    if datasets is None:
        prefixes = sorted(k[len("eval."):-len(".key")] for k in cand_tags if k.startswith("eval.") and k.endswith(".key"))
        gating = metric_prefix((decision or {}).get("gates", {}).get("dataset") or "xquad-r")
        datasets = sorted(prefixes, key=lambda x: (x != gating, x))
    rows = []
    for dataset in datasets:
        prefix = metric_prefix(dataset)
        same_config = bool(ref_run) and cand_tags.get(f"eval.{prefix}.key") == ref_tags.get(f"eval.{prefix}.key")
        single_pool = f"{prefix}.map" in cand_metrics  # DREAM-like: one pool, no language pairs
        for suffix, label in COLUMNS:
            name = f"{prefix}.{suffix}"
            if name not in cand_metrics or single_pool != (suffix in SINGLE_POOL):
                continue
            reference = gated_ref.get(name)
            if reference is None and same_config:
                reference = ref_metrics.get(name)
            rows.append({"dataset": dataset, "metric": label, "name": name, "candidate": cand_metrics[name],
                         "reference": reference, "lower_is_better": suffix in LOWER_IS_BETTER})
    checks = (decision or {}).get("checks", [])
    return {
        "version": version,
        "reference_version": ref_version,
        "reference_is_baseline": bool(ref and ref.baseline),
        "rows": rows,
        "decision": None if decision is None else {
            "status": decision.get("status"), "failed": decision.get("failed", []), "profile": decision.get("profile"),
            "checks": len(checks), "forced": decision.get("forced", False),
            "failed_checks": [c for c in checks if not c.get("passed")],
        },
        "champion": champion.version if champion else None,
        "training": _training(cand_metrics, dict(cand_run.data.params) if cand_run else {}),
    }


def _training(metrics: dict, params: dict) -> dict | None:
    """Which checkpoint the run returned, its WiSE-FT lambda and its held-out validation against the base."""
    if "train.steps" not in metrics:
        return None
    return {"steps": metrics["train.steps"], "selected_step": metrics.get("train.selected_step"),
            "merge_lambda": metrics.get("train.merge_lambda"), "merge": params.get("train.merge_with_base"),
            "validation": {k: metrics.get(f"returned.val.{k}") for k in ("map.mo", "map.mul")},
            "validation_base": {k: metrics.get(f"base.val.{k}") for k in ("map.mo", "map.mul")}}


def format_metric(v, digits: int = 3) -> str:
    """A metric for people: "–" when missing, one decimal from 100 up (rank distances), else ``digits``."""
    if v is None:
        return "–"
    return f"{v:.1f}" if abs(v) >= 100 else f"{v:.{digits}f}"


def format_delta(row) -> str:
    """A report row's change against the reference, with ▲ (better) or ▼ (worse); '' without a reference."""
    if row["reference"] is None:
        return ""
    digits = 1 if abs(row["candidate"]) >= 100 else 3
    d = round(row["candidate"] - row["reference"], digits)
    if d == 0:
        return "0"
    better = d < 0 if row["lower_is_better"] else d > 0
    return f"{d:+.{digits}f} {'▲' if better else '▼'}"


def render_report(report: dict) -> str:
    """A fixed-width table and the gate outcome, for a terminal."""
    ref = report["reference_version"]
    ref_name = f"v{ref}" + (" (untuned baseline)" if report["reference_is_baseline"] else "") if ref else "no champion"
    lines = [f"candidate v{report['version']} vs {ref_name}", ""]
    t = report.get("training")
    if t:
        step = f"step {t['selected_step']:.0f} of {t['steps']:.0f}" if t["selected_step"] is not None else "the last step"
        lam = t["merge_lambda"]
        how = "chosen on validation" if t["merge"] == "auto" else "fixed"
        merged = (", not merged" if lam is None else f", not merged (lambda 1, {how})" if lam == 1.0
                  else f", merged with the base at lambda {lam:g} ({how})")
        v, b = t["validation"], t["validation_base"]
        val = (f"; held-out validation Mo. {format_metric(b['map.mo'])} -> {format_metric(v['map.mo'])}, "
               f"Mul. {format_metric(b['map.mul'])} -> {format_metric(v['map.mul'])}") if v["map.mul"] is not None else ""
        lines[-1:] = [f"trained model: {step}{merged}{val}", ""]
    head = f"{'dataset':10} {'metric':14} {'candidate':>10} {'champion':>10} {'change':>10}"
    lines += [head, "-" * len(head)]
    for r in report["rows"]:
        lines.append(f"{r['dataset']:10} {r['metric']:14} {format_metric(r['candidate']):>10} {format_metric(r['reference']):>10} "
                     f"{format_delta(r):>10}")
    if any(r["reference"] is None for r in report["rows"]) and ref:
        lines.append("(–: the champion has no evaluation on that dataset with the same config)")
    d = report["decision"]
    lines.append("")
    if d is None:
        lines.append("gate: no decision recorded (promotion not requested)")
    else:
        lines.append(f"gate: {d['status']} ({d['checks']} checks, profile {d['profile']})"
                     + (" [forced]" if d["forced"] else ""))
        for c in d["failed_checks"]:
            lines.append(f"  failed {c['name']}: candidate {format_metric(c.get('candidate'))}, reference "
                         f"{format_metric(c.get('reference'))}, needs {c.get('op')} {format_metric(c.get('threshold'))}")
    lines.append(f"champion now: v{report['champion']}" if report["champion"] else "champion now: none")
    return "\n".join(lines)


__all__ = ["format_delta", "format_metric", "render_report", "version_report"]
