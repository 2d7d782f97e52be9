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
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flowrl_core.errors import FlowRLError
from flowrl_core.lifecycle.job import read_result
from flowrl_core.lifecycle.merge import merge_run
from flowrl_core.lifecycle.setup import SetupResult, setup
from flowrl_core.scheduling.slots import PrioritySlots
from flowrl_core.skills.spec import SkillSpec
from flowrl_core.store.objects import Store


class TrainingFailed(FlowRLError, RuntimeError):
    pass


class GraphRun:
    """What every skill task of one flow run shares (kept in memory: tasks run in threads).

    A plain class on purpose, not a dataclass: Prefect walks dataclass/dict/list task
    arguments looking for futures, and walking containers that other threads are appending to
    (the growing library of grow-skills, the timeline) raises "dictionary changed size".
    """

    def __init__(
        self, *, store_url: str, storage_options: dict[str, Any], env: str, specs: list[SkillSpec],
        configs: dict[str, dict[str, Any]], slots: PrioritySlots, priority: dict[str, float], retries: int = 2,
        retry_delay_s: float = 1.0, continuation: bool = False, launcher: str = "local",
        deployment: str = "train-skill/train-skill", skills_doc: dict[str, Any] | None = None,
        heartbeat_s: float = 5.0, stale_after_s: float = 90.0, trainer: str = "subprocess",
        env_options: dict[str, Any] | None = None, upstream: dict[str, list[str]] | None = None,
    ):
        self.store_url = store_url
        self.storage_options = storage_options
        self.env = env
        self.specs = specs
        self.configs = configs
        self.slots = slots
        self.priority = priority
        self.retries = retries
        self.retry_delay_s = retry_delay_s
        self.continuation = continuation
        self.launcher = launcher  # "pool": each skill is a child flow run of the train-skill deployment
        self.deployment = deployment
        self.skills_doc = skills_doc or {}
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.env_options = dict(env_options or {})
        self.upstream = dict(upstream or {})  # skill -> the skills it waits for (for slot hand-off)
        self.trainer = trainer  # "subprocess" (the product) or "pkg.module:fn(store, run_id)" in-process
        self.timeline: list[dict[str, Any]] = []
        self.merged_at: dict[str, float] = {}  # time.monotonic() when each skill's merge finished
        self._lock = threading.Lock()

    def store(self) -> Store:
        return Store(self.store_url, storage_options=self.storage_options, create=False)

    def add_skill(self, spec: SkillSpec, config: dict[str, Any]) -> None:
        """Grow the library (grow-skills); setups started later plan with the new skill."""
        with self._lock:
            self.configs = {**self.configs, spec.name: config}
            self.specs = [*self.specs, spec]

    def mark_merged(self, skill: str) -> None:
        with self._lock:
            self.merged_at = {**self.merged_at, skill: time.monotonic()}

    def unblocked_by(self, skill: str) -> dict[str, float]:
        """Dependants whose last unmerged dependency is ``skill``: label -> priority."""
        merged = set(self.merged_at) | {skill}
        return {s: self.priority.get(s, 0.0) for s, ups in self.upstream.items()
                if skill in ups and set(ups) <= merged and s not in self.merged_at}

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.timeline = [*self.timeline, entry]


@task(name="setup", cache_policy=NO_CACHE, task_run_name="setup {skill}")
def setup_task(skill: str, ctx: GraphRun, run_id: str | None = None) -> SetupResult:
    logger = get_run_logger()
    result = setup(ctx.store(), ctx.specs, skill, env=ctx.env, config=ctx.configs[skill],
                             continuation=ctx.continuation, run_id=run_id, env_options=ctx.env_options)
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
    return [sys.executable, "-u", "-m", "flowrl_core.lifecycle.train", "--store", ctx.store_url,
            "--run-id", run_id, "--storage-options", json.dumps(ctx.storage_options)]


