"""Registry, gates and promotion against a real MLflow server (synthetic metrics, the tiny encoder).

Each test owns a fresh registered-model name and experiment on one shared server.
"""

import json
import os
import threading
import time

import pytest

from mlflow_server import tracking_uri as uri, unique  # noqa: F401 (uri is a fixture)
from tiny_training import one_thread  # noqa: F401 - an autouse fixture: one torch thread
from xlir.evaluation.config import EvalConfig
from xlir.registry import (
    EvalMismatchError,
    GateConfigError,
    GateError,
    Registry,
    RegistryError,
    RegistryLock,
    RegistryLockTimeout,
    TrackingError,
    gate_and_promote,
    load_gates,
    track_pipeline_run,
)
from xlir.registry import promotion
from xlir.net import free_port

LANGS = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
EVAL = EvalConfig(model="tiny", dataset="xquad-r", max_questions_per_lang=5, max_seq_length=32)


def metrics(mul=0.60, mo=0.82, cr=0.72, rd=300.0, spread=0.10):
    m = {"xquad_r.map.mul": mul, "xquad_r.map.mo": mo, "xquad_r.map.cr": cr, "xquad_r.rank_distance": rd,
         "xquad_r.r1.mo": mo - 0.1, "xquad_r.r10.mul": mul + 0.2}
    for i, lang in enumerate(LANGS):
        m[f"xquad_r.map.mul.{lang}"] = mul - spread / 2 + spread * i / (len(LANGS) - 1)
    return m


E5_UNTUNED = metrics(mul=0.29, mo=0.80, cr=0.63, rd=1270, spread=0.30)  # docs/METHOD.md, section 5
TINY_RANDOM = metrics(mul=0.001, mo=0.005, cr=0.003, rd=11400, spread=0.002)


@pytest.fixture(scope="module")
def tiny():
    from xlir.models import load_encoder

    return load_encoder("tiny", device="cpu")


@pytest.fixture
def reg(uri, tmp_path):
    return Registry(uri, unique("enc"), experiment=unique("exp"), download_dir=tmp_path / "downloads")


def baseline(reg, m=E5_UNTUNED):
    return promotion.ensure_baseline(reg, "tiny", EVAL, evaluator=lambda cfg: m)


def candidate(reg, tiny, pid, m, eval_cfg=EVAL):
    with track_pipeline_run(pid, experiment=reg.experiment) as run:
        run.log_config(evaluation=eval_cfg)
        return reg.register_model(tiny, run.run_id, pid, m, eval_cfg)


def artifact_text(reg, version, path):
    import mlflow.artifacts

    return mlflow.artifacts.load_text(f"runs:/{reg.version(version).run_id}/{path}")


def aliases(reg):
    return {a: (v.version if (v := reg.alias(a)) else None) for a in ("champion", "previous-champion")}


# ---------------------------------------------------------------- registration


def test_baseline_becomes_the_first_champion_and_loads_by_alias_and_embeds(reg):
    import mlflow.sentence_transformers
    import numpy as np

    assert baseline(reg) == 1
    assert baseline(reg) == 1 and len(reg.versions()) == 1  # once only
    v = reg.version(1)
    assert v.baseline and v.tags["gate.status"] == "baseline" and aliases(reg) == {"champion": 1, "previous-champion": None}
    model = mlflow.sentence_transformers.load_model(f"models:/{reg.name}@champion")
    vectors = model.encode_query(["where is the station?", "wo ist der Bahnhof?"])
    assert vectors.shape == (2, 32) and np.isfinite(vectors).all()
    assert model.prompts["query"] == "query: "
    run = reg.client.get_run(v.run_id)
    assert run.data.params["base_model"] == "tiny" and len(run.data.params["code.git_sha"]) >= 7
    assert "xquad_r.map.mul.th" in run.data.metrics
    card = artifact_text(reg, 1, "model_card.md")
    assert "baseline, first champion" in card and "Not gated" in card


