"""``xlir registry``: the versions table, gated promotion, rollback, the gate profiles.

Register in the main CLI with ``app.add_typer(registry_app, name="registry")``; ``promote_command``
also works as a top-level ``xlir promote`` (with ``--rollback``). User errors raise ``XlirError``
subclasses; the main CLI prints them as one ``error: ...`` line (exit 2).
"""

from __future__ import annotations

import getpass
import json

import typer
from rich.console import Console
from rich.table import Table

from xlir.config import DEFAULT_BASE_MODEL
from xlir.evaluation.config import EvalConfig
from xlir.registry.report import format_metric
from xlir.registry.versions import MODEL_NAME

app = typer.Typer(no_args_is_help=True, help="MLflow model registry: versions, gated promotion, rollback.")
console = Console()

_URI_HELP = "MLflow tracking server (default: $MLFLOW_TRACKING_URI)"


def _eval_help(name: str) -> str:
    f = EvalConfig.model_fields[name]
    return f"{f.description} (default: {f.default})"


def _uri_option():
    return typer.Option(None, "--tracking-uri", envvar="MLFLOW_TRACKING_URI", help=_URI_HELP, show_envvar=False)


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return f"manual:{getpass.getuser()}"
    except Exception:  # noqa: BLE001
        return "manual"


@app.command("show")
def show_command(
    tracking_uri: str = _uri_option(),
    name: str = typer.Option(MODEL_NAME, "--name", help="registered model name"),
    limit: int = typer.Option(20, min=1, help="newest versions to list"),
    dataset: str = typer.Option("xquad-r", help="dataset whose metrics to show"),
    as_json: bool = typer.Option(False, "--json", help="print the rows as JSON"),
) -> None:
    """Versions with their aliases, gate status and key metrics, newest first."""
    from xlir.registry import registry_table

    rows = registry_table(tracking_uri=tracking_uri, name=name, limit=limit, dataset=dataset)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print(f"no versions of {name!r} yet (a pipeline run registers the baseline first)")
        return
    table = Table(title=f"{name} ({dataset} metrics)")
    for col, just in [("version", "right"), ("aliases", "left"), ("gate", "left"), ("Mul. mAP", "right"),
                      ("Mo. mAP", "right"), ("Cr. mAP", "right"), ("rank dist.", "right"), ("failed checks", "left"),
                      ("pipeline run", "left")]:
        table.add_column(col, justify=just)
    for r in rows:
        style = "bold green" if "champion" in r["aliases"] else None
        gate = r["gate"] + (" (baseline)" if r["baseline"] and r["gate"] != "baseline" else "")
        table.add_row(str(r["version"]), ", ".join(r["aliases"]), gate, format_metric(r["map.mul"]), format_metric(r["map.mo"]),
                      format_metric(r["map.cr"]), format_metric(r["rank_distance"]), r["failed"], r["pipeline_run_id"], style=style)
    console.print(table)


def promote_command(
    version: int = typer.Option(None, "--version", "-v", min=1, help="version to promote (gates re-run against the champion)"),
    rollback: bool = typer.Option(False, "--rollback", help="move champion back to previous-champion instead"),
    profile: str = typer.Option("default", help="gate profile of the gate file (default, strict, smoke, ...)"),
    gate: list[str] = typer.Option(None, "--gate", help="override one gate value, KEY=VALUE (repeatable), "
                                                          "e.g. --gate retrieval.min_gain_mul=0.01 --gate bias.spread_ceiling=null"),
    force: bool = typer.Option(False, "--force", help="promote even if the gates reject (the decision is still recorded, "
                                                      "tagged gate.forced=true)"),
    by: str = typer.Option(None, "--by", help="who or what promotes (a pipeline run id); default manual:$USER"),
    no_card: bool = typer.Option(False, "--no-card", help="do not rewrite the version's model card"),
    tracking_uri: str = _uri_option(),
    name: str = typer.Option(MODEL_NAME, "--name", help="registered model name"),
) -> None:
    """Gate VERSION against the champion and promote it if it passes; or --rollback."""
    from xlir.errors import XlirError
    from xlir.registry import load_gates, open_registry, promotion
    from xlir.registry.gates import parse_overrides

    if rollback:
        if version is not None:
            raise XlirError("--rollback takes no --version: it moves champion back to previous-champion")
        rollback_command(reason="", by=by, tracking_uri=tracking_uri, name=name)
        return
    if version is None:
        raise XlirError("say which version to promote (--version N; see `xlir registry show`), or --rollback")
    gates = load_gates(profile, parse_overrides(gate))
    reg = open_registry(tracking_uri, name)
    decision = promotion.decide(reg, version, gates)
    result = promotion.promote(reg, version, decision, _who(by), force=force)
    if not no_card:
        from xlir.registry.card import write_model_card

        write_model_card(reg, version, result)
    _print_decision(result)
    if not result.promoted:
        raise typer.Exit(1)


