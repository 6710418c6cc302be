"""The command line: a thin shell over the Python API (``peftspace --help``)."""

from __future__ import annotations

import typer

from peftspace.cli import calibrate, designs, discover, sweeps, training  # noqa: F401  (each registers its commands on ``app``)
from peftspace.cli._common import app, console
from peftspace.cli.designs import plan_table, print_plan
from peftspace.design.errors import PeftspaceError

__all__ = ["app", "console", "main", "plan_table", "print_plan"]


def _click_classes(name: str) -> tuple[type, ...]:
    """Click's exception class ``name`` as typer raises it (typer >= 0.2x vendors its own click), and click's own."""
    import importlib

    found = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def main(args: list[str] | None = None) -> None:
    """Run the command line (``args``: default ``sys.argv[1:]``). Our errors and usage errors end in one message and
    exit status 2, never a traceback."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # load reports and deprecation chatter drown the tables
    try:
        app(args=args, standalone_mode=False)
    except PeftspaceError as error:
        console.print(f"[red]error:[/red] {error}", soft_wrap=True)  # one line, for logs and greps
        raise SystemExit(2) from None
    except typer.Exit as done:
        raise SystemExit(done.exit_code) from None
    except _click_classes("ClickException") as error:  # a misspelled option, a missing argument, a bad value: click's usage message
        error.show()
        raise SystemExit(error.exit_code) from None
    except (KeyboardInterrupt, *_click_classes("Abort")):
        console.print("[yellow]interrupted[/yellow]: finished trials are stored; run the same command to resume")
        raise SystemExit(130) from None