def test_a_retried_registration_for_the_same_pipeline_run_gives_one_version(reg, tiny):
    baseline(reg)
    first = candidate(reg, tiny, "dag-run-7", metrics())
    again = candidate(reg, tiny, "dag-run-7", metrics())
    assert first == again == 2
    assert [v.version for v in reg.versions()] == [1, 2]
    assert reg.version(2).tags["pipeline_run_id"] == "dag-run-7" and reg.version(2).tags["gate.status"] == "pending"


def test_metrics_missing_a_gated_value_register_nothing(reg, tiny):
    broken = metrics()
    del broken["xquad_r.map.cr"]
    with pytest.raises(RegistryError, match=r"lack \['xquad_r.map.cr'\].*nothing was registered"):
        candidate(reg, tiny, "dag-run-1", broken)
    assert reg.versions() == []
    exp = reg.client.get_experiment_by_name(reg.experiment)
    assert reg.client.search_logged_models(experiment_ids=[exp.experiment_id]) == []


# ---------------------------------------------------------------- gates and promotion


def test_a_better_candidate_passes_the_gates_and_becomes_champion(reg, tiny):
    baseline(reg)
    v = candidate(reg, tiny, "dag-run-2", metrics(mul=0.63, mo=0.81, cr=0.74, rd=300, spread=0.2))
    result = gate_and_promote(v, "dag-run-2", "default", name=reg.name)
    assert result.promoted and result.status == "passed" and result.rechecks == 0
    assert aliases(reg) == {"champion": 2, "previous-champion": 1}
    tags = reg.version(2).tags
    assert tags["gate.status"] == "passed" and tags["gate.failed"] == "" and tags["promoted_by"] == "dag-run-2"
    assert tags["champion.previous"] == "1" and tags["gate.reference_version"] == "1"
    record = json.loads(artifact_text(reg, 2, "gate/decision.json"))
    assert record["status"] == "passed" and record["reference"]["version"] == 1 and record["outcome"]["promoted"]
    gain = next(c for c in record["checks"] if c["name"] == "retrieval.min_gain_mul")
    assert gain["candidate"] == 0.63 and gain["reference"] == 0.29 and gain["threshold"] == pytest.approx(0.295)
    card = artifact_text(reg, 2, "model_card.md")
    assert "promoted to champion" in card and "| Mul. mAP | 0.630 | 0.290 | 0.290 |" in card
    assert "PASSED" in card and "retrieval.language_drop.th" in card
    assert reg.client.get_model_version(reg.name, "2").description.startswith("promoted to champion")


def test_a_degraded_model_is_never_promoted_and_no_alias_moves(reg, tiny):
    baseline(reg)
    v = candidate(reg, tiny, "dag-run-3", TINY_RANDOM)
    result = gate_and_promote(v, "dag-run-3", "smoke", name=reg.name)  # even the loosest profile
    assert not result.promoted and result.status == "rejected"
    assert aliases(reg) == {"champion": 1, "previous-champion": None}
    tags = reg.version(2).tags
    assert tags["gate.status"] == "rejected"
    assert {"retrieval.min_gain_mul", "retrieval.tolerance_mo", "bias.rank_distance"} <= set(tags["gate.failed"].split(","))
    record = json.loads(artifact_text(reg, 2, "gate/decision.json"))
    assert record["status"] == "rejected" and record["outcome"] == {"promoted": False, "rechecks": 0}
    assert "rejected by the gates" in artifact_text(reg, 2, "model_card.md")


