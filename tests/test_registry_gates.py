"""Promotion gates as pure functions: the gate file, profiles, overrides, and every check's verdict."""

import json
import math

import pytest

from xlir.registry import GateConfigError, GateError, evaluate_gates, load_gates
from xlir.registry.gates import GATES_FILE, gate_profiles, languages_of, parse_overrides

LANGS = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")


def metrics(mul=0.60, mo=0.82, cr=0.72, rd=300.0, spread=0.10, prefix="xquad_r", **lang_mul):
    """Synthetic engine output: averages, rank distance, per-language Mul. mAP spread evenly around ``mul``."""
    m = {f"{prefix}.map.mul": mul, f"{prefix}.map.mo": mo, f"{prefix}.map.cr": cr, f"{prefix}.rank_distance": rd,
         f"{prefix}.map.mul.seen": mul, f"{prefix}.map.mul.unseen": mul}
    for i, lang in enumerate(LANGS):
        m[f"{prefix}.map.mul.{lang}"] = lang_mul.get(lang, mul - spread / 2 + spread * i / (len(LANGS) - 1))
    return m


def by_name(decision):
    return {c.name: c for c in decision.checks}


# ---------------------------------------------------------------- the gate file


def test_packaged_gate_file_is_versioned_with_default_strict_and_smoke_profiles():
    import yaml

    doc = yaml.safe_load(GATES_FILE.read_text())
    assert isinstance(doc["version"], int)
    assert {"default", "strict", "smoke"} <= set(gate_profiles())
    for name in gate_profiles():
        g = load_gates(name)
        assert g.profile == name and g.version == doc["version"] and g.dataset == "xquad-r"


def test_strict_profile_extends_default_and_tightens_it():
    default, strict = load_gates("default"), load_gates("strict")
    assert strict.retrieval.min_gain_mul > default.retrieval.min_gain_mul
    assert strict.retrieval.max_language_drop < default.retrieval.max_language_drop
    assert strict.bias.rank_distance_ceiling is not None
    assert strict.bias.spread_measure == default.bias.spread_measure  # inherited, not restated
    assert load_gates("smoke").retrieval.floor_mul is None


def test_unknown_profile_is_a_clear_error_listing_the_profiles():
    with pytest.raises(GateConfigError, match=r"unknown gate profile 'nightly'.*available: default, smoke, strict"):
        load_gates("nightly")


def test_every_value_can_be_overridden_per_run_by_dotted_key_nested_dict_or_cli_string():
    g = load_gates("default", {"retrieval.min_gain_mul": 0.02, "bias": {"spread_measure": "std"}, "on_eval_mismatch": "refuse"})
    assert g.retrieval.min_gain_mul == 0.02 and g.bias.spread_measure == "std" and g.on_eval_mismatch == "refuse"
    assert g.retrieval.tolerance_mo == load_gates().retrieval.tolerance_mo  # untouched values stay
    assert g.overrides == {"retrieval.min_gain_mul": 0.02, "bias.spread_measure": "std", "on_eval_mismatch": "refuse"}
    cli = load_gates("strict", parse_overrides(["retrieval.floor_mul=null", "bias.rank_distance_ceiling=450"]))
    assert cli.retrieval.floor_mul is None and cli.bias.rank_distance_ceiling == 450


@pytest.mark.parametrize("overrides, match", [
    ({"retrieval.min_gain": 0.1}, r"unknown gate setting\(s\) \['retrieval.min_gain'\]"),
    ({"retrieval.tolerance_mo": -0.1}, r"retrieval.tolerance_mo: Input should be greater than or equal to 0"),
    ({"bias.spread_measure": "iqr"}, r"bias.spread_measure"),
    ({"on_eval_mismatch": "ignore"}, r"on_eval_mismatch"),
])
def test_bad_overrides_are_refused_with_the_key_named(overrides, match):
    with pytest.raises(GateConfigError, match=match):
        load_gates("default", overrides)


