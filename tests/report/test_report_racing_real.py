"""The report of a log that ``peftspace discover`` itself wrote: a racing grouping stage queued by
``run_discovery(workers=0)``, its trials told by hand (no training), then resumed to its decision."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from racing_builder import finish_all
from store_builder import TINY

from peftspace.discover import read_discovery, run_discovery
from peftspace.report import build_report
from peftspace.sweep.status import design_outcomes
from peftspace.sweep.store import open_storage

BASE = {"uniform": 20.0, "increasing": 25.0, "spindle": 22.0, "bottleneck": 30.0}


@pytest.fixture(scope="module")
def discovered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real-race")
    url = f"sqlite:///{folder}/real.db"
    settings = dict(stages=("grouping",), name="real", storage=url, out_dir=folder / "out", workers=0, schedule=TINY,
                    plan={"max_blocks": 3, "first_look": 3, "look_every": 3})
    assert run_discovery("minilm", "rte", 2, **settings)["status"] == "waiting"  # queued; nothing trains here
    study = read_discovery(url, "real")["stages"][0]["study"]
    results = {}
    for row in design_outcomes(url, study):  # validation error by option and block; test errors ordered otherwise
        index = row["design_index"]
        validation = BASE[row["options"][0]] + 0.3 * row["block"] + 0.1 * index
        results[index] = (validation, 50.0 - index, validation + 0.2, 1000 + 10 * index)
    finish_all(url, study, results)
    log = run_discovery("minilm", "rte", 2, **settings)
    assert log["status"] == "done"
    report = build_report(url, folder / "report")
    return url, log, report, report.index.read_text(encoding="utf-8")


def test_the_report_of_a_logged_race_draws_each_raced_options_validation_errors(discovered):
    url, log, report, _ = discovered
    [stage] = log["stages"]
    assert stage["protocol"] == "racing" and stage["aliases"] == {"decreasing": "uniform"}
    trials = optuna.load_study(study_name=stage["study"], storage=open_storage(url)).get_trials(states=(TrialState.COMPLETE,))
    [plot] = [p for p in report.plots if p.stage == "S1" and p.kind == "edf"]
    assert list(plot.curves) == stage["raced"]
    for option in stage["raced"]:
        want = np.sort([t.user_attrs["validation_error"] for t in trials if option in t.user_attrs["options"]])
        x, y = plot.curves[option]
        assert x.tolist() == want.tolist() and y == pytest.approx(np.arange(1, want.size + 1) / want.size)
    assert plot.labels["uniform"].startswith("uniform (= decreasing) (n=3")


def test_the_report_of_a_logged_race_shows_its_looks_and_verdict(discovered, parse):
    _, log, _, html = discovered
    [stage] = log["stages"]
    race = stage["race"]
    tables = [t for t in parse(html).tables if t["class"] == "race-pairs"]
    assert len(tables) == len(race["looks"]) >= 1
    for table, look in zip(tables, race["looks"]):
        assert [r["cells"][:3] for r in table["rows"][1:]] == [[f"{p['a']} − {p['b']}", str(p["n"]), f"{p['difference']:.2f}"]
                                                               for p in look["pairs"]]
    [decision] = [t for t in parse(html).tables if t["class"] == "decision"]
    first = decision["rows"][1]["cells"]
    assert first[5] == stage["winner"] and first[6].startswith(f"{race['status']}: {race['winner_rule']}")
    eliminated = [f"{o} by {by}" for look in race["looks"] for o, by in look["eliminated"].items()]
    [history] = [t for t in parse(html).tables if t["class"] == "race-looks"]
    assert "; ".join(eliminated or ["none"]) == "; ".join(r["cells"][4] for r in history["rows"][1:])
    assert "<h2>Sweep " not in html and "Best designs (top 5 by validation error)" in html
