"""The data contract: real datasets pass or fail as they should, and every kind of bad input is
rejected by its own check with its own message."""

import json
import time
from pathlib import Path

import pytest

from xlir.data.registry import resolve, source
from xlir.errors import XlirError
from xlir.validation import ValidationConfig, validate_files
from xlir.validation.config import Thresholds
from xlir.validation.languages import SCRIPTS, language_from_name, script_share

FIXTURES = Path(__file__).parent / "fixtures" / "validation"
GOOD_ROWS = [json.loads(line) for line in (FIXTURES / "good.jsonl").read_text(encoding="utf-8").splitlines()]
NO_EVAL = ValidationConfig(eval_datasets=[])


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def rows_with(**changes_by_index):
    """GOOD_ROWS with per-row changes: rows_with(r0={"question": "x"})."""
    rows = [dict(r) for r in GOOD_ROWS]
    for key, change in changes_by_index.items():
        rows[int(key[1:])].update(change)
    return rows


def failed_names(report) -> set[str]:
    return {c.name for c in report.failed}


# ---------------------------------------------------------------- real datasets


def test_full_mlqa_r_passes_the_contract():
    files = [resolve("mlqa-r", name) for name in source("mlqa-r")["files"]]
    started = time.perf_counter()
    report = validate_files(files)
    seconds = time.perf_counter() - started
    assert report.passed, report.summary()
    assert report.rows == 4199
    assert report.rows_per_language == {"ar": 517, "de": 512, "en": 1148, "es": 500, "hi": 507, "vi": 511, "zh": 504}
    assert report.eval_datasets == ["xquad-r", "dream"] and report.overlap_count == 0
    assert {"script[zh]", "leakage[question]", "parallel_coverage", "unique_id"} <= {c.name for c in report.checks}
    assert seconds < 60, f"validating MLQA-R took {seconds:.1f}s"
    print(f"\nfull MLQA-R validation: {seconds:.1f}s (report: {report.seconds:.1f}s)")


def test_xquad_r_offered_for_training_fails_leakage_when_evaluating_on_xquad_r():
    files = [resolve("xquad-r", f"{lang}.json") for lang in ("en", "de", "zh")]
    report = validate_files(files, config=ValidationConfig(eval_datasets=["xquad-r"]))
    assert not report.passed
    assert {"leakage[question]", "leakage[answer_sentence]"} <= failed_names(report)
    leak = report.check("leakage[question]")
    assert leak.failing_rows == 3 * 1190 and leak.observed == 0.0 and leak.threshold
    assert report.overlap_count >= 2 * 3 * 1190 - 10
    first = report.overlaps[0]
    assert first["eval_dataset"] == "xquad-r" and first["field"] in ("question", "answer_sentence") and first["text"]
    assert "leakage[question]" in report.summary()


def test_roles_can_swap_train_on_xquad_r_and_evaluate_on_mlqa_r():
    files = [resolve("xquad-r", f"{lang}.json") for lang in ("en", "de")]
    report = validate_files(files, config=ValidationConfig(eval_datasets=["mlqa-r"]))
    assert "leakage[question]" not in failed_names(report)
    assert "leakage[answer_sentence]" not in failed_names(report)
    assert report.overlap_count == 0


# ---------------------------------------------------------------- several files, one dataset


def test_several_files_are_validated_as_one_dataset(tmp_path):
    en = write_jsonl(tmp_path / "part-en.jsonl", [r for r in GOOD_ROWS if r["lang"] == "en"])
    de = write_jsonl(tmp_path / "part-de.jsonl", [r for r in GOOD_ROWS if r["lang"] == "de"])
    alone = validate_files([en], config=NO_EVAL)
    assert {"language_count", "parallel_coverage"} <= failed_names(alone)
    together = validate_files([en, de], config=NO_EVAL)
    assert together.passed, together.summary()
    assert together.files == ["part-en.jsonl", "part-de.jsonl"]
    assert together.rows_per_language == {"en": 2, "de": 2}
    assert together.check("parallel_coverage").observed == 1.0


