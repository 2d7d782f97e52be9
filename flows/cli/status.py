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
    from flowrl_core.reporting.status import status_document, summarize_store
    from flowrl_core.store.objects import Store
    summary = summarize_store(Store(store, create=False))
    if json_:
        print_json(status_document(summary))
        return
    table = Table(title=f"store {summary['store']}")
    for col in ("skill", "expert", "state", "frames", "version", "trained", "runs", "success"):
        table.add_column(col, overflow="fold")
    for name, s in summary["skills"].items():
        sr = s["success_rate"]
        table.add_row(name, str(s["index"]), s["state"], f"{s['frames']:,}", s["version"] or "—", f"{s['trained_frames']:,}",
                      f"{s['completed_runs']}/{s['runs']}" + (f" ({s['unfinished_runs']} unfinished)" if s["unfinished_runs"] else ""),
                      f"{sr:.0%}" if isinstance(sr, (int, float)) else "—")
    out.print(table)


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