def test_bad_input_moves_nothing(reg, tiny):
    baseline(reg)
    v = candidate(reg, tiny, "dag-run-4", metrics(mul=0.9))
    with pytest.raises(GateConfigError, match="unknown gate profile 'nightly'"):
        gate_and_promote(v, "dag-run-4", "nightly", name=reg.name)
    with pytest.raises(RegistryError, match="no version 9"):
        gate_and_promote(9, "dag-run-4", "default", name=reg.name)
    assert aliases(reg) == {"champion": 1, "previous-champion": None}
    assert reg.version(2).tags["gate.status"] == "pending"
    mlqa = {k.replace("xquad_r", "mlqa_r"): val for k, val in metrics(mul=0.9).items()}
    other = candidate(reg, tiny, "dag-run-5", mlqa, eval_cfg=EVAL.model_copy(update={"dataset": "mlqa-r"}))
    with pytest.raises(GateError, match="gates on 'xquad-r' but v3 was evaluated on 'mlqa-r'"):
        gate_and_promote(other, "dag-run-5", "default", name=reg.name)
    assert reg.version(3).tags["gate.status"] == "error" and "mlqa-r" in reg.version(3).tags["gate.error"]
    assert aliases(reg) == {"champion": 1, "previous-champion": None}


def test_a_champion_change_after_the_decision_reruns_the_gates(reg, tiny):
    baseline(reg, metrics(mul=0.50))
    a = candidate(reg, tiny, "run-a", metrics(mul=0.60))
    b = candidate(reg, tiny, "run-b", metrics(mul=0.70))
    gates = load_gates()
    decision_a = promotion.decide(reg, a, gates)
    assert decision_a.passed and decision_a.reference["version"] == 1
    assert promotion.gate_and_promote(reg, b, "run-b", gates, model_card=False).promoted
    late = promotion.promote(reg, a, decision_a, "run-a")  # decided against v1, champion is now v3
    assert late.rechecks == 1 and not late.promoted and "retrieval.min_gain_mul" in late.failed
    assert late.decision.reference["version"] == b
    assert aliases(reg) == {"champion": b, "previous-champion": 1}
    assert reg.version(a).tags["gate.status"] == "rejected"


def test_two_racing_promotions_end_with_one_champion_and_both_decisions_recorded(reg, tiny):
    baseline(reg, metrics(mul=0.50))
    a = candidate(reg, tiny, "race-a", metrics(mul=0.60))
    b = candidate(reg, tiny, "race-b", metrics(mul=0.62))
    gates = load_gates()
    decisions = {v: promotion.decide(reg, v, gates) for v in (a, b)}
    assert all(d.passed and d.reference["version"] == 1 for d in decisions.values())  # both beat v1
    start, results, errors = threading.Barrier(2), {}, []

    def run(v):
        try:
            start.wait()
            results[v] = promotion.promote(reg, v, decisions[v], f"race-{v}")
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(v,)) for v in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    # whichever went first, b ends as champion: b beats a, a does not beat b
    assert aliases(reg)["champion"] == b
    assert sum(r.promoted for r in results.values()) in (1, 2)
    if results[a].promoted:  # a first, b re-checked against a and passed
        assert results[b].rechecks == 1 and aliases(reg)["previous-champion"] == a
    else:  # b first, a re-checked against b and was rejected
        assert results[a].rechecks == 1 and results[a].decision.reference["version"] == b
        assert aliases(reg)["previous-champion"] == 1
    for v in (a, b):  # both decisions recorded
        assert reg.version(v).tags["gate.decided_by"] == f"race-{v}"
        assert json.loads(artifact_text(reg, v, "gate/decision.json"))["candidate"]["version"] == v
    champions = [r for r in reg.table() if "champion" in r["aliases"]]
    assert [r["version"] for r in champions] == [b]


def test_rollback_restores_the_previous_champion_and_walks_back(reg, tiny):
    baseline(reg, metrics(mul=0.40))
    for i, mul in enumerate((0.50, 0.60), start=2):
        v = candidate(reg, tiny, f"run-{i}", metrics(mul=mul))
        assert promotion.gate_and_promote(reg, v, f"run-{i}", load_gates(), model_card=False).promoted
    assert aliases(reg) == {"champion": 3, "previous-champion": 2}
    back = promotion.rollback(reg, by="oncall", reason="bad answers in th")
    assert back.champion == 2 and aliases(reg) == {"champion": 2, "previous-champion": 1}
    assert reg.version(3).tags["rolled_back"] == "true" and reg.version(3).tags["rolled_back_by"] == "oncall"
    promotion.rollback(reg)
    assert aliases(reg) == {"champion": 1, "previous-champion": None}
    with pytest.raises(RegistryError, match="no previous-champion to roll back to"):
        promotion.rollback(reg)


