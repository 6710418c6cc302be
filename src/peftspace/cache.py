"""What trials on one backbone share in a process: tokenizer, config, pristine model, encodings, frozen-bottom states."""

from __future__ import annotations

import copy
import tempfile
from collections import OrderedDict
from pathlib import Path

import torch

from peftspace.frozen_bottom import BottomStore


class TrialCache:
    """What trials on one backbone can share: tokenizer, config, a pristine model, encoded examples and
    the states of frozen bottom blocks.

    A trial never gets the cached model itself but a deep copy of it, so nothing a design does to
    its model (strategy modules and hooks, trained backbone biases, a prefix's per-module attention
    config, XLNet's shims) reaches the next trial; the copy's task head is re-drawn from the trial's
    seed (``_initialize_head``). Loading runs in a forked RNG, so a warm cache and a cold one leave a
    trial the same random stream and the same record (but for wall time and the frozen-bottom hit
    counts).

    Memory: at most ``max_models`` pristine models (least recently used dropped first) plus the
    trial's own copy, so a trial holds about twice its model; ``max_models=0`` keeps none and hands
    each trial the model it loads (what a trial without a cache gets). Tokenizers and configs of as
    many backbones; and for at most ``max_tasks`` (task, format) pairs the loaded task and the
    encodings of the examples trials actually used. The states entering the lowest modified block
    of trials' designs (``peftspace.frozen_bottom``) take up to ``max_activation_mb`` MiB of the trials' device memory,
    kept for every epoch and every later trial on the backbone; once full, nothing more is added.
    Pristine models are kept on the device trials asked for (one per device), so each trial's copy
    is made there. Not thread-safe: one per process (a sweep worker keeps one).
    """

    def __init__(self, max_models: int = 2, max_tasks: int = 8, max_activation_mb: float = 1024):
        self._models, self._backbones = _Lru(max_models), _Lru(max(1, max_models))
        self._tasks, self._encodings = _Lru(max_tasks), _Lru(max_tasks)
        self.bottom_states = BottomStore(int(max_activation_mb * 2**20))
        self._snapshots: dict[int, tuple] = {}  # id(loaded model) -> (the model, its saved directory)
        self._snapshot_dir: tempfile.TemporaryDirectory | None = None

    def snapshot(self, model, tokenizer=None) -> str:
        """A directory holding ``model`` (a loaded ``PreTrainedModel``) and its tokenizer, saved once per model.

        Trials then load it like any saved backbone (so the record is the one its saved path gives,
        and the user's object is never trained or changed). The tokenizer is ``tokenizer`` or the one
        at ``model.name_or_path``. The directory is taken at the first trial of ``model`` and removed
        with the cache; a model changed in between needs a new cache.
        """
        from peftspace.design.errors import ModelError
        from peftspace.models import load_tokenizer

        if id(model) in self._snapshots:
            return self._snapshots[id(model)][1]
        if not callable(getattr(model, "save_pretrained", None)) or not hasattr(model, "config"):
            raise ModelError(f"a backbone must be a name, a path or a loaded transformers PreTrainedModel, not {type(model).__name__}")
        source = getattr(model, "name_or_path", "") or ""
        if tokenizer is None:
            if not source:
                raise ModelError(f"the loaded {type(model).__name__} has no name_or_path to find its tokenizer: pass tokenizer=")
            tokenizer = load_tokenizer(source)
        if self._snapshot_dir is None:
            self._snapshot_dir = tempfile.TemporaryDirectory(prefix="peftspace-model-")
        directory = str(Path(self._snapshot_dir.name) / str(len(self._snapshots)))
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        self._snapshots[id(model)] = (model, directory)  # holding the model keeps its id from being reused
        return directory

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

    def model(self, backbone: str, model_class, kwargs: dict, device="cpu") -> tuple[torch.nn.Module, frozenset[str]]:
        """A model of ``backbone`` as ``model_class`` on ``device`` for one trial alone, and the names the checkpoint lacked."""
        if self._models.size == 0:  # kept nowhere, so the loaded model is already the trial's alone
            return _load_pristine(backbone, model_class, kwargs, device)
        pristine, newly_initialized = self._models.get((backbone, model_class, tuple(sorted(kwargs.items())), str(device)),
                                                       lambda: _load_pristine(backbone, model_class, kwargs, device))
        return copy.deepcopy(pristine), newly_initialized

    def encodings(self, backbone: str, format_name: str, fmt, data) -> Encodings:
        """The memo of ``data``'s examples encoded by ``fmt`` (whose tokenizer is ``backbone``'s)."""
        # Keyed by id(data): the entry holds ``data``, so no other object can take its id while the entry lives.
        key = (backbone, format_name, fmt.max_length, fmt.max_target_length, id(data))
        return self._encodings.get(key, lambda: Encodings(data, fmt))


def _load_pristine(backbone: str, model_class, kwargs: dict, device="cpu") -> tuple[torch.nn.Module, frozenset[str]]:
    from peftspace.models import load_backbone

    with torch.random.fork_rng(devices=[]):  # loading must not advance the trial's stream
        model, info = load_backbone(backbone, model_class, output_loading_info=True, **kwargs)
    if torch.device(device).type != "cpu":
        model.to(device)
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
