"""Constants shared by every stage. The typed configs live with their stage:
``xlir.training.TrainConfig`` and ``xlir.evaluation.config.EvalConfig``."""

DEFAULT_BASE_MODEL = "bundled:multilingual-e5-small"
