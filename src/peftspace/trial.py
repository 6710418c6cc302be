"""One trial: train a design on a task with a low-compute schedule, score it, describe it.

The loop is deliberately plain (AdamW, linear warmup then linear decay, gradient clipping) so it
reads on one screen. Everything random comes from the trial's seed inside a forked RNG state, so
a trial never disturbs the caller's global state and the same seed gives the same record on CPU.
Trials that share a ``TrialCache`` load the backbone and encode each task once, with the same records.
"""

from __future__ import annotations

import copy
import math
import platform
import time
from collections import OrderedDict
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
              data_dir=None, progress=None, *, cache: TrialCache | None = None) -> dict:
    """Train ``design`` on ``backbone`` for ``task`` and return a self-describing record.

    ``task`` is a task name or a ``TaskData``; ``progress(step, total, loss)`` is called as it goes.
    A loss that becomes NaN/inf ends the trial with ``status: failed`` and the reason. Trials that
    share a ``cache`` load the backbone and encode each task once; the record is the same either way.
    """
    return train_trial(design, backbone, task, schedule, seed, data_dir, progress, cache=cache).record


def train_trial(design: Design | str, backbone: str, task, schedule: Schedule = Schedule(), seed: int = 0,
                data_dir=None, progress=None, *, cache: TrialCache | None = None) -> TrainedTrial:
    """``run_trial`` that also hands back the trained model (``None`` if the trial failed)."""
    from peftspace.api import _as_design
    from peftspace.tasks import TaskData

    design = _as_design(design)
    cache = TrialCache(max_models=0) if cache is None else cache
    started = time.perf_counter()
    data = task if isinstance(task, TaskData) else cache.task(task, data_dir, seed)
    record = {"status": "running", "reason": None, "task": data.spec.name, "benchmark": data.spec.benchmark,
              "model": backbone, "seed": seed, "design": design.to_dict(), "schedule": asdict(schedule),
              "splits": data.sizes, "data_source": data.source, "data_notes": list(data.notes), "versions": versions()}
    model = fmt = None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model, fmt = _train_and_score(design, backbone, data, schedule, seed, record, progress, cache)
            record["status"] = "ok"
        except TrialFailed as failure:
            record["status"], record["reason"] = "failed", str(failure)
    record["wall_time_s"] = round(time.perf_counter() - started, 3)
    return TrainedTrial(record, model, fmt)


def _train_and_score(design, backbone, data, schedule, seed, record, progress, cache):
    import peftspace
    from peftspace.families import family_of
    from peftspace.formats import default_format, make_format
    from peftspace.tasks import main_score

    format_name = schedule.format or default_format(family_of(cache.config(backbone)))
    tokenizer = cache.tokenizer(backbone)
    fmt = make_format(format_name, data.spec, tokenizer, schedule.max_length, schedule.max_target_length)
    model, newly_initialized = cache.model(backbone, fmt.model_class(), fmt.model_kwargs())
    # The trial's RNG stream, in this order: the head, the design's modules, then dropout.
    _initialize_head(model, newly_initialized)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    plan = peftspace.apply(model, design)
    head = {id(p): p for p in fmt.head_parameters(model)}
    head.update({id(p): p for n, p in model.named_parameters() if n in newly_initialized and "peftspace_" not in n})
    for p in head.values():
        p.requires_grad_(True)
    design_params = [p for p in model.parameters() if p.requires_grad and id(p) not in head]
    record["format"] = format_name
    record["trainable"] = {"design": sum(p.numel() for p in design_params), "planned": plan.total,
                           "head": sum(p.numel() for p in head.values()), "backbone": plan.backbone_parameters}

    encodings = cache.encodings(backbone, format_name, fmt, data)
    train = _subsample_indices(len(data.train), schedule.max_train_examples, np.random.default_rng(seed))
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
        picked, order = [train[i] for i in order[:schedule.batch_size]], order[schedule.batch_size:]
        batch = fmt.collate(encodings.get("train", picked), [data.train[i] for i in picked])
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

    record["metrics"] = {split: evaluate(model, fmt, data, split, schedule, seed, encodings=encodings)
                         for split in ("validation", "test")}
    record["validation_score"] = main_score(data.spec, record["metrics"]["validation"])
    record["score"] = main_score(data.spec, record["metrics"]["test"])
    return model, fmt


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


