"""Zero-shot LAReQA evaluation: per-language-pair mAP, multilingual pool, language bias.

Public surface::

    from xlir.evaluation import EvalConfig, evaluate
    result = evaluate(EvalConfig(model="bundled:multilingual-e5-small", dataset="xquad-r"))

pandas, torch and FAISS load only when ``evaluate`` (or the result types) is first used, so the
config imports cheaply (CLI help, Airflow DAG parsing).
"""

from xlir.evaluation.config import EvalConfig

__all__ = ["BM25", "EvalConfig", "EvalResult", "evaluate", "metric_prefix"]

_LAZY = {name: "xlir.evaluation.run" for name in ("BM25", "EvalResult", "evaluate", "metric_prefix")}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
