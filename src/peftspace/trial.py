"""One trial: train a design on a task with a low-compute schedule, score it, describe it.

The loop is deliberately plain (AdamW, linear warmup then linear decay, gradient clipping) so it
reads on one screen. Everything random comes from the trial's seed inside a forked RNG state, so
a trial never disturbs the caller's global state and the same seed gives the same record on CPU.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from peftspace.design import Design, PeftspaceError


@dataclass(frozen=True)
class Schedule:
    """How long and how a trial trains: the paper's low-compute regime, made explicit."""

    max_steps: int | None = 300  # None: train for ``epochs``
    epochs: float = 1.0
    batch_size: int = 32
    eval_batch_size: int = 64
    max_length: int = 128
    max_target_length: int = 64
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    learning_rate: float = 1e-3
    head_learning_rate: float | None = None  # defaults to learning_rate
    warmup_ratio: float = 0.06
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    log_every: int = 10
    format: str | None = None  # head | text-to-text | label-scoring; default from the model family

    @classmethod
    def from_dict(cls, data: dict) -> "Schedule":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PeftspaceError(f"schedule has unknown key(s) {unknown}; known keys are {sorted(known)}")
        return cls(**data)


class TrialFailed(PeftspaceError):
    """Training diverged or broke; the record keeps the reason."""


@dataclass
class TrainedTrial:
    """A trial's record, with the trained model and its task format for saving or re-scoring."""

    record: dict
    model: object = None
    format: object = None


def run_trial(design: Design | str, backbone: str, task, schedule: Schedule = Schedule(), seed: int = 0,
              data_dir=None, progress=None) -> dict:
    """Train ``design`` on ``backbone`` for ``task`` and return a self-describing record.

    ``task`` is a task name or a ``TaskData``; ``progress(step, total, loss)`` is called as it goes.
    A loss that becomes NaN/inf ends the trial with ``status: failed`` and the reason.
    """
    return train_trial(design, backbone, task, schedule, seed, data_dir, progress).record


def train_trial(design: Design | str, backbone: str, task, schedule: Schedule = Schedule(), seed: int = 0,
                data_dir=None, progress=None) -> TrainedTrial:
    """``run_trial`` that also hands back the trained model (``None`` if the trial failed)."""
    from peftspace.api import _as_design
    from peftspace.tasks import TaskData, load_task

    design = _as_design(design)
    started = time.perf_counter()
    data = task if isinstance(task, TaskData) else load_task(task, data_dir, seed=seed)
    record = {"status": "running", "reason": None, "task": data.spec.name, "benchmark": data.spec.benchmark,
              "model": backbone, "seed": seed, "design": design.to_dict(), "schedule": asdict(schedule),
              "splits": data.sizes, "data_source": data.source, "data_notes": list(data.notes), "versions": versions()}
    model = fmt = None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model, fmt = _train_and_score(design, backbone, data, schedule, seed, record, progress)
            record["status"] = "ok"
        except TrialFailed as failure:
            record["status"], record["reason"] = "failed", str(failure)
    record["wall_time_s"] = round(time.perf_counter() - started, 3)
    return TrainedTrial(record, model, fmt)


def _train_and_score(design, backbone, data, schedule, seed, record, progress):
    import peftspace
    from peftspace.families import family_of
    from peftspace.formats import default_format, make_format
    from peftspace.models import load_backbone, load_config, load_tokenizer
    from peftspace.tasks import main_score

    format_name = schedule.format or default_format(family_of(load_config(backbone)))
    tokenizer = load_tokenizer(backbone)
    fmt = make_format(format_name, data.spec, tokenizer, schedule.max_length, schedule.max_target_length)
    model, info = load_backbone(backbone, fmt.model_class(), output_loading_info=True, **fmt.model_kwargs())
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    plan = peftspace.apply(model, design)
    newly_initialized = set(info.get("missing_keys", ()))
    head = {id(p): p for p in fmt.head_parameters(model)}
    head.update({id(p): p for n, p in model.named_parameters() if n in newly_initialized and "peftspace_" not in n})
    for p in head.values():
        p.requires_grad_(True)
    design_params = [p for p in model.parameters() if p.requires_grad and id(p) not in head]
    record["format"] = format_name
    record["trainable"] = {"design": sum(p.numel() for p in design_params), "planned": plan.total,
                           "head": sum(p.numel() for p in head.values()), "backbone": plan.backbone_parameters}

    rng = np.random.default_rng(seed)
    train = _subsample(data.train, schedule.max_train_examples, rng)
    encoded = [fmt.encode(e) for e in train]
    steps_per_epoch = math.ceil(len(train) / schedule.batch_size)
    total = schedule.max_steps or max(1, math.ceil(schedule.epochs * steps_per_epoch))
    optimizer = torch.optim.AdamW([
        {"params": design_params, "lr": schedule.learning_rate},
        {"params": list(head.values()), "lr": schedule.head_learning_rate or schedule.learning_rate},
    ], weight_decay=schedule.weight_decay)
    warmup = int(schedule.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: (step + 1) / max(1, warmup) if step < warmup else max(0.0, (total - step) / max(1, total - warmup)))

    model.train()
    losses, generator = [], torch.Generator().manual_seed(seed)
    order: list[int] = []
    for step in range(total):
        if not order:
            order = torch.randperm(len(train), generator=generator).tolist()
        indices, order = order[:schedule.batch_size], order[schedule.batch_size:]
        batch = fmt.collate([encoded[i] for i in indices], [train[i] for i in indices])
        loss = fmt.loss(model, batch)
        if not torch.isfinite(loss):
            raise TrialFailed(f"loss became {loss.item()} at step {step}")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(design_params + list(head.values()), schedule.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step % schedule.log_every == 0 or step == total - 1:
            losses.append([step, round(loss.item(), 5)])
        if progress is not None:
            progress(step + 1, total, loss.item())
    record["steps"], record["losses"] = total, losses

    record["metrics"] = {split: evaluate(model, fmt, data, split, schedule, seed) for split in ("validation", "test")}
    record["validation_score"] = main_score(data.spec, record["metrics"]["validation"])
    record["score"] = main_score(data.spec, record["metrics"]["test"])
    return model, fmt


def evaluate(model, fmt, data, split: str, schedule: Schedule, seed: int = 0) -> dict:
    """The task's official metrics on one split (subsampled to ``max_eval_examples`` if set)."""
    from peftspace.tasks import compute_metrics, references

    examples = _subsample(getattr(data, split), schedule.max_eval_examples, np.random.default_rng(seed))
    model.eval()
    predictions = predict(model, fmt, examples, schedule.eval_batch_size)
    return compute_metrics(data.spec, predictions, references(examples), [e.group for e in examples])


def predict(model, fmt, examples: list, batch_size: int) -> list:
    predictions = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        predictions.extend(fmt.predict(model, fmt.collate([fmt.encode(e) for e in chunk], chunk)))
    return predictions


def _subsample(examples: list, limit: int | None, rng: np.random.Generator) -> list:
    if limit is None or len(examples) <= limit:
        return list(examples)
    keep = np.sort(rng.choice(len(examples), size=limit, replace=False))
    return [examples[i] for i in keep]


def versions() -> dict:
    import transformers

    from peftspace import __version__

    return {"peftspace": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}
