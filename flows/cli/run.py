"""``flowrl run`` and ``flowrl continue``: the train-skill-graph flow with live progress.

Both validate everything (:func:`~flowrl_core.lifecycle.prepare.prepare_graph_run`) before
Prefect starts or anything is written, so bad input is one line and exit 2 with no store
created; then the flow runs in a thread while the terminal shows one progress bar per skill.
The skill file is read once: the flow receives its decoded form.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer

from flowrl_core.defaults import DEFAULT_ENV, DEFAULT_PROFILE, DEFAULT_STORE
from flows.cli.app import ExitCode, _parse_settings, app, err, fail, out, stop_after_interrupt
from flows.cli.tables import Col, fitted_table


def _progress_notes(store: Any, targets: list[str], budgets: dict[str, int]) -> dict[str, tuple[int, str]]:
    """skill -> (frames so far, note), read from the store's run records and metrics."""
    from flowrl_core.store.runs import RunState, skill_runs

    notes = {}
    for name in targets:
        runs = sorted(skill_runs(store, name).values(), key=lambda r: r.started_at)
        live = [r for r in runs if r.state is RunState.STARTED]
        if live:
            rows = store.run(live[-1].run_id).read_metrics()
            sr = rows[-1].get("success_rate") if rows else None
            notes[name] = (rows[-1].get("frames", 0) if rows else 0,
                           f"success {sr:.0%}" if isinstance(sr, (int, float)) else "starting")
        elif runs and runs[-1].state is RunState.COMPLETED:
            notes[name] = (budgets[name], "done")
        elif runs and runs[-1].state is RunState.FAILED:
            notes[name] = (0, "failed")
    return notes


def _run_flow(kwargs: dict[str, Any], plan: Any, *, as_json: bool) -> int:
    """Run the flow in a worker thread while the terminal shows per-skill progress bars."""
    import threading

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from flowrl_core.lifecycle.outcomes import GraphSummary
    from flowrl_core.store.objects import Store
    from flows.graph_flow import train_skill_graph

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["state"] = train_skill_graph(**kwargs, return_state=True)
        except BaseException as exc:  # noqa: BLE001 - surfaced below as one line
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    targets, budgets = list(plan.targets), dict(plan.budgets)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
               TimeElapsedColumn())
    # Bars are drawn on stderr, and Prefect's log lines are printed through the same console while
    # they are live, so rich keeps the bars below the log instead of both overwriting each other;
    # stdout stays for the results (the table or --json).
    with Progress(*columns, console=err, transient=False, disable=as_json or not err.is_terminal) as progress, \
            _prefect_logs_through(err):
        bars = {n: progress.add_task(n, total=budgets[n], note="waiting") for n in targets}
        store = None
        try:
            while thread.is_alive():
                thread.join(1.0)
                try:
                    store = store or Store(plan.settings.store, storage_options=dict(plan.settings.storage_options),
                                           create=False)
                    for name, (frames, note) in _progress_notes(store, targets, budgets).items():
                        progress.update(bars[name], completed=frames, note=note)
                except Exception:  # noqa: BLE001 - the store may not exist yet; progress is best effort
                    continue
        except KeyboardInterrupt:
            # Stop the trainers now and give the flow a moment to record how it ended (its tasks
            # fail at once and retry nothing), so a Prefect server does not show it running.
            stop_after_interrupt()
            thread.join(10.0)
            raise
    if "error" in box:
        raise _infrastructure(box["error"])
    state = box["state"]
    summary = state.result(raise_on_failure=False)
    if not isinstance(summary, GraphSummary):
        fail(f"flow ended {state.name}: {str(state.message)[:300]}", code=ExitCode.FAILED)
    if as_json:
        out.print_json(jsonlib.dumps(summary.to_dict()))
    else:
        _print_summary(summary)
    if not summary.ok:
        err.print(f"[bold red]failed:[/] {summary.message}", highlight=False, soft_wrap=True)
        return ExitCode.FAILED
    return ExitCode.OK


@contextmanager
def _prefect_logs_through(console: Any) -> Iterator[None]:
    """Print Prefect's console log records through ``console`` (a live display's) for a while."""
    import logging

    handlers = [h for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
                if isinstance(logger, logging.Logger) for h in logger.handlers
                if type(h).__name__ == "PrefectConsoleHandler" and hasattr(h, "console")]
    saved = [(h, h.console) for h in handlers]
    for h in handlers:
        h.console = console
    try:
        yield
    finally:
        for h, previous in saved:
            h.console = previous


