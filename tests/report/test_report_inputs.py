"""Bad inputs give clear errors and write nothing; a model whose config cannot be loaded still reports;
the shared bins; importing the report package loads neither torch nor matplotlib."""

from __future__ import annotations

import shutil

import optuna
import pytest
from store_builder import finish
from import_probe import run_probe
from optuna.trial import TrialState

from peftspace.design.errors import PeftspaceError
from peftspace.design.space import builtin_spaces
from peftspace.report import shared_log_edges, write_report
from peftspace.sweep import SweepDefinition, SweepError
from peftspace.sweep.store import DEFINITION_ATTR, enqueue_designs, open_storage


@pytest.mark.parametrize("given", ["{tmp}/missing.db", "sqlite:///{tmp}/missing.db", "{tmp}/missing"])
def test_a_store_that_does_not_exist_is_an_error_and_is_not_created(tmp_path, given):
    out = tmp_path / "out"
    with pytest.raises(SweepError, match="does not exist"):
        write_report(given.format(tmp=tmp_path), out)
    assert sorted(tmp_path.iterdir()) == []  # neither the store nor the report folder was created


def test_a_store_without_peftspace_sweeps_is_an_error(tmp_path):
    url = f"sqlite:///{tmp_path}/bare.db"
    optuna.create_study(study_name="someone-elses", storage=open_storage(url)).optimize(lambda t: t.suggest_float("x", 0, 1), 2)
    with pytest.raises(SweepError, match=r"holds no peftspace sweeps or discoveries \(studies there: \['someone-elses'\]\)"):
        write_report(url, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_or_foreign_studies_are_errors_naming_what_exists(store, tmp_path):
    url = f"sqlite:///{shutil.copy(store.path, tmp_path / 'copy.db')}"  # the shared store stays as it is
    optuna.create_study(study_name="foreign", storage=open_storage(url))
    with pytest.raises(SweepError) as raised:
        write_report(url, tmp_path / "out", studies=["nope", "foreign", "disc"])
    message = str(raised.value)
    assert "'nope' does not exist" in message and "'foreign' is neither a peftspace sweep nor a discovery" in message
    assert "Discoveries there: ['disc']" in message and "'plain<&>'" in message
    assert isinstance(raised.value, PeftspaceError) and not (tmp_path / "out").exists()


def test_an_out_dir_that_is_a_file_is_an_error(store, tmp_path):
    (tmp_path / "file").write_text("mine")
    with pytest.raises(SweepError, match="exists and is not a folder"):
        write_report(store.url, tmp_path / "file")
    assert (tmp_path / "file").read_text() == "mine"


def test_other_bad_urls_are_sweep_errors(tmp_path):
    with pytest.raises(SweepError, match="in-memory"):
        write_report("sqlite:///:memory:", tmp_path / "out")
    with pytest.raises(SweepError, match="unsupported backend"):
        write_report("oracle://user@host/db", tmp_path / "out")


def test_a_model_whose_config_cannot_be_loaded_shows_the_design_and_a_note(tmp_path, parse):
    url = f"sqlite:///{tmp_path}/hub.db"
    study = optuna.create_study(study_name="hub", storage=open_storage(url), direction="minimize")
    space = builtin_spaces()["S4"]
    definition = SweepDefinition(space=space.to_dict(), model="no-such-org/no-such-model", tasks=("rte",), samples=1, seed=0)
    study.set_user_attr(DEFINITION_ATTR, definition.to_dict())
    from peftspace.design import Design

    design = Design(grouping="spindle", num_groups=4, strategies=("AL", "AP", "APB", "PBL"), name="S4")
    enqueue_designs(study, [design], seed=0)
    finish(url, "hub", [12.5], [1234])
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE]
    html = write_report(url, tmp_path / "out").read_text()
    assert "the config of model &#x27;no-such-org/no-such-model&#x27; could not be loaded" in html
    assert "&quot;strategies&quot;" in html and "&quot;PBL&quot;" in html  # the stored design, as JSON
    tables = parse(html).tables
    assert not [t for t in tables if t["class"] == "plan"]
    [best] = [t for t in tables if t["class"] == "best"]
    assert best["rows"][1]["cells"][1:5] == ["12.50", "87.50", "87.50", "1,234"]


def test_shared_log_edges():
    edges = shared_log_edges([1000, 10, 100], bins=2)
    assert edges.tolist() == pytest.approx([10.0, 100.0, 1000.0]) and edges[0] == 10 and edges[-1] == 1000
    for bad in ([5, 5, 5], [0, 10], [-1, 10]):
        with pytest.raises(ValueError, match="positive and not all equal"):
            shared_log_edges(bad)


def test_importing_the_report_loads_neither_torch_nor_matplotlib():
    report = run_probe("import sys",
                       "import peftspace.report",
                       "from peftspace.report import write_report, build_report",
                       "assert 'matplotlib' not in sys.modules, 'matplotlib loaded at import time'")
    assert report == {"attempts": [], "loaded": []}


def test_a_finished_discovery_shows_its_discovered_design_with_its_plan(store, tmp_path, parse):
    import peftspace
    from peftspace.design import Design
    from peftspace.models import load_config

    url = f"sqlite:///{shutil.copy(store.path, tmp_path / 'done.db')}"
    final = Design(grouping="spindle", num_groups=4, allocation="uniform", strategies=("AL", "AP", "APB", "PBL"), name="disc")
    record = {**store.record, "status": "done", "final_design": final.to_dict(), "final_rule": "the final space holds one design"}
    optuna.load_study(study_name="disc", storage=open_storage(url)).set_user_attr("peftspace_discovery", record)
    html = write_report(url, tmp_path / "out", studies=["disc"]).read_text()
    assert "<h3>Discovered design</h3>" in html and "the final space holds one design" in html
    [table] = [t for t in parse(html).tables if t["attrs"].get("data-plan") == "discovery-1-final"]
    expected = peftspace.plan(load_config("minilm"), final)
    assert table["rows"][-1]["cells"][-1] == f"{expected.total:,}" and len(table["rows"]) == 1 + 6 + 1  # header, 6 layers, total
