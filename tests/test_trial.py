"""Trials on real data: determinism, failure records, every model format, own data, the CLI."""

from __future__ import annotations

import math

import pytest

from peftspace import Design
from peftspace.tasks import load_custom, load_task
from peftspace.trial import Schedule, run_trial

TINY = Schedule(max_steps=12, batch_size=8, max_length=48, max_train_examples=160, max_eval_examples=48,
                learning_rate=2e-3, log_every=1)


@pytest.fixture(scope="module")
def sst2(data_dir):
    return load_task("sst2", data_dir, seed=0)


def test_same_seed_same_record_other_seed_differs(sst2):
    first = run_trial("lora", "minilm", sst2, TINY, seed=0)
    again = run_trial("lora", "minilm", sst2, TINY, seed=0)
    other = run_trial("lora", "minilm", sst2, TINY, seed=1)
    assert first["status"] == again["status"] == other["status"] == "ok"
    assert first["losses"] == again["losses"] and first["metrics"] == again["metrics"]
    assert first["losses"] != other["losses"]
    assert first["trainable"]["design"] == first["trainable"]["planned"]
    assert first["trainable"]["head"] == 384 * 2 + 2  # the classifier, reported apart from the budget
    assert set(first["splits"]) == {"train", "validation", "test"} and first["splits"]["test"] == 872
    for key in ("design", "seed", "task", "metrics", "wall_time_s", "versions", "schedule"):
        assert key in first


def test_a_diverging_trial_is_recorded_as_failed(sst2):
    record = run_trial("lora", "minilm", sst2, Schedule(**{**TINY.__dict__, "learning_rate": math.inf}), seed=0)
    assert record["status"] == "failed"
    assert "loss became nan" in record["reason"]


@pytest.mark.parametrize("task, metric", [("rte", "accuracy"), ("wmt16_en_ro", "bleu")])
def test_tiny_t5_text_to_text(tiny_t5, data_dir, task, metric):
    schedule = Schedule(max_steps=30, batch_size=8, max_length=64, max_target_length=24, max_train_examples=64,
                        max_eval_examples=16, learning_rate=1e-2, log_every=1)
    record = run_trial(Design(strategies=("AL",), budget_fraction=0.05), tiny_t5, task, schedule, seed=0, data_dir=data_dir)
    assert record["status"] == "ok", record["reason"]
    assert record["format"] == "text-to-text"
    losses = [loss for _, loss in record["losses"]]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert metric in record["metrics"]["test"] and math.isfinite(record["metrics"]["test"][metric])


@pytest.mark.parametrize("design", ["lora", "prefix"])
def test_smollm2_label_scoring_on_sst2(sst2, design):
    schedule = Schedule(max_steps=6, batch_size=4, max_length=48, max_train_examples=48, max_eval_examples=16,
                        learning_rate=1e-3, log_every=1)
    record = run_trial(design, "smollm2", sst2, schedule, seed=0)
    assert record["status"] == "ok", record["reason"]
    assert record["format"] == "label-scoring" and record["trainable"]["head"] == 0
    assert 0 <= record["metrics"]["test"]["accuracy"] <= 100


def test_own_csv_trains(tmp_path, data_dir):
    rows = (data_dir / "glue" / "SST-2" / "train.tsv").read_text().splitlines()[1:121]
    path = tmp_path / "mine.csv"
    path.write_text("text,sentiment\n" + "\n".join('"{}",{}'.format(r.split("\t")[0].replace('"', "'"), "pos" if r.split("\t")[1] == "1" else "neg")
                                                  for r in rows) + "\n")
    data = load_custom(path, text_columns=["text"], label_column="sentiment")
    record = run_trial("lora", "minilm", data, TINY, seed=0)
    assert record["status"] == "ok" and "accuracy" in record["metrics"]["test"]
