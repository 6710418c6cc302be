"""Packing: several designs trained in one forward/backward over one shared frozen backbone.

Each design gets its own copy of the model whose frozen tensors are the pristine model's own
(``shared_copy``), with the design applied and a task head drawn from its seed, exactly as a
trial alone would build it. A ``PackedModel`` then runs one more such copy, the *host*, on the
concatenated batches of all designs: every frozen module runs once on the whole packed batch,
and where a design has modified a module, the packed hook applies that design's own strategy
hooks to that design's slice of the module's input and output. Prefixed attention modules run
their attention per slice with each design's implementation; the task head runs per slice.
A design's loss is the mean over its own slice, so its loss and gradients are those it gets
alone (padding to the common length is masked; dropout streams differ, so compare with it off).
A pack runs on one ``device``, as a trial does: the models, batches and precision are that device's,
and with fp16 each design keeps its own gradient scaler, so a design's skipped steps are its own.

Only the slicing is new: the strategies' modules and hooks are the ones ``peftspace.apply``
made, untouched, and each design's model stays usable (and is evaluated) on its own.
Supported: the ``head`` format (a task head on the pooled output) on the bert family (tested on
BERT); other families are refused until they are tested. Whether packing is faster than running
designs one after another depends on the hardware: see ``benchmarks/packing.py``.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections import defaultdict

import numpy as np
import torch
from torch import nn

import peftspace
from peftspace.batching import batch_stream
from peftspace.design import PeftspaceError
from peftspace.families import FAMILIES, base_model, family_map
from peftspace.formats import make_format
from peftspace.precision import autocast, clipped_step, grad_scaler, resolve_precision
from peftspace.strategies import prefix as prefix_strategy
from peftspace.strategies._hooks import PREFIX
from peftspace.tasks import TaskData
from peftspace.trial import (
    Schedule,
    TrainedTrial,
    TrialCache,
    _initialize_head,
    _subsample_indices,
    parameter_groups,
    score_record,
    versions,
)

SUPPORTED_PROBLEMS = ("single_label_classification", "regression")
PACKED_ATTENTION = "peftspace_packed"


class PackingError(PeftspaceError):
    """These designs, this model or this batch cannot be packed."""


def shared_copy(model: nn.Module, own: list[torch.Tensor] = ()) -> nn.Module:
    """A deep copy of ``model`` holding ``model``'s own parameters and buffers, except those in ``own``."""
    private = {id(t) for t in own}
    memo = {id(t): t for t in itertools.chain(model.parameters(), model.buffers()) if id(t) not in private}
    return copy.deepcopy(model, memo)


class _Slices:
    """The batch sizes of the designs in the current packed forward, in design order."""

    sizes: list[int] | None = None

    def split(self, tensor: torch.Tensor, what: str) -> tuple[torch.Tensor, ...]:
        if tensor.shape[0] != sum(self.sizes):
            raise PackingError(f"{what} has batch dimension {tensor.shape[0]}, the packed batch is {sum(self.sizes)}")
        return tensor.split(self.sizes)

    def split_mask(self, mask):
        """An attention mask per slice; ``None`` and masks broadcast over the batch go to every slice as they are."""
        if mask is None or mask.shape[0] == 1:
            return [mask] * len(self.sizes)
        return self.split(mask, "the attention mask")


