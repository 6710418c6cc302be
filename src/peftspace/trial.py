"""One trial: train a design on a task with a low-compute schedule, score it, describe it.

The loop is deliberately plain (AdamW with one parameter group per strategy, each at its learning
rate, ``lr_multipliers``; linear warmup then linear decay; gradient clipping) so it reads on one screen. Everything random comes from the trial's seed inside a forked RNG state, so
a trial never disturbs the caller's global state and the same seed gives the same record on CPU.
Trials that share a ``TrialCache`` load the backbone and encode each task once, with the same records.

Three speed-ups keep the data and the steps: bf16 autocast around forward passes (fp32 master weights
and optimizer; ``precision``), length bucketing (batches of similar lengths, drawn so that every
training example is still seen once per epoch; ``bucket_window``), and frozen-bottom reuse (the
states below the design's lowest modified block come from a cache shared by epochs and trials;
``frozen_bottom``, ``peftspace.frozen_bottom``).

A trial runs on one ``device`` (``peftspace.devices``): the backbone copy, the head, every batch and
the frozen-bottom states are there, autocast follows the device (bf16 where it does bf16, fp16 with a
gradient scaler on older GPUs), and the record names it.
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass

import numpy as np
import torch

from peftspace.batching import batch_stream
from peftspace.cache import Encodings, TrialCache
from peftspace.design import Design, PeftspaceError
from peftspace.dropout import use_fast_dropout
from peftspace.frozen_bottom import frozen_layers, serve
from peftspace.precision import autocast, clipped_step, grad_scaler, native_bf16, resolve_precision
from peftspace.schedule import Schedule

__all__ = ["Encodings", "Schedule", "TrialCache", "TrialFailed", "TrainedTrial", "batch_stream", "evaluate", "native_bf16",
           "parameter_groups", "predict", "resolve_precision", "run_trial", "train_trial"]


class TrialFailed(PeftspaceError):
    """Training diverged or broke; the record keeps the reason."""


@dataclass
class TrainedTrial:
    """A trial's record, with the trained model and its task format for saving or re-scoring."""

    record: dict
    model: object = None
    format: object = None


def run_trial(design: Design | str, backbone, task, schedule: Schedule = Schedule(), seed: int = 0,
              data_dir=None, progress=None, *, cache: TrialCache | None = None, device: str = "auto", tokenizer=None) -> dict:
    """Train ``design`` on ``backbone`` for ``task`` and return a self-describing record.

    ``backbone`` is a name, a path, or an already loaded transformers ``PreTrainedModel``: the trial
    trains a copy saved from it (``TrialCache.snapshot``; its ``tokenizer``, or the one at its
    ``name_or_path``), so the record is the one its saved path gives and the object is left as it
    was. ``task`` is a task name or a ``TaskData``; ``progress(step, total, loss)`` is called as it
    goes. ``device``: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` (``peftspace.devices.resolve_device``).
    A loss that becomes NaN/inf ends the trial with ``status: failed`` and the reason. Trials that
    share a ``cache`` load the backbone and encode each task once; the record is the same either way.
    """
    return train_trial(design, backbone, task, schedule, seed, data_dir, progress, cache=cache, device=device,
                       tokenizer=tokenizer).record


def train_trial(design: Design | str, backbone, task, schedule: Schedule = Schedule(), seed: int = 0,
                data_dir=None, progress=None, *, cache: TrialCache | None = None, device: str = "auto",
                tokenizer=None) -> TrainedTrial:
    """``run_trial`` that also hands back the trained model (``None`` if the trial failed)."""
    from peftspace.api import _as_design
    from peftspace.devices import resolve_device
    from peftspace.tasks import TaskData

    design = _as_design(design)
    device = resolve_device(device)
    cache = TrialCache(max_models=0) if cache is None else cache
    started = time.perf_counter()
    name = backbone
    if not isinstance(backbone, (str, os.PathLike)):  # a loaded model: trials train copies of a saved snapshot
        name, backbone = getattr(backbone, "name_or_path", "") or type(backbone).__name__, cache.snapshot(backbone, tokenizer)
    backbone = str(backbone)
    data = task if isinstance(task, TaskData) else cache.task(task, data_dir, seed)
    record = {"status": "running", "reason": None, "task": data.spec.name, "benchmark": data.spec.benchmark,
              "model": str(name), "seed": seed, "design": design.to_dict(), "schedule": schedule.to_dict(),
              "splits": data.sizes, "data_source": data.source, "data_notes": list(data.notes), "versions": versions(),
              "device": str(device)}
    model = fmt = None
    with torch.random.fork_rng(devices=[] if device.type != "cuda" else [device]):
        torch.manual_seed(seed)
        try:
            model, fmt = _train_and_score(design, backbone, data, schedule, seed, record, progress, cache, device)
            record["status"] = "ok"
        except TrialFailed as failure:
            record["status"], record["reason"] = "failed", str(failure)
    record["wall_time_s"] = round(time.perf_counter() - started, 3)
    return TrainedTrial(record, model, fmt)


