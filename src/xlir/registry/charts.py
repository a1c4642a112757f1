"""A candidate against the champion it was gated on, as pictures where MLflow shows them.

``write_comparison_charts`` draws, from two plain metric dicts (stable names, one gating dataset):

- ``mul_map_by_language.png``: Mul. mAP per query language, candidate and champion side by side;
- ``headline_deltas.png``: the change in Mo./Cr./Mul. mAP and in rank distance (green: better);
- ``map_matrix_delta.png``: candidate minus champion mAP for every query/pool language pair.

The registry logs them to the version's run under ``comparison/`` and its description shows them.
Pure (matplotlib on the Agg backend, no server), so they can be tested and previewed.
"""

from __future__ import annotations

from pathlib import Path

from xlir.registry.gates import languages_of

COMPARISON_DIR = "comparison"
CHARTS = {"languages": "mul_map_by_language.png", "deltas": "headline_deltas.png", "matrix": "map_matrix_delta.png"}
CAPTIONS = {"languages": "Mul. mAP per query language", "deltas": "Change in Mo./Cr./Mul. mAP and rank distance",
            "matrix": "Change in mAP per query/pool language pair"}
_MAPS = (("map.mo", "Mo."), ("map.cr", "Cr."), ("map.mul", "Mul."))


def pair_matrix(metrics: dict[str, float], prefix: str, languages: list[str]):
    """The ``{prefix}.map.{x}.{y}`` metrics as a query x pool DataFrame, or None when any pair is missing."""
    import pandas as pd

    rows = {x: [metrics.get(f"{prefix}.map.{x}.{y}") for y in languages] for x in languages}
    if not languages or any(v is None for r in rows.values() for v in r):
        return None
    return pd.DataFrame.from_dict(rows, orient="index", columns=languages, dtype=float)


def write_comparison_charts(candidate: dict[str, float], reference: dict[str, float], prefix: str, out: Path, *,
                            candidate_label: str, reference_label: str, dataset: str) -> dict[str, Path]:
    """The comparison PNGs that the two metric sets allow (a chart whose metrics are missing is left
    out), written to ``out``; returns ``{kind: path}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    langs = [x for x in languages_of(candidate, prefix) if f"{prefix}.map.mul.{x}" in reference]
    if langs:
        fig, ax = plt.subplots(figsize=(1.5 + 0.6 * len(langs), 3.6), dpi=100)
        xs = range(len(langs))
        for offset, (metrics, label, color) in zip((-0.2, 0.2), ((reference, reference_label, "#9e9e9e"),
                                                                  (candidate, candidate_label, "#1f77b4"))):
            ax.bar([x + offset for x in xs], [metrics[f"{prefix}.map.mul.{x}"] for x in langs], 0.4, label=label,
                   color=color)
        ax.set_xticks(list(xs), langs)
        ax.set_ylabel("Mul. mAP")
        ax.set_xlabel("query language")
        ax.set_title(f"{dataset}: {CAPTIONS['languages']}", fontsize=10)
        ax.legend(fontsize=8)
        written["languages"] = _save(fig, out / CHARTS["languages"])

    maps = [(label, candidate[f"{prefix}.{k}"] - reference[f"{prefix}.{k}"]) for k, label in _MAPS
            if f"{prefix}.{k}" in candidate and f"{prefix}.{k}" in reference]
    rd = f"{prefix}.rank_distance"
    if maps:
        with_rd = rd in candidate and rd in reference
        fig, axes = plt.subplots(1, 2 if with_rd else 1, figsize=(7.5 if with_rd else 4.5, 3.4), dpi=100, squeeze=False)
        names, deltas = zip(*maps)
        _delta_bars(axes[0][0], names, deltas, higher_is_better=True, ylabel="mAP change")
        if with_rd:
            _delta_bars(axes[0][1], ["rank distance"], [candidate[rd] - reference[rd]], higher_is_better=False,
                        ylabel="rank distance change (lower is better)")
        fig.suptitle(f"{dataset}: {candidate_label} minus {reference_label}", fontsize=10)
        written["deltas"] = _save(fig, out / CHARTS["deltas"])

    pair_langs = languages_of(candidate, prefix)
    cand_m, ref_m = pair_matrix(candidate, prefix, pair_langs), pair_matrix(reference, prefix, pair_langs)
    if cand_m is not None and ref_m is not None:
        from xlir.evaluation.report import write_heatmap

        diff = cand_m - ref_m
        bound = max(0.05, float(abs(diff.to_numpy()).max()))
        write_heatmap(diff, out / CHARTS["matrix"], f"{dataset}: mAP {candidate_label} minus {reference_label}",
                      vmin=-bound, vmax=bound, cmap="RdBu", label="mAP change", light_below=None, signed=True)
        written["matrix"] = out / CHARTS["matrix"]
    return written


def _delta_bars(ax, names, deltas, *, higher_is_better: bool, ylabel: str) -> None:
    colors = ["#2ca02c" if (d > 0) == higher_is_better and d != 0 else "#d62728" if d != 0 else "#9e9e9e"
              for d in deltas]
    ax.bar(list(names), list(deltas), color=colors)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel(ylabel, fontsize=8)
    for i, d in enumerate(deltas):
        ax.annotate(f"{d:+.3f}" if abs(d) < 100 else f"{d:+.0f}", (i, d), ha="center",
                    va="bottom" if d >= 0 else "top", fontsize=8)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


__all__ = ["CAPTIONS", "CHARTS", "COMPARISON_DIR", "pair_matrix", "write_comparison_charts"]