def _print_decision(result) -> None:
    d = result.decision
    if d is not None:
        table = Table(title=f"v{result.version}: {d.summary()}")
        for col in ("check", "candidate", "reference", "threshold", "result"):
            table.add_column(col, justify="left" if col in ("check", "result") else "right")
        for c in d.checks:
            res = "skipped" if c.skipped else ("pass" if c.passed else "FAIL")
            table.add_row(c.name, format_metric(c.candidate, 4), format_metric(c.reference, 4), f"{c.op} {format_metric(c.threshold, 4)}", res,
                          style=None if c.passed else "red")
        console.print(table)
    console.print(result.message)


@app.command("rollback")
def rollback_command(
    reason: str = typer.Option("", help="why (tagged on the rolled-back version)"),
    by: str = typer.Option(None, "--by", help="who or what rolls back; default manual:$USER"),
    tracking_uri: str = _uri_option(),
    name: str = typer.Option(MODEL_NAME, "--name", help="registered model name"),
) -> None:
    """Move champion back to previous-champion (previous-champion steps one further back)."""
    from xlir.registry import rollback

    result = rollback(by=_who(by), reason=reason, tracking_uri=tracking_uri, name=name)
    console.print(result.message)


@app.command("gates")
def gates_command(
    profile: str = typer.Option("default", help="gate profile"),
    gate: list[str] = typer.Option(None, "--gate", help="override, KEY=VALUE (repeatable)"),
) -> None:
    """Print a gate profile as resolved (extends and overrides applied); needs no server."""
    from xlir.registry import gate_profiles, load_gates
    from xlir.registry.gates import parse_overrides

    cfg = load_gates(profile, parse_overrides(gate))
    typer.echo(json.dumps(cfg.model_dump(mode="json"), indent=2))
    others = ", ".join(p for p in gate_profiles(cfg.source) if p != profile)
    typer.echo(f"# other profiles in {cfg.source}: {others}", err=True)


@app.command("baseline")
def baseline_command(
    base_model: str = typer.Option(DEFAULT_BASE_MODEL, help="the untuned base encoder"),
    dataset: str = typer.Option(None, help=_eval_help("dataset") + "; the gating dataset"),
    max_questions_per_lang: int = typer.Option(None, help=_eval_help("max_questions_per_lang")),
    seed: int = typer.Option(None, help=_eval_help("seed")),
    max_seq_length: int = typer.Option(None, help=_eval_help("max_seq_length")),
    candidate_text: str = typer.Option(None, help=_eval_help("candidate_text")),
    tracking_uri: str = _uri_option(),
    name: str = typer.Option(MODEL_NAME, "--name", help="registered model name"),
) -> None:
    """Register and crown the untuned base encoder when the registry has no champion yet (evaluated with
    ``xlir evaluate``'s defaults, so the same options give the same evaluation key)."""
    from xlir.evaluation.cli import eval_config_from_options
    from xlir.registry import ensure_baseline

    given = {"dataset": dataset, "max_questions_per_lang": max_questions_per_lang, "seed": seed,
             "max_seq_length": max_seq_length, "candidate_text": candidate_text}
    cfg = eval_config_from_options({"model": base_model, **{k: v for k, v in given.items() if v is not None}})
    version = ensure_baseline(base_model, cfg, tracking_uri=tracking_uri, name=name)
    console.print(f"champion: {name} v{version}")


app.command("promote")(promote_command)


@app.command("report")
def report_command(
    version: int = typer.Option(None, "--version", "-v", min=1, help="version to report on (default: the newest)"),
    tracking_uri: str = _uri_option(),
    name: str = typer.Option(MODEL_NAME, "--name", help="registered model name"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """A version against the champion it was gated on: metrics per dataset, the decision, the champion now."""
    from xlir.errors import XlirError
    from xlir.registry import open_registry
    from xlir.registry.report import render_report, version_report

    reg = open_registry(tracking_uri, name)
    if version is None:
        versions = reg.versions()
        if not versions:
            raise XlirError(f"no versions of {name!r} yet")
        version = max(v.version for v in versions)
    rep = version_report(reg, version)
    typer.echo(json.dumps(rep, indent=2) if as_json else render_report(rep))
