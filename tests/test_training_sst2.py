"""A few real training steps on SST-2 with pretrained MiniLM, for every strategy and a mix.

Two fixed batches of real training sentences alternate, so the first two and the last two steps
see the same data and their mean losses compare without sampling noise. Dropout stays on (it is
training); the torch seed fixes it. The classifier head trains too, as a separate parameter group,
so each design must also end below a run that trains the head alone.
"""

from __future__ import annotations

import csv
import random

import pytest
import torch

import peftspace
from peftspace import Design
from peftspace.api import design_parameters

pytestmark = pytest.mark.slow

STEPS, BATCH_SIZE, MAX_LENGTH = 10, 16, 64
# learning rate per design: prefixes need a larger one to move in ten steps
CASES = {
    "adapter": ("adapter", 5e-3),
    "prefix": ("prefix", 3e-2),
    "bitfit": ("bitfit", 5e-3),
    "lora": ("lora", 5e-3),
    "mixed": (Design(grouping="spindle", strategies=("AL", "AP", "APB", "PBL")), 5e-3),
}
MIN_DROP = 0.02  # observed drops are 0.08 (bitfit) to 0.26 (prefix, mixed)


@pytest.fixture(scope="module")
def batches(minilm_path, data_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    with open(data_dir / "glue" / "SST-2" / "train.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    chosen = random.Random(0).sample(rows, 2 * BATCH_SIZE)
    found = []
    for start in range(0, len(chosen), BATCH_SIZE):
        part = chosen[start:start + BATCH_SIZE]
        encoded = dict(tokenizer([r["sentence"] for r in part], padding=True, truncation=True, max_length=MAX_LENGTH,
                                 return_tensors="pt"))
        encoded["labels"] = torch.tensor([int(r["label"]) for r in part])
        found.append(encoded)
    return found


def _train(model, batches, groups, lr) -> list[float]:
    optimizer = torch.optim.AdamW([{"params": g} for g in groups], lr=lr)
    model.train()
    losses = []
    for step in range(STEPS):
        loss = model(**batches[step % len(batches)]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name", CASES)
def test_a_few_steps_lower_the_loss_and_leave_the_backbone_alone(minilm_path, batches, name):
    from transformers import AutoModelForSequenceClassification

    design, lr = CASES[name]
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)
    peftspace.apply(model, design)
    model.classifier.requires_grad_(True)
    head = dict(model.classifier.named_parameters(prefix="classifier"))
    strategy = design_parameters(model)
    assert strategy and set(peftspace.trainable_parameters(model)) == set(strategy) | set(head)
    frozen = {key: p.detach().clone() for key, p in model.named_parameters() if not p.requires_grad}
    frozen.update({f"buffer:{key}": b.detach().clone() for key, b in model.named_buffers()})
    initial = {key: p.detach().clone() for key, p in strategy.items()}

    losses = _train(model, batches, [list(strategy.values()), list(head.values())], lr)
    first, last = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
    assert last < first - MIN_DROP, f"{name}: loss {first:.3f} -> {last:.3f} over {[round(x, 3) for x in losses]}"
    # the head alone also lowers the loss on two repeated batches: the strategy must beat that run (same
    # initial model, head initialization, learning rate and dropout seed, strategy parameters frozen)
    torch.manual_seed(0)
    baseline = AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)
    peftspace.apply(baseline, design)
    for parameter in baseline.parameters():
        parameter.requires_grad_(False)
    baseline.classifier.requires_grad_(True)
    head_only = _train(baseline, batches, [list(baseline.classifier.parameters())], lr)
    alone = sum(head_only[-2:]) / 2
    assert last < alone - MIN_DROP, f"{name}: loss {last:.3f} with the strategy, {alone:.3f} with the head alone"
    state = dict(model.named_parameters()) | {f"buffer:{key}": b for key, b in model.named_buffers()}
    changed = sorted(key for key, value in frozen.items() if not torch.equal(state[key], value))
    assert not changed, f"{name}: frozen backbone tensors changed: {changed[:5]}"
    still = sorted(key for key, value in initial.items() if torch.equal(strategy[key], value))
    assert not still, f"{name}: strategy parameters never trained: {still[:5]}"
