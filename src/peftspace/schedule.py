"""How long and how a trial trains. No torch here: sweeps and stores read schedules too."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

from peftspace.design import PeftspaceError

PRECISIONS = ("auto", "bf16", "fp32")
FROZEN_BOTTOM_MODES = ("eval", "train", "off")
# Schedules stored before these keys existed ran in fp32 without bucketing, with dropout in every
# block; reading them so keeps old runs re-scorable as they ran and old sweeps resumable with the
# flags that reproduce them.
BEFORE_SPEEDUPS = {"precision": "fp32", "bucket_window": 0, "frozen_bottom": "off", "fast_dropout": False}
# Schedules stored before per-strategy learning rates and the midpoint score trained every strategy at
# ``learning_rate`` and scored only at the end.
BEFORE_CALIBRATION = {"lr_multipliers": {}, "mid_validation": False}
STRATEGY_LETTERS = ("A", "P", "B", "L")


def lr_multiplier_problems(multipliers) -> list[str]:
    """What is wrong with a ``{strategy letter: multiplier}`` mapping (empty if nothing)."""
    if not isinstance(multipliers, Mapping):
        return [f"lr_multipliers={multipliers!r} must be a mapping of strategy letters to multipliers, e.g. {{'P': 10}}"]
    problems = []
    for letter, value in multipliers.items():
        if letter not in STRATEGY_LETTERS:
            problems.append(f"lr_multipliers has unknown strategy {letter!r}; strategies are {list(STRATEGY_LETTERS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            problems.append(f"lr_multipliers[{letter!r}]={value!r} must be a positive finite number")
    return problems


def _all_ones() -> dict:
    return dict.fromkeys(STRATEGY_LETTERS, 1.0)


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
    precision: str = "auto"  # auto (bf16 where the hardware does it natively) | bf16 | fp32
    bucket_window: int = 50  # batches per length-sorted window; 0 or 1: no bucketing
    # Blocks below the design's lowest modified one, their outputs cached (peftspace.frozen_bottom; BERT-like
    # encoders): eval: when scoring (exact); train: when training too (those blocks then run without dropout); off.
    # Off by default: a miss (computed per example) costs more than a hit saves unless many designs share k.
    frozen_bottom: str = "off"
    score_validation: bool = True  # False: score the test split only (sweeps rank designs by it)
    fast_dropout: bool = True  # dropout masks drawn four per random number (peftspace.dropout); False: torch's own
    # Strategy letter -> factor on learning_rate for that strategy's parameters (missing letters: 1); the head keeps
    # head_learning_rate. Stored with every letter, so equal multipliers give equal schedules.
    lr_multipliers: dict = field(default_factory=_all_ones)
    mid_validation: bool = False  # also score the validation split after half the steps (record["mid_validation_score"])

    def __post_init__(self):
        problems = lr_multiplier_problems(self.lr_multipliers)
        if not problems:
            object.__setattr__(self, "lr_multipliers", {**_all_ones(), **{k: float(v) for k, v in self.lr_multipliers.items()}})
        if self.precision not in PRECISIONS:
            problems.append(f"precision={self.precision!r} is not one of {list(PRECISIONS)}")
        if not isinstance(self.bucket_window, int) or self.bucket_window < 0:
            problems.append(f"bucket_window={self.bucket_window!r} must be an integer >= 0 (0 or 1: no bucketing)")
        if self.frozen_bottom not in FROZEN_BOTTOM_MODES:
            problems.append(f"frozen_bottom={self.frozen_bottom!r} is not one of {list(FROZEN_BOTTOM_MODES)}")
        for flag in ("fast_dropout", "score_validation", "mid_validation"):
            if not isinstance(getattr(self, flag), bool):
                problems.append(f"{flag}={getattr(self, flag)!r} must be true or false")
        problems += self._number_problems()
        if problems:
            raise PeftspaceError("schedule: " + "; ".join(problems))

    def _number_problems(self) -> list[str]:
        def count(value, optional=False) -> bool:
            return (optional and value is None) or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)

        def number(value, low=0.0, *, above=True, optional=False, below=math.inf, finite=True) -> bool:
            if optional and value is None:
                return True
            return (isinstance(value, (int, float)) and not isinstance(value, bool) and (math.isfinite(value) or not finite)
                    and (value > low if above else value >= low) and (value < below or not finite))

        checks = [("max_steps", count(self.max_steps, optional=True), "a positive integer (or None: train for epochs)"),
                  ("epochs", number(self.epochs), "a positive number"),
                  *[(key, count(getattr(self, key)), "a positive integer")
                    for key in ("batch_size", "eval_batch_size", "max_length", "max_target_length", "log_every")],
                  *[(key, count(getattr(self, key), optional=True), "a positive integer or None (all)")
                    for key in ("max_train_examples", "max_eval_examples")],
                  # an infinite rate is allowed: the trial then diverges and is recorded as failed, with its reason
                  ("learning_rate", number(self.learning_rate, above=False, finite=False), "a number >= 0"),
                  ("head_learning_rate", number(self.head_learning_rate, above=False, optional=True, finite=False),
                   "a number >= 0 or None"),
                  ("warmup_ratio", number(self.warmup_ratio, above=False, below=1.0), "a fraction in [0, 1)"),
                  ("weight_decay", number(self.weight_decay, above=False), "a number >= 0"),
                  ("max_grad_norm", number(self.max_grad_norm), "a positive number")]
        return [f"{key}={getattr(self, key)!r} must be {what}" for key, ok, what in checks if not ok]

    @classmethod
    def from_dict(cls, data: dict) -> "Schedule":
        """A schedule from some of its keys; the others take today's defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PeftspaceError(f"schedule has unknown key(s) {unknown}; known keys are {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_stored(cls, data: dict) -> "Schedule":
        """A schedule a record or sweep stored; keys it predates take the values trials ran with before they existed."""
        return cls.from_dict({**BEFORE_SPEEDUPS, **BEFORE_CALIBRATION, **data})

    def __hash__(self) -> int:  # the multipliers' dict would make the generated hash fail
        return hash(tuple((k, tuple(v.items()) if isinstance(v, dict) else v) for k, v in self.to_dict().items()))

    def to_dict(self) -> dict:
        return asdict(self)

    def learning_rate_of(self, letter: str) -> float:
        """The learning rate of strategy ``letter``'s parameters."""
        return self.learning_rate * self.lr_multipliers[letter]
