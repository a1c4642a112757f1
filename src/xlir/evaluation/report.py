"""The results folder: everything needed to read, chart and independently recheck a run."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd

FILES = {
    "metrics": "metrics.json",
    "matrix": "map_matrix.csv",
    "heatmap": "map_matrix.png",
    "table": "per_language.md",
    "per_query": "per_query.csv.gz",
    "ranks": "ranks.tsv.gz",
    "run": "run.trec.gz",
    "qrels": "qrels.tsv",
}


def per_language_table(table: pd.DataFrame, languages: list[str]) -> pd.DataFrame:
    """Per query language: Mo. (X = X), Cr. (mean over Y != X), Mul., R@10 Mul., rank distance."""
    single = table[table["pool"] != "mul"].groupby(["query_lang", "pool"])["ap"].mean()
    mul = table[table["pool"] == "mul"].groupby("query_lang")[["ap", "r10", "rank_distance"]].mean()
    rows = []
    for x in languages:
        if x not in mul.index:
            continue
        cross = [single[(x, y)] for y in languages if y != x and (x, y) in single.index]
        rows.append(
            {
                "lang": x,
                "Mo. mAP": single.get((x, x), np.nan),
                "Cr. mAP": float(np.mean(cross)) if cross else np.nan,
                "Mul. mAP": mul.loc[x, "ap"],
                "Mul. R@10": mul.loc[x, "r10"],
                "rank distance": mul.loc[x, "rank_distance"],
            }
        )
    return pd.DataFrame(rows)


def write_heatmap(matrix: pd.DataFrame, path: Path, title: str, *, vmin: float = 0.0, vmax: float = 1.0,
                  cmap: str = "viridis", label: str = "mAP", light_below: float | None = 0.6, signed: bool = False) -> None:
    """A query-language x pool-language matrix as an annotated heatmap (``signed``: values as +0.01)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(matrix)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n), dpi=110)
    im = ax.imshow(matrix.to_numpy(dtype=float), vmin=vmin, vmax=vmax, cmap=cmap)
    ax.set_xticks(range(n), matrix.columns)
    ax.set_yticks(range(n), matrix.index)
    ax.set_xlabel("pool language (Y)")
    ax.set_ylabel("query language (X)")
    for i in range(n):
        for j in range(n):
            v = matrix.iat[i, j]
            if v == v:
                light = light_below is not None and v < light_below
                ax.text(j, i, f"{v:+.2f}" if signed else f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if light else "black")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(out: Path, *, metrics: dict, info: dict, matrix: pd.DataFrame, table: pd.DataFrame, lang_table: pd.DataFrame, task, ranks, top_index, top_score, run_name: str) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / v for k, v in FILES.items()}
    matrix.to_csv(paths["matrix"])
    write_heatmap(matrix, paths["heatmap"], f"{info['dataset']} mAP: {info['model']}")
    paths["table"].write_text(lang_table.to_markdown(index=False, floatfmt=".3f") + "\n")
    q = task.queries
    per_query = table.assign(query_id=q["query_id"].to_numpy()[table["query"].to_numpy()])
    per_query.drop(columns="query").to_csv(paths["per_query"], index=False)
    cands = task.candidates
    rank_rows = pd.DataFrame(
        {
            "query_id": q["query_id"].to_numpy()[ranks.query],
            "candidate_id": cands["candidate_id"].to_numpy()[ranks.candidate],
            "candidate_lang": cands["lang"].to_numpy()[ranks.candidate],
            "rank_single": ranks.rank_single,
            "rank_mul": ranks.rank_mul,
        }
    )
    rank_rows.to_csv(paths["ranks"], sep="\t", index=False)
    pd.DataFrame({"query_id": rank_rows["query_id"], "iter": 0, "doc_id": rank_rows["candidate_id"], "rel": 1}).to_csv(
        paths["qrels"], sep=" ", index=False, header=False
    )
    cand_ids = cands["candidate_id"].to_numpy()
    with gzip.open(paths["run"], "wt") as f:
        for i, qid in enumerate(q["query_id"]):
            for r, (c, s) in enumerate(zip(top_index[i], top_score[i]), 1):
                f.write(f"{qid} Q0 {cand_ids[c]} {r} {s:.6f} {run_name}\n")
    paths["metrics"].write_text(json.dumps({"metrics": metrics, "info": info}, indent=2, default=str))
    return paths
