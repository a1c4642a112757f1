"""Base encoders by name: ``bundled:multilingual-e5-small``, ``tiny``, a local folder or a hub id.

``prepare_model`` gives a local folder, ``load_encoder`` a SentenceTransformer with E5's
``query: `` / ``passage: `` prompts, ``model_fingerprint`` a short hash that keys caches.
torch and sentence-transformers are imported only when a model is actually loaded.
"""

from xlir.models.spec import (
    BUNDLED_MODELS,
    BundledModel,
    ModelSpec,
    load_encoder,
    model_fingerprint,
    parse_spec,
    prepare_model,
)

__all__ = [
    "BUNDLED_MODELS",
    "BundledModel",
    "ModelSpec",
    "load_encoder",
    "model_fingerprint",
    "parse_spec",
    "prepare_model",
]
