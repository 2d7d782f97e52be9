"""``flowrl status`` and ``flowrl report``: what a store holds."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from flows.cli.app import app, fitted_to_terminal, out, print_json
from flows.cli.tables import Col, fitted_table


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
    # table says so: the skill's own last run while it trained, and the latest recorded evaluation on
    # fresh episodes, marked stale once its dependants' runs have replaced an expert it used.
    caption = ("expert frames: all runs that trained the expert (dependants' runs too); own frames, last run's "
               "success: the skill's own runs, while training; evaluated: the latest recorded evaluation on fresh "
               "episodes, random in brackets (stale: a later run retrained its experts since; `flowrl eval SKILL "
               "--record` measures the current ones)")
    short = fitted_to_terminal(out)
    if short:
        caption += "; version: its parameters' hash (full ids with --json or `| cat`)"
    columns = (Col("skill"), Col("expert", keep=4, right=True), Col("state"), Col("expert\nframes", keep=6, right=True),
               Col("version", keep=2), Col("own\nframes", keep=3, right=True), Col("runs", keep=5, wrap=True),
               Col("last run's\nsuccess", keep=7, right=True), Col("evaluated\n(random)", keep=8, wrap=True))
    rows = []
    for s in summary.skills:
        runs = f"{s.completed_runs}/{s.runs}" + (f" ({s.unfinished_runs} unfinished)" if s.unfinished_runs else "") \
            + (f" ({s.failed_runs} failed)" if s.failed_runs else "")
        version = (_short_version(s.version) if short else s.version) if s.version else "—"
        rows.append((s.name, str(s.expert), s.state.value, f"{s.frames:,}", version, f"{s.trained_frames:,}", runs,
                     f"{s.success_rate:.0%}" if s.success_rate is not None else "—", _evaluated(s)))
    out.print(fitted_table(out, columns, rows, title=f"store {summary.store}", caption=caption))


def _short_version(version_id: str) -> str:
    """The content hash that ends a version id, cut like a short git commit."""
    return version_id.rsplit("-", 1)[-1][:8]


def _evaluated(s) -> str:
    """"41% (0%)", where evaluated episodes died "; died 58% (zombie)", and "; stale" once retrained."""
    if s.evaluated_success is None:
        return "—"
    text = f"{s.evaluated_success:.0%} ({s.random_success:.0%})"
    if s.evaluated_deaths:
        text += f"; died {s.evaluated_deaths:.0%}" + (f" ({s.evaluated_death_cause})" if s.evaluated_death_cause else "")
    if s.evaluation_stale:
        text += "; stale"
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
