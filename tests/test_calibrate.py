"""Calibration: a learning rate per strategy chosen on validation scores; --lr-multipliers; resuming."""

from __future__ import annotations

import json

import numpy as np
import pytest

from peftspace.calibrate import RESULT, RUNS, calibrate, summarize
from peftspace.cli.options import SCHEDULE, make_schedule, parse_lr_multipliers
from peftspace.design import PeftspaceError
from peftspace.schedule import Schedule

TINY = Schedule(max_steps=3, batch_size=8, max_length=48, max_train_examples=48, max_eval_examples=64, learning_rate=1e-3,
                log_every=1)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.parametrize("value, message", [
    ("A=1,P", "'P' is not LETTER=FACTOR"),
    ("X=2", "unknown strategy 'X' in 'X=2'; strategies are A, P, B, L"),
    ("P=0", "'P=0': the factor must be a positive number"),
    ("L=-3", "'L=-3': the factor must be a positive number"),
    ("B=inf", "'B=inf': the factor must be a positive number"),
    ("P=ten", "'ten' in 'P=ten' is not a number"),
    ("P=1,P=2", "P is given twice"),
    ("missing.json", "no calibration file 'missing.json'"),
])
def test_bad_multipliers_get_a_clear_error(value, message):
    with pytest.raises(PeftspaceError) as error:
        parse_lr_multipliers(value, 1e-3)
    assert message in str(error.value)


def test_every_bad_multiplier_is_named_at_once():
    with pytest.raises(PeftspaceError) as error:
        parse_lr_multipliers("X=2,P=0,L", 1e-3)
    message = str(error.value)
    assert "unknown strategy 'X'" in message and "'P=0'" in message and "'L' is not LETTER=FACTOR" in message
    assert "e.g. A=1,P=10,B=3,L=1" in message


def test_multipliers_from_text_and_from_a_calibration(tmp_path):
    assert parse_lr_multipliers(None, 1e-3) is None
    assert parse_lr_multipliers("A=1, P = 10,B=3,L=1", 1e-3) == {"A": 1.0, "P": 10.0, "B": 3.0, "L": 1.0}
    (tmp_path / RESULT).write_text(json.dumps({"chosen": {"A": 3e-3, "P": 3e-2, "B": None, "L": 1e-3}}))
    assert parse_lr_multipliers(str(tmp_path / RESULT), 1e-3) == {"A": 3.0, "P": 30.0, "L": 1.0}
    assert parse_lr_multipliers(str(tmp_path), 2e-3) == {"A": 1.5, "P": 15.0, "L": 0.5}  # the chosen rates, whatever the base
    (tmp_path / "other.json").write_text(json.dumps({"lr": 1}))
    with pytest.raises(PeftspaceError, match="is not a calibration.json written by `peftspace calibrate`"):
        parse_lr_multipliers(str(tmp_path / "other.json"), 1e-3)


def _flags(**given):
    """The schedule group's values as a command receives them: None for every flag not given."""
    return {**dict.fromkeys(SCHEDULE.options), **given}


def test_make_schedule_takes_the_flags_given_over_the_schedule_file_over_the_defaults(tmp_path):
    assert make_schedule(_flags()) == Schedule()
    plain = make_schedule(_flags(steps=100, batch_size=16, learning_rate=2e-3, max_eval_examples=50, precision="fp32",
                                 score_validation=False, warmup=0.1, weight_decay=0.01, target_length=32, eval_batch_size=8))
    assert (plain.max_steps, plain.batch_size, plain.learning_rate, plain.max_eval_examples, plain.precision,
            plain.score_validation, plain.warmup_ratio, plain.weight_decay, plain.max_target_length, plain.eval_batch_size) == \
        (100, 16, 2e-3, 50, "fp32", False, 0.1, 0.01, 32, 8)
    assert plain.lr_multipliers == Schedule().lr_multipliers and plain.mid_validation is False
    rates = make_schedule(_flags(learning_rate=2e-3, lr_multipliers="P=10", mid_validation=True))
    assert rates.lr_multipliers["P"] == 10.0 and rates.learning_rate_of("P") == pytest.approx(2e-2) and rates.mid_validation
    file = tmp_path / "schedule.yaml"
    file.write_text("max_steps: 50\nbatch_size: 8\nweight_decay: 0.1\n")
    layered = make_schedule(_flags(schedule_file=file, batch_size=4))
    assert (layered.max_steps, layered.batch_size, layered.weight_decay, layered.learning_rate) == (50, 4, 0.1, 1e-3)
    file.write_text("max_step: 50\n")
    with pytest.raises(PeftspaceError, match="unknown key.*'max_step' \\(did you mean 'max_steps'\\?\\)"):
        make_schedule(_flags(schedule_file=file))
    for text in ("- 1\n", "a: [\n"):
        file.write_text(text)
        with pytest.raises(PeftspaceError, match="--schedule"):
            make_schedule(_flags(schedule_file=file))
    with pytest.raises(PeftspaceError, match="no such file"):
        make_schedule(_flags(schedule_file=tmp_path / "none.yaml"))
    with pytest.raises(PeftspaceError, match="schedule"):
        make_schedule(_flags(batch_size=0))


