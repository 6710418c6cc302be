"""The report of a racing discovery (``racing_builder``): an EDF of each raced option's validation errors, the
paired differences of every look as logged, the eliminations, aliases beside their representative, the verdict,
the survivors' test errors, the fidelity warning, the pool, and the best designs by validation error."""

from __future__ import annotations

import shutil

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from racing_builder import RACE, S1_VALIDATION, TEST_OFFSET

from peftspace.report import build_report, shared_log_edges
from peftspace.report.collect import collect
from peftspace.sweep.store import open_storage

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(race_store, tmp_path_factory):
    return build_report(race_store.url, tmp_path_factory.mktemp("race-out"))


@pytest.fixture(scope="module")
def html(report) -> str:
    return report.index.read_text(encoding="utf-8")


def _stages(race_store) -> dict:
    return {s["stage"]: s for s in race_store.record["stages"]}


def _complete_trials(url: str, study: str) -> list:
    """The COMPLETE trials of a study, read with Optuna alone (not with the code the report uses)."""
    return optuna.load_study(study_name=study, storage=open_storage(url)).get_trials(states=(TrialState.COMPLETE,))


def _expected_edf(values):
    x = np.sort(np.asarray(values, dtype=float))
    return x, np.arange(1, x.size + 1) / x.size


def _plot(report, stage, kind="edf"):
    [found] = [p for p in report.plots if p.owner == RACE and p.stage == stage and p.kind == kind]
    return found


def _fmt_interval(pair) -> str:
    low, high = pair["interval"]
    return f"[{low:.2f}, {high:.2f}]"


def test_each_raced_option_has_the_edf_of_exactly_its_validation_errors(race_store, report):
    for stage in _stages(race_store).values():
        trials = _complete_trials(race_store.url, stage["study"])
        plot = _plot(report, stage["stage"])
        assert list(plot.curves) == stage["raced"]  # one curve per raced option; aliases have none of their own
        for option in stage["raced"]:
            mine = [t for t in trials if option in t.user_attrs["options"]]
            validation = [t.user_attrs["validation_error"] for t in mine]
            assert validation and all(t.value != t.user_attrs["validation_error"] for t in mine)  # never the test error
            x, y = plot.curves[option]
            want_x, want_y = _expected_edf(validation)
            assert x.tolist() == want_x.tolist() and y == pytest.approx(want_y)
    s1 = _plot(report, "S1")
    # by hand: spindle's six blocks (block 4 is the design it shares with uniform, at uniform's 24.0)
    assert s1.curves["spindle"][0].tolist() == [20.5, 21.6, 21.7, 21.9, 23.0, 24.0]
    # bottleneck failed in block 1 and ran block 3 after its elimination: blocks 0, 2, 3
    assert s1.curves["bottleneck"][0].tolist() == [31.0, 32.5, 33.0]
    assert s1.labels == {"uniform": "uniform (= decreasing) (n=6, winner)", "increasing": "increasing (n=3)",
                         "spindle": "spindle (n=6)", "bottleneck": "bottleneck (n=3)"}


def test_a_racing_stage_whose_counts_differ_has_a_normalized_edf_of_validation_errors(race_store, report, html):
    from peftspace.analysis import normalized_edf

    plot = _plot(report, "S1", "normalized-edf")
    trials = _complete_trials(race_store.url, f"{RACE}/S1")
    counts = [t.user_attrs["trainable"] for t in trials]
    assert np.array_equal(plot.edges, shared_log_edges(counts)) and plot.edges[0] == 500 and plot.edges[-1] == 20000
    for option in _stages(race_store)["S1"]["raced"]:
        mine = [t for t in trials if option in t.user_attrs["options"]]
        want = normalized_edf([t.user_attrs["validation_error"] for t in mine], [t.user_attrs["trainable"] for t in mine],
                              bins=plot.edges)
        assert np.array_equal(plot.curves[option][0], want.x) and np.allclose(plot.curves[option][1], want.F)
    assert [p.kind for p in report.plots if p.stage == "S2"] == ["edf"]  # S2: every design trains 2,500
    assert "every design trains the same number of parameters (2,500)" in html
    assert "Racing decides on validation errors" in html and 'alt="EDF of validation errors, stage S1"' in html