def _infrastructure(exc: BaseException) -> BaseException:
    """Prefect's API that would not start or answer is an infrastructure failure (exit 3)."""
    from flowrl_core.errors import FlowRLError, UnreachableError

    if isinstance(exc, FlowRLError):
        return exc
    text = f"{type(exc).__name__}: {exc}"
    lowered = text.lower()
    if isinstance(exc, (ConnectionError, TimeoutError)) or any(w in lowered for w in ("connect", "timed out", "reach api")):
        return UnreachableError(f"the Prefect API could not be reached ({text[:200]}); check PREFECT_API_URL, "
                                "or unset it to use the embedded one")
    return exc


def _print_summary(summary: Any) -> None:
    columns = (Col("skill"), Col("expert", keep=3, right=True), Col("status"), Col("frames", keep=5, right=True),
               Col("success", keep=7, right=True), Col("merge decisions", keep=4, wrap=True))
    rows = [(o.skill, str(o.expert), o.status.value, f"{o.frames:,}" if o.frames is not None else "",
             f"{o.success_rate:.0%}" if o.success_rate is not None else "",
             ", ".join(f"{d.skill} {d.action}" for d in o.decisions) or o.error[:200])
            for o in summary.outcomes]
    out.print(fitted_table(out, columns, rows, title=f"results in {summary.store}"))
    out.print(f"store: [bold]{summary.store}[/] — inspect with `flowrl status {summary.store}`")


def check_prefect_api() -> None:
    """With ``PREFECT_API_URL`` set, the server must answer before anything runs (exit 3 if not)."""
    import os

    import httpx

    from flowrl_core.errors import UnreachableError

    url = os.environ.get("PREFECT_API_URL", "").strip()
    if not url:
        return  # the embedded, ephemeral API starts with the flow
    try:
        response = httpx.get(url.rstrip("/") + "/health", timeout=10.0)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise UnreachableError(f"the Prefect API at {url} could not be reached ({type(exc).__name__}: "
                               f"{str(exc)[:150]}); start the server, fix PREFECT_API_URL, or unset it to use "
                               "the embedded one") from None


def _prepare(doc: Any, **settings: Any) -> Any:
    from flowrl_core.lifecycle.prepare import RunSettings, prepare_graph_run

    plan = prepare_graph_run(doc, RunSettings(**settings))
    check_prefect_api()
    return plan


def _flow_kwargs(doc: Any, plan: Any) -> dict[str, Any]:
    s = plan.settings
    data = doc.to_data()
    data.setdefault("name", Path(doc.source).stem)  # the artifacts' key, as if the flow had read the file
    return dict(store=s.store, env=s.env, profile=s.profile, overrides=dict(s.overrides) or None,
                slots=s.slots, gpus=list(s.gpus) or None, per_gpu=s.per_gpu, gpu_memory=s.gpu_memory,
                retries=s.retries, only=list(s.only) or None,
                env_options=dict(s.env_options) or None, storage_options=dict(s.storage_options) or None,
                internal={"skills": data, "continuation": s.continuation})


