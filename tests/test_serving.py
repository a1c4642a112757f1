"""The champion at work (issue 16, item 4): served over HTTP by a real ``xlir serve`` process, and
``xlir search`` over a user's corpus. One shared MLflow server; the tiny encoder is the champion."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlflow_server import tracking_uri as uri, unique  # noqa: F401 (uri is a fixture)
from test_registry_mlflow import E5_UNTUNED, EVAL, candidate, metrics
from tiny_training import one_thread  # noqa: F401 - an autouse fixture: one torch thread
from xlir.errors import XlirError
from xlir.net import free_port, http_ok

XLIR = str(Path(sys.executable).with_name("xlir"))
QUERIES = ["where is the station?", "wo ist der Bahnhof?"]
PASSAGES = ["The station is north of the river.", "Paris is the capital of France."]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A cache of this module's own (downloads, indexes, the encoding ledger), for this process and its children."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XLIR_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="module")
def reg(uri, cache):
    """A registered model whose champion (v1) is the tiny encoder, logged the way the pipeline logs it."""
    from xlir.registry import Registry, promotion

    reg = Registry(uri, unique("enc"), experiment=unique("exp"))
    assert promotion.ensure_baseline(reg, "tiny", EVAL, evaluator=lambda cfg: E5_UNTUNED) == 1
    return reg


def cosine(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def xlir(*args, env=None, timeout=300):
    return subprocess.run([XLIR, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


# ---------------------------------------------------------------- serving


def test_the_champion_served_over_http_embeds_queries_and_passages_with_their_prompts(reg, tmp_path):
    from sentence_transformers import SentenceTransformer

    from xlir.serving.serve import embed_over_http

    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    server = subprocess.Popen([XLIR, "serve", "--model", f"models:/{reg.name}@champion", "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while not http_ok(url + "/ping") and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert http_ok(url + "/ping"), (tmp_path / "serve.log").read_text()[-3000:]
        got_q = embed_over_http(url, QUERIES, "query")
        got_p = embed_over_http(url, PASSAGES, "document")

        local = SentenceTransformer(str(reg.download(1)), device="cpu")
        assert local.prompts["query"] == "query: " and local.prompts["document"] == "passage: "
        want_q = local.encode(QUERIES, prompt_name="query")
        want_p = local.encode(PASSAGES, prompt_name="document")
        assert np.asarray(got_q).shape == (2, local.get_embedding_dimension())
        assert cosine(got_q, want_q).min() >= 0.9999 and cosine(got_p, want_p).min() >= 0.9999
        # the prompt did something: the same texts without it embed elsewhere
        assert cosine(got_q, local.encode(QUERIES)).max() < 0.9999
        assert "on http://127.0.0.1:%d/invocations" % port in (tmp_path / "serve.log").read_text()

        os.kill(server.pid, signal.SIGTERM)  # stopped by its pid: it stops its scoring server's process group
        server.wait(60)
        deadline = time.monotonic() + 30
        while http_ok(url + "/ping", timeout=0.5) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not http_ok(url + "/ping", timeout=0.5), "the scoring server outlived xlir serve"
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def test_a_version_logged_without_the_prompt_param_is_refused_before_serving(tmp_path):
    from mlflow.models import Model, ModelSignature
    from mlflow.types import ColSpec, Schema

    from xlir.registry import RegistryError
    from xlir.serving.registered import RegisteredModel
    from xlir.serving.serve import check_servable

    (tmp_path / "model.sentence_transformer").mkdir()
    Model(signature=ModelSignature(inputs=Schema([ColSpec("string")]))).save(str(tmp_path / "MLmodel"))
    old = RegisteredModel("models:/enc@champion", "enc", 3, "champion", tmp_path / "model.sentence_transformer")
    with pytest.raises(RegistryError, match="enc v3 \\(champion\\) was logged without the 'prompt_name' param"):
        check_servable(old)


def test_a_missing_alias_or_model_is_one_clear_error(reg):
    from xlir.serving.registered import resolve

    out = xlir("serve", "--model", f"models:/{reg.name}@nope", "--port", "0")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith(f"error: registered model {reg.name!r} has no alias 'nope'"), out.stderr
    with pytest.raises(XlirError, match="no registered model 'no-such-model' on http://127.0.0.1"):
        resolve("models:/no-such-model@champion")
    with pytest.raises(XlirError, match="expected models:/NAME@ALIAS"):
        resolve("models:/xlir-encoder@")


# ---------------------------------------------------------------- search


def test_search_ranks_by_the_champion_and_caches_the_index_per_version_and_corpus(reg, tmp_path):
    from xlir.evaluation.encode import encodings
    from xlir.models import load_encoder
    from xlir.serving.search import search

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(PASSAGES + ["Berlin ist die Hauptstadt.", "", "The museum opens at nine."]) + "\n")
    champion = f"models:/{reg.name}@champion"

    t0 = time.time()
    first = search(champion, corpus, QUERIES, k=3)
    assert first.version == 1 and first.passages == 4 and not first.index_cached
    model = load_encoder(reg.download(1))
    q = model.encode(QUERIES, prompt_name="query", normalize_embeddings=True)
    p = model.encode(PASSAGES + ["Berlin ist die Hauptstadt.", "The museum opens at nine."], prompt_name="document",
                     normalize_embeddings=True)
    for query, row in zip(QUERIES, q @ p.T):
        hits = first.hits[query]
        assert [h.rank for h in hits] == [1, 2, 3]
        assert [h.text for h in hits][0] == (PASSAGES + ["Berlin ist die Hauptstadt.", "The museum opens at nine."])[int(row.argmax())]
        assert np.allclose([h.score for h in hits], np.sort(row)[::-1][:3], atol=1e-5)
    assert {h.id for h in first.hits[QUERIES[0]]} <= {"1", "2", "3", "5"}  # line numbers; the blank line has none

    again = search(champion, corpus, QUERIES[:1], k=3)
    assert again.index_cached and again.index == first.index and again.hits[QUERIES[0]] == first.hits[QUERIES[0]]
    assert [e["texts"] for e in encodings(since=t0, pid=os.getpid())] == [4, 2, 1], "the corpus was encoded once"

    corpus.write_text("\n".join(PASSAGES) + "\n")  # an edited corpus: a new index
    edited = search(champion, corpus, QUERIES[:1], k=5)
    assert not edited.index_cached and edited.passages == 2 and len(edited.hits[QUERIES[0]]) == 2

    v2 = candidate(reg, load_encoder("tiny:1", device="cpu"), unique("run"), metrics())  # a new champion version
    reg.client.set_registered_model_alias(reg.name, "champion", str(v2))
    new = search(champion, corpus, QUERIES[:1], k=2)
    assert new.version == 2 and not new.index_cached and new.index != edited.index and f"{reg.name}-v2" in new.index


@pytest.mark.parametrize("content, message", [
    (None, "no such corpus file"),
    (b"", "the corpus is empty"),
    (b"\n  \n\n", "the corpus is empty"),
    (b"caf\xe9\n", "not UTF-8 text (byte 3)"),
    ('{"text": "ok"}\n{"id": 2}\n', "line 2: expected a JSON object with a non-empty \"text\" string"),
])
def test_an_unreadable_or_empty_corpus_is_refused_naming_the_file(tmp_path, content, message):
    from xlir.serving.search import read_corpus

    path = tmp_path / ("corpus.jsonl" if isinstance(content, str) else "corpus.txt")
    if content is not None:
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(XlirError, match=re.escape(message)) as e:
        read_corpus(path)
    assert str(path) in str(e.value)


def test_search_cli_prints_ranked_passages_and_a_bad_corpus_is_one_error_line(reg, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"p{i}", "text": t}) + "\n" for i, t in enumerate(PASSAGES)))
    out = xlir("search", "--model", f"models:/{reg.name}/1", "--corpus", str(corpus), "-k", "2", "--json", QUERIES[0])
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["version"] == 1 and [h["id"] for h in result["hits"][QUERIES[0]]] in (["p0", "p1"], ["p1", "p0"])
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    out = xlir("search", "--model", f"models:/{reg.name}/1", "--corpus", str(empty), QUERIES[0])
    assert out.returncode == 2 and out.stderr.strip() == f"error: {empty}: the corpus is empty: no passage to search " \
                                                          "(one passage per line, or JSON Lines with a \"text\" field)"
