"""``flowrl run`` and ``flowrl continue``: the train-skill-graph flow with live progress."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from flows.cli.app import _parse_settings, app, err, fail, out


def _run_flow(kwargs: dict, store_url: str, targets: list[str], budgets: dict[str, int]) -> int:
    """Run the flow in a worker thread while the terminal shows per-skill progress bars."""
    import threading

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from flowrl_core.store.objects import Store
    from flowrl_core.store.runs import skill_runs
    from flows.graph_flow import train_skill_graph

    box: dict = {}

    def target() -> None:
        try:
            box["state"] = train_skill_graph(**kwargs, return_state=True)
        except BaseException as exc:  # surfaced below as one line
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=out, transient=False, disable=not out.is_terminal) as progress:
        bars = {n: progress.add_task(n, total=budgets[n], note="waiting") for n in targets}
        store = None
        while thread.is_alive():
            thread.join(1.0)
            try:
                store = store or Store(store_url, storage_options=kwargs.get("storage_options") or {}, create=False)
                for name in targets:
                    runs = skill_runs(store, name)
                    live = [r for r in runs.values() if r.get("status") == "started"]
                    done = [r for r in runs.values() if r.get("status") == "completed"]
                    if live:
                        rows = store.run(live[-1]["run_id"]).read_metrics()
                        frames = rows[-1].get("frames", 0) if rows else 0
                        sr = rows[-1].get("success_rate") if rows else None
                        note = f"success {sr:.0%}" if isinstance(sr, (int, float)) else "starting"
                        progress.update(bars[name], completed=frames, note=note)
                    elif done:
                        progress.update(bars[name], completed=budgets[name], note="done")
            except Exception:  # the store may not exist yet; progress is best effort
                continue
    if "error" in box:
        raise box["error"]
    state = box["state"]
    summary = state.result(raise_on_failure=False)
    if not isinstance(summary, dict):
        fail(f"flow ended {state.name}: {state.message}", code=1)
    table = Table(title=f"results in {summary['store']}")
    for col in ("skill", "expert", "status", "frames", "success", "merge decisions"):
        table.add_column(col)
    for r in summary["skills"]:
        sr = r.get("success_rate")
        table.add_row(r["skill"], str(r.get("expert")), r["status"], str(r.get("frames") or ""),
                      f"{sr:.0%}" if isinstance(sr, (int, float)) else "",
                      ", ".join(f"{d['skill']} {d['action']}" for d in r.get("decisions", [])) or r.get("error", ""))
    out.print(table)
    out.print(f"store: [bold]{summary['store']}[/] — inspect with `flowrl status {summary['store']}`")
    if state.is_failed():
        err.print(f"[bold red]failed:[/] {state.message}", highlight=False, soft_wrap=True)
        return 1
    return 0


@app.command()
def run(
    skills_file: Path = typer.Argument(..., help="Skill file (.yaml, .yml or .json)."),
    store: str = typer.Option("./flowrl-store", help="Store URL: folder, file://, memory:// or s3://."),
    env: Optional[str] = typer.Option(None, help="Environment: gridworld, Craftax-Classic-Symbolic-v1, Craftax-Symbolic-v1 "
                                      "(default: the skill file's env:, else gridworld)."),
    env_opt: Optional[list[str]] = typer.Option(None, "--env-opt", help="Environment setting KEY=VALUE, e.g. max_steps=50."),
    profile: str = typer.Option("cpu", help="Training profile: cpu, tiny or default (the GPU-scale reference)."),
    slots: int = typer.Option(1, min=1, help="Skills training at once (ignored with --gpus)."),
    gpus: Optional[str] = typer.Option(None, help="Comma-separated GPU ids, one slot each, e.g. 0,1,2,3."),
    retries: int = typer.Option(2, min=0, help="Retries of a failed training (each resumes from its checkpoint)."),
    only: Optional[list[str]] = typer.Option(None, help="Train only these skills (repeatable)."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Training setting for every skill, KEY=VALUE."),
) -> None:
    """Train every skill of SKILLS_FILE as a Prefect DAG (embedded Prefect unless PREFECT_API_URL is set)."""
    from flowrl_core.skills.parsing import load_skill_file
    from flowrl_core.training.config import resolve_config
    specs = load_skill_file(skills_file)  # fail fast, before Prefect starts
    overrides = _parse_settings(set_ or [])
    targets = [s.name for s in specs if not only or s.name in only]
    budgets = {s.name: int(resolve_config(profile, overrides, s.train, skill=s.name)["total_timesteps"])
               for s in specs if s.name in targets}
    gpu_list = [g.strip() for g in gpus.split(",") if g.strip()] if gpus else None
    kwargs = dict(skills_file=str(skills_file), store=store, env=env, profile=profile, overrides=overrides,
                  slots=slots, gpus=gpu_list, retries=retries, only=only or None,
                  env_options=_parse_settings(env_opt or []) or None)
    raise typer.Exit(_run_flow(kwargs, store, targets, budgets))


@app.command("continue")
def continue_(
    skill: str = typer.Argument(..., help="A skill already in the store."),
    frames: int = typer.Option(..., min=1, help="Extra frames to train."),
    store: str = typer.Option("./flowrl-store", help="Store URL."),
    skills_file: Optional[Path] = typer.Option(None, help="Skill file (default: the specs saved in the store)."),
    env: str = typer.Option("gridworld", help="Environment."),
    profile: str = typer.Option("cpu", help="Training profile."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Training setting, KEY=VALUE."),
) -> None:
    """Train SKILL further as a new version; the frame-count rule decides what the store keeps."""
    import json
    import tempfile

    from flowrl_core.store.objects import Store
    st = Store(store, create=False)
    if skills_file is None:
        names = st.skill_names()
        if skill not in names:
            fail(f"skill {skill!r} is not in store {st.url}; known: {', '.join(names) or 'none'}")
        specs = [st.load_skill(n).to_dict() for n in names]
        tmp = Path(tempfile.mkdtemp(prefix="flowrl-")) / "skills.json"
        tmp.write_text(json.dumps({"skills": specs}))
        skills_file = tmp
    overrides = _parse_settings(set_ or []) | {"total_timesteps": frames}
    kwargs = dict(skills_file=str(skills_file), store=store, env=env, profile=profile, overrides=overrides,
                  only=[skill], continuation=True)
    raise typer.Exit(_run_flow(kwargs, store, [skill], {skill: frames}))