def test_the_paired_differences_of_every_look_are_the_logged_ones(race_store, html, parse):
    tables = [t for t in parse(html).tables if t["class"] == "race-pairs"]
    looks = [(stage, look) for stage in race_store.record["stages"] for look in stage["race"]["looks"]]
    assert len(tables) == len(looks) == 3
    for table, (stage, look) in zip(tables, looks):
        assert table["attrs"]["data-look"] == str(look["number"])
        header, *rows = table["rows"]
        assert header["cells"] == ["pair (a − b)", "n blocks", "mean difference", "interval", "p-value", "rejected (Holm)",
                                   "equivalent"]
        assert [r["cells"] for r in rows] == [
            [f"{p['a']} − {p['b']}", str(p["n"]), f"{p['difference']:.2f}", _fmt_interval(p), f"{p['p_value']:.3g}",
             "yes" if p["rejected"] else "no", "yes" if p["equivalent"] else "no"] for p in look["pairs"]]
    first = tables[0]["rows"][1]["cells"]  # by hand: uniform - increasing over blocks 0..2 = -10, -10.3, -10.2
    assert first[:3] == ["uniform − increasing", "3", f"{np.mean([-10.0, -10.3, -10.2]):.2f}"] and first[5] == "yes"
    assert "Look 1: 3 blocks, alpha_t = 0.0250" in html and "(intervals at 97.5%; equivalent: within delta = 1.0)" in html


def test_the_eliminations_are_listed_look_by_look(race_store, html, parse):
    [s1, s2] = [t for t in parse(html).tables if t["class"] == "race-looks"]
    assert s1["rows"][0]["cells"] == ["look", "blocks", "level alpha_t", "alive", "eliminated (by)", "survivors", "tie"]
    assert [r["cells"] for r in s1["rows"][1:]] == [
        ["1", "3", "0.0250", "uniform, increasing, spindle, bottleneck", "increasing by uniform; bottleneck by uniform",
         "uniform, spindle", "no"],
        ["2", "6", "0.0250", "uniform, spindle", "none", "uniform, spindle", "no"]]
    log = _stages(race_store)["S1"]["race"]["looks"][0]["eliminated"]
    assert log == {"increasing": "uniform", "bottleneck": "uniform"}
    assert [r["cells"][4] for r in s2["rows"][1:]] == ["A,A,A,A by AL,AP,APB,PBL"]
    assert s2["rows"][1]["cells"][-1] == "yes"  # S2 stopped at a tie


def _decision_rows(html, parse):
    [table] = [t for t in parse(html).tables if t["class"] == "decision"]
    return [r["cells"] for r in table["rows"][1:]]


def test_the_decision_table_shows_how_each_option_fared_and_the_verdict(race_store, html, parse):
    rows = _decision_rows(html, parse)
    s1 = _stages(race_store)["S1"]
    race = s1["race"]
    first = rows[0]
    assert first[:4] == ["S1 done", "grouping layer grouping", "uniform (= decreasing)", "6"]
    assert first[4] == f"survivor: mean validation error {race['means']['uniform']:.2f} over the blocks every survivor ran"
    assert first[5] == "uniform"
    [pair] = [p for p in race["looks"][-1]["pairs"]]
    assert first[6] == (f"max_blocks: {race['winner_rule']}; look 2 (6 blocks), 97.5% intervals among survivors: "
                        f"uniform − spindle = {pair['difference']:.2f} {_fmt_interval(pair)}")
    out = next(p for p in race["looks"][0]["pairs"] if {p["a"], p["b"]} == {"uniform", "increasing"})
    assert rows[1] == ["increasing", "3", f"out at look 1 (3 blocks), by uniform: uniform − increasing = "
                                          f"{out['difference']:.2f} {_fmt_interval(out)}, p = {out['p_value']:.3g}"]
    assert [r[0] for r in rows[1:4]] == ["increasing", "spindle", "bottleneck"]  # no row of its own for the alias
    s2 = _stages(race_store)["S2"]
    assert rows[4][:4] == ["S2 done", "strategies strategy assignment", "AL,AP,APB,PBL", "3"]
    assert rows[4][6].startswith(f"tie: {s2['race']['winner_rule']}; look 1 (3 blocks), 97.5% intervals among survivors: "
                                 "AL,AP,APB,PBL − L,L,L,L = ")
    assert "Racing protocol stages" in html and "Paper protocol stages" in html


