"""Option groups that several commands share, each defined once.

A group is a set of typer options; ``with_options`` adds a group's options to a command and hands them
to it as one dict (keyword = the group's name). The schedule's options default to None (not given),
so ``--schedule FILE`` sets a base that only the flags actually given override.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, fields, replace
from pathlib import Path

import typer

from peftspace.design.errors import PeftspaceError


@dataclass(frozen=True)
class OptionGroup:
    """``options``: parameter name -> (type, ``typer.Option``)."""

    name: str
    options: dict


def with_options(*groups: OptionGroup):
    """Add the groups' options to a command, which receives each group as a dict under the group's name."""

    def decorate(command):
        signature = inspect.signature(command)
        own = [p for p in signature.parameters.values() if p.name not in {g.name for g in groups}]
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
                 for group in groups for name, (kind, option) in group.options.items()]
        clash = {p.name for p in own} & {p.name for p in added}
        if clash:
            raise TypeError(f"{command.__name__}: options {sorted(clash)} are defined twice")

        @functools.wraps(command)
        def run(**given):
            bundles = {g.name: {name: given.pop(name) for name in g.options} for g in groups}
            return command(**given, **bundles)

        run.__signature__ = signature.replace(parameters=sorted(own + added, key=lambda p: p.kind))
        run.__annotations__ = {**command.__annotations__, **{p.name: p.annotation for p in added}}
        for group in groups:
            run.__annotations__.pop(group.name, None)
        return run

    return decorate


def _schedule_default(key: str):
    from peftspace.schedule import Schedule

    return getattr(Schedule(), key)


def _opt(kind, flag: str, help_text: str, key: str | None = None):
    """A schedule option that defaults to None (not given); its help names the schedule's default."""
    default = f" (default: {_schedule_default(key)})" if key else ""
    return kind, typer.Option(None, *flag.split(" "), help=help_text + default, show_default=False)


SCHEDULE = OptionGroup("training", {
    "schedule_file": _opt(Path, "--schedule", "A YAML/JSON file of schedule keys (peftspace.Schedule); the flags "
                                              "given override it."),
    "steps": _opt(int, "--steps", "Optimizer steps per trial.", "max_steps"),
    "batch_size": _opt(int, "--batch-size", "Training batch size.", "batch_size"),
    "eval_batch_size": _opt(int, "--eval-batch-size", "Scoring batch size.", "eval_batch_size"),
    "learning_rate": _opt(float, "--learning-rate", "Learning rate of the strategies.", "learning_rate"),
    "head_learning_rate": _opt(float, "--head-learning-rate", "Learning rate of the task head (default: "
                                                              "--learning-rate); regression heads want more."),
    "warmup": _opt(float, "--warmup", "Linear warm-up, as a fraction of the steps.", "warmup_ratio"),
    "weight_decay": _opt(float, "--weight-decay", "AdamW weight decay.", "weight_decay"),
    "max_length": _opt(int, "--max-length", "Input tokens kept per example.", "max_length"),
    "target_length": _opt(int, "--target-length", "Target tokens kept (text-to-text).", "max_target_length"),
    "max_train_examples": _opt(int, "--max-train-examples", "Use at most this many training examples."),
    "max_eval_examples": _opt(int, "--max-eval-examples", "Score at most this many examples per split."),
    "precision": _opt(str, "--precision", "auto (bf16 where the CPU/GPU does bf16 natively) | bf16 | fp32: bf16 autocast "
                                          "of forward passes, fp32 weights and optimizer.", "precision"),
    "bucket_window": _opt(int, "--bucket-window", "Length bucketing: sort windows of this many batches by length (0: off; "
                                                  "every example still once per epoch).", "bucket_window"),
    "frozen_bottom": _opt(str, "--frozen-bottom", "Cache the outputs of the blocks below the design's lowest tuned one "
                                                  "(BERT-like encoders): eval (when scoring; exact) | train (also when "
                                                  "training; those blocks then run without dropout) | off.", "frozen_bottom"),
    "fast_dropout": _opt(bool, "--fast-dropout/--torch-dropout", "Dropout masks drawn four per random number (the same "
                                                                 "Bernoulli masks, cheaper) or by torch.", "fast_dropout"),
    "score_validation": _opt(bool, "--score-validation/--test-only", "Also score the validation split, or only the test "
                                                                     "split.", "score_validation"),
    "mid_validation": _opt(bool, "--mid-validation/--no-mid-validation", "Also score the validation split after half the "
                                                                         "steps (discover's racing: on unless --no-...)."),
    "lr_multipliers": _opt(str, "--lr-multipliers", "Per-strategy factors on --learning-rate, e.g. A=1,P=10,B=3,L=1 (missing "
                                                    "letters: 1), or a calibration.json (or its directory) from `peftspace "
                                                    "calibrate`: its chosen rates."),
})

# Command-line name -> Schedule field, where they differ.
_SCHEDULE_KEYS = {"steps": "max_steps", "warmup": "warmup_ratio", "target_length": "max_target_length"}


