"""The one error type the design layer raises: every problem found, listed at once."""

from __future__ import annotations


class DesignError(ValueError):
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