class PackedModel(nn.Module):
    """``models`` (shared copies of ``pristine`` with one design each) run as one model on packed batches.

    Call it as ``packed(sizes, **inputs)``: the first ``sizes[0]`` rows of ``inputs`` are the first
    design's, and so on. ``losses(batch, sizes)`` gives each design's loss on its own slice.
    """

    def __init__(self, pristine: nn.Module, models: list[nn.Module]):
        super().__init__()
        _check_model(pristine)
        self.models = nn.ModuleList(models)
        self.host = shared_copy(pristine)  # its tensors are the frozen ones; its heads are replaced below
        self.slices = _Slices()
        hooked, prefixed = defaultdict(list), defaultdict(list)
        for i, model in enumerate(models):
            strategy = {id(m) for name, m in model.named_modules() if name.rpartition(".")[2].startswith(PREFIX)}
            for name, module in model.named_modules():
                hooks = _strategy_hooks(module, strategy)
                if hooks[0] or hooks[1]:
                    hooked[name].append((i, module, *hooks))
                if getattr(getattr(module, "config", None), "_attn_implementation", None) == prefix_strategy.IMPLEMENTATION:
                    prefixed[name].append(i)
        for name, designs in hooked.items():
            target = self.host.get_submodule(name)
            if any(pre_hooks for _, _, pre_hooks, _ in designs):
                target.register_forward_pre_hook(self._pre_hook(designs), with_kwargs=True)
            if any(forward_hooks for _, _, _, forward_hooks in designs):
                target.register_forward_hook(self._hook(designs), with_kwargs=True)
        for name in prefixed:  # every design's own attention module, prefixed or not, runs its own slice
            _register_packed_attention()
            target = self.host.get_submodule(name)
            target.config = copy.copy(target.config)
            target.config._attn_implementation_internal = PACKED_ATTENTION  # not the setter, as in prefix.apply
            target.__dict__["peftspace_packed"] = (self.slices, [m.get_submodule(name) for m in models])
        host_backbone, heads = base_model(self.host), []
        for name, head in list(self.host.named_children()):
            if head is not host_backbone and any(True for _ in head.parameters()):
                heads.append(_PerSlice([m.get_submodule(name) for m in models], self.slices))
                setattr(self.host, name, heads[-1])
        _check_trainables_are_sliced(models, {id(p) for head in heads for p in head.parameters()})

    def forward(self, sizes: list[int], **inputs):
        if len(sizes) != len(self.models) or min(sizes) < 1:
            raise PackingError(f"sizes {list(sizes)} must give each of the {len(self.models)} designs at least one row")
        self.slices.sizes = list(sizes)
        try:
            return self.host(**inputs)
        finally:
            self.slices.sizes = None

    def losses(self, batch, sizes: list[int]) -> list[torch.Tensor]:
        """Each design's loss on its slice of ``batch``, as ``model(**inputs).loss`` computes it alone."""
        inputs = {k: v for k, v in batch.inputs.items() if k != "labels"}
        logits = self(sizes, **inputs).logits
        config = self.host.config
        return [_head_loss(config, part, labels) for part, labels in zip(logits.split(sizes), batch.inputs["labels"].split(sizes))]

    def _pre_hook(self, designs):
        def pre_hook(host_module, args, kwargs):
            calls = self._calls_per_slice(args, kwargs)
            for i, module, pre_hooks, _ in designs:
                mine = calls[i]
                for hook, with_kwargs in pre_hooks:
                    changed = hook(module, *mine) if with_kwargs else hook(module, mine[0])
                    if changed is not None:  # would need a per-slice forward of the frozen module
                        raise PackingError(f"{type(module).__name__}: a strategy pre-hook that changes inputs cannot be packed")
        return pre_hook

    def _hook(self, designs):
        def hook(host_module, args, kwargs, output):
            outputs = list(self.slices.split(output, f"{type(host_module).__name__}'s output"))
            calls = self._calls_per_slice(args, kwargs)
            for i, module, _, forward_hooks in designs:
                mine = calls[i]
                for design_hook, with_kwargs in forward_hooks:
                    result = design_hook(module, *mine, outputs[i]) if with_kwargs else design_hook(module, mine[0], outputs[i])
                    outputs[i] = outputs[i] if result is None else result
            return torch.cat(outputs)
        return hook

    def _calls_per_slice(self, args: tuple, kwargs: dict) -> list[tuple[tuple, dict]]:
        """Each design's part of a hooked module's call: its slice of the first input (the hidden states)."""
        if args:
            return [((x, *args[1:]), kwargs) for x in self.slices.split(args[0], "a hooked module's input")]
        return [(args, {**kwargs, "hidden_states": x}) for x in self.slices.split(kwargs["hidden_states"], "hidden_states")]


def _check_trainables_are_sliced(models: list[nn.Module], sliced: set[int]) -> None:
    """Every trainable parameter must act on its design's slice only: a strategy's or a sliced head's."""
    for i, model in enumerate(models):
        stray = [n for n, p in model.named_parameters() if p.requires_grad and PREFIX not in n and id(p) not in sliced]
        if stray:
            raise PackingError(f"design {i} trains {stray[:3]}, which the packed model would share across designs; "
                               "packing trains strategy modules and the task head only")


