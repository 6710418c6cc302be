"""Schedule keys for calibration: per-strategy learning-rate multipliers and the midpoint validation score."""

from __future__ import annotations

import json

import pytest

from peftspace.design import PeftspaceError
from peftspace.schedule import Schedule


def test_multipliers_default_to_one_and_missing_letters_are_one():
    assert Schedule().lr_multipliers == {"A": 1.0, "P": 1.0, "B": 1.0, "L": 1.0}
    schedule = Schedule(learning_rate=2e-3, lr_multipliers={"P": 10})
    assert schedule.lr_multipliers == {"A": 1.0, "P": 10.0, "B": 1.0, "L": 1.0}
    assert schedule.learning_rate_of("P") == pytest.approx(2e-2) and schedule.learning_rate_of("L") == 2e-3
    assert schedule == Schedule(learning_rate=2e-3, lr_multipliers={"P": 10.0, "A": 1})  # the same multipliers, the same schedule
    assert hash(schedule) == hash(Schedule(learning_rate=2e-3, lr_multipliers={"P": 10.0}))


def test_multipliers_and_mid_validation_round_trip_through_json():
    schedule = Schedule(lr_multipliers={"A": 0.5, "B": 3}, mid_validation=True)
    stored = json.loads(json.dumps(schedule.to_dict()))
    assert stored["lr_multipliers"] == {"A": 0.5, "P": 1.0, "B": 3.0, "L": 1.0} and stored["mid_validation"] is True
    assert Schedule.from_dict(stored) == schedule == Schedule.from_stored(stored)


def test_a_schedule_stored_before_the_keys_reads_as_all_one_without_a_midpoint_score():
    stored = Schedule(max_steps=7).to_dict()
    del stored["lr_multipliers"], stored["mid_validation"]
    old = Schedule.from_stored(stored)
    assert old.lr_multipliers == {"A": 1.0, "P": 1.0, "B": 1.0, "L": 1.0} and old.mid_validation is False
    assert old.max_steps == 7


@pytest.mark.parametrize("multipliers, message", [
    ({"X": 2}, "unknown strategy 'X'; strategies are ['A', 'P', 'B', 'L']"),
    ({"P": 0}, "lr_multipliers['P']=0 must be a positive finite number"),
    ({"P": -1.5}, "lr_multipliers['P']=-1.5 must be a positive finite number"),
    ({"L": float("inf")}, "lr_multipliers['L']=inf must be a positive finite number"),
    ({"A": "3"}, "lr_multipliers['A']='3' must be a positive finite number"),
    ({"B": True}, "lr_multipliers['B']=True must be a positive finite number"),
    ([("P", 10)], "must be a mapping of strategy letters"),
])
def test_bad_multipliers_are_refused_naming_the_value(multipliers, message):
    with pytest.raises(PeftspaceError, match="schedule: ") as error:
        Schedule(lr_multipliers=multipliers)
    assert message in str(error.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(PeftspaceError) as error:
        Schedule(lr_multipliers={"X": 1, "P": 0}, mid_validation="yes", precision="fp16")
    message = str(error.value)
    for part in ("unknown strategy 'X'", "lr_multipliers['P']=0", "mid_validation='yes' must be true or false",
                 "precision='fp16'"):
        assert part in message
