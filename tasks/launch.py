"""The two ways a train task runs a trainer: a child process here, or a child flow run on a pool.

Both end the same way for the task: the run's ``result.json`` is in the store, or an exception
says why not — and Prefect's task retries take it from there.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from flowrl_core.errors import FlowRLError
from flowrl_core.lifecycle import messages
from flowrl_core.lifecycle.context import RunContext, StoreRef
from flowrl_core.scheduling.process_memory import (
    ExitKind,
    classify_exit,
    jax_memory_env,
)
from flowrl_core.scheduling.slots import MemoryShare
from flowrl_core.store.objects import Store


class TrainingFailed(FlowRLError, RuntimeError):
    def __init__(self, message: str, *, exit_code: int | None = None, entry: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.exit_code = exit_code  # the trainer process's, when there was one
        self.entry = dict(entry or {})  # the attempt's timeline fields (pool: child flow run, its final state)


class OutOfMemory(TrainingFailed):
    """The trainer ran out of device memory: retried alone on a device, not beside others."""


# Set once this process is interrupted (Ctrl-C, or SIGTERM from a CI runner): no new child process
# (trainer, estimate, analysis) starts and no failed training is retried.  Without it an interrupted
# command waits for Prefect's task threads, which retry the trainers it just stopped and keep
# training to the end.  One per process, like the signal that sets it.
STOPPING = threading.Event()


class Interrupted(TrainingFailed):
    """This process was interrupted: the training is not started (or retried)."""


def _refuse_if_stopping(skill: str, what: str) -> None:
    if STOPPING.is_set():
        raise Interrupted(f"skill {skill!r}: not starting its {what}: this flowrl process was interrupted")


def trainer_command(run_id: str, messages_fd: int) -> list[str]:
    """The trainer's command line: nothing secret on it (inputs go to its stdin)."""
    return [sys.executable, "-u", "-m", "flowrl_core.lifecycle.train", "--run-id", run_id,
            "--messages-fd", str(messages_fd)]


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def run_trainer_process(store: StoreRef, run_id: str, *, skill: str, device: str, log: Any,
                        heartbeat_s: float = 5.0, share: MemoryShare | None = None) -> dict[str, Any]:
    """Run the trainer child for ``run_id`` and wait; returns {"exit", "start", "end"}.

    Raises :class:`TrainingFailed` (with the trainer's own error message when it sent one) if
    the child fails.  While it runs, a heartbeat is written into the run folder so a watcher on
    another machine (the pool launcher) can tell a live trainer from a lost worker.
    """
    _refuse_if_stopping(skill, "trainer")
    env = jax_memory_env(share).apply(dict(os.environ, PYTHONUNBUFFERED="1"))  # its share of a packed GPU
    if device:
        env["CUDA_VISIBLE_DEVICES"] = device
    read_fd, write_fd = os.pipe()
    started = time.time()
    try:
        proc = subprocess.Popen(trainer_command(run_id, write_fd), env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, pass_fds=(write_fd,))
    finally:
        os.close(write_fd)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(messages.TrainerInput(store=store.url, run_id=run_id,
                                           storage_options=dict(store.storage_options)).to_json())
    proc.stdin.close()
    state: dict[str, Any] = {"error": None}
    reader = threading.Thread(target=_read_messages, args=(read_fd, skill, log, state), daemon=True)
    reader.start()
    beating = threading.Event()
    threading.Thread(target=_heartbeat, args=(store, run_id, proc, beating, heartbeat_s), daemon=True).start()
    tail: deque[str] = deque(maxlen=20)
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            tail.append(line)
            log.info("%s: %s", skill, line)
    code = proc.wait()
    beating.set()
    reader.join(10.0)
    ended = time.time()
    if code != 0:
        why = state["error"] or " | ".join(list(tail)[-3:])
        kind = classify_exit(code, f"{state['error'] or ''}\n" + "\n".join(tail))
        error = OutOfMemory if kind is ExitKind.OUT_OF_MEMORY else TrainingFailed
        raise error(f"skill {skill!r}: trainer {describe_exit(code)} (run {run_id}): {why}", exit_code=code)
    return {"exit": code, "start": started, "end": ended}


