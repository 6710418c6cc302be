"""A racing stage's cells from its store rows: replicates averaged, a failed replicate fails the cell, shared designs count twice."""

from __future__ import annotations

import math

import numpy as np

from peftspace.analysis.racing import RacePlan, replay
from peftspace.discover.racing import replay_outcomes

PLAN = RacePlan(max_blocks=2, first_look=2, look_every=2)


def _row(block, options, state, validation=None, replicate=0):
    return {"design_index": 0, "trial": 0, "block": block, "options": options, "state": state,
            "validation_error": validation, "replicate": replicate}


def test_cells_average_replicates_and_count_failures_and_shared_designs():
    rows = [_row(0, ["a"], "complete", 10.0, 0), _row(0, ["a"], "complete", 12.0, 1),
            _row(0, ["b", "c"], "complete", 20.0, 0), _row(0, ["b", "c"], "complete", 22.0, 1),  # b and c built alike
            _row(1, ["a"], "complete", 11.0, 0), _row(1, ["a"], "failed", None, 1),  # a failed replicate: the cell fails
            _row(1, ["b"], "complete", 30.0, 0), _row(1, ["b"], "complete", 32.0, 1),
            _row(1, ["c"], "complete", 40.0, 0), _row(1, ["c"], "cancelled", None, 1)]
    state = replay_outcomes(rows, ["a", "b", "c"], PLAN)
    errors = np.array([[11.0, 21.0, 21.0], [math.nan, 31.0, math.nan]])
    failed = np.array([[False, False, False], [True, False, False]])
    # c's block 1 is unfinished (a cancelled replicate): the look waits for it
    assert state.to_dict() == replay(errors, ["a", "b", "c"], PLAN, failed).to_dict()
    assert state.status == "running" and state.blocks_needed == 2
    rows[-1] = _row(1, ["c"], "complete", 42.0, 1)
    done = replay_outcomes(rows, ["a", "b", "c"], PLAN)
    errors[1, 2] = 41.0
    assert done.to_dict() == replay(errors, ["a", "b", "c"], PLAN, failed).to_dict()
    assert done.looks and done.looks[0].blocks == 2
