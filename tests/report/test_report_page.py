"""The report of a real store: every option with finished designs gets its curve, the decision table
says the recorded winner and verdict, the best designs come in order with their plans, and a
discovery still running renders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from store_builder import DISCOVERY, PLAIN, S1, S2

import peftspace
from peftspace.analysis import edf, normalized_edf
from peftspace.design import Design
from peftspace.models import load_config
from peftspace.report import build_report, shared_log_edges, write_report
from peftspace.report.build import NORMALIZED_BINS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(store, tmp_path_factory):
    return build_report(store.url, tmp_path_factory.mktemp("out") / "nested" / "report")


@pytest.fixture(scope="module")
def html(report) -> str:
    return report.index.read_text(encoding="utf-8")


def _plot(report, owner, stage, kind="edf"):
    [found] = [p for p in report.plots if p.owner == owner and p.stage == stage and p.kind == kind]
    return found


def _finished(results: dict) -> dict[str, tuple[list, list]]:
    """option -> (errors, counts) of its COMPLETE designs, for options with any."""
    kept = {o: [(e, c) for e, c in zip(errors, counts) if e is not None] for o, (errors, counts) in results.items()}
    return {o: ([e for e, _ in pairs], [c for _, c in pairs]) for o, pairs in kept.items() if pairs}


def test_the_page_links_only_pngs_that_exist_in_its_folder(report, html, parse):
    folder = report.index.parent
    assert report.index.name == "index.html" and report.index.is_file()
    links = [ref for ref in parse(html).refs if ref and not ref.startswith("#")]
    assert sorted(links) == sorted(p.file for p in report.plots) and len(links) == 4
    for link in links:
        assert "/" not in link and ":" not in link and not link.startswith(".")  # relative, in the folder itself
        data = (folder / link).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
    assert sorted(p.name for p in folder.iterdir()) == sorted(["index.html", *links])
    ids = parse(html).ids
    assert len(ids) == len(set(ids))
    assert all(ref[1:] in ids for ref in parse(html).refs if ref.startswith("#"))  # in-page links land


def test_every_option_with_finished_designs_has_its_edf_curve(report):
    for stage, results in (("S1", S1), ("S2", S2)):
        plot = _plot(report, DISCOVERY, stage)
        finished = _finished(results)
        assert set(plot.curves) == set(finished)  # no curve for "increasing" (0 finished) or options never started
        for option, (errors, _) in finished.items():
            x, y = plot.curves[option]
            want_x, want_y = edf(errors)
            assert np.array_equal(x, want_x) and np.array_equal(y, want_y)
    assert _plot(report, DISCOVERY, "S1").labels == {"uniform": "uniform (n=3)", "spindle": "spindle (n=3, winner)",
                                                     "decreasing": "decreasing (n=2)"}
    x, y = _plot(report, DISCOVERY, "S1").curves["spindle"]  # by hand: errors 20, 22.5, 21 sorted, F = (i + 1) / 3
    assert x.tolist() == [20.0, 21.0, 22.5] and y.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
    x, y = _plot(report, DISCOVERY, "S1").curves["decreasing"]  # the failed design is not a point; ties take two steps
    assert x.tolist() == [25.0, 25.0] and y.tolist() == [0.5, 1.0]


def test_the_normalized_edfs_of_a_stage_share_log_spaced_edges_over_all_its_counts(report):
    plot = _plot(report, DISCOVERY, "S1", "normalized-edf")
    finished = _finished(S1)
    union = [c for _, counts in finished.values() for c in counts]
    assert plot.edges[0] == min(union) == 500 and plot.edges[-1] == max(union) == 20000
    assert plot.edges.size == NORMALIZED_BINS + 1 and np.allclose(np.diff(np.log10(plot.edges)), np.log10(40) / NORMALIZED_BINS)
    assert np.array_equal(plot.edges, shared_log_edges(union))
    assert set(plot.curves) == set(finished)
    for option, (errors, counts) in finished.items():
        want = normalized_edf(errors, counts, bins=plot.edges)
        assert np.array_equal(plot.curves[option][0], want.x) and np.allclose(plot.curves[option][1], want.F)
    # uniform's counts 1200, 1270, 4000 fall in three different shared bins (edges ~1257 and ~3162): equal weights;
    # on its own edges (1200..4000) the first two would share a bin and weigh 1/4 each
    x, y = plot.curves["uniform"]
    assert x.tolist() == [30.0, 31.5, 33.0] and y.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
    own = normalized_edf(*finished["uniform"], bins=NORMALIZED_BINS)
    assert own.F.tolist() == pytest.approx([0.25, 0.5, 1.0])


def test_no_normalized_edf_when_every_design_trains_the_same_count(report, html):
    assert [p.kind for p in report.plots if p.owner == DISCOVERY and p.stage == "S2"] == ["edf"]
    assert "every design trains the same number of parameters (2,500)" in html


def _decision_rows(html, parse):
    [table] = [t for t in parse(html).tables if t["class"] == "decision"]
    header, *rows = table["rows"]
    assert header["cells"][:4] == ["stage", "component", "option", "n"]
    return rows


def test_the_decision_table_shows_the_ranking_winner_and_verdict(store, html, parse):
    rows = _decision_rows(html, parse)
    ranking = store.ranking
    first = rows[0]["cells"]  # the stage's first row carries stage, component, winner and verdict (rowspan)
    assert first[0] == "S1 done" and first[1] == "grouping layer grouping" and rows[0]["class"] == "winner"
    assert [r["cells"][2 if i == 0 else 0] for i, r in enumerate(rows[:5])] == ["spindle", "decreasing", "uniform",
                                                                                  "increasing", "bottleneck"]
    best = ranking.options[0]
    assert first[2:8] == ["spindle", "3", f"{best.mean:.2f} [{best.mean_ci.low:.2f}, {best.mean_ci.high:.2f}]",
                          f"{best.median:.2f}", "0.000", "1"]
    runner = ranking.options[1]
    assert rows[1]["cells"] == ["decreasing", "2", f"{runner.mean:.2f} [{runner.mean_ci.low:.2f}, {runner.mean_ci.high:.2f}]",
                                f"{runner.median:.2f}", f"{runner.ks_vs_best:.3f}", f"{runner.ks_p_vs_best:.3g}"]
    assert first[8] == "spindle" and ranking.verdict == "decided"
    d = ranking.difference
    assert first[9].startswith(f"decided at 95%: mean error of decreasing − spindle = {d.estimate:.2f} [{d.low:.2f}, {d.high:.2f}], "
                               f"excludes 0")
    assert rows[3]["cells"][:2] == ["increasing", "0"] and "not ranked" in rows[3]["cells"][2]


def test_a_stage_still_running_without_a_ranking_renders(html, parse):
    rows = _decision_rows(html, parse)
    s2 = rows[5]["cells"]
    assert s2[0] == "S2 running" and s2[2:4] == ["uniform", "1"] and s2[4] == "no ranking yet"
    assert s2[5] == "–" and s2[6].startswith("not ranked yet: fewer than two options have at least two finished designs")
    assert [r["cells"][:2] for r in rows[6:]] == [["increasing", "0"], ["decreasing", "2"]]
    assert "<strong>increasing</strong> <code>-</code>: <span class=\"note\">no sweep: its subspace holds no feasible design" in html
    assert "disc/S1/grouping=bottleneck</code>: <span class=\"note\">no finished designs: its sweep has not started" in html
    assert "disc/S1/grouping=increasing</code>: 0 of 2 designs finished" in html and "no finished designs, so no curve" in html


def test_the_best_designs_come_in_order_of_error_with_their_plans(store, report, html, parse):
    tables = parse(html).tables
    [best, _] = [t for t in tables if t["class"] == "best"]
    rows = [r["cells"] for r in best["rows"][1:]]
    every = sorted(e for errors, _ in (*S1.values(), *S2.values()) for e in errors if e is not None)
    assert [float(r[1]) for r in rows] == every[:5] == [18.0, 19.0, 20.0, 21.0, 22.5]
    assert [r[5] for r in rows] == ["disc/S2/allocation=uniform", "disc/S2/allocation=decreasing"] + ["disc/S1/grouping=spindle"] * 3
    assert [float(r[2]) for r in rows] == [100 - e for e in every[:5]]  # the rte score
    view = report.discoveries[0]
    config = load_config("minilm")
    plans = {t["attrs"]["data-plan"]: t for t in tables if t["class"] == "plan"}
    assert len(view.best) == 5
    for b in view.best:
        table = plans[f"discovery-1-{b.rank}"]
        expected = peftspace.plan(config, Design.from_dict(b.row["design"]))
        header, *body = table["rows"]
        total = body[-1]["cells"]
        assert header["cells"][5:] == ["A", "P", "B", "L", "total"] and total[0] == "total"
        totals = expected.strategy_totals()
        assert total[5:] == [f"{totals[s]:,}" if s in totals else "" for s in "APBL"] + [f"{expected.total:,}"]
        assert len(body) - 1 == expected.groups[-1][1] + 1  # every layer, frozen ones too
        for layer in expected.layers:
            assert body[layer.index]["cells"][-1] == f"{layer.total:,}"


def test_a_plain_sweep_shows_its_counts_failures_and_edf(report, html, parse):
    plot = _plot(report, PLAIN, None)
    x, y = plot.curves[PLAIN]
    assert x.tolist() == [35.0, 40.0] and y.tolist() == [0.5, 1.0]
    tables = parse(html).tables
    [counts] = [t for t in tables if t["class"] == "counts"]
    assert counts["rows"][1]["cells"] == ["designs", "2", "0", "0", "1", "0", "3"]
    [failures] = [t for t in tables if t["class"] == "failures"]
    assert failures["rows"][1]["cells"] == ["1", "1", "rte: loss diverged (nan) at step 2"]
    assert "<h2>Sweep plain&lt;&amp;&gt;</h2>" in html and PLAIN not in html  # escaped, never raw
    assert "<h2>Sweep disc/" not in html  # the discovery's own sweeps are not repeated as plain sweeps


def test_studies_selects_what_is_reported_and_nothing_is_written_outside_the_folder(store, tmp_path):
    before = sorted(p.name for p in Path(store.path).parent.iterdir())
    only_sweep = write_report(store.url, tmp_path / "a", studies=[PLAIN])
    text = only_sweep.read_text()
    assert "Sweep plain&lt;&amp;&gt;" in text and "Discovery" not in text
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["01-plain-edf.png", "index.html"]
    one_stage_sweep = write_report(store.path, tmp_path / "b", studies=["disc/S1/grouping=spindle"]).read_text()  # a plain path
    assert "Sweep disc/S1/grouping=spindle" in one_stage_sweep and "Discovery" not in one_stage_sweep
    only_discovery = write_report(store.url, tmp_path / "c", studies=[DISCOVERY]).read_text()
    assert "Discovery disc" in only_discovery and "Sweep " not in only_discovery
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]
    assert sorted(p.name for p in Path(store.path).parent.iterdir()) == before
