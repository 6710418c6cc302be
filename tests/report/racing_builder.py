"""A racing discovery's store, built without training: what ``peftspace discover`` (racing) leaves behind.

Two stages of discovery ``race``, on MiniLM's backbone (the designs are drawn as a race draws them,
``peftspace.design.blocks.draw_blocks``, and queued with their extras as ``race_stage`` queues them):

* S1, grouping: ``decreasing`` is an alias of ``uniform``; 6 blocks, looks at 3 and 6 blocks. At look 1
  ``increasing`` and ``bottleneck`` are eliminated; their designs of the later blocks are cancelled
  (one of bottleneck's ran ahead and finished anyway); ``uniform`` and ``spindle`` share one design in
  block 4; ``bottleneck`` failed in block 1. Look 2 stops at max_blocks with both survivors.
* S2, strategies: a pool study (with one failure) and the final race of three assignments, which
  ties at look 1 after eliminating one; every later design is cancelled.

Trials are told the way the worker tells them (result attrs, then COMPLETE with the test error, or
FAIL with a reason); the race entries are ``replay_outcomes`` of the stored rows, exactly what the
discovery logs. Test errors are validation errors plus an offset, so a report that ranked or
decided by test errors would show other numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import optuna
from optuna.trial import TrialState
from store_builder import TINY

from peftspace.design.blocks import draw_blocks
from peftspace.design.space import RECALLED_S4, builtin_spaces
from peftspace.discover.racing import fidelity, replay_outcomes
from peftspace.families import backbone_spec
from peftspace.models import load_config
from peftspace.analysis.racing import RacePlan
from peftspace.sweep.status import cancel_waiting, design_outcomes
from peftspace.sweep.store import open_storage
from peftspace.sweep.sweep import queue_sweep

RACE = "race"
PLAN = RacePlan(alpha=0.05, delta=1.0, max_blocks=6, first_look=3, look_every=3)
S1_RACED = ["uniform", "increasing", "spindle", "bottleneck"]
S1_ALIASES = {"decreasing": "uniform"}
S1_VALIDATION = {  # option -> validation error per block; None: the trial failed; "cancelled": cancelled while waiting
    "uniform": [20.0, 22.0, 21.0, 23.0, 24.0, 20.5],
    "increasing": [30.0, 32.3, 31.2, "cancelled", "cancelled", "cancelled"],
    "spindle": [20.5, 21.6, 21.9, 23.0, 23.1, 21.7],
    "bottleneck": [31.0, None, 32.5, 33.0, "cancelled", "cancelled"],  # block 3: ran ahead of its elimination
}
S1_SHARED = {4: ("uniform", "spindle")}  # block -> options that one design serves (their designs build the same)
S1_TRAINABLE = {"uniform": 1200, "increasing": 3000, "spindle": 500, "bottleneck": 20000}
FINALISTS = [",".join(RECALLED_S4), "L,L,L,L", "A,A,A,A"]
S2_VALIDATION = {
    FINALISTS[0]: [18.0, 19.0, 18.5, "cancelled", "cancelled", "cancelled"],
    FINALISTS[1]: [18.1, 19.2, 18.65, "cancelled", "cancelled", "cancelled"],
    FINALISTS[2]: [25.0, 26.3, 25.4, "cancelled", "cancelled", "cancelled"],
}
POOL = [("AL,AP,APB,PBL", 19.5), ("L,L,L,L", 19.0), ("A,A,A,A", 26.0), ("A,L,A,L", None)]
TEST_OFFSET = 1.5  # test error = validation error + offset (+ a little per design)


@dataclass(frozen=True)
class RaceStore:
    url: str
    path: str
    record: dict


def tell(study, trial, validation, test, mid, trainable) -> None:
    """Tell one trial as the worker does: COMPLETE with its result attrs and test error, or FAIL (validation None)."""
    if validation is None:
        trial.set_user_attr("status", "failed")
        trial.set_user_attr("reason", "rte: loss diverged (nan) at step 2")
        study.tell(trial, None, state=TrialState.FAIL)
        return
    attrs = {"status": "ok", "reason": None, "scores": {"rte": 100.0 - test}, "average_score": 100.0 - test, "error": test,
             "validation_scores": {"rte": 100.0 - validation}, "validation_error": validation,
             "mid_validation_scores": {"rte": 100.0 - mid}, "mid_validation_error": mid, "trainable": trainable,
             "wall_time_s": 1.0, "worker": "test:1", "tasks": {}}
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    study.tell(trial, test, state=TrialState.COMPLETE)


def finish_all(url: str, name: str, results: dict[int, tuple]) -> None:
    """Ask every waiting trial in order and tell it ``results[design_index]``."""
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    samples = study.user_attrs["peftspace_sweep"]["samples"]
    while any(t.state == TrialState.WAITING for t in study.get_trials(deepcopy=False)):
        trial = study.ask()
        index = trial.suggest_int("design_index", 0, samples - 1)
        tell(study, trial, *results[index])


def race_stage(url: str, space, component: str, study: str, raced: list[str], validation: dict, trainable, seed,
               shared=None, mid_scale: float = 1.0):
    """Queue the blocks, cancel the designs marked cancelled, tell the rest; returns the race's log fields."""
    backbone = backbone_spec(load_config("minilm"))
    blocks = draw_blocks(space, component, raced, PLAN.max_blocks, seed, backbone)
    designs, extras, results, cancelled = [], [], {}, []
    rng = np.random.default_rng(seed)
    for block in blocks:
        b = block["block"]
        groups = [list((shared or {}).get(b, ()))]
        groups = [g for g in groups if g] + [[o] for o in raced if o not in (shared or {}).get(b, ())]
        for group in groups:
            index = len(designs)
            designs.append(block["designs"][group[0]])
            extras.append({"block": b, "options": group, "replicate": 0, "seed": block["seed"]})
            value = validation[group[0]][b]
            if value == "cancelled":
                cancelled.append(index)
                continue
            count = trainable[group[0]] if isinstance(trainable, dict) else trainable
            test = None if value is None else value + TEST_OFFSET + 0.01 * index
            mid = None if value is None else mid_scale * value + float(rng.normal(0, 0.5))
            results[index] = (value, test, mid, count)
    queue_sweep(space, "minilm", ["rte"], None, 0, url, study, TINY, designs=designs, extras=extras)
    cancel_waiting(url, study, cancelled, "its options were eliminated")
    finish_all(url, study, results)
    outcomes = design_outcomes(url, study)
    state = replay_outcomes(outcomes, raced, PLAN)
    counts = {s: sum(r["state"] == s for r in outcomes) for s in ("complete", "failed", "running", "waiting", "cancelled")}
    counts.update(total=len(outcomes), used=counts["complete"] + counts["failed"])
    test = {}
    for row in outcomes:
        if row["state"] == "complete":
            for option in row["options"]:
                if option in state.survivors:
                    test.setdefault(option, []).append(row["error"])
    return {"race": state.to_dict(), "winner": state.winner, "verdict": state.status, "why": state.winner_rule,
            "trials": counts, "test": {o: {"mean": float(np.mean(v)), "n": len(v)} for o, v in test.items()},
            "fidelity": fidelity(outcomes), "study": study}


