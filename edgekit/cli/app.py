"""The Typer app and the consoles every command prints through."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import EdgekitError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Export, validate and run recursive reasoning models on edge devices.",
)
# Wide enough for the results table when output goes to a file or CI log, unless COLUMNS says how wide.
console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def version() -> str:
    """The installed distribution's version (what pip installed), or the package's own where it is not installed
    (a source tree on sys.path)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("edgekit")
    except PackageNotFoundError:
        from .. import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        print(f"edgekit {version()}")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: bool = typer.Option(
        False, "--version", help="print the edgekit version and exit", callback=_print_version, is_eager=True
    ),
) -> None:
    """Export, validate and run recursive reasoning models on edge devices."""


def fail(e: EdgekitError) -> NoReturn:
    """Print the one-line error (its text escaped: brackets in messages are not rich markup) and exit."""
    err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
    raise typer.Exit(e.exit_code)


def num(x: float | None, fmt: str = ".3f") -> str:
    """A table cell: the number in `fmt`, or an en dash where there is none."""
    return "–" if x is None else format(x, fmt)