class TrialCache:
    """What trials on one backbone can share: tokenizer, config, a pristine model and encoded examples.

    A trial never gets the cached model itself but a deep copy of it, so nothing a design does to
    its model (strategy modules and hooks, trained backbone biases, a prefix's per-module attention
    config, XLNet's shims) reaches the next trial; the copy's task head is re-drawn from the trial's
    seed (``_initialize_head``). Loading runs in a forked RNG, so a warm cache and a cold one leave a
    trial the same random stream and the same record.

    Memory: at most ``max_models`` pristine models (least recently used dropped first) plus the
    trial's own copy, so a trial holds about twice its model; ``max_models=0`` keeps none and hands
    each trial the model it loads (what a trial without a cache gets). Tokenizers and configs of as
    many backbones; and for at most ``max_tasks`` (task, format) pairs the loaded task and the
    encodings of the examples trials actually used. Not thread-safe: one per process (a sweep worker
    keeps one).
    """

    def __init__(self, max_models: int = 2, max_tasks: int = 8):
        self._models, self._backbones = _Lru(max_models), _Lru(max(1, max_models))
        self._tasks, self._encodings = _Lru(max_tasks), _Lru(max_tasks)

    def task(self, name: str, data_dir, seed: int):
        """``load_task(name, data_dir, seed=seed)``, loaded once per (name, data_dir, seed)."""
        from peftspace.tasks import load_task

        return self._tasks.get((name, str(data_dir), seed), lambda: load_task(name, data_dir, seed=seed))

    def config(self, backbone: str):
        return self._backbone(backbone)[0]

    def tokenizer(self, backbone: str):
        return self._backbone(backbone)[1]

    def _backbone(self, backbone: str) -> tuple:
        from peftspace.models import load_config, load_tokenizer

        return self._backbones.get(backbone, lambda: (load_config(backbone), load_tokenizer(backbone)))

    def model(self, backbone: str, model_class, kwargs: dict) -> tuple[torch.nn.Module, frozenset[str]]:
        """A model of ``backbone`` as ``model_class`` for one trial alone, and the names the checkpoint lacked."""
        if self._models.size == 0:  # kept nowhere, so the loaded model is already the trial's alone
            return _load_pristine(backbone, model_class, kwargs)
        pristine, newly_initialized = self._models.get((backbone, model_class, tuple(sorted(kwargs.items()))),
                                                       lambda: _load_pristine(backbone, model_class, kwargs))
        return copy.deepcopy(pristine), newly_initialized

    def encodings(self, backbone: str, format_name: str, fmt, data) -> Encodings:
        """The memo of ``data``'s examples encoded by ``fmt`` (whose tokenizer is ``backbone``'s)."""
        # Keyed by id(data): the entry holds ``data``, so no other object can take its id while the entry lives.
        key = (backbone, format_name, fmt.max_length, fmt.max_target_length, id(data))
        return self._encodings.get(key, lambda: Encodings(data, fmt))


def _load_pristine(backbone: str, model_class, kwargs: dict) -> tuple[torch.nn.Module, frozenset[str]]:
    from peftspace.models import load_backbone

    with torch.random.fork_rng(devices=[]):  # loading must not advance the trial's stream
        model, info = load_backbone(backbone, model_class, output_loading_info=True, **kwargs)
    return model, frozenset(info.get("missing_keys", ()))


class Encodings:
    """One task's examples encoded by one format, each encoded the first time a trial uses it."""

    def __init__(self, data, fmt):
        self.data, self.fmt = data, fmt
        self._done: dict[str, dict[int, dict]] = {"train": {}, "validation": {}, "test": {}}

    def get(self, split: str, indices: list[int]) -> list[dict]:
        done, examples = self._done[split], getattr(self.data, split)
        for i in indices:
            if i not in done:
                done[i] = self.fmt.encode(examples[i])
        return [done[i] for i in indices]


class _Lru:
    """A dict keeping the ``size`` most recently used entries."""

    def __init__(self, size: int):
        self.size, self.entries = size, OrderedDict()

    def get(self, key, make):
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        while len(self.entries) >= self.size:  # before making the new one: a model's memory is freed first
            self.entries.popitem(last=False)
        self.entries[key] = value = make()
        return value


def evaluate(model, fmt, data, split: str, schedule: Schedule, seed: int = 0, *, encodings: Encodings | None = None) -> dict:
    """The task's official metrics on one split (subsampled to ``max_eval_examples`` if set)."""
    from peftspace.tasks import compute_metrics, references

    examples = getattr(data, split)
    indices = _subsample_indices(len(examples), schedule.max_eval_examples, np.random.default_rng(seed))
    encoded = (Encodings(data, fmt) if encodings is None else encodings).get(split, indices)
    examples = [examples[i] for i in indices]
    model.eval()
    predictions = predict(model, fmt, examples, schedule.eval_batch_size, encoded)
    return compute_metrics(data.spec, predictions, references(examples), [e.group for e in examples])


def predict(model, fmt, examples: list, batch_size: int, encoded: list[dict] | None = None) -> list:
    """``fmt``'s predictions for ``examples``; ``encoded``: their encodings, if already made."""
    encoded = [fmt.encode(e) for e in examples] if encoded is None else encoded
    predictions = []
    for start in range(0, len(examples), batch_size):
        chunk = slice(start, start + batch_size)
        predictions.extend(fmt.predict(model, fmt.collate(encoded[chunk], examples[chunk])))
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