def test_cli_override_without_equals_sign_is_refused():
    with pytest.raises(GateConfigError, match="expected KEY=VALUE"):
        parse_overrides(["retrieval.min_gain_mul"])


def test_gate_file_without_version_or_with_an_extends_cycle_is_refused(tmp_path):
    nover = tmp_path / "nover.yaml"
    nover.write_text("profiles:\n  default: {}\n")
    with pytest.raises(GateConfigError, match="'version' must be an integer"):
        load_gates(path=nover)
    cycle = tmp_path / "cycle.yaml"
    cycle.write_text("version: 3\nprofiles:\n  a: {extends: b}\n  b: {extends: a}\n")
    with pytest.raises(GateConfigError, match="cycle: a -> b -> a"):
        load_gates("a", path=cycle)
    with pytest.raises(GateConfigError, match="does not exist"):
        load_gates(path=tmp_path / "missing.yaml")


def test_gate_file_can_be_swapped_with_an_environment_variable(tmp_path, monkeypatch):
    f = tmp_path / "gates.yaml"
    f.write_text("version: 7\nprofiles:\n  nightly:\n    retrieval: {min_gain_mul: 0.5}\n")
    monkeypatch.setenv("XLIR_GATES_FILE", str(f))
    g = load_gates("nightly")
    assert g.version == 7 and g.retrieval.min_gain_mul == 0.5 and g.source == str(f)


# ---------------------------------------------------------------- the decision


def test_candidate_better_everywhere_passes_and_records_every_check():
    d = evaluate_gates(metrics(mul=0.63, rd=290), metrics(mul=0.60, rd=300), load_gates())
    assert d.passed and d.status == "passed" and d.failed == []
    checks = by_name(d)
    assert {"retrieval.min_gain_mul", "retrieval.tolerance_mo", "retrieval.tolerance_cr", "retrieval.floor_mul",
            "retrieval.floor_mo", "retrieval.floor_cr", "bias.rank_distance", "bias.spread_ceiling",
            "bias.spread_increase"} <= set(checks)
    assert {f"retrieval.language_drop.{x}" for x in LANGS} <= set(checks)
    gain = checks["retrieval.min_gain_mul"]
    assert (gain.metric, gain.candidate, gain.reference, gain.op) == ("xquad_r.map.mul", 0.63, 0.60, ">=")
    assert gain.threshold == pytest.approx(0.605)
    assert checks["bias.rank_distance"].threshold == pytest.approx(300.0)
    assert d.tags() == {"gate.status": "passed", "gate.failed": "", "gate.profile": "default", "gate.config_version": "1"}


def test_a_gain_below_min_gain_is_rejected_and_named():
    d = evaluate_gates(metrics(mul=0.603), metrics(mul=0.60), load_gates())
    assert d.status == "rejected" and d.failed == ["retrieval.min_gain_mul"]
    assert d.tags()["gate.failed"] == "retrieval.min_gain_mul"


def test_a_candidate_exactly_at_its_threshold_passes():
    d = evaluate_gates(metrics(mul=0.605), metrics(mul=0.60), load_gates())
    assert by_name(d)["retrieval.min_gain_mul"].passed


def test_one_language_collapsing_rejects_only_that_language():
    champ = metrics(mul=0.60)
    cand = metrics(mul=0.64, th=champ["xquad_r.map.mul.th"] - 0.05)
    d = evaluate_gates(cand, champ, load_gates())
    assert d.failed == ["retrieval.language_drop.th"]
    th = by_name(d)["retrieval.language_drop.th"]
    assert th.reference - th.candidate == pytest.approx(0.05) and th.threshold == pytest.approx(th.reference - 0.03)


def test_mo_and_cr_may_dip_within_tolerance_but_not_beyond():
    champ = metrics(mo=0.80, cr=0.70)
    assert evaluate_gates(metrics(mul=0.62, mo=0.791, cr=0.691), champ, load_gates()).passed
    d = evaluate_gates(metrics(mul=0.62, mo=0.78, cr=0.68), champ, load_gates())
    assert d.failed == ["retrieval.tolerance_mo", "retrieval.tolerance_cr"]


