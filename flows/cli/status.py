"""``flowrl status`` and ``flowrl report``: what a store holds."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from flows.cli.app import app, out, print_json


@app.command()
def status(
    store: str = typer.Argument("./flowrl-store", help="Store URL."),
    json_: bool = typer.Option(False, "--json", help="One JSON object on stdout (schema flowrl.status/1, see README)."),
) -> None:
    """Skills, experts, versions, frames and the latest success rate in a store."""
    from flowrl_core.reporting.status import summarize_store
    from flowrl_core.store.objects import Store
    summary = summarize_store(Store(store, create=False))
    if json_:
        print_json(summary.to_dict())
        return
    # Two columns of success answer different questions, and read as a contradiction unless the
    # table says so: the skill's own last run while it trained, and the store's experts *now*
    # (which its dependants' runs keep training) on fresh episodes.
    table = Table(title=f"store {summary.store}", caption=(
        "expert frames: all runs that trained the expert (dependants' runs too); own frames, last run's success: "
        "the skill's own runs, while training; evaluated: the current experts on fresh episodes, random in brackets"))
    for col in ("skill", "expert", "state", "expert frames", "version", "own frames", "runs", "last run's success",
                "evaluated (random)"):
        table.add_column(col, overflow="fold")
    for s in summary.skills:
        runs = f"{s.completed_runs}/{s.runs}" + (f" ({s.unfinished_runs} unfinished)" if s.unfinished_runs else "") \
            + (f" ({s.failed_runs} failed)" if s.failed_runs else "")
        table.add_row(s.name, str(s.expert), s.state, f"{s.frames:,}", s.version or "—", f"{s.trained_frames:,}", runs,
                      f"{s.success_rate:.0%}" if s.success_rate is not None else "—",
                      _evaluated(s))
    out.print(table)


def _evaluated(s) -> str:
    """"41% (0%)", and where evaluated episodes died, "; died 58% (zombie)"."""
    if s.evaluated_success is None:
        return "—"
    text = f"{s.evaluated_success:.0%} ({s.random_success:.0%})"
    if s.evaluated_deaths:
        text += f"; died {s.evaluated_deaths:.0%}" + (f" ({s.evaluated_death_cause})" if s.evaluated_death_cause else "")
    return text


@app.command()
def report(
    store: str = typer.Argument("./flowrl-store", help="Store URL."),
    out_path: Optional[Path] = typer.Option(None, "--out", help="Write here instead of <store>/report.html."),
) -> None:
    """Write an HTML page with every skill's learning curve, rollout GIF and the DAG."""
    from flowrl_core.reporting.report import write_report
    from flowrl_core.store.objects import Store
    path = write_report(Store(store, create=False), str(out_path) if out_path else None)
    out.print(f"report written to [bold]{path}[/]")
