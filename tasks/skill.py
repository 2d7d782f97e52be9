"""Prefect tasks for one skill: ``skill`` runs ``setup → train → merge`` as chained subtasks.

Each step is its own task run (own state, logs and timing in the UI).  The flow submits one
``skill`` task per skill with ``wait_for`` = its dependencies' futures, so it starts the moment
its last dependency merged.  Train holds a device slot (critical-path priority) and runs the
trainer in a child process pinned to that slot's GPU; a crash there is an ordinary failure
that Prefect retries, and the retry resumes from the run's last checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flowrl_core import skill_run
from flowrl_core.errors import FlowRLError
from flowrl_core.slots import PrioritySlots
from flowrl_core.spec import SkillSpec
from flowrl_core.store import Store


class TrainingFailed(FlowRLError, RuntimeError):
    pass


@dataclass
class GraphRun:
    """What every skill task of one flow run shares (kept in memory: tasks run in threads)."""

    store_url: str
    storage_options: dict[str, Any]
    env: str
    specs: list[SkillSpec]
    configs: dict[str, dict[str, Any]]
    slots: PrioritySlots
    priority: dict[str, float]
    retries: int = 2
    retry_delay_s: float = 1.0
    continuation: bool = False
    launcher: str = "local"  # "pool": each skill is a child flow run of the train-skill deployment
    deployment: str = "train-skill/train-skill"
    skills_doc: dict[str, Any] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)

    def store(self) -> Store:
        return Store(self.store_url, storage_options=self.storage_options, create=False)


@task(name="setup", cache_policy=NO_CACHE, task_run_name="setup {skill}")
def setup_task(skill: str, ctx: GraphRun, run_id: str | None = None) -> skill_run.SetupResult:
    logger = get_run_logger()
    result = skill_run.setup(ctx.store(), ctx.specs, skill, env=ctx.env, config=ctx.configs[skill],
                             continuation=ctx.continuation, run_id=run_id)
    if result.job is None:
        logger.info("%s already trained %d frames (budget %d): nothing to do", skill, result.done_frames,
                    ctx.configs[skill]["total_timesteps"])
    else:
        job = result.job
        logger.info("%s run %s (%s): plan %s; experts %s; frames at setup %s", skill, job.run_id,
                    "resumed" if result.resumed else "new",
                    " → ".join(f"{s.skill}×{s.count}" for s in job.plan),
                    job.remap.skill_of_global, job.frames_at_setup)
    return result


def trainer_command(ctx: GraphRun, run_id: str) -> list[str]:
    return [sys.executable, "-u", "-m", "flowrl_core.train_job", "--store", ctx.store_url,
            "--run-id", run_id, "--storage-options", json.dumps(ctx.storage_options)]


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


@task(name="train", cache_policy=NO_CACHE, task_run_name="train {skill}")
def train_task(skill: str, run_id: str, ctx: GraphRun) -> dict[str, Any]:
    logger = get_run_logger()
    with ctx.slots.hold(skill, ctx.priority.get(skill, 0.0)) as (slot, device):
        started = time.time()
        env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false", PYTHONUNBUFFERED="1")
        if device:
            env["CUDA_VISIBLE_DEVICES"] = device
        logger.info("%s: training run %s on slot %d%s", skill, run_id, slot, f" (GPU {device})" if device else "")
        tail: deque[str] = deque(maxlen=20)
        proc = subprocess.Popen(trainer_command(ctx, run_id), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        last_log = 0.0
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            if line.startswith('{"metrics"'):
                if time.monotonic() - last_log > 5.0:  # a metrics line per update is too chatty for the UI
                    last_log = time.monotonic()
                    logger.info("%s: %s", skill, _short_metrics(line))
            elif line and not line.startswith('{"result"'):
                logger.info("%s: %s", skill, line)
        code = proc.wait()
        ended = time.time()
        ctx.timeline.append({"skill": skill, "slot": slot, "start": started, "end": ended, "exit": code})
    if code != 0:
        raise TrainingFailed(f"skill {skill!r}: trainer {_describe_exit(code)} (run {run_id}); "
                             f"last output: {' | '.join(list(tail)[-3:])}")
    result = skill_run.read_result(ctx.store(), run_id)
    if result is None:
        raise TrainingFailed(f"skill {skill!r}: trainer exited 0 but wrote no result.json (run {run_id})")
    return result


def _short_metrics(line: str) -> str:
    try:
        m = json.loads(line)["metrics"]
    except (ValueError, KeyError):
        return line[:200]
    keys = ("update", "frames", "success_rate", "mean_episode_length", "steps_per_s")
    return ", ".join(f"{k}={m[k]:.3g}" if isinstance(m.get(k), float) else f"{k}={m.get(k)}" for k in keys if k in m)


@task(name="merge", cache_policy=NO_CACHE, task_run_name="merge {skill}")
def merge_task(skill: str, run_id: str, ctx: GraphRun) -> list[dict[str, Any]]:
    logger = get_run_logger()
    decisions = skill_run.merge(ctx.store(), run_id)
    for d in decisions:
        logger.info("%s: expert %d (%s) %s — proposed %d frames, store now %d", skill, d.index, d.skill,
                    d.action, d.proposed_frames, d.current_frames)
    return [d.to_dict() for d in decisions]


@task(name="skill", cache_policy=NO_CACHE, task_run_name="{skill}")
def skill_task(skill: str, ctx: GraphRun) -> dict[str, Any]:
    """setup → train → merge for one skill; returns its row for the results table."""
    started = time.time()
    setup = setup_task(skill, ctx)
    if setup.job is None:
        return {"skill": skill, "status": "already done", "frames": setup.done_frames, "decisions": [],
                "duration_s": round(time.time() - started, 2)}
    run_id = setup.job.run_id
    if ctx.launcher == "pool":
        result, decisions = _run_on_pool(skill, run_id, ctx)
    else:
        trainer = train_task.with_options(retries=ctx.retries, retry_delay_seconds=ctx.retry_delay_s)
        result = trainer(skill, run_id, ctx)
        decisions = merge_task(skill, run_id, ctx)
    return {
        "skill": skill, "status": "trained", "run_id": run_id, "resumed": setup.resumed,
        "frames": result["frames"], "success_rate": result.get("metrics", {}).get("success_rate"),
        "decisions": decisions, "duration_s": round(time.time() - started, 2),
    }


def _run_on_pool(skill: str, run_id: str, ctx: GraphRun) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Train and merge ``run_id`` as a child flow run on the GPU pool, retrying crashed runs.

    The pool's concurrency limit caps trainings across all machines; the orchestrator's own
    slots (same count) only decide which ready skill asks first (critical-path order).  Results
    come back through the store, not Prefect results (a deployment run's result is not
    readable by the parent without shared result storage).
    """
    from prefect.deployments import run_deployment

    logger = get_run_logger()
    params = {"skill": skill, "skills": ctx.skills_doc, "store": ctx.store_url, "env": ctx.env,
              "config": ctx.configs[skill], "run_id": run_id, "retries": 0, "continuation": ctx.continuation,
              "storage_options": ctx.storage_options}
    last = None
    with ctx.slots.hold(skill, ctx.priority.get(skill, 0.0)) as (slot, _):
        for attempt in range(ctx.retries + 1):
            started = time.time()
            flow_run = run_deployment(ctx.deployment, parameters=params, timeout=None, as_subflow=True,
                                      poll_interval=1, flow_run_name=f"{skill} ({run_id}, try {attempt + 1})")
            state = flow_run.state
            ctx.timeline.append({"skill": skill, "slot": slot, "start": started, "end": time.time(),
                                 "exit": 0 if state and state.is_completed() else 1, "flow_run": str(flow_run.id)})
            if state is not None and state.is_completed():
                break
            last = state
            logger.warning("%s: child flow run %s ended %s (%s); attempt %d of %d", skill, flow_run.id,
                           state.name if state else "?", state.message if state else "", attempt + 1, ctx.retries + 1)
        else:
            raise TrainingFailed(f"skill {skill!r}: every pool attempt failed; last: "
                                 f"{last.name if last else '?'} {last.message if last else ''}")
    store = ctx.store()
    result = skill_run.read_result(store, run_id)
    run = store.run(run_id)
    if result is None or not run.has_doc("merge.json"):
        raise TrainingFailed(f"skill {skill!r}: child flow completed but run {run_id} has no result/merge record")
    return result, run.read_doc("merge.json")