def _run_child(module: str, store: StoreRef, run_id: str, *, skill: str, device: str,
               what: str) -> subprocess.CompletedProcess:
    """``python -m module --run-id run_id`` pinned like the trainer (never in the orchestrator,
    whose JAX would grab the GPU), its inputs on stdin like the trainer's; waits for it."""
    given = messages.TrainerInput(store=store.url, run_id=run_id, storage_options=dict(store.storage_options))
    return _child([module, "--run-id", run_id], given.to_json(), skill=skill, device=device, what=what)


def _child(args: list[str], stdin: str, *, skill: str, device: str, what: str) -> subprocess.CompletedProcess:
    _refuse_if_stopping(skill, what)
    env = jax_memory_env(None).apply(dict(os.environ, PYTHONUNBUFFERED="1"))
    if device:
        env["CUDA_VISIBLE_DEVICES"] = device
    return subprocess.run([sys.executable, "-m", *args], env=env, input=stdin, capture_output=True, text=True)


def run_evaluation_process(store: StoreRef, skill: str, *, episodes: int, seed: int = 0, device: str = "") -> str:
    """Evaluate ``skill``'s current experts in a child process and record it as its latest
    evaluation (:mod:`flowrl_core.evaluation.__main__`); returns the child's summary line.
    Raises :class:`FlowRLError` with the child's last error line when it fails."""
    given = messages.EvaluationInput(store=store.url, skill=skill, episodes=episodes, seed=seed,
                                     storage_options=dict(store.storage_options))
    done = _child(["flowrl_core.evaluation", "--skill", skill], given.to_json(), skill=skill, device=device,
                  what="evaluation")
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [describe_exit(done.returncode)])[-1][:500]
        raise FlowRLError(f"skill {skill!r}: evaluation failed ({why})")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def run_memory_estimate(store: StoreRef, run_id: str, *, skill: str, device: str, log: Any) -> int | None:
    """Bytes the run's training needs (``memory.json``, estimated once per run in a child process
    pinned like the trainer — never in the orchestrator, whose JAX would grab the GPU); None when
    there is no figure (then the training runs alone on its device)."""
    from flowrl_core.training.memory import RunMemory

    run = store.open().run(run_id)
    if not run.has_doc("memory.json"):
        done = _run_child("flowrl_core.training.memory", store, run_id, skill=skill, device=device,
                          what="memory estimate")
        if done.returncode != 0:
            log.warning("%s: no memory estimate (%s); it trains alone on its device", skill,
                        (done.stderr.strip().splitlines() or ["?"])[-1][:300])
            return None
    memory = RunMemory.from_dict(run.read_doc("memory.json"))
    if memory.estimate is None:
        return None
    log.info("%s: needs about %.0f MB (%s estimate)", skill, memory.estimate.total_bytes / 1e6,
             memory.estimate.method.value)
    return int(memory.estimate.total_bytes)


def run_analysis_process(store: StoreRef, run_id: str, *, skill: str, device: str, log: Any) -> Any:
    """The trained ``run_id``'s analysis (:mod:`flowrl_core.analysis`), running it when it is missing.

    The PPO trainer process analyses its run as it finishes (JAX and the device are warm there,
    on either launcher), so usually the record is already there.  A run with nothing to roll out
    (a trainer without a policy, analysis turned off) is recorded as skipped here, at once;
    otherwise a missing analysis runs in a child process pinned like the trainer -- never in the
    orchestrator, whose JAX would grab the GPU.  A failed analysis is recorded as failed and
    returned, not raised: the run trained, and its merge must go on.
    """
    from flowrl_core.analysis.records import AnalysisStatus
    from flowrl_core.analysis.run import analyse_run, failed_analysis, read_analysis, skip_reason
    from flowrl_core.lifecycle.job import load_job

    opened = store.open()
    job = load_job(opened, run_id)
    if skip_reason(job) is not None:
        return analyse_run(opened, run_id)  # writes the skipped record; no JAX
    existing = read_analysis(opened, run_id)
    if existing is not None and existing.status is AnalysisStatus.ANALYSED:
        return existing
    done = _run_child("flowrl_core.analysis", store, run_id, skill=skill, device=device, what="analysis")
    record = read_analysis(opened, run_id) if done.returncode == 0 else None
    if record is None:
        why = (done.stderr.strip().splitlines() or [describe_exit(done.returncode)])[-1][:500]
        log.warning("%s: analysis of run %s failed (%s); merging anyway", skill, run_id, why)
        return failed_analysis(opened, run_id, skill, FlowRLError(why))
    return record


