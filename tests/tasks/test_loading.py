"""Loading the real benchmark files in ../shared/data: row counts from its README, splits, notes, errors."""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types
from collections import Counter

import pytest

from peftspace.design.errors import PeftspaceError
from peftspace.tasks import TASKS, Example, TaskError, format_prompt, load_task, references, task_spec
from peftspace.tasks.convert import flat_example
from peftspace.tasks.readers import read_jsonl, read_lines, read_tsv

# (task, train rows, test rows) from the table in shared/data/README.md; the test split is dev/val
README_ROWS = [
    ("cola", 8551, 1043), ("sst2", 67349, 872), ("mrpc", 3668, 408), ("stsb", 5749, 1500), ("rte", 2490, 277),
    ("wnli", 635, 71), ("mnli", 48, 48), ("qqp", 32, 32), ("cb", 250, 56), ("copa", 400, 100),
    ("superglue_rte", 2490, 277), ("wic", 5428, 638), ("wsc", 554, 104), ("wmt16_en_ro", 1999, 1999),
]


@pytest.fixture(scope="module")
def loaded(data_dir):
    cache = {}

    def load(name, **kwargs):
        key = (name, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = load_task(name, data_dir, **kwargs)
        return cache[key]
    return load


@pytest.mark.parametrize("name,train_rows,test_rows", README_ROWS)
def test_row_counts_match_the_readme(loaded, name, train_rows, test_rows):
    data = loaded(name)
    assert len(data.train) + len(data.validation) == train_rows
    assert len(data.test) == test_rows
    assert data.sizes == {"train": len(data.train), "validation": len(data.validation), "test": len(data.test)}


def test_xsum_sample_is_carved_into_three_fixed_size_splits(loaded):
    data = loaded("xsum")
    assert data.sizes == {"train": 810, "validation": 90, "test": 100}
    assert any("SAMPLE ONLY" in n and "1000" in n for n in data.notes)
    assert all(isinstance(e.label, str) and e.label for e in data.test)


def test_files_that_cannot_form_a_task_still_have_their_readme_row_counts(data_dir):
    # QNLI (dev only), BoolQ (val only) and the MRPC originals are read and parsed all the same
    spec = task_spec("qnli")
    columns, rows = read_tsv(data_dir / "glue/QNLI/dev.tsv")
    assert len(rows) == 5463
    assert {flat_example(spec, dict(zip(columns, r)), "qnli").label for r in rows} == {0, 1}
    boolq = read_jsonl(data_dir / "superglue/BoolQ/val.jsonl")
    assert len(boolq) == 3270
    assert Counter(flat_example(task_spec("boolq"), r, "boolq").label for r in boolq) == {1: 2033, 0: 1237}
    assert len(read_tsv(data_dir / "glue/MRPC/original/msr_paraphrase_train.txt")[1]) == 4076
    assert len(read_tsv(data_dir / "glue/MRPC/original/dev_ids.tsv", header=False)[1]) == 408
    for name in ("newsdev2016.en", "newsdev2016.ro", "newstest2016.en", "newstest2016.ro"):
        assert len(read_lines(data_dir / "wmt16_en_ro" / name)) == 1999


def test_first_rows_match_the_readme_spot_checks(loaded):
    sst2 = loaded("sst2", validation_size=0)
    assert sst2.train[0] == Example(("hide new secretions from the parental units ",), 0)
    assert sst2.test[0].texts == ("it 's a charming and often affecting journey . ",)
    assert loaded("cola", validation_size=0).train[0].texts[0].startswith("Our friends won't buy this analysis")
    assert loaded("wmt16_en_ro").test[0].texts == ("UN Chief Says There Is No Military Solution in Syria",)
    mrpc = loaded("mrpc", validation_size=0)  # the header starts with a byte-order mark
    assert mrpc.train[0].label == 1
    assert mrpc.train[0].texts[0].startswith('Amrozi accused his brother , whom he called " the witness "')


def test_labels_follow_the_hub_order(loaded):
    assert Counter(e.label for e in loaded("sst2").test) == {1: 444, 0: 428}
    assert loaded("rte").test[0].label == 1  # not_entailment
    assert Counter(e.label for e in loaded("cb").test) == {1: 28, 0: 23, 2: 5}  # contradiction, entailment, neutral
    assert Counter(e.label for e in loaded("wic").test) == {0: 319, 1: 319}
    assert Counter(e.label for e in loaded("wsc").test) == {0: 66, 1: 38}
    assert loaded("stsb").test[0].label == 5.0
    copa = loaded("copa").test[0]
    assert copa.texts == ("The man turned on the faucet.", "effect",
                          "The toilet filled with water.", "Water flowed from the spout.")
    assert copa.label == 1


def test_dev_is_the_test_split_and_validation_comes_from_train(loaded, data_dir):
    data = loaded("rte")
    columns, rows = read_tsv(data_dir / "glue/RTE/dev.tsv")
    assert [e.texts for e in data.test] == [(r[1], r[2]) for r in rows]
    assert any("dev split serves as the test split" in n for n in data.notes)
    assert any("carved from the 2490 training examples" in n and "seed=0" in n for n in data.notes)
    assert any("val.jsonl serves as the test split" in n for n in loaded("cb").notes)


def test_splits_are_deterministic_disjoint_and_seeded(loaded, data_dir):
    a, b, c = loaded("mrpc", seed=0), load_task("mrpc", data_dir, seed=0), loaded("mrpc", seed=1)
    assert (a.train, a.validation, a.test) == (b.train, b.validation, b.test)
    whole = Counter(loaded("mrpc", validation_size=0).train)
    for data in (a, c):
        assert Counter(data.train) + Counter(data.validation) == whole  # a partition of train
        assert not set(data.validation) & set(data.train)
    assert a.validation != c.validation
    assert a.test == c.test  # the test split never depends on the seed


def test_validation_size_is_a_fraction_or_a_count_capped_by_max_validation(loaded):
    assert len(loaded("sst2").validation) == 1000  # 10% of 67,349 capped at 1000
    assert len(loaded("sst2", max_validation=10_000).validation) == 6735
    assert len(loaded("rte", validation_size=100).validation) == 100
    assert len(loaded("rte", validation_size=0.2).validation) == 498
    assert len(loaded("mnli").validation) == 5


@pytest.mark.parametrize("size,message", [(-1, "must not be negative"), (1.5, "fraction in [0, 1)"),
                                          (48, "leaves no training examples"), ("10", "fraction in [0, 1)")])
def test_bad_validation_sizes_are_task_errors(data_dir, size, message):
    with pytest.raises(TaskError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_task("mnli", data_dir, validation_size=size)


def test_sample_tasks_and_partial_benchmarks_say_so(loaded):
    for name, folder in (("mnli", "MNLI"), ("qqp", "QQP")):
        data = loaded(name)
        assert data.source.endswith(f"glue/{folder}/sample_k16_seed42")
        assert any(n.startswith("SAMPLE ONLY") and "not the full split" in n for n in data.notes)
    assert any("hub only" in n and "newsdev2016" in n for n in loaded("wmt16_en_ro").notes)


@pytest.mark.parametrize("name,missing", [("qnli", "glue/QNLI/train.tsv"), ("boolq", "superglue/BoolQ/train.jsonl")])
def test_a_locally_missing_split_names_the_file(data_dir, name, missing):
    with pytest.raises(TaskError, match="missing file") as info:
        load_task(name, data_dir)
    assert missing in str(info.value)


@pytest.mark.parametrize("name,missing", [("multirc", "superglue/MultiRC/train.jsonl"), ("record", "superglue/ReCoRD/val.jsonl"),
                                          ("sst2", "glue/SST-2/train.tsv")])
def test_offline_without_files_explains_how_to_supply_them(data_dir, tmp_path, name, missing):
    for where in ((None, tmp_path) if name == "sst2" else (data_dir, tmp_path)):
        with pytest.raises(TaskError) as info:
            load_task(name, where)
        message = str(info.value)
        assert missing in message and "--data-dir DIR" in message and "pip install datasets" in message
        assert "superglue/<Task>/{train,val}.jsonl" in message


def test_hf_datasets_offline_is_named_when_datasets_is_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", _fake_datasets({}))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(TaskError, match="HF_DATASETS_OFFLINE=1 is set"):
        load_task("cola")


def test_a_missing_data_directory_is_a_task_error(tmp_path):
    with pytest.raises(TaskError, match="does not exist"):
        load_task("sst2", tmp_path / "nope")


def test_a_ragged_tsv_row_names_its_line(tmp_path):
    folder = tmp_path / "glue" / "RTE"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\n")
    (folder / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n")
    with pytest.raises(TaskError, match=r"train.tsv line 3 has 3 tab-separated columns; expected 4"):
        load_task("rte", tmp_path)
    (folder / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n1\ta\tb\tentailment\n")
    with pytest.raises(TaskError, match=r"line 2: label 'maybe' is not one of the rte classes"):
        load_task("rte", tmp_path)


def test_superglue_multirc_and_record_in_their_nested_local_format(tmp_path):
    multirc = {"idx": 7, "passage": {"text": "P", "questions": [
        {"idx": 0, "question": "Q0", "answers": [{"idx": 0, "text": "a", "label": 1}, {"idx": 1, "text": "b", "label": 0}]},
        {"idx": 1, "question": "Q1", "answers": [{"idx": 2, "text": "c", "label": 1}]}]}}
    text = "Paris is in France. The Eiffel Tower is in Paris."
    record = {"idx": 3, "passage": {"text": text, "entities": [{"start": 0, "end": 4}, {"start": 12, "end": 17},
                                                                {"start": 24, "end": 35}]},
              "qas": [{"idx": 30, "query": "The @placeholder is tall.",
                       "answers": [{"start": 24, "end": 35, "text": "Eiffel Tower"}] * 2}]}
    for folder, record_ in (("MultiRC", multirc), ("ReCoRD", record)):
        (tmp_path / "superglue" / folder).mkdir(parents=True)
        for split in ("train", "val"):
            lines = [json.dumps(record_ | {"idx": i}) for i in range(10)]
            (tmp_path / "superglue" / folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    data = load_task("multirc", tmp_path)
    assert data.test[:3] == [Example(("P", "Q0", "a"), 1, "0-0"), Example(("P", "Q0", "b"), 0, "0-0"),
                             Example(("P", "Q1", "c"), 1, "0-1")]
    # the validation split is carved by question: 10% of 20 questions, each with all of its answer options
    assert len({e.group for e in data.validation}) == 2 and not {e.group for e in data.validation} & {e.group for e in data.train}
    assert len(data.train) + len(data.validation) == 30 and any("groups of the 20" in n for n in data.notes)
    data = load_task("record", tmp_path, validation_size=0)
    assert data.test[0] == Example((text, "The @placeholder is tall.", "Paris, France, Eiffel Tower"), "Eiffel Tower", "0-30",
                                   ("Eiffel Tower",))
    assert references(data.test[:1]) == [["Eiffel Tower"]]


def _fake_datasets(splits_by_config: dict) -> types.ModuleType:
    module = types.ModuleType("datasets")
    module.__spec__ = importlib.machinery.ModuleSpec("datasets", None)
    module.calls = []

    def load_dataset(path, name=None):
        module.calls.append((path, name))
        return splits_by_config[(path, name)]
    module.load_dataset = load_dataset
    return module


def test_hub_rows_are_converted_when_online(monkeypatch):
    # the hub path with a stand-in for `datasets`: same fields and label order as the real hub datasets
    sst2 = {"train": [{"sentence": f"s{i}", "label": i % 2, "idx": i} for i in range(20)],
            "validation": [{"sentence": "v", "label": 1, "idx": 0}], "test": [{"sentence": "t", "label": -1, "idx": 0}]}
    mnli = {"train": [{"premise": "p", "hypothesis": "h", "label": 2}] * 4,
            "validation_matched": [{"premise": "p", "hypothesis": "h", "label": 1}]}
    multirc = {"train": [{"paragraph": "P", "question": "Q", "answer": "A", "idx": {"paragraph": 1, "question": 2, "answer": 3},
                          "label": 1}] * 3}
    multirc["validation"] = multirc["train"]
    record = {"train": [{"passage": "P", "query": "Q @placeholder", "entities": ["X", "Y", "X"], "entity_spans": {},
                         "answers": ["X", "X"], "idx": {"passage": 0, "query": 5}}] * 3}
    record["validation"] = record["train"]
    wmt = {split: [{"translation": {"en": "hello", "ro": "salut"}}] * 3 for split in ("train", "validation", "test")}
    xsum = {split: [{"document": "d", "summary": "s", "id": "1"}] * 3 for split in ("train", "validation", "test")}
    fake = _fake_datasets({("nyu-mll/glue", "sst2"): sst2, ("nyu-mll/glue", "mnli"): mnli, ("aps/super_glue", "multirc"): multirc,
                           ("aps/super_glue", "record"): record, ("wmt/wmt16", "ro-en"): wmt, ("EdinburghNLP/xsum", None): xsum})
    monkeypatch.setitem(sys.modules, "datasets", fake)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)

    data = load_task("SST-2", seed=3)
    assert data.source == "hub:nyu-mll/glue/sst2" and data.sizes == {"train": 18, "validation": 2, "test": 1}
    assert data.test == [Example(("v",), 1)]
    assert load_task("mnli").test == [Example(("p", "h"), 1)]
    assert load_task("multirc").test[0] == Example(("P", "Q", "A"), 1, "1-2")
    assert load_task("record").test[0] == Example(("P", "Q @placeholder", "X, Y"), "X", "0-5", ("X",))
    wmt_data = load_task("wmt16")
    assert wmt_data.sizes == {"train": 3, "validation": 3, "test": 3} and wmt_data.test[0] == Example(("hello",), "salut")
    assert load_task("xsum").test[0] == Example(("d",), "s")
    assert fake.calls[0] == ("nyu-mll/glue", "sst2")


def test_every_spec_is_consistent():
    assert len(TASKS) == 19
    for spec in TASKS.values():
        assert spec.kind in ("classification", "regression", "generation")
        assert len(spec.label_words) == len(spec.labels)
        assert (len(spec.labels) >= 2) == (spec.kind == "classification")
        assert format_prompt(spec, Example(tuple(f"<{f}>" for f in spec.text_fields), 0)).count("<") == len(spec.text_fields)
        assert spec.hub[0]


def test_prompts_fill_each_field_once():
    spec = task_spec("rte")
    assert format_prompt(spec, Example(("a {sentence2} b", "c"), 0)) == "rte sentence1: a {sentence2} b sentence2: c"


@pytest.mark.parametrize("alias,name", [
    ("SST-2", "sst2"), ("sst-2", "sst2"), ("glue/sst2", "sst2"), ("STS-B", "stsb"), ("superglue/rte", "superglue_rte"),
    ("SuperGLUE-RTE", "superglue_rte"), ("glue/RTE", "rte"), ("aps/super_glue/boolq", "boolq"), ("wmt16/ro-en", "wmt16_en_ro"),
    ("WMT16_en_ro", "wmt16_en_ro"), ("XSum", "xsum"), ("CoLA", "cola"), ("MNLI", "mnli"),
])
def test_task_names_accept_aliases(alias, name):
    assert task_spec(alias).name == name


@pytest.mark.parametrize("bad", ["sst3", "glue/boolq", "imdb/sst2", ""])
def test_unknown_tasks_list_the_known_names(bad):
    with pytest.raises(TaskError, match="known tasks: cola, sst2") as info:
        task_spec(bad)
    assert isinstance(info.value, PeftspaceError) and "wmt16_en_ro" in str(info.value)