def make_schedule(training: dict, **extra):
    """The schedule of a command: the ``--schedule`` file (else the defaults), then each flag given, then ``extra``.

    ``lr_multipliers`` is parsed against the final learning rate (see ``parse_lr_multipliers``).
    """
    from peftspace.schedule import Schedule

    given = {k: v for k, v in training.items() if v is not None and k not in ("schedule_file", "lr_multipliers")}
    base = read_schedule_file(training["schedule_file"]) if training.get("schedule_file") else {}
    values = {**base, **{_SCHEDULE_KEYS.get(k, k): v for k, v in given.items()}, **extra}
    schedule = Schedule.from_dict(values)
    if training.get("lr_multipliers") is not None:
        schedule = replace(schedule, lr_multipliers=parse_lr_multipliers(training["lr_multipliers"], schedule.learning_rate))
    return schedule


def read_schedule_file(path) -> dict:
    """A schedule file's keys: a YAML/JSON mapping of ``Schedule`` fields (unknown keys: one error, with the known)."""
    import difflib

    import yaml

    from peftspace.schedule import Schedule

    path = Path(path)
    if not path.is_file():
        raise PeftspaceError(f"--schedule {str(path)!r}: no such file (a YAML/JSON file of schedule keys)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise PeftspaceError(f"--schedule {str(path)!r} is not valid YAML/JSON: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise PeftspaceError(f"--schedule {str(path)!r} must hold a mapping of schedule keys, e.g. max_steps: 300")
    known = [f.name for f in fields(Schedule)]
    unknown = [k for k in data if k not in known]
    if unknown:
        hints = [f"{k!r}" + (f" (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(str(k), known, 1)) else "")
                 for k in unknown]
        raise PeftspaceError(f"--schedule {str(path)!r}: unknown key(s) {', '.join(hints)}; schedule keys are {known}")
    return data


def parse_lr_multipliers(value: str | None, learning_rate: float) -> dict | None:
    """``--lr-multipliers``: ``A=1,P=10`` as given, or a calibration's chosen rates over ``learning_rate``.

    From a calibration (``calibration.json`` or a directory holding one), each strategy's multiplier is
    its chosen rate divided by this command's ``learning_rate``, so the strategy trains at the chosen
    rate whatever the base; strategies it chose no rate for keep 1. Raises one PeftspaceError naming
    every bad entry.
    """
    import json

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


def _space_opt(kind, flag: str, help_text: str):
    return kind, typer.Option(None, *flag.split(" "), help=help_text + " (default: the space's)", show_default=False)


SPACE = OptionGroup("space_options", {
    "budget": _space_opt(float, "--budget", "Parameter budget of every design: a fraction of the backbone (0.005) or a "
                                            "count (120000)."),
    "num_groups": _space_opt(int, "--num-groups", "Layer groups of the space's designs."),
    "adapter_placement": _space_opt(str, "--adapter-placement", "pfeiffer | houlsby | parallel."),
    "adapter_nonlinearity": _space_opt(str, "--adapter-nonlinearity", "Activation inside adapters (relu, gelu, ...)."),
    "adapter_scaling": _space_opt(float, "--adapter-scaling", "Factor on the adapters' output."),
    "prefix_reparameterize": _space_opt(bool, "--prefix-mlp/--no-prefix-mlp", "Train prefixes through an MLP."),
    "prefix_mlp_hidden": _space_opt(int, "--prefix-mlp-hidden", "Hidden width of that MLP."),
    "lora_targets": _space_opt(str, "--lora-targets", "Projections LoRA adapts, comma-separated from q,k,v,o,ffn_in,ffn_out."),
    "lora_alpha": _space_opt(float, "--lora-alpha", "LoRA's alpha."),
    "lora_scaling": _space_opt(str, "--lora-scaling", "standard (alpha/r) | rslora (alpha/sqrt(r)); discover's racing: "
                                                      "rslora unless given."),
    "lora_dropout": _space_opt(float, "--lora-dropout", "Dropout on LoRA's input."),
})


def apply_space_options(space, space_options: dict, model: str):
    """``space`` with the flags given: budget, groups and strategy options (one DesignError for what is invalid)."""
    options = {k: v for k, v in space_options.items() if v is not None and k not in ("budget", "num_groups")}
    if "lora_targets" in options:
        options["lora_targets"] = tuple(t.strip() for t in options["lora_targets"].split(",") if t.strip())
    changes = {}
    if options:
        changes["options"] = replace(space.options, **options)
    if space_options.get("num_groups") is not None:
        changes["num_groups"] = space_options["num_groups"]
    budget = space_options.get("budget")
    if budget is not None:
        if not budget > 0:
            raise PeftspaceError(f"--budget {budget!r} must be a positive fraction (0.005) or count (120000)")
        if budget >= 1:
            from peftspace.families import backbone_spec
            from peftspace.models import load_config

            budget = budget / backbone_spec(load_config(model)).num_parameters
        changes["budget_fraction"] = budget
    if not changes:
        return space
    return space.restrict(space.name, **changes).validate()


def _run_group():
    from peftspace.cli._common import DATA_DIR, DEVICE, STORAGE, THREADS, WORKERS

    return OptionGroup("run", {
        "workers": (str, WORKERS), "device": (str, DEVICE), "storage": (str, STORAGE),
        "seed": (int, typer.Option(0, "--seed", help="Seed of the designs drawn and their training.")),
        "data_dir": (Path, DATA_DIR), "threads": (int, THREADS),
    })


RUN = _run_group()