def _run(strategy, task, rate, validation, test, status="ok"):
    return {"strategy": strategy, "task_name": task, "rate": rate, "status": status, "validation_score": validation,
            "score": test, "key": f"{strategy}|{task}|{rate}|0"}


def test_the_chooser_reads_validation_scores_only_and_skips_rates_that_failed():
    runs = [_run("P", "sst2", 1e-3, 60, 90), _run("P", "stsb", 1e-3, 60, 90),  # best on test, not on validation
            _run("P", "sst2", 1e-2, 80, 50), _run("P", "stsb", 1e-2, 70, 50),
            _run("P", "sst2", 1e-1, 99, 99), _run("P", "stsb", 1e-1, None, None, status="failed"),
            _run("L", "sst2", 1e-3, None, None, "failed"), _run("L", "stsb", 1e-3, 10, 10)]
    result = summarize(runs, ["sst2", "stsb"], [1e-3, 1e-2, 1e-1], ["P", "L"], 1e-3)
    assert result["chosen"] == {"P": 1e-2, "L": None} and result["lr_multipliers"] == {"P": 10.0}
    row = next(r for r in result["table"] if r["strategy"] == "P" and r["rate"] == 1e-1)
    assert row["mean_validation_score"] is None and row["failed"] == ["stsb"]
    assert next(r for r in result["table"] if r["rate"] == 1e-2)["mean_validation_score"] == 75.0


def test_calibrate_picks_the_best_mean_validation_rate_and_resumes(data_dir, tmp_path):
    out, rates, tasks = tmp_path / "cal", (1e-4, 3e-2), ["sst2", "rte"]
    trained = []
    result = calibrate("minilm", tasks, TINY, rates=rates, strategies=("P", "L"), data_dir=data_dir, out=out,
                       progress=trained.append)
    assert len(trained) == 8 and json.loads((out / RESULT).read_text()) == json.loads(json.dumps(result))

    records = [json.loads(line) for line in (out / RUNS).read_text().splitlines()]
    assert len(records) == 8 and all(r["status"] == "ok" for r in records)
    for letter in ("P", "L"):
        means = {rate: np.mean([r["validation_score"] for r in records if r["strategy"] == letter and r["rate"] == rate])
                 for rate in rates}
        best = max(means.values())
        assert result["chosen"][letter] == next(rate for rate in rates if means[rate] == best)
        assert result["lr_multipliers"][letter] == pytest.approx(result["chosen"][letter] / TINY.learning_rate)
    for record in records:  # the rate trains the strategy's parameters; the head stays at the base rate
        schedule = Schedule.from_stored(record["schedule"])
        assert schedule.learning_rate_of(record["strategy"]) == pytest.approx(record["rate"])
        assert schedule.head_learning_rate == TINY.learning_rate and schedule.score_validation
        assert record["metrics"].keys() == {"validation", "test"}

    again = calibrate("minilm", tasks, TINY, rates=rates, strategies=("P", "L"), data_dir=data_dir, out=out,
                      progress=trained.append)
    assert len(trained) == 8 and again == result  # nothing re-ran
    with pytest.raises(PeftspaceError, match=r"trained with other settings.*max_steps: stored 3, given 4"):
        calibrate("minilm", tasks, Schedule(**{**TINY.__dict__, "max_steps": 4}), rates=rates, strategies=("P", "L"),
                  data_dir=data_dir, out=out)


def test_bad_calibration_arguments_are_reported_together():
    with pytest.raises(PeftspaceError) as error:
        calibrate("minilm", [], TINY, rates=(1e-3, -1.0, 1e-3), strategies=("P", "X"))
    message = str(error.value)
    for part in ("no tasks given", "rate -1.0 must be a positive", "repeat a rate", "unknown strategy 'X'"):
        assert part in message


def test_calibrate_command_prints_the_table_and_train_takes_its_file(run_cli, data_dir, tmp_path):
    out = tmp_path / "cal"
    tiny = ["--steps", "2", "--batch-size", "4", "--max-length", "32", "--max-train-examples", "16", "--max-eval-examples", "16"]
    code, text = run_cli("calibrate", "--tasks", "rte", "--strategies", "P", "--rates", "1e-3,3e-2", "--data-dir", str(data_dir),
                         "--out", str(out), *tiny)
    assert code == 0, text
    result = json.loads((out / RESULT).read_text())
    chosen = result["chosen"]["P"]
    best = next(r for r in result["table"] if r["rate"] == chosen)["mean_validation_score"]
    assert f"{best:.2f} *" in text and text.count(" *") == 1 and "mean validation score over rte" in text
    code, text = run_cli("train", "--design", "prefix", "--task", "rte", "--data-dir", str(data_dir), "--out", str(tmp_path / "run"),
                         "--lr-multipliers", str(out / RESULT), "--mid-validation", *tiny)
    assert code == 0, text
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["schedule"]["lr_multipliers"]["P"] == pytest.approx(chosen / 1e-3)
    assert record["mid_validation_score"] is not None and "validation at step 1" in text
    code, text = run_cli("compare", "--lr-multipliers", "P=zero", "--out", str(tmp_path / "cmp"))
    assert code == 2 and "'zero' in 'P=zero' is not a number" in text and "Traceback" not in text
    code, text = run_cli("calibrate", "--rates", "1e-3,fast", "--out", str(tmp_path / "x"))
    assert code == 2 and "['fast'] are not positive numbers" in text
