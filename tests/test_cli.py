"""The command line, run in-process as a user would type it."""

from __future__ import annotations

import json
import sys

import pytest

from peftspace import cli


def run(monkeypatch, capsys, *args) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["peftspace", *args])
    try:
        cli.main()
        code = 0
    except SystemExit as done:
        code = done.code or 0
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_build_prints_the_plan_and_the_real_count_on_minilm(monkeypatch, capsys, tmp_path):
    code, out = run(monkeypatch, capsys, "build", "--design", "s4-t5-base-recalled", "--save", str(tmp_path / "saved"))
    assert code == 0, out
    assert "22,713,216" in out  # MiniLM's backbone parameters
    assert "matches the plan" in out
    for layer in range(6):
        assert f"│     {layer} │ enc" in out
    assert (tmp_path / "saved" / "peftspace_design.json").is_file()


def test_plan_reads_only_a_config(monkeypatch, capsys, tmp_path):
    from transformers import T5Config

    T5Config(d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_decoder_layers=12, num_heads=12).save_pretrained(tmp_path)
    assert not list(tmp_path.glob("*.safetensors"))
    code, out = run(monkeypatch, capsys, "plan", "--model", str(tmp_path), "--design", "lora")
    assert code == 0, out
    assert "222,903,552" in out and "│    23 │ dec" in out


def test_design_files_and_budget_override(monkeypatch, capsys, tmp_path):
    design = tmp_path / "mine.yaml"
    design.write_text("grouping: [2, 4]\nstrategies: [B, AL]\nbudget_params: 60000\n")
    code, out = run(monkeypatch, capsys, "build", "--design", str(design))
    assert code == 0, out
    assert "budget            60,000" in out
    code, out = run(monkeypatch, capsys, "build", "--design", str(design), "--budget", "0.01")
    assert code == 0 and "(1.000% of the backbone)" in out


@pytest.mark.parametrize("args, message", [
    (["build", "--design", "nope"], "unknown preset 'nope'"),
    (["build", "--model", "/no/such/model"], "cannot load model '/no/such/model'"),
    (["build", "--design", "missing.json"], "design file 'missing.json' does not exist"),
    (["build", "--design", "lora", "--budget", "0.000001"], "lora size rounds below 1"),
])
def test_bad_input_gets_one_clear_error(monkeypatch, capsys, args, message):
    code, out = run(monkeypatch, capsys, *args)
    assert code == 2
    assert message in " ".join(out.split())
    assert "Traceback" not in out


def test_malformed_design_file(monkeypatch, capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"grouping": [3, 3], "strategies": ["AX", "L"]}))
    code, out = run(monkeypatch, capsys, "build", "--design", str(bad))
    assert code == 2 and "unknown strategy 'X'" in out


def test_presets_lists_the_recalled_design_as_unverified(monkeypatch, capsys):
    code, out = run(monkeypatch, capsys, "presets")
    assert code == 0 and "RECALLED, NOT VERIFIED" in out