def _train_and_score(design, backbone, data, schedule, seed, record, progress, cache, device):
    import peftspace
    from peftspace.families import family_of
    from peftspace.formats import default_format, make_format

    format_name = schedule.format or default_format(family_of(cache.config(backbone)))
    tokenizer = cache.tokenizer(backbone)
    fmt = make_format(format_name, data.spec, tokenizer, schedule.max_length, schedule.max_target_length)
    model, newly_initialized = cache.model(backbone, fmt.model_class(), fmt.model_kwargs(), device)
    # The trial's RNG stream, in this order: the head, the design's modules, then dropout.
    _initialize_head(model, newly_initialized)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    plan = peftspace.apply(model, design)
    if schedule.fast_dropout:
        use_fast_dropout(model)  # the trial's own copy: the same Bernoulli masks, drawn four per random number
    head = {id(p): p for p in fmt.head_parameters(model)}
    head.update({id(p): p for n, p in model.named_parameters() if n in newly_initialized and "peftspace_" not in n})
    for p in head.values():
        p.requires_grad_(True)
    design_params = [p for p in model.parameters() if p.requires_grad and id(p) not in head]
    device = device.type
    precision = resolve_precision(schedule.precision, device)
    record["format"], record["precision"] = format_name, precision
    record["trainable"] = {"design": sum(p.numel() for p in design_params), "planned": plan.total,
                           "head": sum(p.numel() for p in head.values()), "backbone": plan.backbone_parameters}

    encodings = cache.encodings(backbone, format_name, fmt, data)
    train = _subsample_indices(len(data.train), schedule.max_train_examples, np.random.default_rng(seed))
    steps_per_epoch = math.ceil(len(train) / schedule.batch_size)
    total = schedule.max_steps or max(1, math.ceil(schedule.epochs * steps_per_epoch))
    optimizer = torch.optim.AdamW(parameter_groups(model, design_params, list(head.values()), schedule),
                                  weight_decay=schedule.weight_decay)
    warmup = int(schedule.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: (step + 1) / max(1, warmup) if step < warmup else max(0.0, (total - step) / max(1, total - warmup)))

    # Blocks below the design's lowest modified one: their states served from the cache, computed without
    # dropout; while training only with frozen_bottom="train" (it drops the bottom's dropout), always when scoring.
    frozen = frozen_layers(model, fmt) if schedule.frozen_bottom != "off" else 0
    scope, store = (backbone, frozen, precision, device), cache.bottom_states
    record["mid_validation_score"] = record["mid_validation_metrics"] = None
    middle = (lambda: _score_midway(record, model, fmt, data, schedule, seed, encodings)) if schedule.mid_validation else None
    with serve(model, frozen if schedule.frozen_bottom == "train" else 0, store, scope) as trained_bottom:
        record["steps"], record["losses"] = total, _train(model, fmt, data, encodings, train, schedule, seed, total, precision,
                                                          device, optimizer, scheduler, design_params + list(head.values()),
                                                          progress, middle)
    with serve(model, frozen, store, scope) as scored_bottom:
        score_record(record, model, fmt, data, schedule, seed, encodings)
    served = [b for b in (trained_bottom, scored_bottom) if b is not None]
    record["frozen_bottom"] = {"mode": schedule.frozen_bottom, "layers": frozen, "hits": sum(b.hits for b in served),
                               "misses": sum(b.misses for b in served)} if served else None
    return model, fmt


def parameter_groups(model, design_params: list, head_params: list, schedule: Schedule) -> list[dict]:
    """AdamW's groups: one per strategy (``strategy`` names it) at its ``learning_rate_of``, then the head's.

    ``design_params`` are the design's trainable parameters; they must be exactly the strategy modules'.
    """
    from peftspace.strategies import parameters_by_strategy

    by_strategy = parameters_by_strategy(model)
    grouped = {id(p) for params in by_strategy.values() for p in params}
    assert grouped == {id(p) for p in design_params}, "the design's trainable parameters differ from its strategy modules'"
    groups = [{"params": params, "lr": schedule.learning_rate_of(letter), "strategy": letter}
              for letter, params in by_strategy.items()]
    return groups + [{"params": head_params, "lr": schedule.head_learning_rate or schedule.learning_rate, "strategy": "head"}]


def score_record(record: dict, model, fmt, data, schedule: Schedule, seed: int, encodings: Encodings | None = None) -> None:
    """Put the metrics of the test split (and the validation split, unless the schedule skips it) into ``record``."""
    from peftspace.tasks import main_score

    splits = ("validation", "test") if schedule.score_validation else ("test",)
    record["metrics"] = {split: evaluate(model, fmt, data, split, schedule, seed, encodings=encodings) for split in splits}
    validation = record["metrics"].get("validation")
    record["validation_score"] = None if validation is None else main_score(data.spec, validation)
    record["score"] = main_score(data.spec, record["metrics"]["test"])


def _score_midway(record: dict, model, fmt, data, schedule: Schedule, seed: int, encodings: Encodings) -> None:
    """Score the validation split in the middle of training, leaving the training trajectory as it was.

    Scoring runs in eval mode (no dropout, so no random draws); the forked RNG makes sure of it.
    """
    from peftspace.tasks import main_score

    with torch.random.fork_rng(devices=[]):
        metrics = evaluate(model, fmt, data, "validation", schedule, seed, encodings=encodings)
    model.train()
    record["mid_validation_metrics"], record["mid_validation_score"] = metrics, main_score(data.spec, metrics)


