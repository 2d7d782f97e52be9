"""The ``flowrl`` command line.

Every user error (a bad skill file, a bad store URL, ...) is one line on stderr and a
non-zero exit code; tracebacks are for bugs only (set ``FLOWRL_DEBUG=1`` to see them anyway).
Prefect is imported only by the commands that run flows, so ``flowrl plan`` stays instant.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

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


def _plan_steps(plan) -> str:
    return " → ".join(f"{s.skill}×{s.count}" if s.count > 1 else s.skill for s in plan)


@app.command()
def plan(
    skills_file: Path = typer.Argument(..., help="Skill file (.yaml, .yml or .json)."),
    store: Optional[str] = typer.Option(None, help="Read expert indices from this store (read-only)."),
) -> None:
    """Validate a skill file and show the graph, order, execution plans and expert remaps."""
    from flowrl_core.graph import load_skill_file
    from flowrl_core.overview import overview
    from flowrl_core.store import Store

    specs = load_skill_file(skills_file)
    existing = Store(store, create=False).expert_indices() if store else {}
    view = overview(specs, existing)

    out.print(f"[bold]{skills_file}[/]: {len(specs)} skills, {view.graph.number_of_edges()} dependencies — valid")
    tree = Tree("[bold]dependency graph[/] (skill ← what it needs)")
    for name in view.order:
        deps = view.skills[name].depends_on
        node = tree.add(f"[cyan]{name}[/]")
        for dep in deps:
            reason = view.graph.edges[dep, name].get("reason", "")
            node.add(f"{dep} [dim]({reason})[/]")
    out.print(tree)
    out.print(f"[bold]training order:[/] {' → '.join(view.order)}")
    out.print(f"[bold]critical path:[/] {' → '.join(view.critical_path)} ({len(view.critical_path)} skills)")

    table = Table(title="execution plans and expert remaps", show_lines=False)
    for col in ("skill", "expert", "execution plan", "MoE experts (global→local)"):
        table.add_column(col)
    for name in view.order:
        s = view.skills[name]
        idx = f"{s.index}" + (" [dim](new)[/]" if s.index_is_new else "")
        remap = ", ".join(f"{g}→{l} {s.remap.skill_of_global[g]}" for g, l in s.remap.global_to_local.items())
        table.add_row(name, idx, _plan_steps(s.plan), remap)
    out.print(table)


def main() -> None:
    """Console-script entry point: user errors become one line and exit code 2."""
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


if __name__ == "__main__":
    main()
