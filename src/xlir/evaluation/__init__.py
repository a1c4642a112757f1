"""Zero-shot LAReQA evaluation: per-language-pair mAP, multilingual pool, language bias."""

from xlir.evaluation.run import BM25, EvalResult, evaluate, metric_prefix

__all__ = ["BM25", "EvalResult", "evaluate", "metric_prefix"]
