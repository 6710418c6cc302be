"""Where trials run: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``, and how local workers share a machine's GPUs.

A trial's backbone copy, head, batches and frozen-bottom states live on its device; the record names
it (``record["device"]``). The device is a property of the worker, not of the sweep: it is no
schedule key and is not stored in a study, so a GPU worker may join a study begun on CPU (the
records say which device trained each trial; scores agree up to the devices' rounding).

``--workers auto`` starts one worker per visible GPU, each pinned to its own with
``CUDA_VISIBLE_DEVICES`` (set in the worker's environment before torch initializes CUDA, so inside
the worker its GPU is ``cuda:0``), and the CPU count divided among them; without a GPU it is one
worker with every CPU thread, the CPU default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from peftspace.design import PeftspaceError

__all__ = ["DEVICES", "WorkerSlot", "resolve_device", "worker_slots"]

DEVICES = "auto | cpu | cuda | cuda:N"


def resolve_device(device: str | None = "auto"):
    """The ``torch.device`` that ``device`` names: ``auto`` is ``cuda`` where torch sees a GPU, else ``cpu``.

    Raises:
        PeftspaceError: a malformed name, or a CUDA device this machine does not have (one message,
            saying what torch sees and what to pass instead).
    """
    import torch

    name = "auto" if device is None else str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    kind, _, index = name.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise PeftspaceError(f"device={device!r} is not one of {DEVICES}")
    if not torch.cuda.is_available():
        built = f"torch {torch.__version__} built with CUDA {torch.version.cuda}" if torch.version.cuda else \
            f"torch {torch.__version__} built without CUDA"
        raise PeftspaceError(f"device={device!r} asks for a CUDA GPU, but torch sees none on this machine ({built}; "
                             f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); "
                             "use --device cpu (device='cpu') or auto")
    count = torch.cuda.device_count()
    if index and int(index) >= count:
        raise PeftspaceError(f"device={device!r}: torch sees {count} CUDA GPU(s), cuda:0..cuda:{count - 1}")
    return torch.device(name)


@dataclass(frozen=True)
class WorkerSlot:
    """One local worker process: the device its trials use, its torch threads, and its environment additions."""

    device: str
    threads: int
    env: dict = field(default_factory=dict)


def worker_slots(workers: int | str, device: str | None = "auto", threads: int | None = None, *,
                 gpu_count: int | None = None, cpu_count: int | None = None) -> list[WorkerSlot]:
    """The local workers to start for ``workers`` (a count or ``"auto"``) on ``device``.

    On a CUDA device every worker is pinned to one GPU through ``CUDA_VISIBLE_DEVICES`` (the ids of an
    inherited ``CUDA_VISIBLE_DEVICES`` are kept) and runs on ``cuda:0``, its only visible GPU:
    ``auto`` gives one worker per GPU, a count deals the workers round-robin over the GPUs (all to N
    for ``cuda:N``). On the CPU (``cpu``, or ``auto`` without a GPU) ``auto`` is one worker and
    nothing is pinned. ``threads`` (default: the CPU count divided by the workers) is each worker's.
    ``gpu_count`` / ``cpu_count`` default to what torch and the OS see.
    """
    import torch

    if workers != "auto" and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise PeftspaceError(f"workers={workers!r} must be a non-negative integer or 'auto'")
    cpu_count = (os.cpu_count() or 1) if cpu_count is None else cpu_count
    gpus = (torch.cuda.device_count() if torch.cuda.is_available() else 0) if gpu_count is None else gpu_count
    name = "auto" if device is None else str(device).strip().lower()
    if name == "auto":
        name = "cuda" if gpus else "cpu"
    if name != "cpu":
        if gpu_count is None:
            resolve_device(name)  # one clear error without CUDA, or for an index beyond the GPUs
        elif not gpus:
            raise PeftspaceError(f"device={device!r} asks for a CUDA GPU, but none is visible; use --device cpu or auto")
    if name == "cpu":
        count = 1 if workers == "auto" else workers
        return [WorkerSlot("cpu", threads or max(1, cpu_count // max(1, count)))] * count
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()] or \
        [str(i) for i in range(gpus)]
    visible = visible[:gpus]
    _, _, index = name.partition(":")
    pinned = [visible[int(index)]] if index else visible
    count = len(pinned) if workers == "auto" else workers
    each = threads or max(1, cpu_count // max(1, count))
    return [WorkerSlot("cuda:0", each, {"CUDA_VISIBLE_DEVICES": pinned[i % len(pinned)]}) for i in range(count)]
