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
    correct = record["metrics"]["test"]["accuracy"] * 16 / 100  # max_eval_examples=16 scored
    assert correct == pytest.approx(round(correct)) and 0 <= round(correct) <= 16  # a count of the 16 scored examples


def test_own_csv_trains(tmp_path, data_dir):
    rows = (data_dir / "glue" / "SST-2" / "train.tsv").read_text().splitlines()[1:121]
    path = tmp_path / "mine.csv"
    path.write_text("text,sentiment\n" + "\n".join('"{}",{}'.format(r.split("\t")[0].replace('"', "'"), "pos" if r.split("\t")[1] == "1" else "neg")
                                                  for r in rows) + "\n")
    data = load_custom(path, text_columns=["text"], label_column="sentiment")
    record = run_trial("lora", "minilm", data, TINY, seed=0)
    assert record["status"] == "ok" and "accuracy" in record["metrics"]["test"]


def test_each_strategy_trains_at_its_own_learning_rate(tiny_bert):
    import torch
    from transformers import BertForSequenceClassification

    import peftspace
    from peftspace.strategies.prefix import Prefix
    from peftspace.trial import parameter_groups

    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(tiny_bert)
    peftspace.apply(model, Design(strategies=("APBL",), budget_fraction=0.05))
    head = list(model.classifier.parameters())
    for p in head:
        p.requires_grad_(True)
    design = [p for p in model.parameters() if p.requires_grad and all(p is not h for h in head)]
    schedule = Schedule(learning_rate=1e-3, head_learning_rate=5e-4, weight_decay=0.0, lr_multipliers={"P": 10, "B": 3})
    groups = parameter_groups(model, design, head, schedule)
    assert {g["strategy"]: g["lr"] for g in groups} == pytest.approx({"A": 1e-3, "P": 1e-2, "B": 3e-3, "L": 1e-3, "head": 5e-4})
    prefixes = {id(p) for m in model.modules() if isinstance(m, Prefix) for p in m.parameters()}
    assert {id(p) for g in groups if g["strategy"] == "P" for p in g["params"]} == prefixes and prefixes
    assert sum(len(g["params"]) for g in groups) == len(design) + len(head)

    model.train()
    generator = torch.Generator().manual_seed(1)
    inputs = {"input_ids": torch.randint(1000, 2000, (4, 12), generator=generator), "labels": torch.tensor([0, 1, 1, 0])}
    (1e4 * model(**inputs).loss).backward()  # AdamW's step ignores the loss's scale but for eps: then |update| = lr
    before = [(g["lr"], p, p.detach().clone(), p.grad.detach().clone()) for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups, weight_decay=schedule.weight_decay, eps=1e-8)
    optimizer.step()
    moved = {}
    for lr, p, start, grad in before:
        # AdamW's first step, bias-corrected: m = g, v = g^2, so the update is lr * g / (|g| + eps)
        torch.testing.assert_close(p.detach(), start - lr * grad / (grad.abs() + 1e-8), rtol=1e-5, atol=1e-7)
        clear = grad.abs() > 1e-5  # there |update| = lr to 1e-3
        if clear.any():
            moved.setdefault(lr, []).append((start - p.detach())[clear].abs().max().item())
    assert all(step == pytest.approx(lr, rel=1e-3) for lr, steps in moved.items() for step in steps)
    assert sorted(moved) == pytest.approx([5e-4, 1e-3, 3e-3, 1e-2])  # every group moved, each by its own rate


def test_a_trial_gives_each_strategy_its_learning_rate_and_records_them(tiny_bert, sst2, monkeypatch):
    import torch

    made = []

    class Recording(torch.optim.AdamW):
        def __init__(self, groups, **kwargs):
            super().__init__(groups, **kwargs)
            made.append(self)

    monkeypatch.setattr(torch.optim, "AdamW", Recording)
    schedule = Schedule(**{**TINY.__dict__, "max_steps": 2, "lr_multipliers": {"P": 10}})
    record = run_trial(Design(strategies=("PL",), budget_fraction=0.05), tiny_bert, sst2, schedule, seed=0)
    assert record["status"] == "ok", record["reason"]
    assert record["schedule"]["lr_multipliers"] == {"A": 1.0, "P": 10.0, "B": 1.0, "L": 1.0}
    assert Schedule.from_stored(record["schedule"]) == schedule
    (optimizer,) = made
    assert {g["strategy"]: g["initial_lr"] for g in optimizer.param_groups} == pytest.approx({"P": 2e-2, "L": 2e-3, "head": 2e-3})


def test_the_midpoint_score_leaves_training_as_it_was(tiny_bert, sst2, one_thread):
    from peftspace.tasks import main_score

    design = Design(strategies=("APBL",), budget_fraction=0.05)
    middle = Schedule(**{**TINY.__dict__, "mid_validation": True})
    plain, scored = run_trial(design, tiny_bert, sst2, TINY, seed=0), run_trial(design, tiny_bert, sst2, middle, seed=0)
    assert plain["status"] == scored["status"] == "ok"
    assert scored["losses"] == plain["losses"] and scored["metrics"] == plain["metrics"]  # dropout on: train mode restored
    assert plain["mid_validation_score"] is None and plain["mid_validation_metrics"] is None
    assert set(scored["mid_validation_metrics"]) == set(scored["metrics"]["validation"]) == {"accuracy"}
    assert scored["mid_validation_score"] == main_score(sst2.spec, scored["mid_validation_metrics"])


def test_packing_refuses_a_midpoint_score(sst2):
    from peftspace.packing import PackingError, run_packed

    with pytest.raises(PackingError, match="mid_validation=False"):
        run_packed(["lora", "bitfit"], "minilm", sst2, Schedule(**{**TINY.__dict__, "mid_validation": True}))
