"""The command line: a thin shell over the Python API (``peftspace --help``)."""

from __future__ import annotations

import typer

from peftspace.cli import calibrate, designs, discover, sweeps, training  # noqa: F401  (each registers its commands on ``app``)
from peftspace.cli._common import app, console
from peftspace.cli.designs import plan_table, print_plan
from peftspace.design.errors import PeftspaceError

__all__ = ["app", "console", "main", "plan_table", "print_plan"]


def main() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # load reports and deprecation chatter drown the tables
    try:
        app(standalone_mode=False)
    except PeftspaceError as error:
        console.print(f"[red]error:[/red] {error}", soft_wrap=True)  # one line, for logs and greps
        raise SystemExit(2) from None
    except typer.Exit as done:
        raise SystemExit(done.exit_code) from None
    except Exception as error:  # click usage errors
        import click

        if isinstance(error, click.ClickException):
            error.show()
            raise SystemExit(error.exit_code) from None
        raise