def test_aliases_are_shown_beside_their_representative(html):
    assert "<strong>uniform (= decreasing)</strong>: 6 designs with a validation error" in html
    assert "survivors</dt><dd>uniform (= decreasing), spindle</dd>" in html
    assert "decreasing (n=" not in html and "<strong>decreasing" not in html


def test_trials_test_errors_and_fidelity_are_shown_as_logged(race_store, html, parse):
    s1, s2 = _stages(race_store)["S1"], _stages(race_store)["S2"]
    assert s1["trials"] == {"complete": 17, "failed": 1, "running": 0, "waiting": 0, "cancelled": 5, "total": 23, "used": 18}
    assert ("study <code>race/S1</code>: trials used 18 (complete and failed), 17 complete, 1 failed, 5 cancelled, "
            "0 waiting, 0 running, 23 total.") in html
    assert "final race study <code>race/S2.final</code>: trials used 9 (complete and failed), 9 complete" in html
    tests = [t for t in parse(html).tables if t["class"] == "race-test"]
    assert [[r["cells"] for r in t["rows"][1:]] for t in tests] == [
        [[("uniform (= decreasing)" if o == "uniform" else o), f"{v['mean']:.2f}", str(v["n"])] for o, v in s["test"].items()]
        for s in (s1, s2)]
    assert html.count("reported, not used for decisions") == 3  # two stages' survivors, and the final design's errors
    # uniform's test errors: its validation errors + the offset + 0.01 * design index (at most 0.22)
    assert s1["test"]["uniform"]["mean"] == pytest.approx(np.mean(S1_VALIDATION["uniform"]) + TEST_OFFSET, abs=0.25)
    assert s1["fidelity"]["warning"] is False and s2["fidelity"]["warning"] is True
    assert (f"Fidelity: Spearman correlation of mid-training and final validation errors "
            f"{s1['fidelity']['spearman_mid_final']:.2f} over 17 trials.") in html
    assert (f'<p class="note fidelity">warning: fidelity: Spearman correlation of mid-training and final validation errors '
            f"{s2['fidelity']['spearman_mid_final']:.2f} over 9 trials, below 0.8") in html


def test_the_pool_stage_shows_its_pool_and_predictions(race_store, html, parse):
    pool = _stages(race_store)["S2"]["pool"]
    assert "study <code>race/S2/pool</code>: 4 designs, 1 failed" in html
    [table] = [t for t in parse(html).tables if t["class"] == "pool-predicted"]
    assert [r["cells"] for r in table["rows"][1:]] == [[str(i), p["assignment"], f"{p['error']:.2f}"]
                                                       for i, p in enumerate(pool["predicted"], start=1)]
    assert "AL,AP,APB,PBL; L,L,L,L; A,A,A,A" in html  # the finalists


def test_the_best_designs_are_ranked_by_validation_error_with_both_errors(race_store, report, html, parse):
    rows = [(study, t) for study in (f"{RACE}/S1", f"{RACE}/S2/pool", f"{RACE}/S2.final")
            for t in _complete_trials(race_store.url, study)]
    rows.sort(key=lambda item: (item[1].user_attrs["validation_error"], item[0], item[1].number))
    [best] = [t for t in parse(html).tables if t["class"] == "best"]
    header, *shown = best["rows"]
    assert header["cells"][:3] == ["rank", "validation error", "test error"]
    assert [r["cells"][1:3] for r in shown] == [[f"{t.user_attrs['validation_error']:.2f}", f"{t.value:.2f}"]
                                                for _, t in rows[:5]]
    assert [(r["cells"][6], r["cells"][7]) for r in shown] == [(s, str(t.number)) for s, t in rows[:5]]
    assert "Best designs (top 5 by validation error)" in html and "<h4>#1: validation error 18.00, test error 19.50" in html
    best_log = race_store.record["best"]
    assert (f"discovery&#x27;s best</dt><dd>{best_log['study']}, trial {best_log['trial']}, validation error "
            f"{best_log['validation_error']:.2f}, test error {best_log['error']:.2f}") in html