def test_more_language_bias_is_rejected_and_strict_demands_a_reduction_and_a_ceiling():
    champ = metrics(rd=300)
    assert evaluate_gates(metrics(mul=0.62, rd=310), champ, load_gates()).failed == ["bias.rank_distance"]
    strict = evaluate_gates(metrics(mul=0.62, rd=290, spread=0.05), metrics(rd=300, spread=0.05), load_gates("strict"))
    assert strict.failed == ["bias.rank_distance"]  # 290 > 300 x 0.95
    assert by_name(strict)["bias.rank_distance"].threshold == pytest.approx(285)
    high = evaluate_gates(metrics(mul=0.62, rd=700, spread=0.05), metrics(rd=800, spread=0.05), load_gates("strict"))
    assert high.failed == ["bias.rank_distance_ceiling"]


def test_per_language_spread_has_a_ceiling_in_range_or_std():
    wide = metrics(mul=0.62, spread=0.45)
    d = evaluate_gates(wide, metrics(spread=0.42), load_gates())
    assert d.failed == ["bias.spread_ceiling"] and by_name(d)["bias.spread_ceiling"].candidate == pytest.approx(0.45)
    std = evaluate_gates(wide, metrics(spread=0.42), load_gates(overrides={"bias.spread_measure": "std"}))
    assert std.passed and by_name(std)["bias.spread_ceiling"].metric == "std(xquad_r.map.mul.LANG)"


def test_spread_may_not_grow_much_beyond_the_champions():
    d = evaluate_gates(metrics(mul=0.62, spread=0.20), metrics(spread=0.10), load_gates())
    assert d.failed == ["bias.spread_increase"]


def test_a_random_encoder_fails_the_floors_even_with_no_champion():
    random_encoder = metrics(mul=0.001, mo=0.005, cr=0.003, rd=11000, spread=0.002)
    d = evaluate_gates(random_encoder, None, load_gates())
    assert d.status == "rejected"
    assert set(d.failed) == {"retrieval.floor_mul", "retrieval.floor_mo", "retrieval.floor_cr"}
    relative = [c for c in d.checks if c.skipped]
    assert relative and all(c.passed and c.reference is None for c in relative)
    assert d.reference == {"kind": "none"}


def test_a_degraded_candidate_fails_against_a_real_champion():
    e5_untuned = metrics(mul=0.29, mo=0.80, cr=0.63, rd=1270, spread=0.32)
    tiny_random = metrics(mul=0.001, mo=0.005, cr=0.003, rd=11400, spread=0.002)
    d = evaluate_gates(tiny_random, e5_untuned, load_gates("smoke"))
    assert {"retrieval.min_gain_mul", "retrieval.tolerance_mo", "retrieval.tolerance_cr", "bias.rank_distance"} <= set(d.failed)


@pytest.mark.parametrize("side", ["candidate", "champion"])
def test_a_missing_metric_is_a_clear_error_naming_it_and_its_side(side):
    good, bad = metrics(), metrics()
    del bad["xquad_r.map.cr"]
    cand, champ = (bad, good) if side == "candidate" else (good, bad)
    with pytest.raises(GateError, match=rf"the {side}'s metrics lack 'xquad_r.map.cr', needed by gate check 'retrieval.tolerance_cr'"):
        evaluate_gates(cand, champ, load_gates())


def test_a_nan_metric_is_an_error_not_a_pass():
    with pytest.raises(GateError, match="is nan"):
        evaluate_gates(metrics(mul=math.nan), metrics(), load_gates())


def test_a_switched_off_check_does_not_need_its_metric():
    cand = metrics()
    del cand["xquad_r.rank_distance"]
    g = load_gates(overrides={"bias.rank_distance_min_reduction": None, "retrieval.min_gain_mul": 0.0})
    d = evaluate_gates(cand, metrics(), g)
    assert "bias.rank_distance" not in by_name(d) and d.passed


