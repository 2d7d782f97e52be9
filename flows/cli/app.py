"""The ``flowrl`` command line.

Every user error (a bad skill file, a bad store URL, ...) is one line on stderr and a
non-zero exit code; tracebacks are for bugs only (set ``FLOWRL_DEBUG=1`` to see them anyway).
Prefect is imported only by the commands that run flows, so ``flowrl plan`` stays instant.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

from flowrl_core.errors import FlowRLError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train a library of RL skills as a Prefect DAG.")
out = Console()
err = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Train a library of RL skills as a Prefect DAG."""


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _parse_settings(items: list[str]) -> dict:
    """``--set lr=3e-4 --set num_envs=64`` → typed dict (JSON values, else strings)."""
    import json

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def main() -> None:
    """Console-script entry point: user errors become one line and exit code 2."""
    # Prefect's ephemeral API gives its first start (migrations on a fresh machine) 20 s, which a
    # loaded laptop or CI box can miss; telemetry only adds "database is locked" noise locally.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        app(standalone_mode=False)
    except FlowRLError as exc:
        if os.environ.get("FLOWRL_DEBUG"):
            raise
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:  # usage errors carry show()/exit_code (click or typer's fork of it)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        if os.environ.get("FLOWRL_DEBUG"):
            raise
        err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc} (set FLOWRL_DEBUG=1 for the traceback)",
                  highlight=False, soft_wrap=True)
        sys.exit(1)

