"""``xlir validate`` / ``xlir ingest`` as users run them (through a small typer app, registered
the way the main CLI registers them)."""

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from xlir.errors import XlirError
from xlir.validation.cli import ingest_command, validate_command

FIXTURES = Path(__file__).parent / "fixtures" / "validation"

app = typer.Typer()
app.command("validate")(validate_command)
app.command("ingest")(ingest_command)
runner = CliRunner()


def test_validate_exits_0_on_good_data_and_prints_a_summary():
    result = runner.invoke(app, ["validate", str(FIXTURES / "lareqa"), "--eval-datasets", "xquad-r"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("PASSED: 0 of ")
    assert "de 3, en 3" in result.output


def test_validate_exits_1_on_bad_data_naming_the_failing_check(tmp_path):
    rows = [json.loads(line) for line in (FIXTURES / "good.jsonl").read_text(encoding="utf-8").splitlines()]
    rows[0]["lang"] = "th"
    bad = tmp_path / "qa.jsonl"
    bad.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    result = runner.invoke(app, ["validate", str(bad), "--eval-datasets", "none", "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output and "FAIL script[th]:" in result.output
    assert "qa.jsonl row 1" in result.output
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report["passed"] is False and any(c["name"] == "script[th]" and not c["passed"] for c in report["checks"])


def test_validate_unparseable_file_is_a_failed_check_not_a_traceback(tmp_path):
    bad = tmp_path / "de.json"
    bad.write_text('{"data": [', encoding="utf-8")
    result = runner.invoke(app, ["validate", str(bad), "--eval-datasets", "none"])
    assert result.exit_code == 1
    assert "FAIL parse:" in result.output and "not valid JSON" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_validate_thresholds_come_from_the_config_file(tmp_path):
    rows = [r for r in (FIXTURES / "good.jsonl").read_text(encoding="utf-8").splitlines() if '"lang": "en"' in r]
    single = tmp_path / "en.jsonl"
    single.write_text("\n".join(rows), encoding="utf-8")
    assert runner.invoke(app, ["validate", str(single), "--eval-datasets", "none"]).exit_code == 1
    config = tmp_path / "t.yaml"
    config.write_text("thresholds: {min_languages: 1, min_parallel_coverage: 0}\neval_datasets: []\n", encoding="utf-8")
    result = runner.invoke(app, ["validate", str(single), "--config", str(config)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["validate", "missing.jsonl"], "no such file"),
        (["validate", str(FIXTURES / "good.jsonl"), "--format", "csv"], "unknown format 'csv'"),
        (["validate", str(FIXTURES / "good.jsonl"), "--config", "nope.yaml"], "config file nope.yaml does not exist"),
        (["ingest", "--landing", "no-such-landing"], "landing folder no-such-landing does not exist"),
    ],
)
def test_user_errors_raise_xlir_error_for_the_main_cli_to_print(args, message):
    result = runner.invoke(app, args)
    assert isinstance(result.exception, XlirError), result.output
    assert message in str(result.exception)


def test_ingest_command_reports_what_it_did(tmp_path):
    landing = tmp_path / "landing"
    (landing / "elbe").mkdir(parents=True)
    for f in (FIXTURES / "lareqa").iterdir():
        (landing / "elbe" / f.name).write_bytes(f.read_bytes())
    (landing / "broken.jsonl").write_text("not json\n", encoding="utf-8")
    args = ["ingest", "--landing", str(landing), "--store", str(tmp_path / "store"),
            "--quarantine", str(tmp_path / "q"), "--eval-datasets", "none", "--quiet-seconds", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "ingested 1, quarantined 1" in result.output
    assert runner.invoke(app, [*args, "--strict"]).exit_code == 0  # nothing new the second time
    (landing / "again.jsonl").write_text("still not json\n", encoding="utf-8")
    assert runner.invoke(app, [*args, "--strict"]).exit_code == 1
