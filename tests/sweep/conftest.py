"""Shared pieces of the sweep tests: a tiny schedule, its CLI flags, and torch threads kept at one."""

from __future__ import annotations

import pytest
from postgres import postgres_url  # noqa: F401  (the session's PostgreSQL server, for its tests)

from peftspace.schedule import Schedule

TINY = Schedule(max_steps=2, batch_size=4, max_length=32, max_train_examples=16, max_eval_examples=8)
TINY_FLAGS = ["--steps", "2", "--batch-size", "4", "--max-length", "32", "--max-train-examples", "16",
              "--max-eval-examples", "8", "--threads", "1"]


@pytest.fixture
def tiny() -> Schedule:
    return TINY


@pytest.fixture
def tiny_flags() -> list[str]:
    return list(TINY_FLAGS)


@pytest.fixture
def one_thread():
    """In-process workers on one torch thread (two threads on a busy 2-core machine are ~10x slower)."""
    import torch

    before = torch.get_num_threads()
    yield 1
    torch.set_num_threads(before)
