"""What every command shares: the Typer app, the console, common options and small converters."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from peftspace.design import Design

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


def make_schedule(steps, epochs, batch_size, learning_rate, max_length, max_train_examples, max_eval_examples, format_,
                  precision="auto", bucket_window=50, frozen_bottom="off", fast_dropout=True,
                  score_validation=True):
    from peftspace.schedule import Schedule

    return Schedule(max_steps=None if epochs else steps, epochs=epochs or 1.0, batch_size=batch_size,
                    learning_rate=learning_rate, max_length=max_length, max_train_examples=max_train_examples,
                    max_eval_examples=max_eval_examples, format=format_, precision=precision, bucket_window=bucket_window,
                    frozen_bottom=frozen_bottom, fast_dropout=fast_dropout,
                    score_validation=score_validation)


STORAGE = typer.Option(None, "--storage", help="Optuna storage URL: sqlite:///FILE.db or postgresql://user:pw@host/db.")


def quiet_optuna() -> None:
    import logging

    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