def pool_study(url: str, space, study: str) -> dict:
    from peftspace.design import Design

    backbone = backbone_spec(load_config("minilm"))
    [block] = draw_blocks(space, "assignment", [a for a, _ in POOL], 1, [9], backbone)
    designs = [block["designs"][a] for a, _ in POOL]
    extras = [{"pool": i, "assignment": a, "seed": 100 + i} for i, (a, _) in enumerate(POOL)]
    queue_sweep(space, "minilm", ["rte"], None, 0, url, study, TINY, designs=designs, extras=extras)
    finish_all(url, study, {i: (v, None if v is None else v + TEST_OFFSET, None if v is None else v, 2500)
                            for i, (_, v) in enumerate(POOL)})
    assert all(isinstance(d, Design) for d in designs)
    return {"study": study, "size": len(POOL), "subsets": ["A", "L", "AL", "AP", "APB", "PBL"],
            "failed": sum(v is None for _, v in POOL), "fit": {"columns": ["intercept"], "coef": [20.0]},
            "predicted": [{"assignment": FINALISTS[0], "error": 18.4}, {"assignment": FINALISTS[1], "error": 18.9}]}


def build_race_store(folder) -> RaceStore:
    """The store, written to ``folder/race.db``: the discovery ``race`` and its three sweep studies."""
    path = folder / "race.db"
    url = f"sqlite:///{path}"
    s0 = builtin_spaces()["S0"]
    s1 = s0.restrict("S1", groupings=("spindle",))
    stage1 = {"stage": "S1", "component": "grouping", "title": "layer grouping",
              "options": {o: {"space": s0.to_dict()} for o in ["uniform", "increasing", "decreasing", "spindle", "bottleneck"]},
              "protocol": "racing", "plan": PLAN.to_dict(), "replicates": 1, "aliases": dict(S1_ALIASES), "raced": S1_RACED,
              **race_stage(url, s0, "grouping", f"{RACE}/S1", S1_RACED, S1_VALIDATION, S1_TRAINABLE, [0, 0], S1_SHARED),
              "space": s1.to_dict(), "status": "done"}
    pool = pool_study(url, s1, f"{RACE}/S2/pool")
    final = race_stage(url, s1, "assignment", f"{RACE}/S2.final", FINALISTS, S2_VALIDATION, 2500, [0, 101], mid_scale=-1.0)
    stage2 = {"stage": "S2", "component": "strategies", "title": "strategy assignment", "protocol": "racing",
              "options": {f: {"assignment": f.split(",")} for f in FINALISTS}, "pool": pool, "plan": PLAN.to_dict(),
              "replicates": 1, "aliases": {}, "raced": FINALISTS, **final, "studies": [pool["study"], final["study"]],
              "space": s1.to_dict(), "status": "done"}
    rows = [{"study": s, **r} for s in (stage1["study"], pool["study"], final["study"]) for r in design_outcomes(url, s)
            if r["state"] == "complete"]
    best = min(rows, key=lambda r: (r["validation_error"], r["study"], r["design_index"]))
    chosen = min((r for r in rows if r["study"] == final["study"] and final["winner"] in r["options"]),
                 key=lambda r: r["validation_error"])
    record = {"name": RACE, "model": "minilm", "tasks": ["rte"], "samples_per_space": 2, "seed": 0,
              "schedule": {"max_steps": 2, "batch_size": 4, "max_length": 32}, "start": s0.to_dict(),
              "components": ["grouping", "strategies"], "candidates": ["A", "L", "AL", "AP", "APB", "PBL"], "confidence": 0.95,
              "protocol": "racing", "plan": PLAN.to_dict(), "replicates": 1, "pool_size": 8, "max_trials": None,
              "stages": [stage1, stage2], "final_space": s1.to_dict(), "final_design": {**chosen["design"], "name": RACE},
              "final_rule": "the lowest validation error among the last stage's winner's designs (the final space holds several)",
              "final_errors": {"validation": chosen["validation_error"], "test": chosen["error"], "study": chosen["study"],
                               "trial": chosen["trial"]},
              "best": {k: best.get(k) for k in ("study", "trial", "design_index", "validation_error", "error", "design",
                                                "scores", "validation_scores", "trainable")},
              "status": "done"}
    study = optuna.create_study(study_name=RACE, storage=open_storage(url))
    study.set_user_attr("peftspace_discovery", record)
    return RaceStore(url, str(path), record)
