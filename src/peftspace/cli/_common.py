"""What every command shares: the Typer app, the console, common options and small converters."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from peftspace.design import Design, PeftspaceError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Parameter-efficient fine-tuning design spaces.")
console = Console(width=None if sys.stdout.isatty() else 110)  # pipes and CI logs: no wrapping

MODEL = typer.Option("minilm", "--model", "-m", help="Model path, hub id, or alias ('minilm': the packaged MiniLM).")
DESIGN = typer.Option("s4-t5-base-recalled", "--design", "-d", help="Preset name or design file (.json/.yaml).")
BUDGET = typer.Option(None, "--budget", help="Override the budget: a fraction (0.005) or a count (120000).")


def resolve_design(design: str, budget: float | None) -> Design:
    from peftspace.api import _as_design

    chosen = _as_design(design)
    if budget is None:
        return chosen
    return chosen.with_budget(fraction=budget) if budget < 1 else chosen.with_budget(params=int(budget))


DEVICE = typer.Option("auto", "--device", help="Where trials run: auto (a CUDA GPU if torch sees one, else the CPU) | cpu | "
                                                "cuda | cuda:N. Not part of a sweep: workers on other devices may join it.")
WORKERS = typer.Option("1", "--workers", help="Local worker processes (0: none here, workers started elsewhere); auto: one per "
                                              "visible GPU, each pinned to its own (CUDA_VISIBLE_DEVICES), or one on a CPU.")


def parse_workers(value: str) -> int | str:
    """``--workers``: a non-negative count, or ``auto``."""
    if value.strip().lower() == "auto":
        return "auto"
    if not value.strip().isdigit():
        raise PeftspaceError(f"--workers {value!r} must be a non-negative integer or auto")
    return int(value)


DATA_DIR = typer.Option(None, "--data-dir", envvar="PEFTSPACE_DATA_DIR",
                        help="Directory with the tasks' files (layout of shared/data); without it, the Hugging Face hub.")


PRECISION = typer.Option("auto", "--precision", help="auto (bf16 where the CPU/GPU does bf16 natively) | bf16 | fp32: "
                                                      "bf16 autocast of forward passes, fp32 weights and optimizer.")
BUCKET_WINDOW = typer.Option(50, "--bucket-window", help="Length bucketing: sort windows of this many batches by length "
                                                         "(0: off; every example still once per epoch).")
FROZEN_BOTTOM = typer.Option("off", "--frozen-bottom", help="Cache the outputs of the blocks below the design's lowest tuned "
                                                             "one (BERT-like encoders): eval (when scoring; exact) | train (also "
                                                             "when training; those blocks then run without dropout) | off.")

FAST_DROPOUT = typer.Option(True, "--fast-dropout/--torch-dropout", help="Dropout masks drawn four per random number "
                                                                       "(the same Bernoulli masks, cheaper) or by torch.")

SCORE_VALIDATION = typer.Option(True, "--score-validation/--test-only", help="Also score the validation split carved from "
                                                                            "train, or only the test split designs are ranked by.")


LR_MULTIPLIERS = typer.Option(None, "--lr-multipliers", help="Per-strategy factors on --learning-rate, e.g. A=1,P=10,B=3,L=1 "
                                                                "(missing letters: 1), or a calibration.json (or its directory) "
                                                                "from `peftspace calibrate`: its chosen rates.")
MID_VALIDATION = typer.Option(False, "--mid-validation/--no-mid-validation", help="Also score the validation split after half "
                                                                                 "the steps (mid_validation_score).")


def parse_lr_multipliers(value: str | None, learning_rate: float) -> dict | None:
    """``--lr-multipliers``: ``A=1,P=10`` as given, or a calibration's chosen rates over ``learning_rate``.

    From a calibration (``calibration.json`` or a directory holding one), each strategy's multiplier is
    its chosen rate divided by this command's ``learning_rate``, so the strategy trains at the chosen
    rate whatever the base; strategies it chose no rate for keep 1. Raises one PeftspaceError naming
    every bad entry.
    """
    import json
    from pathlib import Path

    from peftspace.schedule import STRATEGY_LETTERS

    if value is None:
        return None
    path = Path(value)
    if path.is_dir():
        path = path / "calibration.json"
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise PeftspaceError(f"--lr-multipliers: no calibration file {str(path)!r} (give A=1,P=10,... or the "
                                 f"calibration.json that `peftspace calibrate` wrote)")
        try:
            chosen = json.loads(path.read_text())["chosen"]
            return {letter: float(f"{rate / learning_rate:.12g}") for letter, rate in chosen.items() if rate is not None}
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise PeftspaceError(f"--lr-multipliers: {str(path)!r} is not a calibration.json written by `peftspace calibrate` "
                                 f"(it needs 'chosen': a rate per strategy)") from None
    found, problems = {}, []
    for item in value.split(","):
        letter, equals, number = (part.strip() for part in item.partition("="))
        if not equals:
            problems.append(f"{item.strip()!r} is not LETTER=FACTOR")
            continue
        if letter not in STRATEGY_LETTERS:
            problems.append(f"unknown strategy {letter!r} in {item.strip()!r}; strategies are {', '.join(STRATEGY_LETTERS)}")
        elif letter in found:
            problems.append(f"{letter} is given twice")
        try:
            factor = float(number)
        except ValueError:
            problems.append(f"{number!r} in {item.strip()!r} is not a number")
            continue
        if not factor > 0 or factor == float("inf"):
            problems.append(f"{item.strip()!r}: the factor must be a positive number")
        found[letter] = factor
    if problems:
        raise PeftspaceError(f"--lr-multipliers {value!r}: " + "; ".join(problems)
                             + " (e.g. A=1,P=10,B=3,L=1, or a calibration.json)")
    return found


def make_schedule(steps, epochs, batch_size, learning_rate, max_length, max_train_examples, max_eval_examples, format_,
                  precision="auto", bucket_window=50, frozen_bottom="off", fast_dropout=True,
                  score_validation=True, *, lr_multipliers=None, mid_validation=False, head_learning_rate=None):
    from peftspace.schedule import Schedule

    return Schedule(max_steps=None if epochs else steps, epochs=epochs or 1.0, batch_size=batch_size,
                    learning_rate=learning_rate, max_length=max_length, max_train_examples=max_train_examples,
                    max_eval_examples=max_eval_examples, format=format_, precision=precision, bucket_window=bucket_window,
                    frozen_bottom=frozen_bottom, fast_dropout=fast_dropout,
                    score_validation=score_validation, lr_multipliers=lr_multipliers or {}, mid_validation=mid_validation,
                    head_learning_rate=head_learning_rate)


HEAD_LEARNING_RATE = typer.Option(None, "--head-learning-rate", help="Learning rate of the task head (default: "
                                                                     "--learning-rate); regression heads want more.")

STORAGE = typer.Option(None, "--storage", help="Optuna storage URL: sqlite:///FILE.db or postgresql://user:pw@host/db.")


def quiet_optuna() -> None:
    import logging

    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
