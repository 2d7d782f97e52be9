"""The main job: ``train-skill-graph`` trains every skill of a skill file as a Prefect DAG.

Order of business: :func:`~flowrl_core.lifecycle.prepare.prepare_graph_run` validates
everything before anything is written; :func:`~flowrl_core.lifecycle.prepare.claim_graph_run`
claims expert indices; one ``skill`` task per skill is submitted with ``wait_for`` = its
dependencies' futures; a progress artifact moves as they finish; the results table and the DAG
are published.  A failed skill fails only its descendants (Prefect leaves them NotReady); the
independent branches finish and the flow ends Failed with the partial results attached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, wait
from prefect.states import Completed, Failed
from pydantic import BaseModel, Field

from flowrl_core.defaults import DEFAULT_PROFILE, DEFAULT_STORE
from flowrl_core.lifecycle.context import (
    LaunchSettings,
    Library,
    RunContext,
    StoreRef,
    TrainingSetup,
)
from flowrl_core.lifecycle.outcomes import (
    GraphSummary,
    SkillOutcome,
    SkillStatus,
    order_outcomes,
    skipped,
)
from flowrl_core.lifecycle.prepare import (
    GraphRunPlan,
    Launcher,
    Priority,
    RunSettings,
    claim_graph_run,
    prepare_graph_run,
)
from flowrl_core.plugins import load_plugins
from flowrl_core.scheduling.slots import PrioritySlots
from flowrl_core.skills.parsing import parse_skill_doc, read_skill_file
from flowrl_core.store import leases
from flows.publish import artifact_key, publish_results
from tasks.skill import skill_task


def outcomes_of(futures: dict[str, PrefectFuture], plan: GraphRunPlan, indices: dict[str, int]) -> dict[str, SkillOutcome]:
    """Each future's final state as a typed outcome (a skill's own error, or the upstream that failed)."""
    outcomes: dict[str, SkillOutcome] = {}
    for name in plan.targets:
        fut = futures[name]
        state = fut.state
        if state.is_completed():
            outcome = fut.result()
        elif state.is_failed() or state.is_crashed():
            try:
                fut.result(raise_on_failure=True)
                reason = state.message or state.name
            except Exception as exc:  # noqa: BLE001 - the skill's own exception, for the summary
                reason = f"{type(exc).__name__}: {exc}"
            outcome = SkillOutcome(name, SkillStatus.FAILED, error=reason)
        else:
            failed = [n for n, o in outcomes.items() if o.status is SkillStatus.FAILED]
            outcome = skipped(name, plan.graph, failed)
        outcomes[name] = SkillOutcome(**{**outcome.__dict__, "expert": indices[name]})
    return outcomes


class GraphRunInternals(BaseModel):
    """Set by flowrl's own callers (the CLI, the nightly continuation, the benchmarks); leave empty
    in the Run form."""

    skills: dict[str, Any] | None = Field(None, description="the decoded skill file, instead of skills_file")
    continuation: bool = Field(False, description="train the skills further as new versions")
    deployment: str = Field("train-skill/train-skill", description="the child deployment of launcher=pool")
    stale_after_s: float = Field(90.0, gt=0, description="a pool trainer silent this long counts as lost")
    priority: Priority = Field(Priority.CRITICAL_PATH, description="which ready skill takes a free slot first")


def run_name() -> str:
    """``<skill file> → <store>``: what a flow run is about, instead of a random name."""
    from prefect.runtime import flow_run

    params = flow_run.parameters or {}
    internal = params.get("internal") or {}
    skills = internal.get("skills") if isinstance(internal, dict) else getattr(internal, "skills", None)
    label = Path(str(params.get("skills_file"))).stem if params.get("skills_file") else \
        str((skills or {}).get("name") or "skills")
    return f"{label} → {params.get('store', DEFAULT_STORE)}"[:120]


@flow(name="train-skill-graph", log_prints=True, flow_run_name=run_name)
def train_skill_graph(
    skills_file: str | None = None,
    store: str = DEFAULT_STORE,
    env: str | None = None,
    env_options: dict[str, Any] | None = None,
    profile: Literal["cpu", "tiny", "default"] = DEFAULT_PROFILE,
    overrides: dict[str, Any] | None = None,
    slots: int = 1,
    gpus: list[str] | None = None,
    retries: int = 2,
    only: list[str] | None = None,
    launcher: Launcher = Launcher.LOCAL,
    storage_options: dict[str, Any] | None = None,
    internal: GraphRunInternals | None = None,
) -> Any:
    """Train every skill of a skill file as a DAG into a store.

    A failed skill fails only its descendants; the run then ends Failed with the partial results.

    Args:
        skills_file: Path of the skill file (.yaml, .yml or .json) as the machine running this flow sees it.
        store: Store URL: a folder, file://, memory:// or s3://bucket/prefix.
        env: Environment (gridworld, Craftax-Classic-Symbolic-v1, Craftax-Symbolic-v1); empty: the skill file's env.
        env_options: Environment settings over the skill file's env_options, e.g. {"max_steps": 60}.
        profile: Training profile: cpu (laptop), tiny (smoke tests) or default (GPU scale).
        overrides: Training settings for every skill, e.g. {"total_timesteps": 50000}; they win over the file's train maps.
        slots: Skills training at once (ignored with gpus).
        gpus: GPU ids, one slot each, e.g. ["0", "1"].
        retries: Retries of a failed training; each resumes from the run's last checkpoint.
        only: Train only these skills; the experts their plans route through must be trained already.
        launcher: local: trainers are child processes here; pool: each skill is a child flow run on the GPU pool.
        storage_options: fsspec options of the store, e.g. {"client_kwargs": {"endpoint_url": "..."}}.
        internal: Set by flowrl itself; leave empty.
    """
    internal = internal or GraphRunInternals()
    skills, continuation, deployment = internal.skills, internal.continuation, internal.deployment
    stale_after_s, priority = internal.stale_after_s, internal.priority
    load_plugins()
    logger = get_run_logger()
    if (skills_file is None) == (skills is None):
        raise ValueError("pass exactly one of skills_file (a path) or skills (the decoded file)")
    doc = read_skill_file(skills_file) if skills_file else parse_skill_doc(skills, source="parameter 'skills'")
    settings = RunSettings(
        store=store, storage_options=dict(storage_options or {}), env=env, env_options=dict(env_options or {}),
        profile=profile, overrides=dict(overrides or {}), only=tuple(only or ()), continuation=continuation,
        slots=int(slots), gpus=tuple(str(g) for g in gpus or ()), retries=int(retries), priority=Priority(priority),
        launcher=Launcher(launcher), deployment=deployment)
    plan = prepare_graph_run(doc, settings)
    claimed = claim_graph_run(plan)
    ctx = RunContext(store=StoreRef(claimed.store.url, settings.storage_options),
                     training=TrainingSetup(plan.env, plan.env_options, plan.trainer, continuation),
                     library=Library.of_plan(plan), slots=PrioritySlots(plan.devices),
                     launch=LaunchSettings(launcher=settings.launcher, retries=settings.retries,
                                           deployment=deployment, stale_after_s=float(stale_after_s)),
                     owner=leases.new_owner())
    logger.info("%d skills, training %d on %d slot(s); order %s; critical path %s", len(plan.order),
                len(plan.targets), len(plan.devices), " → ".join(plan.targets), " → ".join(plan.critical_path))

    ctx.slots.prime({n: plan.priorities.get(n, 0.0) for n in plan.targets if not plan.upstream[n]})
    futures: dict[str, PrefectFuture] = {}
    for name in plan.targets:
        futures[name] = skill_task.submit(name, ctx, wait_for=[futures[d] for d in plan.upstream[name]])
    _wait_with_progress(list(futures.values()), artifact_key(plan.label))

    outcomes = outcomes_of(futures, plan, dict(claimed.indices))
    summary = GraphSummary(
        store=claimed.store.url, outcomes=order_outcomes(plan.targets, outcomes), indices=dict(claimed.indices),
        peak_concurrency=ctx.slots.peak_concurrency(), timeline=ctx.recorder.timeline(),
        merged_at=ctx.recorder.merged_at(), slot_events=tuple(vars(e) for e in ctx.slots.events))
    publish_results(claimed.store, plan, summary)
    logger.info("done: %s", ", ".join(f"{o.skill}={o.status.value}" for o in summary.outcomes))
    return (Completed if summary.ok else Failed)(message=summary.message, data=summary)


def _wait_with_progress(futures: list[PrefectFuture], key: str) -> None:
    progress_id = create_progress_artifact(progress=0.0, key=f"{key}-progress",
                                           description=f"skills finished of {len(futures)}")
    pending, finished = set(futures), 0
    while pending:
        done, pending = wait(list(pending), timeout=2.0)
        if done:
            finished += len(done)
            update_progress_artifact(progress_id, 100.0 * finished / max(1, len(futures)))
    for fut in futures:
        fut.wait()  # pins each future's final state locally (the API's copy can lag behind)