def test_cross_file_duplicates_are_caught_on_the_union(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", GOOD_ROWS)
    b = write_jsonl(tmp_path / "b.jsonl", GOOD_ROWS[:1])
    report = validate_files([a, b], config=NO_EVAL)
    assert "unique_id" in failed_names(report)
    assert {ex["file"] for ex in report.check("unique_id").examples} <= {"a.jsonl", "b.jsonl"}


def test_lareqa_folder_and_jsonl_fixtures_pass():
    assert validate_files([FIXTURES / "lareqa"]).passed
    assert validate_files([FIXTURES / "good.jsonl"]).passed


def test_lareqa_language_comes_from_option_then_field_then_file_name(tmp_path):
    doc = json.loads((FIXTURES / "lareqa" / "de.json").read_text(encoding="utf-8"))
    named = tmp_path / "train.de.json"
    named.write_text(json.dumps(doc), encoding="utf-8")
    en = FIXTURES / "lareqa" / "en.json"
    assert validate_files([named, en], config=NO_EVAL).rows_per_language == {"de": 3, "en": 3}
    field = tmp_path / "upload.json"
    field.write_text(json.dumps({**doc, "language": "de"}), encoding="utf-8")
    assert validate_files([field, en], config=NO_EVAL).rows_per_language == {"de": 3, "en": 3}
    forced = validate_files([named], lang="th", config=NO_EVAL)
    assert forced.rows_per_language == {"th": 3} and "script[th]" in failed_names(forced)


# ---------------------------------------------------------------- bad input, one kind at a time


def _lareqa_text() -> str:
    return (FIXTURES / "lareqa" / "en.json").read_text(encoding="utf-8")


BAD_FILES = {
    # kind: (file name, content: str (UTF-8) or bytes, failing check, text in the check's message)
    "not json": ("en.json", "this is a plain text file, not JSON", "parse", "not valid JSON (line 1, column 1"),
    "truncated json": ("en.json", _lareqa_text()[:400], "parse", "not valid JSON"),
    "wrong encoding": ("qa.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in GOOD_ROWS).encode("utf-16"),
                       "parse", "not UTF-8 text"),
    "empty file": ("qa.jsonl", "", "parse", "file is empty"),
    "jsonl line not an object": ("qa.jsonl", '["a", "list"]\n', "parse", "line 1 should be a JSON object"),
    "broken jsonl line": ("qa.jsonl", json.dumps(GOOD_ROWS[0]) + "\n{\"parallel_id\": \n", "parse", "line 2 is not valid JSON"),
    "lareqa missing field": ("en.json", _lareqa_text().replace('"context"', '"kontext"'), "parse", "missing field 'context'"),
    "lareqa wrong type": ("en.json", _lareqa_text().replace('"In which mountains does the Elbe rise?"', "42"),
                          "parse", "field 'question' should be str, got int"),
    "not parquet": ("qa.parquet", b"PAR1 but not really a parquet file", "parse", "not a readable Parquet file"),
    "unknown format": ("qa.csv", "parallel_id,lang,question\nq1,en,Who?\n", "parse", "unknown format"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_unreadable_file_fails_the_parse_check_with_the_reason(tmp_path, kind):
    name, content, check, message = BAD_FILES[kind]
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    report = validate_files([path], config=NO_EVAL)
    assert not report.passed
    assert failed_names(report) == {check}
    (example,) = report.check(check).examples
    assert example["file"] == name and message in example["error"], example["error"]
    assert message in report.summary()


def _without(column):
    return [{k: v for k, v in r.items() if k != column} for r in GOOD_ROWS]


ENGLISH_AS_THAI = [dict(r, lang="th") if r["lang"] == "ru" else r for r in rows_with(
    r2={"question": "Where was tea first drunk?", "answer_sentence": "Tea was first drunk in China.",
        "paragraph": "Tea was first drunk in China."},
    r5={"question": "How did tea spread?", "answer_sentence": "It spread along trade routes.",
        "paragraph": "It spread along trade routes."},
)]

BAD_ROWS = {
    # kind: (rows, the check that must fail)
    "missing column": (_without("paragraph"), "column_present[paragraph]"),
    "wrong type": (rows_with(r0={"question": 123}), "column_type[question]"),
    "negatives not a list": (rows_with(r1={"negatives": "one sentence"}), "column_type[negatives]"),
    "null question": (rows_with(r3={"question": None}), "not_null[question]"),
    "blank question": (rows_with(r4={"question": "   \t"}), "not_blank[question]"),
    "unknown language": ([dict(r, lang="xx") if r["lang"] == "ru" else r for r in GOOD_ROWS], "language_code"),
    "wrong script": (ENGLISH_AS_THAI, "script[th]"),
    "duplicate ids": (GOOD_ROWS + [dict(GOOD_ROWS[0], question="Where did people first drink tea?")], "unique_id"),
    "answer outside paragraph": (rows_with(r0={"answer_sentence": "Coffee comes from Ethiopia."}), "answer_in_paragraph"),
    "single language": ([r for r in GOOD_ROWS if r["lang"] == "en"], "language_count"),
    "huge question": (rows_with(r0={"question": "Where was tea first drunk " + "and why " * 20000 + "?"}), "length[question]"),
    "huge paragraph": (rows_with(r0={"paragraph": GOOD_ROWS[0]["paragraph"] + " More tea." * 6000}), "length[paragraph]"),
    "tiny answer": (rows_with(r0={"answer_sentence": "T", "paragraph": "T. Tea was first drunk in China."}), "length[answer_sentence]"),
    "repeated questions": (
        GOOD_ROWS + [dict(GOOD_ROWS[0], parallel_id=f"dup-{i}", lang="en") for i in range(3)], "duplicate_questions"
    ),
    "no parallel ids": ([dict(r, parallel_id=f"{r['parallel_id']}-{r['lang']}") for r in GOOD_ROWS], "parallel_coverage"),
    "source not text": (rows_with(r1={"source": ["mlqa"]}), "column_type[source]"),
    "control character": (rows_with(r0={"question": "Where was tea\x07 first drunk?"}), "text_chars[question]"),
    "blank negative": (rows_with(r0={"negatives": ["It later spread along trade routes.", " "]}), "not_blank[negatives]"),
    "negative from another paragraph": (rows_with(r0={"negatives": ["Coffee comes from Ethiopia."]}), "negatives_in_paragraph"),
    "answer among its negatives": (rows_with(r0={"negatives": ["Tea was first drunk in southwest China."]}),
                                   "negatives_exclude_answer"),
}


@pytest.mark.parametrize("kind", sorted(BAD_ROWS))
def test_bad_rows_fail_their_own_check_naming_value_and_threshold(tmp_path, kind):
    rows, check = BAD_ROWS[kind]
    report = validate_files([write_jsonl(tmp_path / "qa.jsonl", rows)], config=NO_EVAL)
    assert not report.passed
    assert check in failed_names(report), report.summary()
    result = report.check(check)
    assert result.observed is not None and result.threshold, result
    assert f"FAIL {check}:" in report.summary()
    if check not in ("language_count",) and not check.startswith("column_present"):
        assert result.examples and all(ex.get("file") == "qa.jsonl" for ex in result.examples)


def test_every_kind_of_bad_rows_fails_for_a_reason_of_its_own(tmp_path):
    """The first failing check differs between kinds: no catch-all check absorbs them."""
    firsts = {}
    for kind, (rows, _) in BAD_ROWS.items():
        report = validate_files([write_jsonl(tmp_path / f"{len(firsts)}.jsonl", rows)], config=NO_EVAL)
        firsts[kind] = report.failed[0].name
    assert len(set(firsts.values())) == len(firsts), firsts


def test_leakage_of_an_evaluation_question_is_listed_with_its_source(tmp_path):
    from xlir.data import load_dataset

    leaked = load_dataset("xquad-r", languages=["en"]).questions.iloc[7]
    rows = rows_with(r0={"question": "  " + leaked.question.upper() + " "})
    report = validate_files([write_jsonl(tmp_path / "qa.jsonl", rows)], config=ValidationConfig(eval_datasets=["xquad-r"]))
    assert failed_names(report) == {"leakage[question]"}
    assert report.overlap_count == 1
    (overlap,) = report.overlaps
    assert overlap["eval_dataset"] == "xquad-r" and overlap["parallel_id"] == "tea-1" and overlap["field"] == "question"


def test_strings_too_short_to_identify_anything_never_count_as_leakage(tmp_path):
    eval_file = write_jsonl(tmp_path / "myeval.jsonl", [
        {"parallel_id": "e1", "lang": "hi", "question": "ए.", "answer_sentence": "…", "paragraph": "ए. …"},
        {"parallel_id": "e2", "lang": "en", "question": "Yes?", "answer_sentence": "The Elbe is long.", "paragraph": "The Elbe is long."},
    ])
    rows = rows_with(r0={"question": "ए."}, r1={"question": "Yes?"}, r3={"answer_sentence": "The  ELBE is long.",
                                                                        "paragraph": "The  ELBE is long. More."})
    report = validate_files([write_jsonl(tmp_path / "qa.jsonl", rows)], config=ValidationConfig(eval_datasets=[str(eval_file)]))
    assert "leakage[question]" not in failed_names(report)
    assert "leakage[answer_sentence]" in failed_names(report)
    assert [o["text"] for o in report.overlaps] == ["The  ELBE is long."]


def test_thresholds_come_from_the_config(tmp_path):
    rows = [r for r in GOOD_ROWS if r["lang"] == "en"]
    path = write_jsonl(tmp_path / "en.jsonl", rows)
    config = ValidationConfig(eval_datasets=[], thresholds=Thresholds(min_languages=1, min_parallel_coverage=0.0))
    assert validate_files([path], config=config).passed


def test_missing_path_or_unknown_format_or_eval_dataset_is_a_user_error(tmp_path):
    with pytest.raises(XlirError, match="no such file"):
        validate_files([tmp_path / "nope.jsonl"])
    path = write_jsonl(tmp_path / "qa.jsonl", GOOD_ROWS)
    with pytest.raises(XlirError, match="unknown format 'csv'"):
        validate_files([path], fmt="csv")
    with pytest.raises(XlirError, match="evaluation dataset 'xqad-r'"):
        validate_files([path], config=ValidationConfig(eval_datasets=["xqad-r"]))


# ---------------------------------------------------------------- configuration and building blocks


def test_config_file_overrides_defaults_and_rejects_typos(tmp_path):
    path = tmp_path / "thresholds.yaml"
    path.write_text("languages: [en, de, 'no']\nthresholds:\n  min_parallel_coverage: 0.8\n", encoding="utf-8")
    config = ValidationConfig.load(path)
    assert config.languages == ["de", "en", "no"] and config.thresholds.min_parallel_coverage == 0.8
    assert config.thresholds.max_duplicate_question_rate == Thresholds().max_duplicate_question_rate
    path.write_text("thresholds:\n  min_paralel_coverage: 0.8\n", encoding="utf-8")
    with pytest.raises(XlirError, match="min_paralel_coverage"):
        ValidationConfig.load(path)
    path.write_text("languages: [en, no]\n", encoding="utf-8")
    with pytest.raises(XlirError, match="quote codes"):
        ValidationConfig.load(path)
    path.write_text("languages: [en, english]\n", encoding="utf-8")
    with pytest.raises(XlirError, match="not ISO 639-1"):
        ValidationConfig.load(path)


def test_packaged_default_config_file_spells_out_the_defaults():
    from xlir.validation import config as module

    assert ValidationConfig.load(Path(module.__file__).with_name("default_config.yaml")) == ValidationConfig()


def test_script_share_tells_english_from_thai_and_ignores_digits():
    assert script_share("What is the capital?", SCRIPTS["th"]) == 0.0
    assert script_share("เมืองหลวงคืออะไร 2024", SCRIPTS["th"]) == 1.0
    assert script_share("北京是中国的首都 Beijing", SCRIPTS["zh"]) == pytest.approx(8 / 15)
    assert script_share("１２３", SCRIPTS["en"]) != script_share("１２３", SCRIPTS["en"])  # NaN: no letters


def test_language_from_file_name_takes_the_stem_or_its_last_token():
    assert language_from_name("de") == "de"
    assert language_from_name("mlqa-train.de") == "de"
    assert language_from_name("answers_to_check") is None


def test_suite_file_is_versioned_and_uses_only_built_in_expectations():
    import great_expectations as gx

    from xlir.validation.suite import load_suite

    suite = load_suite()
    assert suite.name == "xlir.questions" and suite.version >= 1
    for stage in suite.stages.values():
        for spec in stage:
            assert hasattr(gx.expectations, spec["expectation"]), spec


def test_data_docs_site_is_written_on_request(tmp_path):
    rows = rows_with(r0={"question": "  "})
    report = validate_files([write_jsonl(tmp_path / "qa.jsonl", rows)], config=NO_EVAL, data_docs_dir=tmp_path / "docs")
    assert not report.passed
    index = (tmp_path / "docs" / "index.html").read_text(encoding="utf-8")
    assert "xlir_questions-content" in index and "xlir_questions-structure-1-qa_jsonl" in index


# ---------------------------------------------------------------- every field a format defines


def _lareqa(lang: str = "en") -> dict:
    return json.loads((FIXTURES / "lareqa" / f"{lang}.json").read_text(encoding="utf-8"))


def _para(doc: dict) -> dict:
    return doc["data"][0]["paragraphs"][0]


def _answer(doc: dict, k: int = 0) -> dict:
    return _para(doc)["qas"][k]["answers"][0]


def _edit(change):
    def build():
        doc = _lareqa()
        change(doc)
        return doc
    return build


def _answer_between_sentences(doc):
    """Sentence 0 ends before ' of the Czech Republic.'; an answer there is in no sentence."""
    para = _para(doc)
    para["sentences"][0] = "The river Elbe rises in the Krkonose mountains"
    para["sentence_breaks"][0] = [0, 46]
    para["qas"][0]["answers"] = [{"text": "Czech Republic", "answer_start": para["context"].index("Czech Republic")}]


def _paragraph_without_questions(doc):
    text = "Dresden lies on the Elbe.\x00"
    doc["data"][0]["paragraphs"].append({"context": text, "sentences": [text], "sentence_breaks": [[0, len(text)]], "qas": []})


BAD_LAREQA = {
    # kind: (en.json as changed (validated with the fixture's de.json), the check that fails first)
    "answer_start off the answer": (_edit(lambda d: _answer(d).update(answer_start=29)), "answer_start"),
    "answer_start not an integer": (_edit(lambda d: _answer(d).update(answer_start=True)), "answer_start"),
    "answer text not in context": (_edit(lambda d: _answer(d).update(text="Alps")), "answer_text"),
    "answer without text": (_edit(lambda d: _answer(d).pop("text")), "answer_text"),
    "answer between sentences": (_edit(_answer_between_sentences), "answer_in_sentence"),
    "break disagrees with its sentence": (_edit(lambda d: _para(d)["sentence_breaks"].__setitem__(1, [70, 130])), "sentence_breaks"),
    "sentence disagrees with the context": (
        _edit(lambda d: _para(d)["sentences"].__setitem__(2, "Hamburg, the largest port on the Rhine, lies on its banks.")),
        "sentence_breaks",
    ),
    "break not integers": (_edit(lambda d: _para(d)["sentence_breaks"].__setitem__(1, ["70", "139"])), "sentence_breaks"),
    "break without its end": (_edit(lambda d: _para(d)["sentence_breaks"].__setitem__(1, [70])), "sentence_breaks"),
    "breaks out of order": (_edit(lambda d: _para(d)["sentence_breaks"].__setitem__(2, [60, 198])), "sentence_breaks"),
    "language field against file name": (_edit(lambda d: d.update(language="de")), "language_agrees"),
    "title not well-formed": (_edit(lambda d: d["data"][0].update(title="Elbe\ufffd")), "text_chars[title]"),
    "bad text in a paragraph without questions": (_edit(_paragraph_without_questions), "text_chars[context]"),
}


@pytest.mark.parametrize("kind", sorted(BAD_LAREQA))
def test_lareqa_fields_the_reader_does_not_use_must_agree_with_those_it_does(tmp_path, kind):
    build, check = BAD_LAREQA[kind]
    path = tmp_path / "en.json"
    path.write_text(json.dumps(build(), ensure_ascii=False), encoding="utf-8")
    report = validate_files([path, FIXTURES / "lareqa" / "de.json"], config=NO_EVAL)
    assert not report.passed
    assert report.failed[0].name == check, report.summary()
    result = report.check(check)
    assert result.failing_rows >= 1 and result.threshold and f"FAIL {check}:" in report.summary()
    (example, *_) = result.examples
    assert example["file"] == "en.json" and example["where"].startswith(("data[", "en.json")), example
    assert any(k.endswith("_problem") and v for k, v in example.items()), example


def test_lareqa_answer_start_failure_says_where_the_text_really_starts(tmp_path):
    path = tmp_path / "en.json"
    path.write_text(json.dumps(BAD_LAREQA["answer_start off the answer"][0]()), encoding="utf-8")
    report = validate_files([path, FIXTURES / "lareqa" / "de.json"], config=NO_EVAL)
    (example,) = report.check("answer_start").examples
    assert example["where"] == "data[0].paragraphs[0].qas[0].answers[0]" and example["id"] == "elbe-1"
    assert example["answer_start_problem"].startswith("answer_start 29, but the text starts at 28")
    assert report.check("answer_start").rows_checked == 6  # the answers of both files, not every item


def test_lang_option_disagreeing_with_the_file_name_fails(tmp_path):
    report = validate_files([FIXTURES / "lareqa" / "en.json"], lang="de", config=NO_EVAL)
    assert "language_agrees" in failed_names(report)
    (example,) = report.check("language_agrees").examples
    assert "the file name (en.json) says 'en'" in example["language_problem"] and "--lang says 'de'" in example["language_problem"]


def test_duplicate_question_ids_in_a_lareqa_file_fail_unique_id(tmp_path):
    doc = _lareqa()
    _para(doc)["qas"][1]["id"] = "elbe-1"
    path = tmp_path / "en.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    report = validate_files([path, FIXTURES / "lareqa" / "de.json"], config=NO_EVAL)
    assert "unique_id" in failed_names(report)


BAD_TEXT = {
    # kind: (row changes, column, the kind named in the example)
    "NUL byte": ({"question": "Where was tea\x00 first drunk?"}, "question", "control character"),
    "C1 control (mojibake)": ({"answer_sentence": "Tea was first drunk in \x81 China.",
                               "paragraph": "Tea was first drunk in \x81 China. It later spread along trade routes."},
                              "answer_sentence", "control character"),
    "replacement character": ({"paragraph": "Tea was first drunk in southwest China. It later spread along trade r\ufffdutes."},
                              "paragraph", "failed decoding"),
    "private-use character": ({"question": "Where was tea first drunk\ue000?"}, "question", "private-use character"),
    "noncharacter": ({"negatives": ["It later spread along trade routes.\uffff"]}, "negatives", "noncharacter"),
}


@pytest.mark.parametrize("kind", sorted(BAD_TEXT))
def test_text_must_be_well_formed(tmp_path, kind):
    change, column, named = BAD_TEXT[kind]
    rows = rows_with(r0=change)
    report = validate_files([write_jsonl(tmp_path / "qa.jsonl", rows)], config=NO_EVAL)
    check = f"text_chars[{column}]"
    assert check in failed_names(report), report.summary()
    (example,) = report.check(check).examples
    assert example["row"] == 1 and named in example[f"{column}_chars"], example


@pytest.mark.parametrize("fmt", ["jsonl", "lareqa"])
def test_an_unpaired_surrogate_fails_parsing_naming_it(tmp_path, fmt):
    """Half of a UTF-16 pair can only travel as a JSON escape ("\\ud83d"); no table can hold it."""
    if fmt == "jsonl":
        path = tmp_path / "qa.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in rows_with(r0={"question": "Where was tea first drunk \ud83d?"})))
    else:
        doc = _lareqa()
        _para(doc)["qas"][0]["question"] = "In which mountains \ud83d?"
        path = tmp_path / "en.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
    report = validate_files([path], config=NO_EVAL)
    assert failed_names(report) == {"parse"}
    assert "surrogates not allowed" in report.check("parse").examples[0]["error"]


def test_text_check_allows_what_languages_write():
    from xlir.validation.text import problem

    for text in ("tab\tand\nnew line\r\n", "می\u200cخواهم", "क्\u200dष", "\u200fعربي\u200e", "soft\u00adhyphen",
                 "no-break\u00a0space", "emoji \U0001f600 and new emoji \U0001fae8", "CJK 北京 ＡＢＣ"):
        assert problem(text) is None, text


def test_real_corrupt_files_fail_the_new_checks():
    """XQuAD-R's Turkish and Arabic files carry corruption the reader never noticed: a sentence
    that differs from its context span (mojibake with a C1 control) and U+FFFD characters."""
    report = validate_files([resolve("xquad-r", "tr.json"), resolve("xquad-r", "ar.json")], config=NO_EVAL)
    failed = failed_names(report)
    assert {"sentence_breaks", "text_chars[context]", "text_chars[paragraph]", "negatives_in_paragraph"} <= failed
    breaks = report.check("sentence_breaks")
    assert breaks.failing_rows == 1 and breaks.examples[0]["file"] == "tr.json"
    kinds = " ".join(ex["context_chars_problem"] for ex in report.check("text_chars[context]").examples)
    assert "U+0081" in kinds and "U+FFFD" in kinds


def test_new_checks_leave_real_mlqa_r_slices_passing(tmp_path):
    from mlqa_slice import write_mlqa_slice

    path = write_mlqa_slice(tmp_path / "slice.jsonl", ids=slice(0, 60))
    report = validate_files([path], config=NO_EVAL)
    assert report.passed, report.summary()
