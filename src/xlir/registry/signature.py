"""The MLflow signature a registered encoder is logged with: texts in, vectors out, and a prompt param.

The sentence-transformers flavor's pyfunc passes a request's ``params`` to ``model.encode``; MLflow's
scoring server (``mlflow models serve``) forwards only the params the signature declares and drops the
others with a warning. So the signature declares ``prompt_name``: a request names the model's own
prompt (``query`` or ``document``, whose prefixes ``query: `` / ``passage: `` live in the model's
settings) instead of writing the prefix into the text::

    POST /invocations  {"inputs": ["where is the station?"], "params": {"prompt_name": "query"}}
"""

from __future__ import annotations

PROMPT_PARAM = "prompt_name"
PROMPTS = ("query", "document")


def encoder_signature(dim: int):
    """Strings in, ``(-1, dim)`` float32 out, the optional ``prompt_name`` param (no default: no prompt)."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    return ModelSignature(inputs=Schema([ColSpec("string")]),
                          outputs=Schema([TensorSpec(np.dtype("float32"), (-1, dim))]),
                          params=ParamSchema([ParamSpec(PROMPT_PARAM, "string", None)]))


def takes_prompt(signature) -> bool:
    """Whether a logged model's signature declares the prompt param (versions logged before it did not)."""
    params = getattr(signature, "params", None)
    return bool(params) and any(p.name == PROMPT_PARAM for p in params.params)


__all__ = ["PROMPTS", "PROMPT_PARAM", "encoder_signature", "takes_prompt"]