class _PerSlice(nn.Module):
    """Runs the i-th of ``parts`` on the i-th slice of its input (the task heads)."""

    def __init__(self, parts: list[nn.Module], slices: _Slices):
        super().__init__()
        self.parts, self.slices = nn.ModuleList(parts), slices

    def forward(self, hidden, *rest, **kwargs):
        return torch.cat([part(x, *rest, **kwargs) for part, x in zip(self.parts, self.slices.split(hidden, "the head's input"))])


def packed_attention(module, query, key, value, attention_mask, **kwargs):
    """The attention interface of a host module some design prefixes: each design's own attention on its slice."""
    slices, modules = module.__dict__["peftspace_packed"]
    split = [slices.split(t, "attention " + what) for t, what in ((query, "queries"), (key, "keys"), (value, "values"))]
    outputs, weights = [], []
    for i, (design_module, mask) in enumerate(zip(modules, slices.split_mask(attention_mask))):
        implementation = design_module.config._attn_implementation or "eager"
        attend = prefix_strategy._base_attention(design_module, implementation)
        output, weight = attend(design_module, split[0][i], split[1][i], split[2][i], mask, **kwargs)
        outputs.append(output)
        weights.append(weight)
    return torch.cat(outputs), None if any(w is None for w in weights) else torch.cat(weights)


def _register_packed_attention() -> None:
    from transformers import AttentionInterface

    prefix_strategy._register()  # the designs' own prefixed modules name it
    AttentionInterface.register(PACKED_ATTENTION, packed_attention)


def _strategy_hooks(module: nn.Module, strategy: set[int]) -> tuple[list, list]:
    """``module``'s pre-hooks and hooks that strategy modules own, each with its ``with_kwargs`` flag, in order."""
    def owned(hooks: dict, with_kwargs: dict) -> list:
        return [(h, key in with_kwargs) for key, h in hooks.items() if id(getattr(h, "__self__", None)) in strategy]

    return (owned(module._forward_pre_hooks, module._forward_pre_hooks_with_kwargs),
            owned(module._forward_hooks, module._forward_hooks_with_kwargs))


def _check_model(model: nn.Module) -> None:
    problems = []
    family = family_map(model.config).name
    if not family_map(model.config).can("packing"):
        supported = sorted(name for name, f in FAMILIES.items() if f.can("packing"))
        problems.append(f"the {family} family ({model.config.model_type}) cannot be packed yet; packing supports {supported}")
    problem = getattr(model.config, "problem_type", None)
    if problem not in SUPPORTED_PROBLEMS:
        problems.append(f"problem_type {problem!r}: packing computes per-design losses for {list(SUPPORTED_PROBLEMS)} "
                        "(a model with a task head from the 'head' format)")
    if problems:
        raise PackingError("; ".join(problems))


