"""The one error type the design layer raises: every problem found, listed at once."""

from __future__ import annotations


class PeftspaceError(ValueError):
    """Base of every error peftspace raises on purpose; the message says what to change."""


class ModelError(PeftspaceError):
    """A model (or saved design directory) that peftspace cannot work with, and why."""


class DesignError(PeftspaceError):
    """A design (or its resolution against a backbone) is malformed or infeasible.

    Attributes:
        problems: every problem found, each naming the offending value and how to fix it.
    """

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


def check_fields(data, cls, what: str, word: str = "field") -> dict:
    """``data`` as a mapping holding only ``cls``'s dataclass fields, else one DesignError.

    ``what`` names the thing in messages ("design", "options"); ``word`` is "field" or "key".
    """
    from dataclasses import fields

    if not isinstance(data, dict):
        raise DesignError(f"a {what} must be a mapping of {word}s, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(map(str, set(data) - known))
    if unknown:
        raise DesignError(f"{what} has unknown {word}(s) {unknown}; known {word}s are {sorted(known)}")
    return dict(data)
