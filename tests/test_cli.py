"""The command line, run in-process as a user would type it."""

from __future__ import annotations

import json

import pytest


def test_build_prints_the_plan_and_the_real_count_on_minilm(run_cli, tmp_path):
    code, out = run_cli("build", "--design", "s4-t5-base-recalled", "--save", str(tmp_path / "saved"))
    assert code == 0, out
    assert "22,713,216" in out  # MiniLM's backbone parameters
    assert "matches the plan" in out
    for layer in range(6):
        assert f"│     {layer} │ enc" in out
    assert (tmp_path / "saved" / "peftspace_design.json").is_file()


def test_plan_reads_only_a_config(run_cli, tmp_path):
    from transformers import T5Config

    T5Config(d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_decoder_layers=12, num_heads=12).save_pretrained(tmp_path)
    assert not list(tmp_path.glob("*.safetensors"))
    code, out = run_cli("plan", "--model", str(tmp_path), "--design", "lora")
    assert code == 0, out
    assert "222,903,552" in out and "│    23 │ dec" in out


def test_design_files_and_budget_override(run_cli, tmp_path):
    design = tmp_path / "mine.yaml"
    design.write_text("grouping: [2, 4]\nstrategies: [B, AL]\nbudget_params: 60000\n")
    code, out = run_cli("build", "--design", str(design))
    assert code == 0, out
    assert "budget            60,000" in out
    code, out = run_cli("build", "--design", str(design), "--budget", "0.01")
    assert code == 0 and "(1.000% of the backbone)" in out


@pytest.mark.parametrize("args, message", [
    (["build", "--design", "nope"], "unknown preset 'nope'"),
    (["build", "--model", "/no/such/model"], "cannot load model '/no/such/model'"),
    (["build", "--design", "missing.json"], "design file 'missing.json' does not exist"),
    (["build", "--design", "lora", "--budget", "0.000001"], "lora size rounds below 1"),
])
def test_bad_input_gets_one_clear_error(run_cli, args, message):
    code, out = run_cli(*args)
    assert code == 2
    assert message in " ".join(out.split())
    assert "Traceback" not in out


def test_malformed_design_file(run_cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"grouping": [3, 3], "strategies": ["AX", "L"]}))
    code, out = run_cli("build", "--design", str(bad))
    assert code == 2 and "unknown strategy 'X'" in out


def test_presets_lists_the_recalled_design_as_unverified(run_cli):
    code, out = run_cli("presets")
    assert code == 0 and "RECALLED, NOT VERIFIED" in out


TINY_TRAINING = ["--steps", "8", "--batch-size", "8", "--max-length", "48", "--max-train-examples", "64", "--max-eval-examples", "32"]


def test_train_then_evaluate_reproduces_the_metrics(run_cli, tmp_path, data_dir):
    run_dir = tmp_path / "run"
    code, out = run_cli("train", "--design", "mam", "--task", "rte", "--data-dir", str(data_dir),
                    "--out", str(run_dir), *TINY_TRAINING)
    assert code == 0, out
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "ok" and record["task"] == "rte" and record["format"] == "head"
    assert (run_dir / "design" / "peftspace_design.json").is_file() and (run_dir / "head.safetensors").is_file()
    code, out = run_cli("evaluate", str(run_dir), "--data-dir", str(data_dir), "--split", "both")
    assert code == 0, out
    assert "differs" not in out
    assert f"accuracy {record['metrics']['test']['accuracy']:.2f}" in out


def test_train_on_a_missing_task_or_bad_csv_says_what_to_do(run_cli, tmp_path, data_dir):
    code, out = run_cli("train", "--task", "qnli", "--data-dir", str(data_dir), *TINY_TRAINING)
    assert code == 2 and "train.tsv" in out and "Traceback" not in out
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine,1\n")
    code, out = run_cli("train", "--task", str(bad), "--text-columns", "sentence", "--label-column", "label")
    assert code == 2 and "sentence" in out and "Traceback" not in out


def test_compare_writes_the_table_and_resumes(run_cli, tmp_path, data_dir):
    args = ["compare", "--designs", "lora,bitfit", "--tasks", "rte", "--seeds", "0", "--data-dir", str(data_dir),
            "--out", str(tmp_path), *TINY_TRAINING]
    code, out = run_cli(*args)
    assert code == 0, out
    table = (tmp_path / "table.md").read_text()
    assert "| lora |" in table and "| bitfit |" in table and "±" in table
    assert len((tmp_path / "trials.jsonl").read_text().splitlines()) == 2
    code, out = run_cli(*args)  # everything done: nothing runs again
    assert code == 0 and "trial lora|" not in out and "trial bitfit|" not in out
    assert len((tmp_path / "trials.jsonl").read_text().splitlines()) == 2
