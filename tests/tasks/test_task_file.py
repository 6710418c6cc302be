"""Task files: parsing, one clear error per malformed file, relocation by hash, and a fuzz that only ever sees TaskError."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peftspace.tasks import TaskError, TaskFile, load_task, read_task_file
from peftspace.tasks.task_file import file_sha256, resolve_tasks


def write_rows(path, header, rows):
    path.write_text("\n".join([",".join(header), *(",".join(map(str, r)) for r in rows)]) + "\n")


@pytest.fixture
def tweets(tmp_path):
    """A 3-class CSV with its own test file, and the task file that declares them."""
    folder = tmp_path / "tweets"
    folder.mkdir()
    moods = ["negative", "neutral", "positive"]
    write_rows(folder / "train.csv", ["text", "label"], [(f"tweet number {i}", moods[i % 3]) for i in range(30)])
    write_rows(folder / "test.csv", ["text", "label"], [(f"held out {i}", moods[i % 3]) for i in range(9)])
    task = folder / "tweets.yaml"
    task.write_text("train: train.csv\ntest: test.csv\ntext_columns: text\nlabel_column: label\n")
    return task


def test_a_task_file_loads_its_files_relative_to_itself(tweets):
    declared = read_task_file(tweets)
    assert (declared.name, declared.kind, declared.text_columns, declared.label_column) == \
        ("tweets", "classification", ("text",), "label")
    assert declared.sha256 == {"train": file_sha256(tweets.parent / "train.csv"), "test": file_sha256(tweets.parent / "test.csv")}
    data = load_task(str(tweets), seed=3)  # every command's task loader takes a task file
    assert data.spec.name == "tweets" and data.spec.labels == ("negative", "neutral", "positive")
    assert [e.texts[0] for e in data.test] == [f"held out {i}" for i in range(9)]  # the test file, in order
    assert len(data.train) + len(data.validation) == 30 and data.validation  # validation carved from train
    assert sorted(e.texts[0] for e in data.train + data.validation) == sorted(f"tweet number {i}" for i in range(30))
    assert data.spec.metrics == ("accuracy", "f1_macro")


def test_validation_file_name_metrics_and_json(tmp_path):
    write_rows(tmp_path / "a.csv", ["q", "p", "score"], [(f"q{i}", f"p{i}", i / 10) for i in range(12)])
    write_rows(tmp_path / "b.csv", ["q", "p", "score"], [(f"v{i}", f"w{i}", i / 5) for i in range(4)])
    (tmp_path / "t.json").write_text(json.dumps({"name": "pairs", "kind": "regression", "train": "a.csv", "validation": "b.csv",
                                                 "text_columns": ["q", "p"], "label_column": "score", "metrics": ["spearman"]}))
    data = load_task(str(tmp_path / "t.json"))
    assert data.spec.name == "pairs" and data.spec.metrics == ("spearman",) and data.spec.kind == "regression"
    assert [e.label for e in data.validation] == [0.0, 0.2, 0.4, 0.6]
    assert len(data.train) + len(data.test) == 12  # test carved from train, validation given


@pytest.mark.parametrize("text, message", [
    ("text_columns: text\nlabel_column: label\n", "missing key 'train'"),
    ("train: train.csv\nlabel_column: label\n", "missing key 'text_columns'"),
    ("train: train.csv\ntext_column: text\nlabel_column: label\n", "unknown key 'text_column' (did you mean 'text_columns'?)"),
    ("train: nowhere.csv\ntext_columns: text\nlabel_column: label\n", "train file 'nowhere.csv' not found"),
    ("train: train.txt\ntext_columns: text\nlabel_column: label\n", "a data file must be .csv, .tsv or .jsonl"),
    ("train: train.csv\ntext_columns: text\nlabel_column: label\nkind: ranking\n", "kind 'ranking' must be one of"),
    ("train: train.csv\ntext_columns: text\nlabel_column: label\nmetrics: [bleu]\n", "metrics ['bleu']: unknown ['bleu']"),
    ("train: train.csv\ntext_columns: [a, b, c]\nlabel_column: label\n", "must be one column name or a list of one or two"),
    ("train: train.csv\ntext_columns: text\nlabel_column: text\n", "is also a text column"),
    ("- train.csv\n", "holds a mapping"),
    ("train: [unclosed\n", "is not valid YAML/JSON"),
    ("train: train.csv\ntext_columns: text\nlabel_column: label\nvalidation_size: 0\n", "validation_size 0 must be"),
])
def test_a_malformed_task_file_is_one_error_naming_the_key(tweets, text, message):
    tweets.write_text(text)
    with pytest.raises(TaskError) as caught:
        read_task_file(tweets)
    assert message in str(caught.value) and str(tweets) in str(caught.value)


def test_problems_in_the_data_name_the_file_and_row(tweets):
    folder = tweets.parent
    tweets.write_text("train: train.csv\ntext_columns: body\nlabel_column: label\n")
    with pytest.raises(TaskError, match=r"missing column\(s\) \['body'\]; columns found: \['text', 'label'\]"):
        read_task_file(tweets).load()
    write_rows(folder / "train.csv", ["text", "label"], [("a", 1), ("b", "two"), ("c", 3)])
    tweets.write_text("train: train.csv\ntext_columns: text\nlabel_column: label\n")
    with pytest.raises(TaskError, match="mixes label types: number '1' .*row 1.*text 'two' .*row 2"):
        read_task_file(tweets).load()
    with pytest.raises(TaskError, match="no task file|not found"):
        read_task_file(folder / "missing.yaml")


def test_resolve_tasks_checks_the_data_before_anything_is_queued(tweets):
    tweets.write_text("train: train.csv\ntext_columns: body\nlabel_column: label\n")
    with pytest.raises(TaskError, match="missing column"):
        resolve_tasks(f"sst2,{tweets}")
    tweets.write_text("name: sst2\ntrain: train.csv\ntext_columns: text\nlabel_column: label\n")
    with pytest.raises(TaskError, match=r"more than one task is named \['sst2'\]"):
        resolve_tasks(["sst2", str(tweets)])
    tweets.write_text("train: train.csv\ntext_columns: text\nlabel_column: label\n")
    resolved = resolve_tasks(f" SST-2 , {tweets}")
    assert resolved[0] == "sst2" and isinstance(resolved[1], TaskFile)


def test_a_stored_task_file_is_found_under_another_data_dir_and_refused_when_its_data_differs(tweets, tmp_path):
    stored = json.loads(json.dumps(read_task_file(tweets).stored()))  # as a store keeps it
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("train.csv", "test.csv"):
        shutil.copy(tweets.parent / name, elsewhere / name)
    moved = TaskFile.from_stored(stored, elsewhere)
    assert moved.paths == {"train": str(elsewhere / "train.csv"), "test": str(elsewhere / "test.csv")}
    assert [e.texts for e in moved.load(1).train] == [e.texts for e in read_task_file(tweets).load(1).train]
    with (elsewhere / "test.csv").open("a") as f:
        f.write("one more,neutral\n")
    with pytest.raises(TaskError, match=r"test.csv differs from the test file the sweep was created with"):
        TaskFile.from_stored(stored, elsewhere)
    with pytest.raises(TaskError, match="its train file 'train.csv' was not found; looked in"):
        TaskFile.from_stored(stored, tmp_path / "empty")
    # no data dir: where the sweep was made
    here = TaskFile.from_stored(stored, None, read_task_file(tweets).locations())
    assert here.paths["train"] == str((tweets.parent / "train.csv").resolve())


KEYS = ["name", "kind", "train", "validation", "test", "text_columns", "label_column", "metrics", "validation_size", "extra"]
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 40), st.floats(allow_nan=True), st.text(max_size=12),
                   st.sampled_from(["train.csv", "test.csv", "nowhere.csv", "text", "label", "classification", "regression",
                                    "accuracy", "../tweets/train.csv"]),
                   st.lists(st.sampled_from(["text", "label", "x", "accuracy", "pearson"]), max_size=3))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=8), VALUES, st.text(max_size=40)),
       as_json=st.booleans())
def test_fuzzed_task_files_raise_nothing_but_task_error(tweets, content, as_json):
    path = tweets.with_suffix(".json" if as_json else ".yaml")
    try:
        path.write_text(json.dumps(content) if as_json else yaml.safe_dump(content) if not isinstance(content, str) else content)
    except (ValueError, TypeError):  # not expressible in that format
        return
    try:
        read_task_file(path).load(seed=0)
    except TaskError:
        pass
