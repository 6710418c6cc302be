"""The step and sweep benchmarks compare like with like: rows, their references, the peers' setup, the ablation."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    # By path under its own name: a plain ``import sweep`` could find tests/sweep instead.
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


step, sweep = _load("step"), _load("sweep")


@pytest.mark.parametrize("name, precision, dropout", [
    ("frozen floor", "fp32", "torch"), ("peft LoRA bf16", "bf16", "torch"), ("lora", "fp32", "fast"),
    ("adapter bf16", "bf16", "fast"), ("full fine-tuning", "fp32", "torch"),  # names benchmarks/gpu.sh passes
    ("frozen floor bf16 fast-dropout", "bf16", "fast"), ("lora bf16 torch-dropout", "bf16", "torch")])
def test_a_row_name_says_its_precision_and_dropout(name, precision, dropout):
    row = step.VARIANTS[name]
    assert (row.precision, row.dropout, row.name) == (precision, dropout, name)


def test_every_row_is_compared_with_the_floor_and_peft_of_its_own_dropout():
    for name, row in step.VARIANTS.items():
        floor, peft = step.VARIANTS[step.floor_of(row)], step.VARIANTS[step.peft_of(row)]
        assert (floor.base, floor.bf16, floor.fast_dropout) == (step.FLOOR, row.bf16, row.fast_dropout), name
        assert (peft.base, peft.bf16, peft.fast_dropout) == (step.PEFT, True, row.fast_dropout), name
    designs = [r for r in step.VARIANTS.values() if r.base in step.OURS]
    assert len(designs) == 4 * len(step.OURS)  # fp32 and bf16, torch and fast dropout, for each design


@pytest.mark.parametrize("name, fast", [("frozen floor", False), ("frozen floor bf16 fast-dropout", True),
                                        ("peft LoRA", False), ("peft LoRA fast-dropout", True),
                                        ("lora", True), ("lora torch-dropout", False)])
def test_a_row_trains_with_the_dropout_its_name_says(name, fast, minilm_path):
    from torch import nn

    from peftspace.dropout import FastDropout

    model, _ = step.build(name)
    kinds = {type(m) for m in model.modules() if isinstance(m, (nn.Dropout, FastDropout))}
    assert kinds == ({FastDropout} if fast else {nn.Dropout})


def _args(monkeypatch, *argv):
    monkeypatch.setattr(sys, "argv", ["sweep.py", *argv])
    return sweep.parse_args()


def test_the_strong_peer_sets_length_grouping_and_bf16_where_the_cpu_does_it(tmp_path):
    from transformers import TrainingArguments

    from peftspace.precision import native_bf16

    strong = TrainingArguments(output_dir=str(tmp_path), report_to=[], **sweep.peer_arguments(True, "cpu"))
    weak = TrainingArguments(output_dir=str(tmp_path), report_to=[], **sweep.peer_arguments(False, "cpu"))
    assert strong.use_cpu and weak.use_cpu
    assert (strong.bf16, weak.bf16) == (native_bf16("cpu"), False)
    assert strong.train_sampling_strategy == "group_by_length" and weak.train_sampling_strategy == "random"


def test_an_ablation_row_changes_our_default_run_or_is_skipped(capsys, monkeypatch):
    labels = [label for label, _ in sweep.ablation_rows(_args(monkeypatch, "--ablation"))]
    assert len(labels) == len(sweep.ABLATIONS)
    assert not any("frozen_bottom=off" in label for label in labels)  # off is the default: such a row measures nothing
    kept = [label for label, _ in sweep.ablation_rows(_args(monkeypatch, "--ablation", "--schedule", "bucket_window=0"))]
    assert not any("bucket_window" in label for label in kept) and "bucket_window=0" in capsys.readouterr().out


GPU_SCRIPT = BENCHMARKS / "gpu.sh"


def test_the_gpu_check_asks_only_for_rows_the_step_benchmark_has():
    import re
    import shlex

    text = GPU_SCRIPT.read_text().replace("\\\n", " ")
    asked = [shlex.split(line.partition("--only")[2]) for line in text.splitlines() if "--only" in line]
    assert len(asked) == 2  # MiniLM and T5-base
    for names in asked:
        names = [n for n in names if not re.match(r"^-", n)]
        assert names and set(names) <= set(step.ROWS), set(names) - set(step.ROWS)
        # every design row asked for has its like-for-like floor asked for too
        for name in names:
            if step.VARIANTS[name].base in step.OURS:
                assert step.floor_of(step.VARIANTS[name]) in names, name


def test_the_gpu_check_summary_compares_like_with_like(tmp_path):
    """The closing summary of gpu.sh, run on recorded CPU results: each design against its own floor and peft."""
    import json
    import subprocess

    docs = BENCHMARKS.parent / "docs" / "performance"
    (tmp_path / "step-minilm.json").write_text((docs / "step-fixed64.json").read_text())
    (tmp_path / "sweep.json").write_text((docs / "sweep.json").read_text())
    summary = GPU_SCRIPT.read_text().partition("<<'EOF'\n")[2].partition("\nEOF\n")[0]
    done = subprocess.run([sys.executable, "-", str(tmp_path)], input=summary, capture_output=True, text=True, check=True)
    rows = {r["row"]: r for r in json.loads((docs / "step-fixed64.json").read_text())["rows"]}
    lora = rows["lora bf16"]
    floor = rows["frozen floor bf16 fast-dropout"]["median_ms"]
    assert (f"MiniLM lora bf16: {lora['median_ms']:.1f} ms/step, {lora['median_ms'] / floor:.2f}x "
            "'frozen floor bf16 fast-dropout'") in done.stdout
    assert "'peft LoRA bf16 fast-dropout'" in done.stdout and "'peft LoRA bf16' (torch dropout)" in done.stdout
    sweep_report = json.loads((docs / "sweep.json").read_text())
    peer = sum(r["seconds"] for r in sweep_report["baseline"]["rows"][1:])
    ours = sum(r["seconds"] for r in sweep_report["ours"][0]["rows"][1:])
    assert f"trials after the first: peft + Trainer {peer:.0f} s / ours {ours:.0f} s = {peer / ours:.2f}x" in done.stdout


def test_real_length_steps_are_summarised_per_pass_over_the_batches():
    times = [10.0, 30.0, 12.0, 28.0, 50.0]  # two batch shapes alternating, then a partial pass
    assert step.cycle_means(times, 2) == [20.0, 20.0]
    assert step.median_iqr([20.0]) == (20.0, 0.0)


def test_the_sweep_floor_stops_each_designs_backward_at_its_lowest_lora_layer(monkeypatch, data_dir):
    """The floor runs our batches for each design, and its backward reaches exactly the layers the design tunes."""
    from peftspace.design.space import sample
    from peftspace.families import backbone_spec

    args = _args(monkeypatch, "--steps", "2", "--designs", "2", "--threads", "2", "--data-dir", str(data_dir))
    config = sweep.load_config(sweep.MODEL)
    designs = sample(sweep.SPACE, 2, args.seed, backbone_spec(config))
    # Seed 0's first two designs, read off their per-layer ranks: LoRA from layer 2 up, and on layer 0.
    assert [sweep.layer_ranks(config, d) for d in designs] == [{2: 37, 3: 25, 5: 12}, {0: 12, 3: 25, 4: 37}]
    floor = sweep.run_floor(designs, args, sweep.our_schedule(args))
    assert [row["lowest_layer"] for row in floor["rows"]] == [2, 0]
    # blocks whose output autograd tracks: the backward runs through these and no others
    assert [row["tracked_blocks"] for row in floor["rows"]] == [[2, 3, 4, 5], [0, 1, 2, 3, 4, 5]]
    for row in floor["rows"]:
        assert row["seconds"] >= row["train_s"] + row["score_s"] and 0 < row["bottom_s"] < row["train_s"]


@pytest.mark.parametrize("recorded", ["step-fixed64.json", "step-real-bf16.json"])
def test_the_step_summary_states_how_close_to_peft_the_floor_itself_gets(recorded):
    import json

    report = json.loads((BENCHMARKS.parent / "docs" / "performance" / recorded).read_text())
    ms = {r["row"]: r["median_ms"] for r in report["rows"]}
    floor, users, same = ms["frozen floor bf16 fast-dropout"], ms["peft LoRA bf16"], ms["peft LoRA bf16 fast-dropout"]
    slowest = max(("adapter bf16", "prefix bf16", "bitfit bf16", "lora bf16"), key=ms.get)
    (line,) = step.floor_bound(report)
    assert line.startswith(f"the bf16 frozen floor (fast dropout) is {floor / users:.2f}x peft's bf16 LoRA as users run it "
                           f"(torch dropout) and {floor / same:.2f}x peft's bf16 LoRA with fast dropout")
    assert line.endswith(f"at most {ms[slowest] / users:.2f}x peft as users run it ({slowest})")
    assert line in step.table(report)


def test_the_peer_s_imports_are_timed_in_a_fresh_interpreter_not_this_one():
    import torch  # noqa: F401  here they are cached; in a fresh interpreter torch alone takes well over 0.1 s

    assert sweep.peer_import_seconds() > 0.1
