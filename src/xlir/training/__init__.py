"""Training stage: hybrid-batch fine-tuning of multilingual retrieval encoders.

Public surface::

    from xlir.training import TrainConfig, train
    result = train(TrainConfig(base_model="tiny", steps=10, strategy="hybrid", alpha=0.5))
    result.model_dir  # a sentence-transformers folder; xlir.models.load_encoder(result.model_dir)

pandas, torch and sentence-transformers load only when ``train``, the data tables or the sampler are
first used, so importing the config stays cheap (CLI help, Airflow DAG parsing).
"""

from xlir.training.config import TrainConfig

__all__ = [
    "HybridBatchSampler",
    "TrainConfig",
    "TrainResult",
    "TrainingData",
    "TripletTable",
    "build_triplets",
    "prepare_training_data",
    "split_by_parallel_id",
    "train",
]

_LAZY = {
    **{name: "xlir.training.data" for name in ("TrainingData", "TripletTable", "build_triplets", "prepare_training_data",
                                               "split_by_parallel_id")},
    "train": "xlir.training.trainer",
    "TrainResult": "xlir.training.trainer",
    "HybridBatchSampler": "xlir.training.samplers",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
