"""Every command answers a misspelled option, a missing argument or a bad value with one usage message, never a traceback."""

from __future__ import annotations

import pytest
import typer.main

from peftspace.cli import app

COMMANDS = typer.main.get_command(app).commands
NUMERIC = {"build": "--budget", "plan": "--budget", "calibrate": "--steps", "compare": "--steps", "discover": "--steps",
           "sweep": "--steps", "train": "--steps", "worker": "--threads"}


def test_the_table_covers_every_command():
    assert set(NUMERIC) | {"evaluate", "presets", "report", "status"} == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_misspelled_option_names_the_closest_one(run_cli, command):
    options = [p.opts[0] for p in COMMANDS[command].params if p.opts[0].startswith("--") and len(p.opts[0]) > 5]
    typo = options[0][:-1] if options else "--bogus"
    code, printed = run_cli(command, typo, "1")
    assert code == 2 and "Traceback" not in printed, printed
    assert f"No such option: {typo}" in printed
    if options:
        assert options[0] in printed.split("No such option")[1]  # "(Possible options: ...)" names the intended one


@pytest.mark.parametrize("command", sorted(NUMERIC))
def test_a_value_of_the_wrong_type_is_a_usage_error(run_cli, command):
    code, printed = run_cli(command, NUMERIC[command], "abc")
    assert code == 2 and "Traceback" not in printed and f"Invalid value for '{NUMERIC[command]}'" in printed, printed


@pytest.mark.parametrize("args, says", [
    (["evaluate"], "Missing argument 'run'"),
    (["evaluate", "nowhere"], "nowhere"),
    (["status", "nowhere.db"], "does not exist"),
    (["status"], "give the store"),
    (["report", "nowhere.db"], "does not exist"),
    (["train", "--task", "sst2", "--precision", "fp64"], "precision='fp64' is not one of"),
    (["train", "--task", "sst2", "--batch-size", "0"], "batch_size=0 must be a positive integer"),
    (["train", "--task", "nosuchtask"], "nosuchtask"),
    (["train", "--task", "sst2", "--steps", "5", "--epochs", "1"], "not both"),
    (["sweep", "--space", "S0", "--tasks", "sst2", "--warmup", "1.5"], "warmup_ratio=1.5 must be a fraction"),
    (["sweep", "--space", "S0", "--tasks", "sst2", "--num-groups", "0"], "num_groups"),
    (["sweep", "--space", "S0", "--tasks", "sst2", "--budget", "-1"], "--budget -1.0 must be a positive"),
    (["sweep", "--space", "S0", "--tasks", "sst2", "--lora-targets", "q,z"], "lora_targets"),
    (["sweep", "--space", "S0", "--tasks", "sst2", "--adapter-placement", "sideways"], "adapter_placement='sideways'"),
    (["sweep", "--space", "S0", "--tasks", "sst2", "--workers", "many"], "--workers 'many'"),
    (["sweep", "--space", "S0", "--tasks", "sst2", "--schedule", "none.yaml"], "no such file"),
    (["discover", "--tasks", "sst2,nope.yaml"], "task file not found"),
    (["compare", "--seeds", "0,x"], "--seeds '0,x' must be"),
    (["calibrate", "--lr-multipliers", "A=2"], "drop --lr-multipliers"),
])
def test_a_bad_value_is_one_error_line(run_cli, tmp_path, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)  # nothing a failed command might create lands in the repository
    code, printed = run_cli(*args)
    assert code == 2 and "Traceback" not in printed and says in printed, printed
