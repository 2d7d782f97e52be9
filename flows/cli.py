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
    from flowrl_core.reporting.plan_view import overview
    from flowrl_core.skills.parsing import load_skill_file
    from flowrl_core.store.objects import Store
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


@app.command()
def status(store: str = typer.Argument("./flowrl-store", help="Store URL.")) -> None:
    """Skills, experts, versions, frames and the latest success rate in a store."""
    from flowrl_core.reporting.status import summarize_store
    from flowrl_core.store.objects import Store
    summary = summarize_store(Store(store, create=False))
    table = Table(title=f"store {summary['store']}")
    for col in ("skill", "expert", "frames", "version", "trained", "runs", "success"):
        table.add_column(col)
    for name, s in summary["skills"].items():
        sr = s["success_rate"]
        table.add_row(name, str(s["index"]), f"{s['frames']:,}", s["version"] or "—", f"{s['trained_frames']:,}",
                      f"{s['completed_runs']}/{s['runs']}" + (f" ({s['unfinished_runs']} unfinished)" if s["unfinished_runs"] else ""),
                      f"{sr:.0%}" if isinstance(sr, (int, float)) else "—")
    out.print(table)


@app.command()
def grow(
    target: Optional[str] = typer.Option(None, help="Skill or key to reach, e.g. Collect_Stone or achievement:collect_stone."),
    proposer: str = typer.Option("curriculum", help="curriculum, file, llm or package.module:factory."),
    kb: str = typer.Option("gridworld", help="Knowledge base of the curriculum proposer (gridworld, craftax_classic)."),
    skills_file: Optional[Path] = typer.Option(None, help="Skill file for the file proposer."),
    store: str = typer.Option("./flowrl-store", help="Store URL."),
    env: str = typer.Option("gridworld", help="Environment."),
    profile: str = typer.Option("cpu", help="Training profile."),
    slots: int = typer.Option(1, min=1, help="Skills training at once."),
    max_skills: int = typer.Option(20, min=1, help="Stop proposing after this many skills."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Training setting, KEY=VALUE."),
) -> None:
    """Grow the skill library with a proposer while it trains (the grow-skills flow)."""
    from flows.grow_flow import grow_skills

    args: dict = {}
    if proposer == "curriculum":
        if not target:
            fail("the curriculum proposer needs --target")
        args = {"kb": kb, "target": target}
    elif proposer == "file":
        if not skills_file:
            fail("the file proposer needs --skills-file")
        args = {"path": str(skills_file)}
    elif proposer == "llm" and target:
        args = {"target": target}
    state = grow_skills(proposer=proposer, proposer_args=args, store=store, env=env, profile=profile,
                        overrides=_parse_settings(set_ or []), slots=slots, max_skills=max_skills, return_state=True)
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, dict):
        out.print(f"learned: {', '.join(summary['learned']) or 'nothing'} — {summary['stop_reason']}")
    if not state.is_completed():
        fail(f"grow-skills ended {state.name}: {state.message}", code=1)


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


pool_app = typer.Typer(help="Work pools for scale-out (needs PREFECT_API_URL).", no_args_is_help=True)
worker_app = typer.Typer(help="Prefect workers pinned to one GPU.", no_args_is_help=True)
app.add_typer(pool_app, name="pool")
app.add_typer(worker_app, name="worker")


@pool_app.command("create")
def pool_create(
    gpus: Optional[int] = typer.Option(None, min=1, help="GPUs in the whole fleet (default: this machine's)."),
    gpu_pool: str = typer.Option("gpu-pool", help="Name of the GPU pool."),
    cpu_pool: str = typer.Option("cpu-pool", help="Name of the orchestration pool."),
) -> None:
    """Create (or update) the GPU pool with limit = GPUs and the CPU pool; safe to repeat."""
    from deployments.pools import count_gpus, create_pools

    count = gpus or count_gpus()
    if not count:
        fail("no GPU found on this machine; pass --gpus N with the fleet's GPU count")
    for r in create_pools(count, gpu_pool=gpu_pool, cpu_pool=cpu_pool):
        limit = r.concurrency_limit if r.concurrency_limit is not None else "unlimited"
        out.print(f"{'created' if r.created else 'updated'} work pool [bold]{r.name}[/] (limit {limit})")


@worker_app.command("start")
def worker_start(
    gpu: Optional[str] = typer.Option(None, help="GPU id this worker pins (CUDA_VISIBLE_DEVICES)."),
    pool: str = typer.Option("gpu-pool", help="Work pool to serve."),
    limit: int = typer.Option(1, min=1, help="Runs at once on this worker (1 per GPU)."),
    name: Optional[str] = typer.Option(None, help="Worker name (default: pool-host-gpuN)."),
) -> None:
    """Become a Prefect process worker for POOL, pinned to one GPU (exec: signals reach the worker)."""
    from deployments.pools import exec_worker

    if not os.environ.get("PREFECT_API_URL"):
        fail("PREFECT_API_URL is not set: a worker needs a Prefect server (e.g. http://127.0.0.1:4200/api)")
    exec_worker(pool, gpu, limit=limit, name=name)


@app.command()
def trigger(
    deployment: str = typer.Option("train-skill-graph/train-skill-graph", help="flow-name/deployment-name."),
    skills_file: Optional[str] = typer.Option(None, help="Skill file path as the workers see it."),
    store: Optional[str] = typer.Option(None, help="Store URL (default: the deployment's)."),
    param: Optional[list[str]] = typer.Option(None, "--param", help="Flow parameter KEY=VALUE (JSON values)."),
    timeout: float = typer.Option(6 * 3600, help="Seconds to wait for the run to finish."),
) -> None:
    """Run a deployment on the Prefect server and wait: exit 0 if it Completed, 1 otherwise (for CI)."""
    from prefect.deployments import run_deployment

    if not os.environ.get("PREFECT_API_URL"):
        fail("PREFECT_API_URL is not set: trigger runs a deployment on a Prefect server")
    params = _parse_settings(param or [])
    if skills_file:
        params["skills_file"] = skills_file
    if store:
        params["store"] = store
    flow_run = run_deployment(deployment, parameters=params, timeout=timeout, poll_interval=5, as_subflow=False)
    state = flow_run.state
    out.print(f"flow run {flow_run.name} ({flow_run.id}): {state.name if state else 'unknown'}"
              + (f" — {state.message}" if state and state.message else ""))
    raise typer.Exit(0 if state is not None and state.is_completed() else 1)


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


if __name__ == "__main__":
    main()