def _heartbeat(ctx: GraphRun, run_id: str, proc: subprocess.Popen, stop: threading.Event) -> None:
    """Tell whoever watches this run (the pool launcher) that its trainer is alive."""
    run = ctx.store().run(run_id)
    while not stop.is_set() and proc.poll() is None:
        try:
            run.write_doc("heartbeat.json", {"at": time.time(), "pid": proc.pid, "host": socket.gethostname()})
        except Exception:  # noqa: BLE001 - a missed beat is not a failure; the next one may land
            pass
        stop.wait(ctx.heartbeat_s)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


@task(name="train", cache_policy=NO_CACHE, task_run_name="train {skill}")
def train_task(skill: str, run_id: str, ctx: GraphRun, slot: int = 0, device: str = "") -> dict[str, Any]:
    """Train in a child process pinned to ``device``; the caller holds ``slot`` (see skill_task)."""
    logger = get_run_logger()
    if ctx.trainer != "subprocess":
        return _train_in_process(skill, run_id, ctx, slot)
    started = time.time()
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false", PYTHONUNBUFFERED="1")
    if device:
        env["CUDA_VISIBLE_DEVICES"] = device
    logger.info("%s: training run %s on slot %d%s", skill, run_id, slot, f" (GPU {device})" if device else "")
    tail: deque[str] = deque(maxlen=20)
    proc = subprocess.Popen(trainer_command(ctx, run_id), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    beating = threading.Event()
    threading.Thread(target=_heartbeat, args=(ctx, run_id, proc, beating), daemon=True).start()
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
    beating.set()
    ended = time.time()
    ctx.record({"skill": skill, "slot": slot, "start": started, "end": ended, "exit": code})
    if code != 0:
        raise TrainingFailed(f"skill {skill!r}: trainer {_describe_exit(code)} (run {run_id}); "
                             f"last output: {' | '.join(list(tail)[-3:])}")
    result = read_result(ctx.store(), run_id)
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


def _train_in_process(skill: str, run_id: str, ctx: GraphRun, slot: int) -> dict[str, Any]:
    """Run an in-process trainer given by import path (benchmarks' slot-holding fixture)."""
    from flowrl_core.plugins import resolve_callable
    fn = resolve_callable(ctx.trainer, "trainer function")
    started = time.time()
    fn(ctx.store(), run_id)
    ctx.record({"skill": skill, "slot": slot, "start": started, "end": time.time(), "exit": 0})
    result = read_result(ctx.store(), run_id)
    if result is None:
        raise TrainingFailed(f"skill {skill!r}: trainer {ctx.trainer} wrote no result.json (run {run_id})")
    return result


@task(name="merge", cache_policy=NO_CACHE, task_run_name="merge {skill}")
def merge_task(skill: str, run_id: str, ctx: GraphRun) -> list[dict[str, Any]]:
    logger = get_run_logger()
    decisions = merge_run(ctx.store(), run_id)
    for d in decisions:
        logger.info("%s: expert %d (%s) %s — proposed %d frames, store now %d", skill, d.index, d.skill,
                    d.action, d.proposed_frames, d.current_frames)
    return [d.to_dict() for d in decisions]


@task(name="skill", cache_policy=NO_CACHE, task_run_name="{skill}")
def skill_task(skill: str, ctx: GraphRun) -> dict[str, Any]:
    """setup → train → merge for one skill; returns its row for the results table."""
    started = time.time()
    # The slot is held from setup to merge: released before the merge, it would go to whichever
    # skill already waits, while the dependants this merge unblocks — often the critical path —
    # are still starting.  At release it is reserved briefly for the best of those dependants.
    with ctx.slots.hold(skill, ctx.priority.get(skill, 0.0), reserve_for=lambda: ctx.unblocked_by(skill)) as (slot, device):
        setup = setup_task(skill, ctx)
        if setup.job is None:
            ctx.mark_merged(skill)
            return {"skill": skill, "status": "already done", "frames": setup.done_frames, "decisions": [],
                    "duration_s": round(time.time() - started, 2)}
        run_id = setup.job.run_id
        if ctx.launcher == "pool":
            result, decisions = _run_on_pool(skill, run_id, ctx, slot)
        else:
            trainer = train_task.with_options(retries=ctx.retries, retry_delay_seconds=ctx.retry_delay_s)
            result = trainer(skill, run_id, ctx, slot, device)
            merger = merge_task.with_options(retries=ctx.retries, retry_delay_seconds=ctx.retry_delay_s)
            decisions = merger(skill, run_id, ctx)  # idempotent, so a retry after a failed write is safe
        ctx.mark_merged(skill)
    return {
        "skill": skill, "status": "trained", "run_id": run_id, "resumed": setup.resumed,
        "artifacts": {k: v for k, v in result.get("artifacts", {}).items() if k in ("learning_curve", "rollout")},
        "frames": result["frames"], "success_rate": result.get("metrics", {}).get("success_rate"),
        "decisions": decisions, "duration_s": round(time.time() - started, 2),
    }


def _run_on_pool(skill: str, run_id: str, ctx: GraphRun, slot: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Train and merge ``run_id`` as a child flow run on the GPU pool, retrying lost or failed runs.

    The pool's concurrency limit caps trainings across all machines; the orchestrator's own
    slots (same count) only decide which ready skill asks first (critical-path order).  Results
    come back through the store, not Prefect results (a deployment run's result is not readable
    by the parent without shared result storage).

    A worker machine that dies takes its flow run with it, and nothing tells the server: the run
    stays "Running" forever.  So the trainer writes a heartbeat into the run folder, and a child
    whose heartbeat is older than ``ctx.stale_after_s`` is marked Crashed and tried again — on
    whichever worker is alive, resuming from the run's last checkpoint in the shared store.
    """
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Crashed

    logger = get_run_logger()
    params = {"skill": skill, "skills": ctx.skills_doc, "store": ctx.store_url, "env": ctx.env,
              "config": ctx.configs[skill], "run_id": run_id, "retries": 0, "continuation": ctx.continuation,
              "storage_options": ctx.storage_options, "env_options": ctx.env_options, "trainer": ctx.trainer}
    store = ctx.store()
    last = None
    for attempt in range(ctx.retries + 1):
        started = time.time()
        flow_run = run_deployment(ctx.deployment, parameters=params, timeout=0, as_subflow=True,
                                  flow_run_name=f"{skill} ({run_id}, try {attempt + 1})")
        state = _watch_child(flow_run.id, run_id, store, ctx, started)
        ctx.record({"skill": skill, "slot": slot, "start": started, "end": time.time(),
                             "exit": 0 if state.is_completed() else 1, "flow_run": str(flow_run.id),
                             "state": state.name})
        if state.is_completed():
            break
        last = state
        if state.name == "Lost":
            with get_client(sync_client=True) as client:
                client.set_flow_run_state(flow_run.id, Crashed(message=state.message), force=True)
        logger.warning("%s: child flow run %s ended %s (%s); attempt %d of %d", skill, flow_run.id,
                       state.name, state.message, attempt + 1, ctx.retries + 1)
    else:
        raise TrainingFailed(f"skill {skill!r}: every pool attempt failed; last: {last.name if last else '?'} "
                             f"{last.message if last else ''}")
    result = read_result(store, run_id)
    run = store.run(run_id)
    if result is None or not run.has_doc("merge.json"):
        raise TrainingFailed(f"skill {skill!r}: child flow completed but run {run_id} has no result/merge record")
    return result, run.read_doc("merge.json")


def _watch_child(flow_run_id: Any, run_id: str, store: Store, ctx: GraphRun, started: float) -> Any:
    """Poll the child flow run until it is final, or until its trainer's heartbeat goes stale."""
    from prefect import get_client
    from prefect.states import State

    run = store.run(run_id)
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(flow_run_id).state
            if state is not None and state.is_final():
                return state
            if state is not None and state.is_running():
                beat = run.read_doc("heartbeat.json") if run.has_doc("heartbeat.json") else None
                last = max(float(beat["at"]) if beat else 0.0, state.timestamp.timestamp())
                if beat and float(beat["at"]) < started:
                    last = state.timestamp.timestamp()  # a beat from an earlier attempt says nothing
                if time.time() - last > ctx.stale_after_s:
                    return State(type=state.type, name="Lost",
                                 message=f"no heartbeat from run {run_id} for {time.time() - last:.0f}s: worker lost")
            time.sleep(1.0)
