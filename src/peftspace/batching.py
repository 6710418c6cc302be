"""The order of training examples: shuffled epochs, optionally length-bucketed."""

from __future__ import annotations

import torch


def batch_stream(size: int, batch_size: int, window: int, generator: torch.Generator, lengths=None):
    """Batches of the positions ``0..size-1``, epoch after epoch, every position exactly once per epoch.

    Each epoch draws one permutation from ``generator``. Without bucketing (``window`` 0 or 1) the
    permutation is cut into batches in order, the last one short. With it, the permutation is cut
    into windows of ``window * batch_size`` positions; each window, when reached, is sorted by
    ``lengths(positions)`` (stable), cut into batches, and its batches run in an order drawn from
    ``generator``. Only an epoch's last window can be short, so an epoch has ``ceil(size /
    batch_size)`` batches either way, and only the windows a trial reaches need their lengths.
    """
    bucketing = window > 1
    span = window * batch_size if bucketing else size
    while True:
        order = torch.randperm(size, generator=generator).tolist()
        for start in range(0, size, span):
            chunk = order[start:start + span]
            if bucketing:
                keys = lengths(chunk)
                chunk = [chunk[i] for i in sorted(range(len(chunk)), key=keys.__getitem__)]
            cut = [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
            if bucketing:
                cut = [cut[i] for i in torch.randperm(len(cut), generator=generator).tolist()]
            yield from cut
