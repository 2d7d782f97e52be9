"""Prefect tasks for one skill: ``skill`` runs ``setup → train → analyse → merge`` as chained subtasks.

Each step is its own task run (own state, logs and timing in the UI).  The flow submits one
``skill`` task per skill with ``wait_for`` = its dependencies' futures, so it starts the moment
its last dependency merged.  The skill holds a device slot from setup to merge (critical-path
priority) and its run's lease for as long as it works on it.  Train runs the trainer in a child
process pinned to the slot's GPU, or as a child flow run on the GPU pool; either way a failure
is an ordinary task failure that Prefect retries, and the retry resumes from the run's last
checkpoint.  These tasks only call :mod:`flowrl_core.lifecycle` and report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.futures import PrefectFuture
from prefect.states import State
from prefect.transactions import CommitMode, transaction

from flowrl_core.analysis.records import AnalysisRecord, AnalysisStatus
from flowrl_core.lifecycle.context import RunContext
from flowrl_core.lifecycle.job import TrainingResult, read_result
from flowrl_core.lifecycle.merge import merge_run
from flowrl_core.lifecycle.outcomes import SkillOutcome, SkillStatus
from flowrl_core.lifecycle.prepare import Launcher
from flowrl_core.lifecycle.setup import SetupResult, record_failure, setup
from flowrl_core.scheduling.slots import Grant, MemoryShare
from flowrl_core.store import leases
from flowrl_core.store.experts import Decision
from tasks.launch import (
    STOPPING,
    OutOfMemory,
    TrainingFailed,
    run_analysis_process,
    run_memory_estimate,
    run_on_pool,
    run_trainer_process,
)


@task(name="setup", cache_policy=NO_CACHE, task_run_name="setup {skill}")
def setup_task(skill: str, ctx: RunContext) -> SetupResult:
    logger = get_run_logger()
    t = ctx.training
    result = setup(ctx.store.open(), ctx.library.specs(), skill, env=t.env, config=ctx.library.config(skill),
                   continuation=t.continuation, env_options=t.env_options, trainer=t.trainer, owner=ctx.owner)
    for run_id in result.abandoned:
        logger.warning("%s: closed unfinished run %s as abandoned (its job differs from this run's)", skill, run_id)
    if result.job is None:
        logger.info("%s already trained %d frames (budget %d): nothing to do", skill, result.done_frames,
                    ctx.library.config(skill)["total_timesteps"])
    else:
        job = result.job
        logger.info("%s run %s (%s): plan %s; experts %s; frames at setup %s", skill, job.run_id,
                    "resumed" if result.resumed else "new", " → ".join(f"{s.skill}×{s.count}" for s in job.plan),
                    job.remap.skill_of_global, job.frames_at_setup)
    return result


@task(name="train", cache_policy=NO_CACHE, task_run_name="train {skill}")
def train_task(skill: str, run_id: str, ctx: RunContext, slot: int = 0, device: str = "",
               share: MemoryShare | None = None) -> TrainingResult:
    """Train ``run_id`` on ``device`` (the caller holds ``slot``); raises so Prefect retries."""
    logger = get_run_logger()
    run_ctx = TaskRunContext.get()
    attempt = run_ctx.task_run.run_count if run_ctx and run_ctx.task_run else 1
    logger.info("%s: training run %s on slot %d%s (attempt %d)", skill, run_id, slot,
                f" (GPU {device})" if device else "", attempt)
    started = time.time()
    try:
        if ctx.launch.launcher is Launcher.POOL:
            entry = run_on_pool(ctx, skill, run_id, attempt=attempt, log=logger)
        else:
            entry = run_trainer_process(ctx.store, run_id, skill=skill, device=device, log=logger,
                                        heartbeat_s=ctx.launch.heartbeat_s, share=share)
    except TrainingFailed as exc:
        ctx.recorder.training({"skill": skill, "slot": slot, "start": started, "end": time.time(),
                               "exit": exc.exit_code if exc.exit_code is not None else 1, **exc.entry})
        raise
    ctx.recorder.training({"skill": skill, "slot": slot, **entry})
    result = read_result(ctx.store.open(), run_id)
    if result is None:
        raise TrainingFailed(f"skill {skill!r}: the trainer finished but run {run_id} has no result.json")
    return result


def _not_out_of_memory(task: object, task_run: object, state: State) -> bool:
    """Prefect retries any failure but an out-of-memory beside others (that one is retried alone)
    and any failure once this process is interrupted (its trainers were stopped on purpose)."""
    return not isinstance(state.data, OutOfMemory) and not STOPPING.is_set()


@task(name="estimate memory", cache_policy=NO_CACHE, task_run_name="estimate memory {skill}")
def estimate_task(skill: str, run_id: str, ctx: RunContext) -> int | None:
    return run_memory_estimate(ctx.store, run_id, skill=skill, device=ctx.slots.devices[0],
                               log=get_run_logger())


@task(name="analyse", cache_policy=NO_CACHE, task_run_name="analyse {skill}")
def analyse_task(skill: str, run_id: str, ctx: RunContext, device: str = "") -> AnalysisRecord:
    """Evaluate the run's trained policy against random, check its specs, explain its failures
    (``runs/<run_id>/analysis.json``); never fails the skill (a failed analysis is recorded)."""
    from prefect.artifacts import create_table_artifact

    from flowrl_core.reporting.flow_artifacts import analysis_table

    logger = get_run_logger()
    record = run_analysis_process(ctx.store, run_id, skill=skill, device=device, log=logger)
    logger.info("%s: analysis %s", skill, record.headline())
    for claim in record.contradictions():
        logger.warning("%s: %s %s %s: spec %d contradicted, observed %s in %.0f %% of %d completions%s", skill,
                       claim.skill, claim.kind.value, claim.key, claim.spec_value, claim.observed,
                       100 * claim.agreement, claim.completions,
                       f"; proposed {claim.proposed}" if claim.proposed is not None else "")
    if record.status is AnalysisStatus.ANALYSED:
        table = analysis_table(record)
        create_table_artifact(key=table.key, table=table.rows, description=table.description)
    return record


@task(name="merge", cache_policy=NO_CACHE, task_run_name="merge {skill}")
def merge_task(skill: str, run_id: str, ctx: RunContext) -> list[Decision]:
    logger = get_run_logger()
    decisions = merge_run(ctx.store.open(), run_id)
    for d in decisions:
        logger.info("%s: expert %d (%s) %s — proposed %d frames, store now %d", skill, d.index, d.skill,
                    d.action, d.proposed_frames, d.current_frames)
    return decisions


@task(name="skill", cache_policy=NO_CACHE, task_run_name="{skill}")
def skill_task(skill: str, ctx: RunContext) -> SkillOutcome:
    """setup → train → merge for one skill; returns its outcome for the results table.

    The device slot is held from setup to merge: released before the merge, it would go to
    whichever skill already waits, while the dependants this merge unblocks — often the critical
    path — are still starting; at release it is reserved briefly for the best of them.  When
    several trainings share a GPU (packing), the slot is taken after setup instead, once the run's
    memory estimate says how much of a device it needs.
    """
    started = time.time()
    priority, unblocked = ctx.library.priority(skill), (lambda: ctx.library.unblocked_by(skill))
    if not ctx.slots.packing:
        with ctx.slots.hold(skill, priority, reserve_for=unblocked) as grant:
            with _step():
                prepared = setup_task(skill, ctx)
            if prepared.job is None:
                return _already_done(skill, ctx, prepared, started)
            with _working_on(ctx, prepared):
                result, decisions, analysis = _train_and_merge(skill, ctx, prepared, grant)
        return _trained(skill, prepared, result, decisions, analysis, started)
    with _step():
        prepared = setup_task(skill, ctx)
    if prepared.job is None:
        return _already_done(skill, ctx, prepared, started)
    with _working_on(ctx, prepared):
        with _step():
            need = estimate_task(skill, prepared.job.run_id, ctx) if prepared.job.trainer == "ppo" else None
        exclusive, finished = False, False
        while True:  # a training that runs out of memory beside others is tried again alone, once
            with ctx.slots.hold(skill, priority, reserve_for=lambda: unblocked() if finished else {},
                                need_bytes=need, exclusive=exclusive) as grant:
                try:
                    result, decisions, analysis = _train_and_merge(skill, ctx, prepared, grant)
                    finished = True
                except OutOfMemory:
                    if exclusive or (grant.memory is not None and grant.memory.exclusive):
                        raise
                    get_run_logger().warning("%s ran out of memory beside other trainings: retrying it alone",
                                             skill)
                    exclusive = True
                    continue
            break
    return _trained(skill, prepared, result, decisions, analysis, started)


@contextmanager
def _step() -> Iterator[None]:
    """Commit a finished subtask at once.  Subtasks share the skill task's transaction by default,
    and a failed attempt of a later one (say train's first try, retried successfully) rolls the
    earlier ones back: setup would end "RolledBack" in the UI although nothing was undone."""
    with transaction(commit_mode=CommitMode.EAGER):
        yield


@contextmanager
def _working_on(ctx: RunContext, prepared: SetupResult) -> Iterator[None]:
    """Keep the run's lease while this task works on it; a final failure is recorded on the run."""
    store = ctx.store.open()
    keeper = leases.LeaseKeeper(store, prepared.lease) if prepared.lease else None
    try:
        yield
    except BaseException as exc:
        assert prepared.job is not None
        record_failure(store, prepared.job, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if keeper is not None:
            keeper.close()


def _already_done(skill: str, ctx: RunContext, prepared: SetupResult, started: float) -> SkillOutcome:
    ctx.recorder.merged(skill)
    return SkillOutcome(skill, SkillStatus.ALREADY_DONE, frames=prepared.done_frames,
                        duration_s=round(time.time() - started, 2))


def _train_and_merge(skill: str, ctx: RunContext, prepared: SetupResult, grant: Grant
                     ) -> tuple[TrainingResult, list[Decision], AnalysisRecord]:
    """Train (retried by Prefect, but not for an out-of-memory beside others), analyse (never fails)
    and merge (idempotent)."""
    assert prepared.job is not None
    retry = {"retries": ctx.launch.retries, "retry_delay_seconds": ctx.launch.retry_delay_s}
    with _step():
        result = train_task.with_options(**retry, retry_condition_fn=_not_out_of_memory)(
            skill, prepared.job.run_id, ctx, grant.slot, grant.device, grant.memory)
    with _step():
        analysis = analyse_task(skill, prepared.job.run_id, ctx, "" if ctx.launch.launcher is Launcher.POOL
                                else grant.device)
    with _step():
        decisions = merge_task.with_options(**retry)(skill, prepared.job.run_id, ctx)
    ctx.recorder.merged(skill)
    return result, decisions, analysis


def _trained(skill: str, prepared: SetupResult, result: TrainingResult, decisions: list[Decision],
             analysis: AnalysisRecord, started: float) -> SkillOutcome:
    assert prepared.job is not None
    return SkillOutcome(
        skill, SkillStatus.TRAINED, run_id=prepared.job.run_id, frames=result.frames,
        success_rate=result.success_rate, decisions=tuple(decisions),
        duration_s=round(time.time() - started, 2), resumed=prepared.resumed,
        artifacts={k: v for k, v in result.artifacts.items() if k in ("learning_curve", "rollout")},
        analysis=analysis.headline())

def outcome_of(skill: str, future: PrefectFuture, *, skipped: Callable[[], SkillOutcome]) -> SkillOutcome:
    """A finished ``skill`` future as a typed outcome: its own result, its own error, or — when it
    never ran because an upstream failed (Prefect's NotReady) — what ``skipped()`` says."""
    state = future.state
    if state.is_completed():
        return future.result()
    if state.is_failed() or state.is_crashed():
        try:
            future.result(raise_on_failure=True)
            reason = state.message or state.name
        except Exception as exc:  # noqa: BLE001 - the skill's own exception, for the summary
            reason = f"{type(exc).__name__}: {exc}"
        return SkillOutcome(skill, SkillStatus.FAILED, error=reason)
    return skipped()
