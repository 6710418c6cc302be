"""Design spaces: declaration, seeded sampling that is deterministic, distinct and feasible."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from conftest import bert_like

from peftspace.design import DesignError, resolve
from peftspace.design.space import (ALL_SUBSETS, DesignSpace, builtin_spaces, component_subspaces, draw, enumerate_designs, sample,
                                    sample_up_to, space_size)


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


@pytest.mark.parametrize("name", ["S0", "S1", "S2", "S3", "S4"])
def test_ten_thousand_samples_of_every_builtin_space_are_deterministic_distinct_and_feasible(name):
    space, spec = builtin_spaces()[name], bert_like()
    designs = sample_up_to(space, 10_000, seed=0, backbone=spec)
    assert len(designs) == (1 if name == "S4" else 10_000)  # S4 fixes every component: one design
    assert designs == sample_up_to(space, 10_000, seed=0, backbone=spec)
    assert len({d.to_json() for d in designs}) == len(designs)
    for design in designs:
        resolve(design, spec)  # raises if infeasible
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


def test_space_sizes_are_counted_by_hand_and_enumeration_matches_them():
    spec = bert_like()  # 6 layers, so free groupings into 4 groups: C(5, 3) = 10
    spaces = builtin_spaces()
    assert space_size(spaces["S0"], 6) == 10 * 3 * 15 * 15**4
    assert space_size(spaces["S1"], 6) == 1 * 3 * 15 * 15**4
    assert space_size(spaces["S3"], 6) == 15**4
    assert space_size(spaces["S4"], 6) == 1
    small = DesignSpace("small", groupings=("free", "spindle"), allocations=("uniform",), tuned="all",
                        group_subsets=(("L",), ("A", "L"), ("L",), ("B", "P", "L")))
    assert space_size(small, 6) == (10 + 1) * 2 * 3
    every = enumerate_designs(small, 6)
    assert len(every) == len({d.to_json() for d in every}) == 66
    rng = np.random.default_rng(3)
    drawn = {draw(small, 6, rng).to_json() for _ in range(3000)}
    assert drawn == {d.to_json() for d in every}  # draws reach exactly the enumerated designs
    # what the designs build: per layer, its strategies' sizes (groupings that give the same layers build the same)
    builds = {}
    for design in every:
        layers = tuple((layer.index, tuple(sorted(layer.sizes.items()))) for layer in resolve(design, spec).layers)
        builds.setdefault(layers, design)
    assert len(builds) == 33  # e.g. all-L designs build the same model under every grouping
    chosen = sample(small, 33, seed=1, backbone=spec)
    assert chosen == sample(small, 33, seed=1, backbone=spec)
    assert {tuple((layer.index, tuple(sorted(layer.sizes.items()))) for layer in resolve(d, spec).layers)
            for d in chosen} == set(builds)  # one design per distinct build, every build once
    with pytest.raises(DesignError, match="found only 33 distinct feasible designs of 66"):
        sample(small, 66, seed=1, backbone=spec)


def test_sample_up_to_takes_every_design_of_a_small_space():
    spec = bert_like()
    [only] = sample_up_to(builtin_spaces()["S4"], 100, seed=0, backbone=spec)
    assert only.strategies == ("AL", "AP", "APB", "PBL") and only.grouping == "spindle"
    three = builtin_spaces()["S3"].restrict("three", group_subsets=(("L",), ("L",), ("L",), ("A", "L", "B")))
    assert len(sample_up_to(three, 100, seed=0, backbone=spec)) == 3
    assert len(sample_up_to(builtin_spaces()["S0"], 5, seed=0, backbone=spec)) == 5


def test_strategy_subspaces_fix_one_group_and_keep_the_others():
    s3 = builtin_spaces()["S3"].restrict("S3x", group_subsets=(("AL",), ALL_SUBSETS, ALL_SUBSETS, ALL_SUBSETS))
    subspaces = component_subspaces(s3, "strategies", group=1, candidates=("L", "PA", "BL"))
    assert sorted(subspaces) == ["AP", "BL", "L"]  # canonical letter order
    rng = np.random.default_rng(0)
    for subset, space in subspaces.items():
        for _ in range(200):
            design = draw(space, 6, rng)
            assert design.strategies[0] == "AL" and design.strategies[1] == subset
    assert len({draw(subspaces["L"], 6, rng).strategies[2] for _ in range(2000)}) == 15
    with pytest.raises(DesignError, match="group in 0..3"):
        component_subspaces(s3, "strategies", group=4)


def test_group_subsets_are_validated_and_round_trip():
    space = DesignSpace("g", group_subsets=(("L",), ("AP", "B"), ("L",), ("L",)))
    assert DesignSpace.from_dict(json.loads(json.dumps(space.to_dict()))) == space
    with pytest.raises(DesignError, match="group_subsets"):
        DesignSpace("g", group_subsets=(("L",), ("L",))).validate()
    with pytest.raises(DesignError, match="'XY'"):
        DesignSpace("g", group_subsets=(("L",), ("XY",), ("L",), ("L",))).validate()
