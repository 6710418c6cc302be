"""Design spaces: declaration, seeded sampling that is deterministic, distinct and feasible."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from conftest import bert_like

from peftspace.design import DesignError, resolve
from peftspace.design.space import ALL_SUBSETS, DesignSpace, builtin_spaces, component_subspaces, draw, sample


def test_there_are_fifteen_strategy_subsets():
    assert len(ALL_SUBSETS) == len(set(ALL_SUBSETS)) == 15


@pytest.mark.parametrize("name", ["S0", "S1", "S2", "S3"])
def test_sampling_is_deterministic_distinct_and_feasible(name):
    space, spec = builtin_spaces()[name], bert_like()
    designs = sample(space, 400, seed=7, backbone=spec)
    assert designs == sample(space, 400, seed=7, backbone=spec)
    assert designs != sample(space, 400, seed=8, backbone=spec)
    assert len({d.to_json() for d in designs}) == 400
    for design in designs:
        resolve(design, spec)  # raises if infeasible


def test_ten_thousand_draws_respect_every_builtin_space():
    spec, rng = bert_like(), np.random.default_rng(0)
    for name, space in builtin_spaces().items():
        for _ in range(10_000 if name == "S0" else 2_000):
            design = draw(space, spec.num_layers, rng)
            assert design.problems() == []
            if name != "S0":
                assert design.grouping == "spindle"
            if name in ("S2", "S3", "S4"):
                assert design.allocation == "uniform"
            if name in ("S3", "S4"):
                assert design.tuned_groups is None
            if name == "S4":
                assert design.strategies == ("AL", "AP", "APB", "PBL")


def test_free_grouping_is_uniform_over_compositions():
    # 6 layers into 4 groups: C(5, 3) = 10 compositions, each about 1/10 of the draws
    rng = np.random.default_rng(1)
    counts = Counter(draw(builtin_spaces()["S0"], 6, rng).grouping for _ in range(5000))
    assert len(counts) == 10 and all(sum(g) == 6 and min(g) >= 1 for g in counts)
    assert max(counts.values()) / min(counts.values()) < 1.3


def test_s4_is_a_single_design_and_asking_for_more_is_a_clear_error():
    s4, spec = builtin_spaces()["S4"], bert_like()
    assert len(sample(s4, 1, seed=0, backbone=spec)) == 1
    with pytest.raises(DesignError, match="found only 1 distinct feasible designs of 2"):
        sample(s4, 2, seed=0, backbone=spec, max_attempts_per_design=20)


def test_component_subspaces_each_fix_one_option():
    subspaces = component_subspaces(builtin_spaces()["S0"], "grouping")
    assert sorted(subspaces) == ["bottleneck", "decreasing", "increasing", "spindle", "uniform"]
    assert all(s.groupings == (option,) for option, s in subspaces.items())
    assert set(component_subspaces(builtin_spaces()["S1"], "allocation")) == {"uniform", "increasing", "decreasing"}


def test_space_files_round_trip_and_malformed_ones_list_their_problems(tmp_path):
    space = builtin_spaces()["S2"]
    path = tmp_path / "space.json"
    import json

    path.write_text(json.dumps(space.to_dict()))
    assert DesignSpace.load(path) == space
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: mine\ngroupings: [spiral]\nallocations: []\nsubsets: [AX]\n")
    with pytest.raises(DesignError) as error:
        DesignSpace.load(bad)
    assert len(error.value.problems) == 3
    with pytest.raises(DesignError, match="unknown field"):
        DesignSpace.from_dict({"name": "x", "grouping": "spindle"})
    with pytest.raises(DesignError, match="does not exist"):
        DesignSpace.load(tmp_path / "missing.yaml")
