"""The ``xlir`` console script as users run it."""

import subprocess
import sys
from pathlib import Path

XLIR = str(Path(sys.executable).with_name("xlir"))


def run(*args):
    return subprocess.run([XLIR, *args], capture_output=True, text=True, timeout=300)


def test_help_lists_command_groups_with_descriptions():
    out = run("--help")
    assert out.returncode == 0
    for group in ("data", "model", "validate", "ingest", "train", "evaluate", "registry", "promote", "serve", "search",
                  "stack"):
        assert group in out.stdout
    assert "Inspect and fetch the named datasets" in out.stdout


def test_data_describe_prints_per_language_counts():
    out = run("data", "describe", "xquad-r")
    assert out.returncode == 0, out.stderr
    assert "13090" in out.stdout and "13014" in out.stdout
    assert "│ th   │ 1190      │ 852" in out.stdout


def test_user_error_is_one_line_and_exit_code_2():
    out = run("data", "describe", "xquad")
    assert out.returncode == 2
    assert out.stderr.startswith("error: unknown dataset 'xquad'")
    assert "Traceback" not in out.stderr


def test_data_path_prints_the_folder_that_holds_the_files():
    out = run("data", "path", "mlqa-r")
    assert out.returncode == 0, out.stderr
    folder = Path(out.stdout.strip())
    assert sorted(p.name for p in folder.glob("*.json")) == [f"{x}.json" for x in ("ar", "de", "en", "es", "hi", "vi", "zh")]