def test_eval_config_mismatch_is_refused_or_the_champion_is_reevaluated(reg, tiny):
    baseline(reg, metrics(mul=0.50))
    other = EVAL.model_copy(update={"seed": 1})
    v = candidate(reg, tiny, "run-seed-1", metrics(mul=0.60), eval_cfg=other)
    with pytest.raises(EvalMismatchError, match=r"seed.*\(0, 1\)"):
        promotion.decide(reg, v, load_gates(overrides={"on_eval_mismatch": "refuse"}))
    seen = []

    def evaluator(cfg):
        seen.append(cfg)
        return metrics(mul=0.52)

    d = promotion.decide(reg, v, load_gates(), evaluator=evaluator)
    assert len(seen) == 1 and seen[0].seed == 1 and seen[0].max_questions_per_lang == 5
    assert (os.path.isdir(seen[0].model) and os.path.isfile(os.path.join(seen[0].model, "modules.json")))
    assert d.reference["reevaluated"] and d.reference["differs"] == {"seed": (0, 1)}
    assert d.reference["metrics"]["xquad_r.map.mul"] == 0.52 and d.passed
    assert aliases(reg) == {"champion": 1, "previous-champion": None}

    # nothing evaluated twice: a second decision on the same key (another gate, another run) reads the
    # re-evaluation kept in the champion's run, and the promotion acts on the decision it is given
    again = promotion.decide(reg, v, load_gates(), evaluator=evaluator)
    assert len(seen) == 1 and again.reference["reused"].startswith("reference/")
    assert again.reference["metrics"]["xquad_r.map.mul"] == 0.52 and again.passed
    result = promotion.gate_and_promote(reg, v, "run-seed-1", load_gates(), evaluator=evaluator, decision=again,
                                        model_card=False)
    assert len(seen) == 1 and result.promoted and aliases(reg) == {"champion": v, "previous-champion": 1}


def test_a_decision_about_another_version_is_refused(reg, tiny):
    baseline(reg, metrics(mul=0.50))
    v2 = candidate(reg, tiny, "run-a", metrics(mul=0.60))
    v3 = candidate(reg, tiny, "run-b", metrics(mul=0.61))
    d2 = promotion.decide(reg, v2, load_gates())
    with pytest.raises(GateError, match=f"about v{v2}, not v{v3}"):
        promotion.gate_and_promote(reg, v3, "run-b", load_gates(), decision=d2, model_card=False)
    assert aliases(reg) == {"champion": 1, "previous-champion": None}


def test_fast_path_evaluations_are_never_registered_or_gated(reg, tiny):
    baseline(reg)
    int8 = EVAL.model_copy(update={"precision": "int8"})
    with track_pipeline_run("run-int8", experiment=reg.experiment) as run:
        for fast in ("int8", "bf16"):
            with pytest.raises(RegistryError, match=f"precision '{fast}'.*fp32 evaluations only"):
                reg.register_model(tiny, run.run_id, "run-int8", metrics(mul=0.9), EVAL.model_copy(update={"precision": fast}))
    assert reg.find_version("run-int8") is None
    with pytest.raises(RegistryError, match="precision 'int8'"):
        promotion.ensure_baseline(Registry(reg.tracking_uri, unique("enc"), experiment=reg.experiment),
                                  "tiny", int8, evaluator=lambda cfg: pytest.fail("evaluated"))
    v = candidate(reg, tiny, "run-fp32", metrics(mul=0.6))
    reg.set_tags(v, {"eval.config": json.dumps({**EVAL.model_dump(mode="json", exclude={"output_dir"}), "precision": "int8"})})
    with pytest.raises(GateError, match="cannot gate v2.*int8"):
        promotion.decide(reg, v, load_gates())