@app.command()
def run(
    skills_file: Path = typer.Argument(..., help="Skill file (.yaml, .yml or .json)."),
    store: str = typer.Option(DEFAULT_STORE, help="Store URL: folder, file://, memory:// or s3://."),
    env: Optional[str] = typer.Option(None, help="Environment: gridworld, Craftax-Classic-Symbolic-v1, Craftax-Symbolic-v1 "
                                      f"(default: the skill file's env:, else {DEFAULT_ENV})."),
    env_opt: Optional[list[str]] = typer.Option(None, "--env-opt", help="Environment setting KEY=VALUE, e.g. max_steps=50."),
    profile: str = typer.Option(DEFAULT_PROFILE, help="Training profile: cpu, tiny or default (the GPU-scale reference)."),
    slots: int = typer.Option(1, help="Skills training at once (ignored with --gpus)."),
    gpus: Optional[str] = typer.Option(None, help="Comma-separated GPU ids, one slot each, e.g. 0,1,2,3."),
    per_gpu: Optional[str] = typer.Option(None, "--per-gpu", help="Trainings sharing each GPU: 'auto' packs them "
                                          "by their memory estimates, N runs N on each (default: one)."),
    gpu_memory: Optional[str] = typer.Option(None, "--gpu-memory", help="Memory of each GPU for packing, e.g. 80GiB "
                                             "or 0=80GiB,1=40GiB (default: nvidia-smi)."),
    retries: int = typer.Option(2, help="Retries of a failed training (each resumes from its checkpoint)."),
    only: Optional[list[str]] = typer.Option(None, help="Train only these skills (repeatable); the experts their "
                                             "plans route through must be trained already."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Training setting for every skill, KEY=VALUE; "
                                             "wins over the skill file's train: maps."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as one JSON object (see README)."),
    apply_analysis: bool = typer.Option(False, "--apply-analysis", help="Apply the consistent spec corrections the "
                                        "store's analyses propose (diff printed first), then retrain the skills "
                                        "they affect as new versions."),
) -> None:
    """Train every skill of SKILLS_FILE as a Prefect DAG (embedded Prefect unless PREFECT_API_URL is set)."""
    from flowrl_core.skills.parsing import read_skill_file

    doc = read_skill_file(skills_file)
    continuation = False
    if apply_analysis:
        applied = _applied_analysis(doc, store, as_json=as_json)
        if applied is None:
            raise typer.Exit(ExitCode.OK)
        doc, continuation = applied.doc, True
        only = [s for s in applied.affected if not only or s in only]
        if not only:
            (err if as_json else out).print("none of the skills the corrections affect is in --only: nothing to retrain")
            raise typer.Exit(ExitCode.OK)
    gpu_list = tuple(g.strip() for g in gpus.split(",")) if gpus else ()
    plan = _prepare(doc, store=store, env=env, env_options=_parse_settings(env_opt or [], "--env-opt"),
                    profile=profile, overrides=_parse_settings(set_ or []), only=tuple(only or ()), slots=slots,
                    gpus=gpu_list, per_gpu=per_gpu, gpu_memory=gpu_memory, retries=retries,
                    continuation=continuation)
    raise typer.Exit(_run_flow(_flow_kwargs(doc, plan), plan, as_json=as_json))


def _applied_analysis(doc: Any, store_url: str, *, as_json: bool) -> Any:
    """The skill file with the store's consistent analysis corrections applied (None: there are none)."""
    from flowrl_core.analysis import latest_analyses
    from flowrl_core.analysis.apply import apply_corrections, proposed_corrections
    from flowrl_core.store.objects import Store

    console = err if as_json else out
    st = Store(store_url, create=False)
    known = set(st.skill_names())
    analyses = latest_analyses(st, [s.name for s in doc.specs if s.name in known])
    if not analyses:
        fail(f"store {st.url} holds no analysis of a skill in {doc.source}; train them first "
             f"(`flowrl run {doc.source} --store {st.url}`): every training ends with one")
    corrections = proposed_corrections(doc.specs, list(analyses.values()))
    if not corrections:
        console.print(f"the analyses of {len(analyses)} skill(s) propose no consistent correction to {doc.source}: "
                      "nothing to apply")
        return None
    applied = apply_corrections(doc, corrections)
    console.print(applied.diff(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"retraining {', '.join(applied.affected)} with the corrected spec(s) as new versions; "
                  f"{doc.source} itself is unchanged (copy the + lines into it to keep them)", highlight=False)
    return applied


@app.command("continue")
def continue_(
    skill: str = typer.Argument(..., help="A skill already in the store."),
    frames: int = typer.Option(..., help="Extra frames to train."),
    store: str = typer.Option(DEFAULT_STORE, help="Store URL."),
    skills_file: Optional[Path] = typer.Option(None, help="Skill file (default: the specs saved in the store)."),
    env: Optional[str] = typer.Option(None, help="Environment (default: the one the skill last trained in)."),
    env_opt: Optional[list[str]] = typer.Option(None, "--env-opt", help="Environment setting KEY=VALUE."),
    profile: str = typer.Option(DEFAULT_PROFILE, help="Training profile."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Training setting, KEY=VALUE."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as one JSON object."),
) -> None:
    """Train SKILL further as a new version; the frame-count rule decides what the store keeps."""
    from flowrl_core.lifecycle.job import continuation_network, last_completed_job
    from flowrl_core.skills.parsing import parse_skill_doc, read_skill_file
    from flowrl_core.store.objects import Store

    st = Store(store, create=False)
    names = st.skill_names()
    if skill not in names:
        fail(f"skill {skill!r} is not in store {st.url}; known: {', '.join(names[:20]) or 'none'}")
    if skills_file is not None:
        doc = read_skill_file(skills_file)
    else:
        doc = parse_skill_doc({"skills": [st.load_skill(n).to_dict() for n in names]}, source=f"{st.url} (saved specs)")
    job = last_completed_job(st, skill)
    env_options = dict(job.env_options) if job and env is None else {}
    env_options.update(_parse_settings(env_opt or [], "--env-opt"))
    settings = _parse_settings(set_ or [])
    overrides = {**continuation_network(st, skill, settings), **settings, "total_timesteps": frames}
    plan = _prepare(doc, store=store, env=env or (job.env if job else None), env_options=env_options,
                    profile=profile, overrides=overrides, only=(skill,), continuation=True)
    raise typer.Exit(_run_flow(_flow_kwargs(doc, plan), plan, as_json=as_json))