def test_every_check_switched_off_is_refused():
    off = {f"retrieval.{k}": None for k in ("min_gain_mul", "tolerance_mo", "tolerance_cr", "max_language_drop",
                                            "floor_mul", "floor_mo", "floor_cr")}
    off.update({"bias.rank_distance_min_reduction": None, "bias.spread_ceiling": None, "bias.max_spread_increase": None})
    with pytest.raises(GateConfigError, match="every check switched off"):
        evaluate_gates(metrics(), metrics(), load_gates(overrides=off))


def test_seen_and_unseen_averages_are_not_languages():
    assert languages_of(metrics(), "xquad_r") == sorted(LANGS)


def test_gates_follow_the_configured_dataset_prefix():
    g = load_gates(overrides={"dataset": "mlqa-r", "retrieval.floor_mo": None, "retrieval.floor_cr": None,
                              "retrieval.floor_mul": None})
    d = evaluate_gates(metrics(mul=0.5, prefix="mlqa_r"), metrics(mul=0.4, prefix="mlqa_r"), g)
    assert d.passed and by_name(d)["retrieval.min_gain_mul"].metric == "mlqa_r.map.mul"


def test_the_decision_is_a_json_record_with_status_failed_checks_and_gates():
    d = evaluate_gates(metrics(mul=0.59), metrics(mul=0.60), load_gates())
    rec = json.loads(d.to_json())
    assert rec["status"] == "rejected" and rec["failed"] == d.failed
    assert rec["profile"] == "default" and rec["gates_version"] == 1
    assert rec["gates"]["retrieval"]["min_gain_mul"] == 0.005
    first = rec["checks"][0]
    assert set(first) >= {"name", "metric", "candidate", "reference", "threshold", "op", "passed"}


def test_the_summary_groups_failed_languages():
    champ = metrics(mul=0.60)
    cand = metrics(mul=0.59, th=0.4, vi=0.4)
    d = evaluate_gates(cand, champ, load_gates(overrides={"bias.max_spread_increase": None}))
    assert d.summary() == "gate rejected: retrieval.min_gain_mul, retrieval.language_drop[th,vi] (profile default v1)"
    assert d.tags()["gate.failed"] == "retrieval.min_gain_mul,retrieval.language_drop.th,retrieval.language_drop.vi"


# ---------------------------------------------------------------- which of two gate configs is stricter


def test_loosened_orders_every_setting_and_names_each_loosening():
    from xlir.registry.gates import NOT_GATES, SAME, STRICTER, _settable_keys, loosened

    # every settable gate has a direction (a new one must say which way is stricter, or it escapes the check)
    assert set(_settable_keys()) == set(STRICTER) | set(SAME) | set(NOT_GATES) | {"on_eval_mismatch"}
    default, strict, smoke = load_gates("default"), load_gates("strict"), load_gates("smoke")
    assert loosened(strict, default) == [] and loosened(default, default) == []
    assert len(loosened(smoke, default)) == 10 and len(loosened(default, strict)) == 11
    assert loosened(load_gates("default", {"retrieval.min_gain_mul": 0.01, "bias.rank_distance_ceiling": 900}),
                    default) == []  # tightening, and switching on a check the floor leaves off
    assert loosened(load_gates("default", {"bias.rank_distance_ceiling": 900}),
                    load_gates("default", {"bias.rank_distance_ceiling": 800})) == [
        "bias.rank_distance_ceiling 900.0 is looser than 800.0 (lower is stricter)"]
    assert loosened(load_gates("default", {"retrieval.floor_mo": None}), default) == [
        "retrieval.floor_mo is switched off (needs 0.5 or stricter)"]
    assert loosened(load_gates("default", {"bias.spread_measure": "std"}), default) == [
        "bias.spread_measure 'std' is not 'range'"]
    assert loosened(default, load_gates("default", {"on_eval_mismatch": "refuse"})) == [
        "on_eval_mismatch 'reevaluate' is looser than 'refuse'"]