def _train(model, fmt, data, encodings, train, schedule, seed, total, precision, device, optimizer, scheduler, params,
           progress, middle=None) -> list[list]:
    """``total`` optimizer steps over the ``train`` positions; the logged ``[step, loss]`` pairs.

    ``middle()``, if given, is called once ``max(1, total // 2)`` steps are done.
    """
    model.train()
    losses, generator, scaler = [], torch.Generator().manual_seed(seed), grad_scaler(precision, device)
    on = next(model.parameters()).device
    batches = batch_stream(len(train), schedule.batch_size, schedule.bucket_window, generator,
                           lambda chunk: [fmt.length(e) for e in encodings.get("train", [train[p] for p in chunk])])
    for step in range(total):
        picked = [train[i] for i in next(batches)]
        batch = fmt.collate(encodings.get("train", picked), [data.train[i] for i in picked]).to(on)
        with autocast(precision, device):  # the forward pass and the loss; backward and the step stay fp32
            loss = fmt.loss(model, batch)
        if not torch.isfinite(loss):
            raise TrialFailed(f"loss became {loss.item()} at step {step}")
        (loss if scaler is None else scaler.scale(loss)).backward()  # fp16: scaled, unscaled in clipped_step
        clipped_step(optimizer, params, schedule.max_grad_norm, scaler)
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step % schedule.log_every == 0 or step == total - 1:
            losses.append([step, round(loss.item(), 5)])
        if middle is not None and step + 1 == max(1, total // 2):
            middle()
        if progress is not None:
            progress(step + 1, total, loss.item())
    return losses


def _initialize_head(model, newly_initialized: frozenset[str]) -> None:
    """Draw the parameters the checkpoint lacks (the task head) from the trial's RNG stream.

    ``from_pretrained`` drew them once, when the pristine model was loaded; reusing that draw would
    make a trial's record depend on which trial warmed the cache. The model's own ``_init_weights``
    (the scheme ``from_pretrained`` uses) re-draws their modules; transformers' init functions skip
    tensors flagged ``_is_hf_initialized`` (a deep copy drops those flags), so the flags are set to
    protect exactly the loaded parameters that share a module with new ones.
    """
    from transformers import initialization

    by_name = dict(model.named_parameters(remove_duplicate=False))
    fresh = {id(p) for name, p in by_name.items() if name in newly_initialized}
    fresh -= {id(p) for name, p in by_name.items() if name not in newly_initialized}  # tied to a loaded weight
    owners = {id(m): m for m in model.modules() if any(id(p) in fresh for p in m.parameters(recurse=False))}
    with torch.no_grad(), initialization.guard_torch_init_functions():
        for module in owners.values():
            for parameter in module.parameters(recurse=False):
                parameter._is_hf_initialized = id(parameter) not in fresh
            model._init_weights(module)


def evaluate(model, fmt, data, split: str, schedule: Schedule, seed: int = 0, *, encodings: Encodings | None = None) -> dict:
    """The task's official metrics on one split (subsampled to ``max_eval_examples`` if set)."""
    from peftspace.tasks import compute_metrics, references

    examples = getattr(data, split)
    indices = _subsample_indices(len(examples), schedule.max_eval_examples, np.random.default_rng(seed))
    encoded = (Encodings(data, fmt) if encodings is None else encodings).get(split, indices)
    examples = [examples[i] for i in indices]
    model.eval()
    device = next(model.parameters()).device.type
    with autocast(resolve_precision(schedule.precision, device), device):
        predictions = predict(model, fmt, examples, schedule.eval_batch_size, encoded)
    return compute_metrics(data.spec, predictions, references(examples), [e.group for e in examples])


def predict(model, fmt, examples: list, batch_size: int, encoded: list[dict] | None = None) -> list:
    """``fmt``'s predictions for ``examples`` (in their order); ``encoded``: their encodings, if already made.

    Batches are cut from the examples sorted by length, so they carry little padding; padding is
    masked, so an example's prediction does not depend on the batch it lands in (up to rounding).
    """
    encoded = [fmt.encode(e) for e in examples] if encoded is None else encoded
    device = next(model.parameters()).device
    order = sorted(range(len(examples)), key=lambda i: fmt.length(encoded[i]))
    predictions = [None] * len(examples)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batch = fmt.collate([encoded[i] for i in chunk], [examples[i] for i in chunk]).to(device)
        for i, prediction in zip(chunk, fmt.predict(model, batch), strict=True):
            predictions[i] = prediction
    return predictions


def _subsample_indices(size: int, limit: int | None, rng: np.random.Generator) -> list[int]:
    if limit is None or size <= limit:
        return list(range(size))
    return np.sort(rng.choice(size, size=limit, replace=False)).tolist()


def versions() -> dict:
    import transformers

    from peftspace import __version__

    return {"peftspace": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}