def _head_loss(config, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The loss ``*ForSequenceClassification`` computes for these rows alone."""
    if config.problem_type == "regression":
        if config.num_labels == 1:
            return nn.functional.mse_loss(logits.squeeze(), labels.squeeze())
        return nn.functional.mse_loss(logits, labels)
    return nn.functional.cross_entropy(logits.view(-1, config.num_labels), labels.view(-1))


class _Member:
    """One design of a pack: its data, its model and optimizer, its batch stream and its record."""

    def __init__(self, design, seed: int, data, record: dict):
        self.design, self.seed, self.data, self.record = design, seed, data, record
        self.model = self.params = self.optimizer = self.scheduler = self.scaler = None
        self.batches = self.train = self.encodings = None
        self.total, self.losses = 0, []


def run_packed(designs: list, backbone: str, task, schedule=None, seeds: list[int] | None = None, data_dir=None,
               *, cache=None, device: str = "auto") -> list[dict]:
    """``run_trial`` for several designs trained packed together: one record per design."""
    return [t.record for t in train_packed(designs, backbone, task, schedule, seeds, data_dir, cache=cache, device=device)]


def train_packed(designs: list, backbone: str, task, schedule=None, seeds: list[int] | None = None, data_dir=None,
                 *, cache=None, device: str = "auto") -> list:
    """Train ``designs`` together on ``device``, each from its own seed (default ``0..n-1``), and score each alone.

    Each design gets what ``train_trial`` would give it alone with its seed: the same head and
    design initialization, task split, training examples and batch order, optimizer (with its
    per-strategy learning rates), schedule and gradient clipping; only dropout draws from one stream
    for all (seeded by the first seed). A schedule with ``mid_validation`` is refused.
    Frozen-bottom reuse is not done: every block runs, dropout included, as ``frozen_bottom='off'``
    trains (the record says ``frozen_bottom: None``), whatever the schedule asks.
    A design whose loss becomes NaN/inf fails alone at that step; the others train on. Returns
    one ``TrainedTrial`` per design; its record is ``run_trial``'s plus ``packed_with`` (the
    number of designs packed), and ``wall_time_s`` is the whole pack's. ``device``: as ``run_trial``'s
    (``peftspace.devices.resolve_device``).
    """
    from peftspace.devices import resolve_device

    device = resolve_device(device)  # first, so a missing GPU is one clear error before anything loads
    schedule = Schedule() if schedule is None else schedule
    if schedule.mid_validation:
        raise PackingError("packed designs are scored only once trained; use a schedule with mid_validation=False")
    from peftspace.api import _as_design  # peftspace's top level imports api lazily

    designs = [_as_design(d) for d in designs]
    seeds = list(range(len(designs))) if seeds is None else list(seeds)
    if not designs or len(seeds) != len(designs):
        raise PackingError(f"give one seed per design: {len(designs)} design(s), {len(seeds)} seed(s)")
    cache = TrialCache(max_models=0) if cache is None else cache
    started = time.perf_counter()
    members = []
    for design, seed in zip(designs, seeds):
        data = task if isinstance(task, TaskData) else cache.task(task, data_dir, seed)
        members.append(_Member(design, seed, data, {
            "status": "running", "reason": None, "task": data.spec.name, "benchmark": data.spec.benchmark, "model": backbone,
            "seed": seed, "design": design.to_dict(), "schedule": schedule.to_dict(), "splits": data.sizes,
            "data_source": data.source, "data_notes": list(data.notes), "versions": versions(), "packed_with": len(designs),
            "frozen_bottom": None,  # packed, every block runs (with its dropout): frozen_bottom='off' semantics
            "mid_validation_score": None, "mid_validation_metrics": None, "device": str(device)}))
    fmt, pristine = _build(members, backbone, schedule, cache, device)
    with torch.random.fork_rng(devices=_rng_devices(device)):
        torch.manual_seed(seeds[0])  # dropout's one stream
        _train(members, pristine, fmt, schedule)
    for member in members:
        if member.record["status"] == "running":
            _score(member, fmt, schedule)
            member.record["status"] = "ok"
        member.record["wall_time_s"] = round(time.perf_counter() - started, 3)
    return [TrainedTrial(m.record, m.model, fmt if m.model is not None else None) for m in members]


def design_copy(pristine: nn.Module, design, seed: int, fmt, newly_initialized: frozenset[str] = frozenset()):
    """``pristine`` with ``design`` applied and a task head of its own, as a trial with ``seed`` builds it.

    The copy holds ``pristine``'s frozen tensors (no memory of its own but the head's and the
    design's); its head and design modules are drawn in the trial's order from ``seed``. Returns
    the model, the plan and the head's parameters (trainable, like the design's).
    """
    heads = fmt.head_parameters(pristine) + [p for n, p in pristine.named_parameters() if n in newly_initialized]
    with torch.random.fork_rng(devices=_rng_devices(next(pristine.parameters()).device)):
        torch.manual_seed(seed)  # the trial's stream, in its order: the head, then the design's modules
        model = shared_copy(pristine, own=heads)
        _initialize_head(model, newly_initialized)
        plan = peftspace.apply(model, design)
    head = {id(p): p for p in fmt.head_parameters(model)}
    head.update({id(p): p for n, p in model.named_parameters() if n in newly_initialized and PREFIX not in n})
    for p in head.values():
        p.requires_grad_(True)
    return model, plan, list(head.values())


def _rng_devices(device: torch.device) -> list:
    """The GPUs whose RNG state a fork must also restore: seeding reseeds them, and modules made there draw there."""
    return [device] if device.type == "cuda" else []


def _build(members: list[_Member], backbone: str, schedule, cache, device: torch.device):
    """The format, the pristine model, and each member's model, optimizer and batches, as ``trial`` builds them."""
    format_name = schedule.format or "head"
    if format_name != "head":
        raise PackingError(f"packing trains the 'head' format only; this schedule asks for {format_name!r}")
    tokenizer = cache.tokenizer(backbone)
    fmt = make_format(format_name, members[0].data.spec, tokenizer, schedule.max_length, schedule.max_target_length)
    pristine, newly_initialized = cache.model(backbone, fmt.model_class(), fmt.model_kwargs(), device)  # this pack's own
    _check_model(pristine)
    if getattr(pristine.config, "pad_token_id", None) is None:
        pristine.config.pad_token_id = tokenizer.pad_token_id
    precision = resolve_precision(schedule.precision, device.type)
    for m in members:
        m.model, plan, head = design_copy(pristine, m.design, m.seed, fmt, newly_initialized)
        head_ids = {id(p) for p in head}
        design_params = [p for p in m.model.parameters() if p.requires_grad and id(p) not in head_ids]
        m.params = design_params + head
        m.record["format"], m.record["precision"] = format_name, precision
        m.record["trainable"] = {"design": sum(p.numel() for p in design_params), "planned": plan.total,
                                 "head": sum(p.numel() for p in head), "backbone": plan.backbone_parameters}
        m.encodings = cache.encodings(backbone, format_name, fmt, m.data)
        m.train = _subsample_indices(len(m.data.train), schedule.max_train_examples, np.random.default_rng(m.seed))
        m.optimizer = torch.optim.AdamW(parameter_groups(m.model, design_params, head, schedule),
                                        weight_decay=schedule.weight_decay)
        m.scaler = grad_scaler(precision, device.type)
        m.total = schedule.max_steps or max(1, math.ceil(schedule.epochs * math.ceil(len(m.train) / schedule.batch_size)))
        warmup = int(schedule.warmup_ratio * m.total)
        m.scheduler = torch.optim.lr_scheduler.LambdaLR(
            m.optimizer, lambda step, total=m.total, warmup=warmup: (step + 1) / max(1, warmup) if step < warmup
            else max(0.0, (total - step) / max(1, total - warmup)))
        m.batches = batch_stream(len(m.train), schedule.batch_size, schedule.bucket_window, torch.Generator().manual_seed(m.seed),
                                 lambda chunk, m=m: [fmt.length(e) for e in m.encodings.get("train", [m.train[p] for p in chunk])])
    return fmt, pristine


