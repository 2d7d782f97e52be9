"""Prefect tasks for one skill: ``skill`` runs ``setup → train → merge`` as chained subtasks.

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

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext

from flowrl_core.lifecycle.context import RunContext
from flowrl_core.lifecycle.job import TrainingResult, read_result
from flowrl_core.lifecycle.merge import merge_run
from flowrl_core.lifecycle.outcomes import SkillOutcome, SkillStatus
from flowrl_core.lifecycle.prepare import Launcher
from flowrl_core.lifecycle.setup import SetupResult, record_failure, setup
from flowrl_core.store import leases
from flowrl_core.store.experts import Decision
from tasks.launch import TrainingFailed, run_on_pool, run_trainer_process


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
def train_task(skill: str, run_id: str, ctx: RunContext, slot: int = 0, device: str = "") -> TrainingResult:
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
                                        heartbeat_s=ctx.launch.heartbeat_s)
    except TrainingFailed as exc:
        ctx.recorder.training({"skill": skill, "slot": slot, "start": started, "end": time.time(),
                               "exit": exc.exit_code if exc.exit_code is not None else 1})
        raise
    ctx.recorder.training({"skill": skill, "slot": slot, **entry})
    result = read_result(ctx.store.open(), run_id)
    if result is None:
        raise TrainingFailed(f"skill {skill!r}: the trainer finished but run {run_id} has no result.json")
    return result


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
    """setup → train → merge for one skill; returns its outcome for the results table."""
    started = time.time()
    # The slot is held from setup to merge: released before the merge, it would go to whichever
    # skill already waits, while the dependants this merge unblocks — often the critical path —
    # are still starting.  At release it is reserved briefly for the best of those dependants.
    with ctx.slots.hold(skill, ctx.library.priority(skill),
                        reserve_for=lambda: ctx.library.unblocked_by(skill)) as (slot, device):
        prepared = setup_task(skill, ctx)
        if prepared.job is None:
            ctx.recorder.merged(skill)
            return SkillOutcome(skill, SkillStatus.ALREADY_DONE, frames=prepared.done_frames,
                                duration_s=round(time.time() - started, 2))
        job, store = prepared.job, ctx.store.open()
        keeper = leases.LeaseKeeper(store, prepared.lease) if prepared.lease else None
        try:
            retry = {"retries": ctx.launch.retries, "retry_delay_seconds": ctx.launch.retry_delay_s}
            result = train_task.with_options(**retry)(skill, job.run_id, ctx, slot, device)
            decisions = merge_task.with_options(**retry)(skill, job.run_id, ctx)  # idempotent: retries are safe
        except BaseException as exc:
            record_failure(store, job, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if keeper is not None:
                keeper.close()
        ctx.recorder.merged(skill)
    return SkillOutcome(
        skill, SkillStatus.TRAINED, run_id=job.run_id, frames=result.frames, success_rate=result.success_rate,
        decisions=tuple(d.to_dict() for d in decisions), duration_s=round(time.time() - started, 2),
        resumed=prepared.resumed,
        artifacts={k: v for k, v in result.artifacts.items() if k in ("learning_curve", "rollout")})