def _read_messages(fd: int, skill: str, log: Any, state: dict[str, Any]) -> None:
    last_log = 0.0
    with os.fdopen(fd, "r") as pipe:
        for line in pipe:
            try:
                msg = messages.decode(line)
            except messages.ProtocolError as exc:
                log.warning("%s: %s", skill, exc)
                continue
            if isinstance(msg, messages.Started) and msg.resumed_from_update:
                log.info("%s: resuming run %s from its checkpoint at update %d", skill, msg.run_id,
                         msg.resumed_from_update)
            elif isinstance(msg, messages.Progress) and time.monotonic() - last_log > 5.0:
                last_log = time.monotonic()  # a line per update is too chatty for the UI
                log.info("%s: %s", skill, _short_metrics(msg.row))
            elif isinstance(msg, messages.Failed):
                state["error"] = msg.error


def _short_metrics(row: Any) -> str:
    keys = ("update", "frames", "success_rate", "mean_episode_length", "steps_per_s")
    return ", ".join(f"{k}={row[k]:.3g}" if isinstance(row.get(k), float) else f"{k}={row.get(k)}"
                     for k in keys if k in row)


def _heartbeat(store: StoreRef, run_id: str, proc: subprocess.Popen, stop: threading.Event, every_s: float) -> None:
    run = store.open().run(run_id)
    while not stop.is_set() and proc.poll() is None:
        try:
            run.write_doc("heartbeat.json", {"at": time.time(), "pid": proc.pid, "host": socket.gethostname()})
        except Exception:  # noqa: BLE001 - a missed beat is not a failure; the next one may land
            pass
        stop.wait(every_s)


def run_on_pool(ctx: RunContext, skill: str, run_id: str, *, attempt: int, log: Any) -> dict[str, Any]:
    """Train ``run_id`` as a child flow run of the train-skill deployment and wait for it.

    The pool's concurrency limit caps trainings across machines.  Results come back through the
    store (a deployment run's result is not readable by the parent without shared result storage).
    A worker machine that dies takes its flow run with it and nothing tells the server: the run
    stays Running.  So a child whose trainer heartbeat is older than ``stale_after_s`` is marked
    Crashed here, and this raises — Prefect's retry then launches it again, on whichever worker is
    alive, resuming from the run's last checkpoint in the shared store.
    """
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Crashed

    from deployments.commit import child_job_variables

    started = time.time()
    params = {"store": ctx.store.url, "run_id": run_id, "storage_options": dict(ctx.store.storage_options)}
    flow_run = run_deployment(ctx.launch.deployment, parameters=params, timeout=0, as_subflow=True,
                              flow_run_name=f"{skill} ({run_id}, try {attempt})",
                              job_variables=child_job_variables())  # the same commit as this run
    state = _watch_child(flow_run.id, run_id, ctx.store.open(), ctx.launch.stale_after_s, started)
    if state.name == "Lost":
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(flow_run.id, Crashed(message=state.message), force=True)
    entry = {"start": started, "end": time.time(), "exit": 0 if state.is_completed() else 1,
             "flow_run": str(flow_run.id), "state": state.name}
    if not state.is_completed():
        raise TrainingFailed(f"skill {skill!r}: child flow run {flow_run.id} ended {state.name}"
                             + (f": {state.message}" if state.message else ""), entry=entry)
    return entry


def _watch_child(flow_run_id: Any, run_id: str, store: Store, stale_after_s: float, started: float) -> Any:
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
                if time.time() - last > stale_after_s:
                    return State(type=state.type, name="Lost",
                                 message=f"no heartbeat from run {run_id} for {time.time() - last:.0f}s: worker lost")
            time.sleep(1.0)