# ---------------------------------------------------------------- the lock


def test_the_registry_lock_admits_one_holder_at_a_time(reg):
    spans, errors = [], []

    def worker():
        try:
            for _ in range(3):
                with RegistryLock(reg.client, reg.name, purpose="test", timeout=60, poll=0.05):
                    t0 = time.monotonic()
                    time.sleep(0.05)
                    spans.append((t0, time.monotonic()))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(spans) == 12
    spans.sort()
    assert all(end <= nxt for (_, end), (nxt, _) in zip(spans, spans[1:]))


def test_a_lock_released_while_the_server_reports_the_collision_is_taken_on_the_next_try():
    """MLflow's SQL store answers a name collision by reading the existing model; if its holder deleted
    it in between, creation fails with RESOURCE_DOES_NOT_EXIST (seen in CI under load): the lock is free."""

    class Gone(Exception):
        error_code = "RESOURCE_DOES_NOT_EXIST"

    class Client:
        calls = 0

        def create_registered_model(self, name, tags=None, description=None):
            Client.calls += 1
            if Client.calls == 1:
                raise Gone(f"Registered Model with name={name} not found")

    lock = RegistryLock(Client(), "enc", purpose="test", timeout=5).acquire()
    assert lock.held and Client.calls == 2


def test_a_stale_lock_is_broken_after_its_lease_and_a_live_one_times_out_clearly(reg):
    crashed = RegistryLock(reg.client, reg.name, purpose="crashed task", ttl=0.5).acquire()  # never released
    t0 = time.monotonic()
    with RegistryLock(reg.client, reg.name, purpose="next task", timeout=30, poll=0.05) as lock:
        assert time.monotonic() - t0 >= 0.3
        assert reg.client.get_registered_model(f"{reg.name}.lock").tags["owner"] == lock.owner
        with pytest.raises(RegistryLockTimeout, match=r"held by .*\(next task\); waited 0 s"):
            RegistryLock(reg.client, reg.name, timeout=0.3, poll=0.05).acquire()
    crashed.release()  # a late release of a broken lock leaves others alone
    with pytest.raises(Exception, match="RESOURCE_DOES_NOT_EXIST|not found|does not exist"):
        reg.client.get_registered_model(f"{reg.name}.lock")


# ---------------------------------------------------------------- the server


def test_an_unreachable_server_is_one_clear_error_and_nothing_else(monkeypatch):
    dead = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(TrackingError, match=rf"{dead} is unreachable.*Nothing was logged or registered"):
        Registry(dead, "enc")
    with pytest.raises(TrackingError, match="unreachable"):
        with track_pipeline_run("dag-run-x", tracking_uri=dead):
            pass
    assert time.monotonic() - t0 < 20
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(TrackingError, match="no MLflow tracking server configured: set MLFLOW_TRACKING_URI"):
        Registry(None, "enc")


# ---------------------------------------------------------------- the command line