def _train(members: list[_Member], pristine: nn.Module, fmt, schedule) -> None:
    """The trial loop on packed batches; a design whose loss is not finite leaves the pack at that step."""
    live = list(members)
    packed = PackedModel(pristine, [m.model for m in live]).train()
    on = next(pristine.parameters()).device
    for step in range(max(m.total for m in members)):
        picks = [[m.train[i] for i in next(m.batches)] for m in live]
        batch = fmt.collate([e for m, p in zip(live, picks) for e in m.encodings.get("train", p)],
                            [m.data.train[i] for m, p in zip(live, picks) for i in p]).to(on)
        with autocast(live[0].record["precision"], on.type):
            losses = packed.losses(batch, [len(p) for p in picks])
        values = torch.stack([loss.detach().float() for loss in losses]).tolist()  # one sync for all designs
        kept = [(m, loss, value) for m, loss, value in zip(live, losses, values) if math.isfinite(value)]
        if kept:  # with fp16, each loss scaled by its own design's scaler: its gradients are as it gets them alone
            sum(loss if m.scaler is None else m.scaler.scale(loss) for m, loss, _ in kept).backward()
        for m, value in zip(live, values):
            if not math.isfinite(value):
                m.record["status"], m.record["reason"] = "failed", f"loss became {value} at step {step}"
                m.model = None
        for m, _, value in kept:
            clipped_step(m.optimizer, m.params, schedule.max_grad_norm, m.scaler)
            m.scheduler.step()
            m.optimizer.zero_grad(set_to_none=True)
            if step % schedule.log_every == 0 or step == m.total - 1:
                m.losses.append([step, round(value, 5)])
        finished = [m for m, _, _ in kept if step == m.total - 1]
        for m in finished:
            m.record["steps"], m.record["losses"] = m.total, m.losses
        if finished or len(kept) < len(live):  # repack without the failed or finished designs
            live = [m for m, _, _ in kept if m not in finished]
            if not live:
                return
            packed = PackedModel(pristine, [m.model for m in live]).train()


def _score(member: _Member, fmt, schedule) -> None:
    """Each design scored alone, on its own model, exactly as ``train_trial`` scores it."""
    score_record(member.record, member.model, fmt, member.data, schedule, member.seed, member.encodings)
