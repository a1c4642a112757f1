"""``xlir serve``: MLflow's scoring server for one registered version of the encoder, on 127.0.0.1.

The URI (default ``models:/xlir-encoder@champion``) is resolved once, at start: the version the
alias names then is downloaded (cached per version) and served with ``mlflow models serve
--env-manager local`` from that folder, so the server needs no registry access afterwards and keeps
serving that version until it is started again. Before it starts, the version's signature must
declare the ``prompt_name`` param (``xlir.registry.signature``): MLflow's scoring server drops params a
signature does not declare, and the texts would be embedded without their prompts.

The server runs in its own process group; SIGTERM or Ctrl-C to ``xlir serve`` stops that group (its
uvicorn worker included) and nothing else. Requests::

    POST http://127.0.0.1:PORT/invocations
    {"inputs": ["where is the station?"], "params": {"prompt_name": "query"}}      -> {"predictions": [[...]]}
    {"inputs": ["The station is north."], "params": {"prompt_name": "document"}}   (passages)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from xlir.errors import XlirError
from xlir.net import stop_process_group, wait_http_ok
from xlir.serving.registered import RegisteredModel, resolve

HOST = "127.0.0.1"
DEFAULT_URI = "models:/xlir-encoder@champion"


def check_servable(model: RegisteredModel) -> None:
    """Refuse a version whose signature lacks the prompt param (logged before xlir declared it)."""
    from xlir.registry import RegistryError
    from xlir.registry.signature import PROMPT_PARAM, takes_prompt

    if not takes_prompt(model.signature()):
        raise RegistryError(
            f"{model.label} was logged without the {PROMPT_PARAM!r} param in its signature: MLflow's scoring server "
            f"would drop {PROMPT_PARAM} and embed texts without their query/passage prompts. Register the model "
            "again (a new pipeline run logs it with the param), or embed with `xlir model embed` / `xlir search`"
        )


def serve_command_line(model_dir: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir), "--env-manager", "local",
            "--host", HOST, "--port", str(port), "--workers", "1"]


def start(model: RegisteredModel, port: int, *, log_file=None, ready_timeout: float = 300.0) -> subprocess.Popen:
    """The scoring server of ``model`` on ``127.0.0.1:port``, answering ``/ping`` when this returns."""
    check_servable(model)
    bin_dir = str(Path(sys.executable).parent)  # mlflow starts `uvicorn` by name: the venv's, not one on PATH
    env = {**os.environ, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}
    process = subprocess.Popen(serve_command_line(model.mlflow_model_dir, port), env=env, start_new_session=True,
                               stdout=log_file, stderr=subprocess.STDOUT if log_file else None)
    try:
        wait_http_ok(f"http://{HOST}:{port}/ping", process, ready_timeout, f"the scoring server of {model.label}")
    except BaseException:
        stop_process_group(process)
        raise
    return process


def serve(uri: str = DEFAULT_URI, port: int = 5001, *, tracking_uri: str | None = None, echo=print,
          ready_timeout: float = 300.0) -> int:
    """Resolve ``uri``, serve it on ``port`` (0: a free one) until SIGTERM / Ctrl-C or until the server exits;
    returns its exit status."""
    from xlir.net import free_port

    model = resolve(uri, tracking_uri)
    got = free_port(port, HOST)
    if port and got != port:
        raise XlirError(f"port {port} on {HOST} is in use; pass another --port (0: any free port)")
    port, process = got, None

    def stop(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        process = start(model, port, ready_timeout=ready_timeout)
        echo(f"serving {model.label} ({uri}, resolved at start) on http://{HOST}:{port}/invocations")
        echo('  POST {"inputs": ["where is the station?"], "params": {"prompt_name": "query"}}  '
             '(passages: "prompt_name": "document")')
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop_process_group(process)
        signal.signal(signal.SIGTERM, previous)


def embed_over_http(url: str, texts: list[str], prompt_name: str, timeout: float = 60.0) -> list[list[float]]:
    """A client call: the vectors of ``texts`` with the model's ``prompt_name`` prompt (``query``/``document``)."""
    import json
    import urllib.error
    import urllib.request

    body = json.dumps({"inputs": list(texts), "params": {"prompt_name": prompt_name}}).encode()
    req = urllib.request.Request(url.rstrip("/") + "/invocations", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())["predictions"]
    except urllib.error.HTTPError as e:
        raise XlirError(f"{url} refused the request ({e.code}): {e.read()[:300]!r}") from None


__all__ = ["DEFAULT_URI", "HOST", "check_servable", "embed_over_http", "serve", "start"]