def test_cli_shows_promotes_and_rolls_back(reg, tiny):
    from typer.testing import CliRunner

    from xlir.registry.cli import app

    baseline(reg, metrics(mul=0.50))
    good = candidate(reg, tiny, "cli-good", metrics(mul=0.60))
    bad = candidate(reg, tiny, "cli-bad", metrics(mul=0.40))
    runner = CliRunner()
    out = runner.invoke(app, ["promote", "--version", str(bad), "--name", reg.name, "--by", "cli-test"])
    assert out.exit_code == 1 and "gate rejected: retrieval.min_gain_mul" in out.output
    out = runner.invoke(app, ["promote", "--version", str(good), "--name", reg.name, "--gate", "retrieval.min_gain_mul=0.05"])
    assert out.exit_code == 0, out.output
    assert f"v{good} is champion (previous champion v1)" in out.output
    shown = runner.invoke(app, ["show", "--name", reg.name, "--json"])
    rows = {r["version"]: r for r in json.loads(shown.output)}
    assert rows[good]["aliases"] == ["champion"] and rows[1]["aliases"] == ["previous-champion"]
    assert rows[bad]["gate"] == "rejected" and rows[good]["map.mul"] == 0.60
    table = runner.invoke(app, ["show", "--name", reg.name], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "champion" in table.output and "rejected" in table.output
    out = runner.invoke(app, ["rollback", "--name", reg.name, "--reason", "test"])
    assert out.exit_code == 0 and f"from v{good} to v1" in out.output
    out = runner.invoke(app, ["promote", "--rollback", "--name", reg.name])
    assert isinstance(out.exception, RegistryError)  # nothing left to roll back to
    out = runner.invoke(app, ["promote", "--name", reg.name])
    assert "say which version" in str(out.exception)
    gates = runner.invoke(app, ["gates", "--profile", "strict", "--gate", "bias.spread_ceiling=0.25"])
    assert gates.exit_code == 0 and json.loads(gates.stdout)["bias"]["spread_ceiling"] == 0.25


# ---------------------------------------------------------------- failure behaviour (issue 13)


class _Wrapped:
    """An MlflowClient whose calls pass through, except those a test replaces."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_a_retried_lock_creation_after_a_lost_reply_holds_the_lock_and_its_breaker(reg):
    """The HTTP client retries a creation whose reply was lost: the retry collides with the lock its
    own first attempt created. Same owner = held, at once (not a wait until the timeout)."""

    class LostReplies(_Wrapped):
        lost: list = []

        def create_registered_model(self, name, tags=None, description=None):
            self._client.create_registered_model(name, tags=tags, description=description)  # the server creates it,
            if name not in self.lost:  # the reply is lost, and the client's retry hears "already exists"
                self.lost.append(name)
                self._client.create_registered_model(name, tags=tags, description=description)

    t0 = time.monotonic()
    with RegistryLock(LostReplies(reg.client), reg.name, purpose="retried", timeout=5, poll=0.05) as lock:
        assert lock.held and time.monotonic() - t0 < 3
        assert reg.client.get_registered_model(f"{reg.name}.lock").tags["owner"] == lock.owner
    with pytest.raises(Exception, match="RESOURCE_DOES_NOT_EXIST|not found|does not exist"):
        reg.client.get_registered_model(f"{reg.name}.lock")  # released: the lock knew it was its own

    # the breaker lock the same way: a stale lock is broken at once, not after the breaker's own 30 s lease
    RegistryLock(reg.client, reg.name, purpose="crashed", ttl=0.2).acquire()
    time.sleep(0.3)
    LostReplies.lost = [f"{reg.name}.lock"]  # only the breaker's reply is lost this time
    t0 = time.monotonic()
    with RegistryLock(LostReplies(reg.client), reg.name, purpose="next", timeout=5, poll=0.05) as lock:
        assert time.monotonic() - t0 < 3
        assert reg.client.get_registered_model(f"{reg.name}.lock").tags["owner"] == lock.owner
    assert f"{reg.name}.lock.break" in LostReplies.lost


def test_a_promotion_retried_after_the_alias_moved_completes_its_record(reg, tiny):
    baseline(reg, metrics(mul=0.50))
    v = candidate(reg, tiny, "run-lost", metrics(mul=0.60))
    decision = promotion.decide(reg, v, load_gates())

    class ReplyLostAfterTheMove(_Wrapped):
        def set_registered_model_alias(self, name, alias, version):
            self._client.set_registered_model_alias(name, alias, version)
            if alias == "champion":
                raise ConnectionError("reply lost after the server moved the alias")

    real = reg.client
    reg.client = ReplyLostAfterTheMove(real)
    with pytest.raises(ConnectionError):
        promotion.gate_and_promote(reg, v, "run-lost", load_gates(), decision=decision)
    reg.client = real
    assert aliases(reg) == {"champion": v, "previous-champion": 1}  # the move went through

    retry = promotion.gate_and_promote(reg, v, "run-lost", load_gates(), decision=decision)  # the task's retry
    assert retry.promoted and retry.status == "passed" and retry.previous_champion == 1
    tags = reg.version(v).tags
    assert tags["gate.status"] == "passed" and tags["gate.decided_by"] == "run-lost" and tags["promoted_by"] == "run-lost"
    record = json.loads(artifact_text(reg, v, "gate/decision.json"))
    assert record["status"] == "passed" and record["outcome"]["promoted"] is True and record["reference"]["version"] == 1
    assert "promoted to champion" in artifact_text(reg, v, "model_card.md")

    # an interruption that left nothing recorded at all (the alias moved by this run, no decision, no card):
    # the retry, given the gate task's decision, records it and writes the card
    w = candidate(reg, tiny, "run-bare", metrics(mul=0.70))
    bare = promotion.decide(reg, w, load_gates())
    reg.set_tags(w, {"promoted_by": "run-bare", "champion.previous": str(v)})
    reg.client.set_registered_model_alias(reg.name, "previous-champion", str(v))
    reg.client.set_registered_model_alias(reg.name, "champion", str(w))
    again = promotion.gate_and_promote(reg, w, "run-bare", load_gates(), decision=bare)
    assert again.status == "passed" and reg.version(w).tags["gate.decided_by"] == "run-bare"
    assert json.loads(artifact_text(reg, w, "gate/decision.json"))["outcome"]["recorded_on_retry"] is True
    assert "promoted to champion" in artifact_text(reg, w, "model_card.md")
    # a version that some other run made champion is reported as such, and nothing is rewritten
    other = promotion.gate_and_promote(reg, w, "run-other", load_gates(), decision=bare)
    assert other.status == "already-champion"


def test_a_deleted_champion_falls_back_to_the_previous_champion_not_the_untuned_baseline(reg, tiny, caplog):
    baseline(reg, metrics(mul=0.40))
    for i, mul in enumerate((0.50, 0.60), start=2):
        v = candidate(reg, tiny, f"run-{i}", metrics(mul=mul))
        assert promotion.gate_and_promote(reg, v, f"run-{i}", load_gates(), model_card=False).promoted
    assert aliases(reg) == {"champion": 3, "previous-champion": 2}
    reg.client.delete_model_version(reg.name, "3")
    assert aliases(reg) == {"champion": None, "previous-champion": 2}

    # no gate against nothing while the previous champion exists
    v4 = candidate(reg, tiny, "run-4", metrics(mul=0.45))
    with pytest.raises(GateError, match="no champion but previous-champion v2"):
        promotion.gate_and_promote(reg, v4, "run-4", load_gates(), model_card=False)
    assert aliases(reg) == {"champion": None, "previous-champion": 2}

    # a pipeline run's ensure_baseline gives the alias back to v2 (not the untuned v1), and says so
    with caplog.at_level("WARNING", logger="xlir.registry.promotion"):
        assert promotion.ensure_baseline(reg, "tiny", EVAL, evaluator=lambda cfg: pytest.fail("evaluated"),
                                         pipeline_run_id="run-5") == 2
    assert aliases(reg) == {"champion": 2, "previous-champion": 1}
    assert "previous-champion v2 is the champion again" in caplog.text
    assert reg.version(2).tags["restored_by"] == "run-5" and "missing" in reg.version(2).tags["restored_reason"]
    # and the candidate is gated against v2 again
    assert promotion.gate_and_promote(reg, v4, "run-4", load_gates(), model_card=False).status == "rejected"

    # rollback does the same instead of refusing
    reg.client.delete_model_version(reg.name, "2")
    assert aliases(reg) == {"champion": None, "previous-champion": 1}
    back = promotion.rollback(reg, by="oncall")
    assert back.status == "rolled-back" and back.champion == 1 and "is the champion again" in back.message
    assert aliases(reg) == {"champion": 1, "previous-champion": None}
