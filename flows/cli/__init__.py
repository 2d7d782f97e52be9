"""The ``flowrl`` command line: one module per command group, registered on one typer app.

The import order below is the order ``flowrl --help`` lists the commands in.
"""

from flows.cli.app import app, main  # noqa: I001
from flows.cli import plan, run, status, grow, scale, serve  # noqa: F401 - registers the commands
from flows.cli import eval as _eval  # noqa: F401 - registers `flowrl eval`

__all__ = ["app", "main"]
