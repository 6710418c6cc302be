"""Design spaces: declared sets of designs, and seeded, deduplicated, feasible sampling.

A space fixes the budget and options and lists, per component, the options a design may take:
grouping (named patterns, or ``"free"``: group sizes uniform over the compositions of the layer
count, as in S0), allocation, tunable groups (``"any"`` non-empty subset, ``"all"``, or explicit
subsets), and strategy subsets (the same allowed subsets for every group, allowed subsets per
group, or a fixed assignment per group).

Sampling draws each component uniformly and rejects infeasible designs and designs that build the same
thing as one already drawn (``peftspace.design.blocks.build_key``: the strategies drawn for a group
that is not tuned, or groupings with equal sizes on the backbone, make no other design); a space with
few designs (at most four times as many as asked for) is enumerated instead, so that "up to n
designs" of a tiny space (a late greedy stage) is exact and quick.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field, replace

from peftspace.design.allocation import resolve
from peftspace.design.backbone import BackboneSpec
from peftspace.design.design import ALLOCATIONS, Design, canonical_subset
from peftspace.design.errors import DesignError, check_fields
from peftspace.design.grouping import PATTERN_NAMES
from peftspace.design.options import StrategyOptions

ALL_SUBSETS = tuple("".join(c) for n in range(1, 5) for c in itertools.combinations("APBL", n))  # the 15 subsets
RECALLED_S4 = ("AL", "AP", "APB", "PBL")


@dataclass(frozen=True)
class DesignSpace:
    name: str
    num_groups: int = 4
    groupings: tuple[str, ...] = ("free",)
    allocations: tuple[str, ...] = ALLOCATIONS
    tuned: str | tuple[tuple[int, ...], ...] = "any"
    subsets: tuple[str, ...] = ALL_SUBSETS  # allowed strategy subsets, for every group
    assignment: tuple[str, ...] | None = None  # a fixed subset per group (S4); overrides ``subsets``
    group_subsets: tuple[tuple[str, ...], ...] | None = None  # allowed subsets per group; overrides ``subsets``
    budget_fraction: float = 0.005
    options: StrategyOptions = field(default_factory=StrategyOptions)

    def problems(self) -> list[str]:
        found = []
        if not isinstance(self.num_groups, int) or self.num_groups < 1:
            found.append(f"num_groups={self.num_groups!r} must be a positive integer")
            return found
        bad = [g for g in self.groupings if g != "free" and g not in PATTERN_NAMES]
        if not self.groupings or bad:
            found.append(f"groupings {list(bad) or '[]'} must be drawn from {['free', *PATTERN_NAMES]}")
        bad = [a for a in self.allocations if a not in ALLOCATIONS]
        if not self.allocations or bad:
            found.append(f"allocations {list(bad) or '[]'} must be drawn from {list(ALLOCATIONS)}")
        if isinstance(self.tuned, str):
            if self.tuned not in ("any", "all"):
                found.append(f"tuned={self.tuned!r} must be 'any', 'all' or a list of group-index lists")
        elif not self.tuned or any(not t or any(not isinstance(g, int) or not 0 <= g < self.num_groups for g in t) for t in self.tuned):
            found.append(f"tuned={self.tuned!r}: each entry must be a non-empty list of groups in 0..{self.num_groups - 1}")
        per_group = tuple(s for allowed in (self.group_subsets or ()) for s in allowed)
        for subset in (self.assignment or ()) + tuple(self.subsets) + per_group:
            if not isinstance(subset, str) or canonical_subset(subset) not in ALL_SUBSETS or len(canonical_subset(subset)) != len(subset):
                found.append(f"strategy subset {subset!r} must be letters from A, P, B, L without repeats")
        if self.assignment is not None and len(self.assignment) != self.num_groups:
            found.append(f"assignment has {len(self.assignment)} subsets for {self.num_groups} groups")
        if self.group_subsets is not None and (len(self.group_subsets) != self.num_groups or not all(self.group_subsets)):
            found.append(f"group_subsets must list a non-empty list of subsets for each of the {self.num_groups} groups, "
                         f"got {[list(g) for g in self.group_subsets]}")
        if not isinstance(self.budget_fraction, (int, float)) or not 0 < self.budget_fraction <= 1:
            found.append(f"budget_fraction={self.budget_fraction!r} must be in (0, 1]")
        return found + (self.options.problems() if isinstance(self.options, StrategyOptions) else ["options must be StrategyOptions"])

    def validate(self) -> "DesignSpace":
        if self.problems():
            raise DesignError([f"space {self.name!r}: {p}" for p in self.problems()])
        return self

    def restrict(self, name: str, **changes) -> "DesignSpace":
        """A subspace with some components narrowed, e.g. ``restrict("S1", groupings=("spindle",))``."""
        return replace(self, name=name, **changes).validate()

    def to_dict(self) -> dict:
        data = asdict(self)
        data["options"] = self.options.to_dict()
        return json.loads(json.dumps(data))  # tuples -> lists

    @classmethod
    def from_dict(cls, data) -> "DesignSpace":
        data = check_fields(data, cls, "design space")
        if "name" not in data:
            raise DesignError("a design space needs a name")
        for key in ("groupings", "allocations", "subsets", "assignment"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
            elif isinstance(data.get(key), str) and key != "tuned":
                data[key] = (data[key],)
        if isinstance(data.get("group_subsets"), list):
            data["group_subsets"] = tuple(tuple(g) if isinstance(g, list) else (g,) for g in data["group_subsets"])
        if isinstance(data.get("tuned"), list):
            data["tuned"] = tuple(tuple(t) if isinstance(t, list) else t for t in data["tuned"])
        if "options" in data:
            data["options"] = StrategyOptions.from_dict(data["options"]) if isinstance(data["options"], dict) else data["options"]
        try:
            return cls(**data).validate()
        except TypeError as error:
            raise DesignError(f"design space is malformed: {error}") from None

    @classmethod
    def load(cls, path) -> "DesignSpace":
        from pathlib import Path

        import yaml

        path = Path(path)
        if not path.is_file():
            raise DesignError(f"design space file {str(path)!r} does not exist")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise DesignError(f"design space file {str(path)!r} is malformed: {error}") from None
        return cls.from_dict(data)


def draw(space: DesignSpace, num_layers: int, rng) -> Design:
    """One design from ``space`` (not checked for feasibility); ``rng`` is a numpy Generator."""
    g = space.num_groups
    grouping = space.groupings[rng.integers(len(space.groupings))]
    if grouping == "free":  # stars and bars: G-1 distinct cuts among L-1 gaps, uniform over compositions
        cuts = sorted(rng.choice(num_layers - 1, size=g - 1, replace=False) + 1) if g > 1 else []
        bounds = [0, *cuts, num_layers]
        grouping = tuple(int(b - a) for a, b in zip(bounds, bounds[1:]))
    if space.tuned == "all":
        tuned = None
    elif space.tuned == "any":
        mask = 0
        while mask == 0:
            mask = int(rng.integers(1, 2**g))
        tuned = tuple(i for i in range(g) if mask >> i & 1)
        tuned = None if len(tuned) == g else tuned
    else:
        tuned = tuple(space.tuned[rng.integers(len(space.tuned))])
    allowed = allowed_subsets(space)
    strategies = tuple(options[rng.integers(len(options))] for options in allowed)
    return Design(grouping=grouping, num_groups=g if isinstance(grouping, str) else None,
                  allocation=space.allocations[rng.integers(len(space.allocations))], tuned_groups=tuned,
                  strategies=tuple(strategies), budget_fraction=space.budget_fraction, options=space.options,
                  name=space.name)


def allowed_subsets(space: DesignSpace) -> tuple[tuple[str, ...], ...]:
    """The strategy subsets each group may take, one tuple per group."""
    if space.assignment is not None:
        return tuple((subset,) for subset in space.assignment)
    if space.group_subsets is not None:
        return tuple(tuple(allowed) for allowed in space.group_subsets)
    return (tuple(space.subsets),) * space.num_groups


def _groupings(space: DesignSpace, num_layers: int) -> list:
    found = []
    for grouping in space.groupings:
        if grouping == "free":  # every composition of the layers into num_groups non-empty groups
            found.extend(tuple(b - a for a, b in zip((0, *cuts), (*cuts, num_layers)))
                         for cuts in itertools.combinations(range(1, num_layers), space.num_groups - 1))
        else:
            found.append(grouping)
    return found


def _tuned_options(space: DesignSpace) -> list:
    g = space.num_groups
    if space.tuned == "all":
        return [None]
    if space.tuned == "any":  # as ``draw`` writes them: tuning every group is ``None``
        subsets = [tuple(i for i in range(g) if mask >> i & 1) for mask in range(1, 2**g)]
        return [None if len(t) == g else t for t in subsets]
    return list(dict.fromkeys(tuple(t) for t in space.tuned))


def space_size(space: DesignSpace, num_layers: int) -> int:
    """How many distinct designs ``space`` holds on ``num_layers`` layers, feasible or not."""
    size = len(_groupings(space, num_layers)) * len(space.allocations) * len(_tuned_options(space))
    for allowed in allowed_subsets(space):
        size *= len(set(allowed))
    return size


def enumerate_designs(space: DesignSpace, num_layers: int) -> list[Design]:
    """Every distinct design of ``space`` (feasible or not), in a fixed order; meant for small spaces."""
    g = space.num_groups
    designs = []
    for grouping, allocation, tuned, strategies in itertools.product(
            _groupings(space, num_layers), dict.fromkeys(space.allocations), _tuned_options(space),
            itertools.product(*(tuple(dict.fromkeys(a)) for a in allowed_subsets(space)))):
        designs.append(Design(grouping=grouping, num_groups=g if isinstance(grouping, str) else None, allocation=allocation,
                              tuned_groups=tuned, strategies=tuple(strategies), budget_fraction=space.budget_fraction,
                              options=space.options, name=space.name))
    return designs


def sample(space: DesignSpace, n: int, seed: int, backbone: BackboneSpec, max_attempts_per_design: int = 200) -> list[Design]:
    """``n`` distinct designs of ``space`` that are feasible on ``backbone``, the same for a seed."""
    import numpy as np

    space.validate()
    if space.num_groups > backbone.num_layers:
        raise DesignError(f"space {space.name!r} has {space.num_groups} groups but the backbone only {backbone.num_layers} layers")
    rng, designs, seen, built = np.random.default_rng(seed), [], set(), set()
    if space_size(space, backbone.num_layers) <= 4 * n:
        feasible = _distinct_feasible(enumerate_designs(space, backbone.num_layers), backbone)
        if len(feasible) < n:
            raise DesignError(f"space {space.name!r}: found only {len(feasible)} distinct feasible designs of {n} "
                              f"(the space holds {space_size(space, backbone.num_layers)} designs)")
        return [feasible[i] for i in rng.permutation(len(feasible))[:n]]
    attempts = 0
    while len(designs) < n:
        attempts += 1
        if attempts > max_attempts_per_design * n:
            raise DesignError(f"space {space.name!r}: found only {len(designs)} distinct feasible designs of {n} "
                              f"in {attempts - 1} draws; the space is too small or its budget too tight")
        design = draw(space, backbone.num_layers, rng)
        key = design.to_json()
        if key in seen:
            continue
        seen.add(key)
        built_key = _built(design, backbone)
        if built_key is not None and built_key not in built:
            built.add(built_key)
            designs.append(design)
    return designs


def sample_up_to(space: DesignSpace, n: int, seed: int, backbone: BackboneSpec) -> list[Design]:
    """``sample`` of ``n`` designs, or of every feasible design when the space holds fewer."""
    if space_size(space, backbone.num_layers) <= 4 * n:
        n = min(n, len(_distinct_feasible(enumerate_designs(space, backbone.num_layers), backbone)))
    return sample(space, n, seed, backbone)


def _built(design: Design, backbone: BackboneSpec) -> str | None:
    """What the design builds (``blocks.build_key``), or None when it is infeasible."""
    from peftspace.design.blocks import build_key

    try:
        return build_key(design, backbone)
    except DesignError:
        return None


def _distinct_feasible(designs, backbone: BackboneSpec) -> list[Design]:
    """The feasible designs, the first of each group that builds the same thing (strategies of untuned groups
    and groupings with the same sizes make no difference)."""
    found, built = [], set()
    for design in designs:
        key = _built(design, backbone)
        if key is not None and key not in built:
            built.add(key)
            found.append(design)
    return found


def _feasible(design: Design, backbone: BackboneSpec) -> bool:
    return _built(design, backbone) is not None


def builtin_spaces(options: StrategyOptions | None = None, budget_fraction: float = 0.005) -> dict[str, DesignSpace]:
    """S0..S4 with the paper's findings as we know them (SPEC.md; S4's assignment is recalled)."""
    s0 = DesignSpace("S0", options=options or StrategyOptions(), budget_fraction=budget_fraction)
    s1 = s0.restrict("S1", groupings=("spindle",))
    s2 = s1.restrict("S2", allocations=("uniform",))
    s3 = s2.restrict("S3", tuned="all")
    s4 = s3.restrict("S4", assignment=RECALLED_S4)
    return {s.name: s for s in (s0, s1, s2, s3, s4)}


def component_subspaces(space: DesignSpace, component: str, *, group: int | None = None,
                        candidates: tuple[str, ...] = ALL_SUBSETS) -> dict[str, DesignSpace]:
    """One subspace per option of ``component``, for a stage's comparison.

    Components: ``grouping`` (the five patterns), ``allocation`` (the three rules), ``tuned`` (all
    groups, or any non-empty subset), and ``strategies`` of one ``group``: one subspace per
    ``candidates`` subset fixed on that group, the other groups keeping what ``space`` allows them.
    """
    if component == "grouping":
        return {p: space.restrict(f"{space.name}/grouping={p}", groupings=(p,)) for p in PATTERN_NAMES}
    if component == "allocation":
        return {a: space.restrict(f"{space.name}/allocation={a}", allocations=(a,)) for a in ALLOCATIONS}
    if component == "tuned":
        return {"all": space.restrict(f"{space.name}/tuned=all", tuned="all"),
                "any": space.restrict(f"{space.name}/tuned=any", tuned="any")}
    if component == "strategies":
        if not isinstance(group, int) or not 0 <= group < space.num_groups:
            raise DesignError(f"the strategies component needs a group in 0..{space.num_groups - 1}, got {group!r}")
        allowed = allowed_subsets(space)
        subspaces = {}
        for subset in dict.fromkeys(canonical_subset(c) for c in candidates):
            per_group = tuple((subset,) if g == group else allowed[g] for g in range(space.num_groups))
            subspaces[subset] = space.restrict(f"{space.name}/G{group + 1}={subset}", assignment=None, group_subsets=per_group)
        return subspaces
    raise DesignError(f"unknown component {component!r}; use grouping, allocation, tuned or strategies")
