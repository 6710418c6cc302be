"""A PEFT design: grouping, allocation, tuned groups, per-group strategies, budget, options."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from peftspace.design.counts import STRATEGIES, STRATEGY_NAMES
from peftspace.design.errors import DesignError, check_fields
from peftspace.design.grouping import PATTERN_NAMES, _is_int, _is_pair
from peftspace.design.options import StrategyOptions, _is_number

ALLOCATIONS = ("uniform", "increasing", "decreasing")
DEFAULT_NUM_GROUPS = 4
DEFAULT_BUDGET_FRACTION = 0.005
_LETTER_BY_NAME = {name: letter for letter, name in STRATEGY_NAMES.items()}


@dataclass(frozen=True)
class Design:
    """Which strategies train in which layers, and how big they are.

    Attributes:
        grouping: a pattern name (``PATTERN_NAMES``), explicit group sizes, or explicit inclusive
            ``(first, last)`` ranges of the global layer index (encoder blocks, then decoder).
        num_groups: number of groups for a pattern; explicit groupings define their own.
        allocation: how the budget is spread over the tuned layers (``ALLOCATIONS``).
        tuned_groups: indices of the groups that train; ``None`` tunes every group.
        strategies: one subset of A/P/B/L per group (e.g. ``("AL", "AP", "APB", "PBL")``), or a
            single subset for every group.
        budget_fraction: total budget as a fraction of the backbone's parameters (heads excluded).
        budget_params: total budget as an absolute count. Set at most one of the two; with
            neither, the budget is ``DEFAULT_BUDGET_FRACTION`` (0.5%, as in the paper).
        options: how each strategy is built.
        name, description: free text carried into plans and saved files.
    """

    grouping: str | tuple = "uniform"
    num_groups: int | None = None
    allocation: str = "uniform"
    tuned_groups: tuple[int, ...] | None = None
    strategies: tuple[str, ...] = ("L",)
    budget_fraction: float | None = None
    budget_params: int | None = None
    options: StrategyOptions = field(default_factory=StrategyOptions)
    name: str = ""
    description: str = ""

    @property
    def group_count(self) -> int:
        if isinstance(self.grouping, str):
            return self.num_groups if self.num_groups is not None else DEFAULT_NUM_GROUPS
        return len(self.grouping)

    def group_strategies(self) -> list[str]:
        """The strategy subset of every group, in canonical A, P, B, L order."""
        subsets = self.strategies if len(self.strategies) != 1 else tuple(self.strategies) * self.group_count
        return [canonical_subset(s) for s in subsets]

    def tuned(self) -> list[int]:
        return sorted(set(range(self.group_count) if self.tuned_groups is None else self.tuned_groups))

    def problems(self) -> list[str]:
        """Every problem that needs no backbone to find; empty when the design is well-formed."""
        found = []
        g = self.grouping
        if isinstance(g, str):
            if g not in PATTERN_NAMES:
                found.append(f"grouping={g!r} is not a known pattern; use one of {list(PATTERN_NAMES)} or explicit sizes")
            if self.num_groups is not None and (not _is_int(self.num_groups) or self.num_groups < 1):
                found.append(f"num_groups={self.num_groups!r} must be a positive integer")
        elif not isinstance(g, (tuple, list)) or not g or not (all(_is_int(x) for x in g) or all(_is_pair(x) for x in g)):
            found.append(f"grouping={g!r} must be a pattern name, a list of group sizes, or a list of [first, last] layer ranges")
        elif self.num_groups is not None and (not _is_int(self.num_groups) or self.num_groups != len(g)):
            found.append(f"num_groups={self.num_groups!r} disagrees with the {len(g)} explicit groups; leave num_groups out")
        if found:  # the checks below need a sound group count
            return found + self._problems_without_groups()
        n = self.group_count
        if not isinstance(self.strategies, (tuple, list)) or not self.strategies:
            found.append(f"strategies={self.strategies!r} must be a list of strategy subsets such as ['AL', 'PB']")
        else:
            if len(self.strategies) not in (1, n):
                found.append(f"strategies lists {len(self.strategies)} subsets for {n} groups; give one per group or a single one for all")
            for i, subset in enumerate(self.strategies):
                found.extend(_subset_problems(subset, f"strategies[{i}]"))
        if self.tuned_groups is not None:
            tuned = self.tuned_groups
            if not isinstance(tuned, (tuple, list)) or not tuned or not all(_is_int(t) for t in tuned):
                found.append(f"tuned_groups={tuned!r} must be a non-empty list of group indices (or left out to tune all)")
            else:
                bad = [t for t in tuned if not 0 <= t < n]
                if bad:
                    found.append(f"tuned_groups has index(es) {bad} out of range: groups are 0..{n - 1}")
                if len(set(tuned)) != len(tuned):
                    found.append(f"tuned_groups={list(tuned)} repeats a group")
        return found + self._problems_without_groups()

    def _problems_without_groups(self) -> list[str]:
        found = []
        if self.allocation not in ALLOCATIONS:
            found.append(f"allocation={self.allocation!r} is unknown; use one of {list(ALLOCATIONS)}")
        fraction, params = self.budget_fraction, self.budget_params
        if fraction is not None and params is not None:
            found.append("set only one of budget_fraction (e.g. 0.005) and budget_params (e.g. 100000)")
        elif fraction is not None and (not _is_number(fraction) or not 0 < fraction <= 1):
            found.append(f"budget_fraction={fraction!r} must be a number in (0, 1], e.g. 0.005 for 0.5%")
        elif params is not None and (not _is_int(params) or params < 1):
            found.append(f"budget_params={params!r} must be a positive integer")
        if not isinstance(self.options, StrategyOptions):
            found.append(f"options={self.options!r} must be a StrategyOptions")
        else:
            found.extend(self.options.problems())
        for key in ("name", "description"):
            if not isinstance(getattr(self, key), str):
                found.append(f"{key}={getattr(self, key)!r} must be text")
        return found

    def validate(self) -> "Design":
        found = self.problems()
        if found:
            raise DesignError(found)
        return self

    def budget_for(self, backbone_parameters: int) -> int:
        """The total budget in parameters for a backbone of this size."""
        if self.budget_params is not None:
            return self.budget_params
        fraction = DEFAULT_BUDGET_FRACTION if self.budget_fraction is None else self.budget_fraction
        return round(fraction * backbone_parameters)

    def with_budget(self, *, fraction: float | None = None, params: int | None = None) -> "Design":
        return replace(self, budget_fraction=fraction, budget_params=params)

    # -- serialization ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        grouping = self.grouping if isinstance(self.grouping, str) else [list(x) if isinstance(x, (tuple, list)) else x for x in self.grouping]
        data = {
            "name": self.name,
            "description": self.description,
            "grouping": grouping,
            "num_groups": self.num_groups,
            "allocation": self.allocation,
            "tuned_groups": None if self.tuned_groups is None else list(self.tuned_groups),
            "strategies": list(self.strategies),
            "budget_fraction": self.budget_fraction,
            "budget_params": self.budget_params,
            "options": self.options.to_dict(),
        }
        return data

    @classmethod
    def from_dict(cls, data) -> "Design":
        """Build and validate a design from plain data (as read from JSON or YAML)."""
        data = check_fields(data, cls, "design")
        if "options" in data:
            if not isinstance(data["options"], dict):
                raise DesignError(f"options={data['options']!r} must be a mapping")
            data["options"] = StrategyOptions.from_dict(data["options"])
        if isinstance(data.get("grouping"), list):
            data["grouping"] = tuple(tuple(x) if isinstance(x, list) else x for x in data["grouping"])
        if isinstance(data.get("strategies"), str):
            data["strategies"] = (data["strategies"],)
        elif isinstance(data.get("strategies"), list):
            data["strategies"] = tuple(data["strategies"])
        if isinstance(data.get("tuned_groups"), list):
            data["tuned_groups"] = tuple(data["tuned_groups"])
        return cls(**data).validate()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Design":
        try:
            data = json.loads(text)
        except ValueError as error:  # JSONDecodeError, and integers past Python's digit limit
            raise DesignError(f"design JSON is malformed: {error}") from None
        return cls.from_dict(data)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> "Design":
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise DesignError(f"design YAML is malformed: {error}") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_yaml() if path.suffix in (".yaml", ".yml") else self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Design":
        path = Path(path)
        if not path.is_file():
            raise DesignError(f"design file {str(path)!r} does not exist" + (" (it is a directory)" if path.is_dir() else ""))
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise DesignError(f"design file {str(path)!r} cannot be read as UTF-8 text: {error}") from None
        return cls.from_yaml(text) if path.suffix in (".yaml", ".yml") else cls.from_json(text)


def canonical_subset(subset) -> str:
    """Letters of a strategy subset in canonical A, P, B, L order ("LA" -> "AL")."""
    letters = _letters(subset)
    return "".join(s for s in STRATEGIES if s in letters)


def _letters(subset) -> list[str]:
    if isinstance(subset, str):
        text = subset.replace("+", ",").replace(" ", "")
        parts = text.split(",") if "," in text or text.lower() in _LETTER_BY_NAME else list(text)
    elif isinstance(subset, (list, tuple)):
        parts = list(subset)
    else:
        return [subset]
    return [_LETTER_BY_NAME.get(p.lower(), p.upper()) if isinstance(p, str) else p for p in parts if p != ""]


def _subset_problems(subset, where: str) -> list[str]:
    letters = _letters(subset)
    unknown = [x for x in letters if x not in STRATEGIES]
    if unknown:
        return [f"{where}={subset!r} has unknown strategy {unknown[0]!r}; use letters from A (adapter), P (prefix), B (bitfit), L (lora)"]
    if not letters:
        return [f"{where} is empty; every group needs at least one strategy (untune a group with tuned_groups)"]
    if len(set(letters)) != len(letters):
        return [f"{where}={subset!r} repeats a strategy"]
    return []
