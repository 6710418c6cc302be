"""Your own task files in every command: compare, discover, and workers on another machine's --data-dir (real data)."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from peftspace.tasks import read_task_file

TINY = ["--steps", "2", "--batch-size", "4", "--max-length", "32", "--max-train-examples", "16", "--max-eval-examples", "8"]


def _glue_rows(path, columns):
    with path.open(encoding="utf-8") as f:
        return [[row[c] for c in columns] for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


@pytest.fixture
def user_tasks(tmp_path, data_dir):
    """A 3-class CSV task (MNLI's sample: premise, hypothesis) and a sentence-pair JSONL task (RTE), train and test
    files given, each declared by a task file (YAML and JSON)."""
    mine = tmp_path / "mine"
    mine.mkdir()
    mnli = data_dir / "glue" / "MNLI" / "sample_k16_seed42"
    for split, source in (("train", "train.tsv"), ("test", "dev_matched.tsv")):
        with (mine / f"nli_{split}.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["premise", "hypothesis", "label"])
            writer.writerows(_glue_rows(mnli / source, ["sentence1", "sentence2", "gold_label"]))
    (mine / "nli.yaml").write_text("name: nli3\ntrain: nli_train.csv\ntest: nli_test.csv\n"
                                   "text_columns: [premise, hypothesis]\nlabel_column: label\n")
    rte = data_dir / "glue" / "RTE"
    for split, source, count in (("train", "train.tsv", 120), ("test", "dev.tsv", 40)):
        rows = _glue_rows(rte / source, ["sentence1", "sentence2", "label"])[:count]
        (mine / f"pairs_{split}.jsonl").write_text("".join(json.dumps({"first": a, "second": b, "gold": y}) + "\n"
                                                           for a, b, y in rows))
    (mine / "pairs.json").write_text(json.dumps({"name": "pairs", "train": "pairs_train.jsonl", "test": "pairs_test.jsonl",
                                                 "text_columns": ["first", "second"], "label_column": "gold",
                                                 "metrics": ["accuracy", "f1"]}))
    return mine


def test_the_user_tasks_load_as_declared(user_tasks):
    nli = read_task_file(user_tasks / "nli.yaml").load()
    assert nli.spec.labels == ("contradiction", "entailment", "neutral") and len(nli.test) == 48
    pairs = read_task_file(user_tasks / "pairs.json").load()
    assert pairs.spec.labels == ("entailment", "not_entailment") and len(pairs.test) == 40 and len(pairs.spec.text_fields) == 2


def test_compare_trains_two_designs_on_two_task_files(user_tasks, tmp_path, run_cli, one_thread):
    out = tmp_path / "compare"
    tasks = f"{user_tasks / 'nli.yaml'},{user_tasks / 'pairs.json'}"
    code, printed = run_cli("compare", "--designs", "lora,bitfit", "--tasks", tasks, "--seeds", "0", "--out", str(out), *TINY)
    assert code == 0, printed
    records = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert sorted((r["design_name"], r["task"], r["status"]) for r in records) == \
        [("bitfit", "nli3", "ok"), ("bitfit", "pairs", "ok"), ("lora", "nli3", "ok"), ("lora", "pairs", "ok")]
    assert all(set(r["metrics"]["test"]) == ({"accuracy", "f1"} if r["task"] == "pairs" else {"accuracy", "f1_macro"})
               for r in records)
    assert "| design | nli3 | pairs | average |" in (out / "table.md").read_text()
    # The same data resumes; changed data is refused, not mixed with the old records.
    assert run_cli("compare", "--designs", "lora,bitfit", "--tasks", tasks, "--seeds", "0", "--out", str(out), *TINY)[0] == 0
    with (user_tasks / "pairs_train.jsonl").open("a") as f:
        f.write(json.dumps({"first": "a", "second": "b", "gold": "entailment"}) + "\n")
    code, printed = run_cli("compare", "--designs", "lora,bitfit", "--tasks", tasks, "--seeds", "0", "--out", str(out), *TINY)
    assert code == 2 and "trained on other data" in printed and "Traceback" not in printed, printed


def test_discover_runs_two_stages_on_two_task_files(user_tasks, tmp_path, run_cli, one_thread):
    from peftspace.discover import read_discovery

    url = f"sqlite:///{tmp_path}/d.db"
    code, printed = run_cli("discover", "--tasks", f"{user_tasks / 'nli.yaml'},{user_tasks / 'pairs.json'}", "--protocol",
                            "paper", "--samples-per-space", "2", "--stages", "grouping,allocation", "--name", "mine",
                            "--storage", url, "--out", str(tmp_path / "out"), "--workers", "1", "--threads", "1", *TINY)
    assert code == 0, printed
    log = read_discovery(url, "mine")
    assert log["status"] == "done" and log["tasks"] == ["nli3", "pairs"]
    assert [s["stage"] for s in log["stages"]] == ["S1", "S2"] and all(s["winner"] for s in log["stages"])
    assert log["task_files"]["pairs"]["sha256"]["test"] == read_task_file(user_tasks / "pairs.json").sha256["test"]
    assert log["final_space"] is not None


def test_a_worker_with_another_data_dir_joins_when_the_files_match_and_is_refused_when_one_differs(
        user_tasks, tmp_path, run_cli, one_thread):
    from peftspace.sweep import sweep_status

    url = f"sqlite:///{tmp_path}/s.db"
    code, printed = run_cli("sweep", "--space", "S3", "--tasks", str(user_tasks / "nli.yaml"), "--samples", "2",
                            "--workers", "0", "--storage", url, "--study", "mine", *TINY)
    assert code == 0, printed
    changed, same = tmp_path / "changed", tmp_path / "same"
    for folder in (changed, same):
        folder.mkdir()
        for name in ("nli_train.csv", "nli_test.csv"):
            shutil.copy(user_tasks / name, folder / name)
    with (changed / "nli_test.csv").open("a") as f:
        f.write("a premise,a hypothesis,neutral\n")
    code, printed = run_cli("worker", "--storage", url, "--study", "mine", "--data-dir", str(changed), "--threads", "1")
    assert code == 2 and "differs from the test file the sweep was created with" in printed, printed
    assert "Traceback" not in printed and sweep_status(url, "mine")["designs"]["waiting"] == 2
    user_tasks.rename(tmp_path / "moved")  # the creating machine's copy is gone: only --data-dir can supply the files
    code, printed = run_cli("worker", "--storage", url, "--study", "mine", "--data-dir", str(same), "--threads", "1")
    assert code == 0 and "this worker ran 2 trial(s)" in printed, printed
    assert sweep_status(url, "mine")["designs"]["complete"] == 2


def test_train_and_evaluate_a_task_file_and_a_csv_with_its_test_file(user_tasks, tmp_path, run_cli, one_thread):
    run = tmp_path / "run"
    code, printed = run_cli("train", "--task", str(user_tasks / "nli.yaml"), "--out", str(run), *TINY)
    assert code == 0, printed
    recorded = json.loads((run / "metrics.json").read_text())
    assert recorded["task"] == "nli3" and recorded["splits"]["test"] == 48
    code, printed = run_cli("evaluate", str(run), "--split", "test")
    assert code == 0 and "differs" not in printed, printed
    with (user_tasks / "nli_test.csv").open("a") as f:
        f.write("a premise,a hypothesis,neutral\n")
    code, printed = run_cli("evaluate", str(run))
    assert code == 2 and "differs from the test file" in printed, printed
    csv_run = tmp_path / "csv-run"
    code, printed = run_cli("train", "--task", str(user_tasks / "pairs_train.jsonl"), "--text-columns", "first,second",
                            "--label-column", "gold", "--test-file", str(user_tasks / "pairs_test.jsonl"), "--out",
                            str(csv_run), *TINY)
    assert code == 0, printed
    assert json.loads((csv_run / "metrics.json").read_text())["splits"]["test"] == 40
    assert run_cli("evaluate", str(csv_run))[0] == 0
