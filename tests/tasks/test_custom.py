"""Bring-your-own CSV/JSONL: good files load with seeded splits; every malformed one is a clear TaskError."""

from __future__ import annotations

import json

import pytest

from peftspace.design.errors import PeftspaceError
from peftspace.tasks import Example, TaskError, compute_metrics, format_prompt, load_custom, main_score


def write_csv(path, rows, header="text,label"):
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def reviews(tmp_path):
    rows = [f'"review {i}, with a comma",{"good" if i % 3 else "bad"}' for i in range(40)]
    return write_csv(tmp_path / "reviews.csv", rows)


def test_a_classification_csv_loads_with_sorted_classes(reviews):
    data = load_custom(reviews, text_columns=["text"], label_column="label")
    spec = data.spec
    assert (spec.name, spec.benchmark, spec.kind) == ("reviews", "custom", "classification")
    assert spec.labels == spec.label_words == ("bad", "good")
    assert data.sizes == {"train": 32, "validation": 4, "test": 4}
    everything = sorted(data.train + data.validation + data.test, key=lambda e: int(e.texts[0].split()[1].rstrip(",")))
    assert everything[0] == Example(("review 0, with a comma",), 0) and everything[1].label == 1
    assert format_prompt(spec, everything[0]) == "text: review 0, with a comma"
    assert main_score(spec, compute_metrics(spec, [e.label for e in data.test], [e.label for e in data.test])) == 100.0
    assert any("fixed seed" in n for n in data.notes)


def test_custom_splits_are_seeded_disjoint_and_share_one_test_split(reviews):
    a, b, c = (load_custom(reviews, text_columns=["text"], label_column="label", seed=s) for s in (0, 0, 1))
    assert (a.train, a.validation, a.test) == (b.train, b.validation, b.test)
    assert a.validation != c.validation and a.test == c.test
    assert not (set(a.train) & set(a.validation)) and not (set(a.train + a.validation) & set(a.test))


def test_numeric_class_labels_sort_numerically(tmp_path):
    path = write_csv(tmp_path / "n.csv", ["a,10", "b,2", "c,1", "d,2"])
    data = load_custom(path, text_columns=["text"], label_column="label", validation_size=1)
    assert data.spec.labels == ("1", "2", "10")


def test_a_regression_jsonl_with_two_text_columns_and_a_test_file(tmp_path):
    lines = [json.dumps({"a": f"x{i}", "b": f"y{i}", "score": i / 2}) for i in range(10)]
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "test.jsonl").write_text(json.dumps({"a": "p", "b": "q", "score": "2.5"}) + "\n")
    data = load_custom(tmp_path / "train.jsonl", text_columns=["a", "b"], label_column="score", kind="regression",
                       test_path=tmp_path / "test.jsonl", validation_size=2)
    assert data.spec.kind == "regression" and data.spec.labels == () and data.spec.metrics == ("pearson", "spearman")
    assert data.sizes == {"train": 8, "validation": 2, "test": 1}
    assert data.test == [Example(("p", "q"), 2.5)]


def expect_error(path, message, **kwargs):
    kwargs = {"text_columns": ["text"], "label_column": "label"} | kwargs
    with pytest.raises(TaskError) as info:
        load_custom(path, **kwargs)
    assert isinstance(info.value, PeftspaceError)
    assert message in str(info.value), str(info.value)
    return str(info.value)


def test_a_missing_file(tmp_path):
    expect_error(tmp_path / "absent.csv", "file not found")


@pytest.mark.parametrize("content", ["", "  \n\n"])
def test_an_empty_file(tmp_path, content):
    (tmp_path / "empty.csv").write_text(content)
    expect_error(tmp_path / "empty.csv", "is empty")


def test_a_missing_text_or_label_column_lists_the_columns_found(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["a,1", "b,0"], header="sentence,label")
    expect_error(path, "missing column(s) ['text']; columns found: ['sentence', 'label']")
    expect_error(path, "missing column(s) ['target']", text_columns=["sentence"], label_column="target")
    (tmp_path / "d.jsonl").write_text('{"sentence": "a", "y": 1}\n{"sentence": "b", "y": 0}\n')
    expect_error(tmp_path / "d.jsonl", "columns found: ['sentence', 'y']", text_columns=["sentence"])


def test_a_non_numeric_regression_label_names_its_row_and_value(tmp_path):
    path = write_csv(tmp_path / "r.csv", ["a,1.5", "b,high", "c,2"])
    message = expect_error(path, "row 2 (line 3): label 'high' in column 'label' is not a number", kind="regression")
    assert "kind='classification'" in message


def test_a_latin1_csv_says_it_is_not_utf8_and_where(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\ncafé au lait,1\nthé,0\n".encode("latin-1"))
    expect_error(path, "is not UTF-8: byte 0xe9 at byte position 14 (line 2)")


def test_a_malformed_json_line_names_its_line(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 0\n')
    expect_error(tmp_path / "bad.jsonl", "bad.jsonl line 2 is not valid JSON")
    (tmp_path / "list.jsonl").write_text('{"text": "a", "label": 1}\n[1, 2]\n')
    expect_error(tmp_path / "list.jsonl", "line 2 is a JSON list; expected an object")


@pytest.mark.parametrize("rows,found", [([], 0), (["only,1"], 1)])
def test_fewer_than_two_examples(tmp_path, rows, found):
    expect_error(write_csv(tmp_path / "few.csv", rows), f"has {found} example(s); at least 2 are needed")


def test_other_malformed_inputs(tmp_path):
    expect_error(write_csv(tmp_path / "one.csv", ["a,x", "b,x"]), "only one distinct value")
    expect_error(write_csv(tmp_path / "blank.csv", ["a,x", "b,"]), "row 2 (line 3): the label in column 'label' is empty")
    expect_error(write_csv(tmp_path / "short.csv", ["a,x", "b"]), "row 2 (line 3) has fewer fields than the header")
    expect_error(write_csv(tmp_path / "ok.csv", ["a,x", "b,y"]), "kind='generation' is not supported", kind="generation")
    expect_error(write_csv(tmp_path / "ok.csv", ["a,x", "b,y"]), "no test split", validation_size=0)
    (tmp_path / "data.xlsx").write_text("x")
    expect_error(tmp_path / "data.xlsx", "unsupported file type '.xlsx'")
    (tmp_path / "gap.jsonl").write_text('{"text": "a", "label": 1}\n{"text": "b"}\n')
    expect_error(tmp_path / "gap.jsonl", "gap.jsonl line 2: no ['label'] key(s)")
