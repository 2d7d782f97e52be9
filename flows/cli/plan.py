"""``flowrl plan``: validate a skill file and explain the DAG without training or writing."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.tree import Tree

from flows.cli.app import app, out, print_json
from flows.cli.tables import Col, fitted_table


def _plan_steps(plan) -> str:
    return " → ".join(f"{s.skill}×{s.count}" if s.count > 1 else s.skill for s in plan)


PLAIN_OVER = 200  # skills; above this, plain lines (a rich table of 10,000 rows takes half a minute)


def _print_plain(view) -> None:
    import sys

    write = sys.stdout.write
    write(f"training order: {' → '.join(view.order)}\n")
    write(f"critical path: {' → '.join(view.critical_path)} ({len(view.critical_path)} skills)\n")
    for name in view.order:
        s = view.skills[name]
        deps = ", ".join(f"{d} ({view.graph.edges[d, name].get('reason', '')})" for d in s.depends_on) or "-"
        remap = ", ".join(f"{g}→{l} {s.remap.skill_of_global[g]}" + ("" if s.trains(g) else " (frozen)")
                          for g, l in s.remap.global_to_local.items())
        write(f"{name} [expert {s.index}{' new' if s.index_is_new else ''}] needs {deps}; plan {_plan_steps(s.plan)}; "
              f"experts {remap}\n")


@app.command()
def plan(
    skills_file: Path = typer.Argument(..., help="Skill file (.yaml, .yml or .json)."),
    store: Optional[str] = typer.Option(None, help="Read expert indices from this store (read-only)."),
    json_: bool = typer.Option(False, "--json", help="One JSON object on stdout (schema flowrl.plan/1, see README)."),
) -> None:
    """Validate a skill file and show the graph, order, execution plans and expert remaps."""
    from flowrl_core.reporting.plan_view import overview, plan_document
    from flowrl_core.skills.parsing import load_skill_file
    from flowrl_core.store.objects import Store
    specs = load_skill_file(skills_file)
    existing = Store(store, create=False).expert_indices() if store else {}
    view = overview(specs, existing)
    if json_:
        print_json(plan_document(view, str(skills_file)))
        return

    out.print(f"[bold]{skills_file}[/]: {len(specs)} skills, {view.graph.number_of_edges()} dependencies — valid")
    if len(view.order) > PLAIN_OVER:
        _print_plain(view)
        return
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

    rows = []
    for name in view.order:
        s = view.skills[name]
        idx = f"{s.index}" + (" [dim](new)[/]" if s.index_is_new else "")
        remap = ", ".join(f"{g}→{l} {s.remap.skill_of_global[g]}" + ("" if s.trains(g) else " [dim](frozen)[/]")
                          for g, l in s.remap.global_to_local.items())
        rows.append((name, idx, _plan_steps(s.plan), remap))
    columns = (Col("skill"), Col("expert"), Col("execution plan", wrap=True), Col("MoE experts (global→local)", wrap=True))
    out.print(fitted_table(out, columns, rows, title="execution plans and expert remaps"))