def test_the_page_links_its_pngs_and_the_stage_studies_are_not_plain_sweeps(race_store, report, html, parse):
    links = [ref for ref in parse(html).refs if ref and not ref.startswith("#")]
    assert sorted(links) == sorted(p.file for p in report.plots) and len(links) == 3
    assert all((report.index.parent / link).read_bytes().startswith(PNG_MAGIC) for link in links)
    ids = parse(html).ids
    assert len(ids) == len(set(ids)) and all(ref[1:] in ids for ref in parse(html).refs if ref.startswith("#"))
    assert "<h2>Sweep " not in html
    [discovery] = collect(race_store.url).discoveries
    assert discovery.member_studies() == [f"{RACE}/S1", f"{RACE}/S2.final", f"{RACE}/S2/pool"]
    assert set(discovery.sweeps) == set(discovery.member_studies())
    assert all(len(s.outcomes) == s.status["designs"]["total"] for s in discovery.sweeps.values())


def test_a_racing_stage_still_waiting_and_one_not_yet_raced_render(race_store, tmp_path, parse):
    url = f"sqlite:///{shutil.copy(race_store.path, tmp_path / 'waiting.db')}"
    s1, s2 = _stages(race_store)["S1"], _stages(race_store)["S2"]
    first = s1["race"]["looks"][0]
    waiting = {**s1, "status": "waiting", "winner": None, "verdict": None, "why": None, "test": None, "fidelity": None,
               "race": {**s1["race"], "looks": [first], "survivors": first["survivors"], "status": "running", "winner": None,
                        "winner_rule": None, "blocks_needed": 6}}
    fresh = {"stage": "S2", "component": "strategies", "title": "strategy assignment", "options": {}, "winner": None,
             "verdict": None, "space": None, "status": "running"}
    record = {**race_store.record, "stages": [waiting, fresh], "status": "waiting", "final_design": None, "best": None,
              "final_errors": None}
    optuna.load_study(study_name=RACE, storage=open_storage(url)).set_user_attr("peftspace_discovery", record)
    html = build_report(url, tmp_path / "out", studies=[RACE]).index.read_text()
    rows = _decision_rows(html, parse)
    assert rows[0][6] == "running: the next look needs 6 blocks; look 1 (3 blocks), 97.5% intervals among survivors: " + \
        next(f"uniform − spindle = {p['difference']:.2f} {_fmt_interval(p)}" for p in first["pairs"] if p["b"] == "spindle")
    means = s1["race"]["means"]  # as logged: a running race logs its survivors' means so far
    assert rows[2][:3] == ["spindle", "6", f"survivor (race running): mean validation error {means['spindle']:.2f} over the "
                                           "blocks every survivor ran"]
    assert "<dt>next look</dt><dd>at 6 blocks</dd>" in html
    assert "Fidelity (mid-training vs final validation errors): not computed" in html
    assert rows[4][:3] == ["S2 running", "strategies strategy assignment", "no options"]


def test_the_fidelity_check_is_shown_belongs_to_the_discovery_and_is_not_ranked(race_store, tmp_path, parse):
    from racing_builder import finish_all
    from store_builder import TINY

    from peftspace.design import Design
    from peftspace.design.space import DesignSpace
    from peftspace.sweep.sweep import queue_sweep

    url = f"sqlite:///{shutil.copy(race_store.path, tmp_path / 'checked.db')}"
    record = race_store.record
    designs = [Design.from_dict(record["best"]["design"])] * 3
    queue_sweep(DesignSpace.from_dict(record["final_space"]), "minilm", ["rte"], None, 0, url, f"{RACE}/fidelity", TINY,
                designs=designs, extras=[{"short_validation_error": 18.0 + i} for i in range(3)])
    finish_all(url, f"{RACE}/fidelity", {i: (5.0 + i, 6.0, 5.0, 2500) for i in range(3)})  # longer: far lower errors
    check = {"study": f"{RACE}/fidelity", "factor": 3, "designs": 3, "finished": 3, "spearman": 0.5, "warning": True}
    optuna.load_study(study_name=RACE, storage=open_storage(url)).set_user_attr("peftspace_discovery",
                                                                                 {**record, "fidelity_result": check})
    html = build_report(url, tmp_path / "out").index.read_text()
    assert "<h2>Sweep " not in html  # the check's study belongs to the discovery
    assert ('<span class="note">warning: 3 designs re-trained 3x longer in <code>race/fidelity</code> (not ranked among the '
            "best designs): Spearman correlation of short and long validation errors 0.50 over 3 designs, below 0.8") in html
    [best] = [t for t in parse(html).tables if t["class"] == "best"]
    assert f"{RACE}/fidelity" not in {r["cells"][6] for r in best["rows"][1:]} and best["rows"][1]["cells"][1] == "18.00"
