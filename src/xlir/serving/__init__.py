"""The registered encoder at work: resolve ``models:/NAME@ALIAS``, serve it over HTTP, search a corpus with it.

- ``registered``: a ``models:/`` URI resolved to one version (the alias read at load time) and its
  local sentence-transformers folder (cached per version under the xlir cache);
- ``serve``: ``mlflow models serve`` of that version on 127.0.0.1, supervised and stopped by its pid
  (``xlir serve``);
- ``search``: FAISS over a user's corpus, the index cached by model version and corpus content
  (``xlir search``).
"""
