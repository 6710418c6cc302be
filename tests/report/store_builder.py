"""Helpers of the report tests. A real SQLite store: queued sweeps finished by hand with chosen errors, and a
discovery record (one stage decided, one still running) as ``peftspace.discover`` writes it.

Trials are completed the way the worker does it (``sweep.worker._run_one`` / ``_tell``): pop the
queued trial, suggest its fixed ``design_index``, set the result attrs, tell COMPLETE with the error
(or FAIL with a reason). No training: the errors are chosen so that the expected page is known.

And a small parser of the page: its tables (rows of cell texts), links and element ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

import numpy as np
import optuna
from optuna.trial import TrialState

from peftspace.analysis import rank_options
from peftspace.design.space import builtin_spaces, component_subspaces
from peftspace.sweep import run_sweep
from peftspace.sweep.store import open_storage
from peftspace.schedule import Schedule

TINY = Schedule(max_steps=2, batch_size=4, max_length=32)
DISCOVERY = "disc"
PLAIN = "plain<&>"  # escaping: a study name with HTML in it
# option -> (errors, trainable counts) in design-index order; None: the design failed
S1 = {"uniform": ([30.0, 31.5, 33.0], [1200, 1270, 4000]),
      "spindle": ([20.0, 22.5, 21.0], [500, 1500, 20000]),
      "decreasing": ([25.0, None, 25.0], [3000, None, 3000]),
      "increasing": ([], [])}  # queued, nothing finished; "bottleneck": its study never created
S2 = {"uniform": ([18.0], [2500]), "decreasing": ([19.0, 24.0], [2500, 2500])}  # "increasing": no feasible design


def finish(url: str, study_name: str, errors, trainable, task: str = "rte") -> None:
    """Pop the queued trials in order and tell each its error (COMPLETE) or a divergence (FAIL)."""
    study = optuna.load_study(study_name=study_name, storage=open_storage(url))
    samples = study.user_attrs["peftspace_sweep"]["samples"]
    for error, count in zip(errors, trainable):
        trial = study.ask()  # takes the first WAITING trial, as the worker's _pop does
        assert trial.user_attrs["design_index"] == trial.suggest_int("design_index", 0, samples - 1)
        if error is None:
            trial.set_user_attr("status", "failed")
            trial.set_user_attr("reason", f"{task}: loss diverged (nan) at step 2")
            study.tell(trial, None, state=TrialState.FAIL)
            continue
        attrs = {"status": "ok", "reason": None, "scores": {task: 100.0 - error}, "average_score": 100.0 - error,
                 "error": error, "trainable": count, "wall_time_s": 1.5, "worker": "test:1", "tasks": {}}
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, error, state=TrialState.COMPLETE)


def sweep(url: str, name: str, space, samples: int) -> None:
    run_sweep(space, "minilm", ["rte"], samples=samples, workers=0, storage=url, study_name=name, schedule=TINY)


def stage_options(url: str, stage: str, spaces: dict, results: dict, infeasible=()) -> dict:
    """The options of a stage as ``discover`` logs them; sweeps are created for the options in ``results``
    (the others' studies do not exist yet), none for ``infeasible`` ones (``study`` None)."""
    options = {}
    for option, space in spaces.items():
        study = None if option in infeasible else f"{DISCOVERY}/{stage}/{space.name.split('/')[-1]}"
        errors, counts = results.get(option, ([], []))
        options[option] = {"study": study, "space": space.to_dict(), "designs": max(2, len(errors)) if study else 0,
                           "finished": sum(e is not None for e in errors)}
        if option in results:
            sweep(url, study, space, max(2, len(errors)))
            finish(url, study, errors, counts)
    return options


def ranking_of(results: dict):
    errors = {o: [x for x in e if x is not None] for o, (e, _) in results.items()}
    return rank_options({o: e for o, e in errors.items() if len(e) >= 2}, n_resamples=500, rng=np.random.default_rng(0))


@dataclass(frozen=True)
class Store:
    url: str
    path: str
    record: dict
    ranking: object  # S1's Ranking


def build_store(folder) -> Store:
    """The store, written to ``folder/sweeps.db``."""
    path = folder / "sweeps.db"
    url = f"sqlite:///{path}"
    s0 = builtin_spaces()["S0"]
    s1_spaces = component_subspaces(s0, "grouping")
    s1 = s0.restrict("S1", groupings=("spindle",))
    ranking = ranking_of(S1)
    stages = [
        {"stage": "S1", "component": "grouping", "title": "layer grouping", "options": stage_options(url, "S1", s1_spaces, S1),
         "ranking": ranking.to_dict(), "winner": "spindle", "verdict": ranking.verdict, "space": s1.to_dict(), "status": "done"},
        {"stage": "S2", "component": "allocation", "title": "allocation",
         "options": stage_options(url, "S2", component_subspaces(s1, "allocation"), S2, infeasible=("increasing",)),
         "ranking": None, "winner": None, "verdict": None, "space": None, "status": "running"},
    ]
    record = {"name": DISCOVERY, "model": "minilm", "tasks": ["rte"], "samples_per_space": 3, "seed": 0,
              "schedule": {"max_steps": 2, "batch_size": 4, "learning_rate": 0.001, "max_length": 32}, "start": s0.to_dict(),
              "stages": stages, "final_space": None, "final_design": None, "best": None, "status": "running"}
    study = optuna.create_study(study_name=DISCOVERY, storage=open_storage(url))
    study.set_user_attr("peftspace_discovery", record)
    sweep(url, PLAIN, "S0", 3)
    finish(url, PLAIN, [40.0, None, 35.0], [2000, None, 2100])
    return Store(url, str(path), record, ranking)


class Page(HTMLParser):
    """Tables (class, attrs, rows of cell texts), the refs of img/a, and every element id."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables, self.refs, self.ids, self._cell = [], [], [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "br" and self._cell is not None:
            self._cell.append(" ")
        if tag in ("img", "a"):
            self.refs.append(attrs.get("src") or attrs.get("href"))
        elif tag == "table":
            self.tables.append({"class": attrs.get("class"), "attrs": attrs, "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append({"class": attrs.get("class"), "cells": []})
        elif tag in ("td", "th") and self.tables:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1]["cells"].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse_page(text: str) -> Page:
    page = Page()
    page.feed(text)
    return page
