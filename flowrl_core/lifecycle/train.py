"""The trainer's process: ``python -m flowrl_core.lifecycle.train --run-id ID --messages-fd N``.

Runs in a child process so that a crash, an out-of-memory or a SIGKILL is an ordinary task
failure the orchestrator retries, and so each child can be pinned to one GPU with
``CUDA_VISIBLE_DEVICES`` (set by the parent, with JAX preallocation off).  Its inputs arrive on
stdin (:class:`~flowrl_core.lifecycle.messages.TrainerInput`: store URL and options stay off the
command line), everything it needs is in the run's ``job.json``, and everything it produces goes
back into the run folder: checkpoints (resume), ``metrics.jsonl``, the trained experts and, last,
``result.json``.  It reports to its task through :mod:`~flowrl_core.lifecycle.messages`.
A run that already has ``result.json`` is finished: running it again does nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from flowrl_core.errors import FlowRLError
from flowrl_core.lifecycle import messages
from flowrl_core.lifecycle.job import (
    TrainingResult,
    expert_parts,
    load_job,
    read_result,
)
from flowrl_core.lifecycle.trainers import TrainerContext, resolve_trainer
from flowrl_core.plugins import load_plugins
from flowrl_core.store.objects import Store
from flowrl_core.store.params import params_to_bytes


class TrainingDiverged(FlowRLError):
    """The trained parameters hold NaN or infinity: merging them would poison the library."""


def _all_finite(tree: Any) -> bool:
    import jax
    import numpy as np

    return all(bool(np.all(np.isfinite(np.asarray(leaf)))) for leaf in jax.tree.leaves(tree)
               if np.issubdtype(np.asarray(leaf).dtype, np.floating))


def run_job(store: Store, run_id: str, *, send: Callable[[messages.Message], None] | None = None) -> TrainingResult:
    """Train ``run_id`` (resuming from its last checkpoint) and write its result; idempotent."""
    send = send or (lambda m: None)
    existing = read_result(store, run_id)
    if existing is not None:
        return existing
    job = load_job(store, run_id)
    run = store.run(run_id)
    checkpoints = run.checkpoints()
    resumed_from = int(checkpoints[-1][:9]) if checkpoints else 0
    send(messages.Started(run_id=run_id, resumed_from_update=resumed_from, pid=os.getpid()))
    trainer = resolve_trainer(job.trainer)
    trained = trainer(TrainerContext(store=store, job=job, run=run, resumed_from_update=resumed_from,
                                     on_progress=lambda row: send(messages.Progress(run_id=run_id, row=row))))
    missing = sorted(set(job.remap.local_to_global.values()) - set(trained.experts))
    if missing:
        raise FlowRLError(f"skill {job.skill!r}: trainer {job.trainer!r} returned no parameters for experts {missing}")
    for g, params in trained.experts.items():
        if not _all_finite(params):
            raise TrainingDiverged(
                f"skill {job.skill!r}: run {run_id} produced non-finite parameters for expert {g} "
                f"({job.remap.skill_of_global.get(g)}); nothing was merged — lower lr or check the settings "
                f"{ {k: job.config.get(k) for k in ('lr', 'max_grad_norm', 'clip_eps', 'ent_coef')} }")
    for g, params in trained.experts.items():
        store.write_bytes(expert_parts(run, g), params_to_bytes(params))
    result = TrainingResult(run_id=run_id, skill=job.skill, frames=trained.frames, updates=trained.updates,
                            early_stopped=trained.early_stopped, resumed_from_update=run.resumed_from,
                            expert_steps_global=dict(trained.expert_steps), metrics=dict(trained.metrics),
                            artifacts=dict(trained.artifacts))
    _record_memory(run)
    run.write_doc("result.json", result.to_dict())  # last: its presence means the run is finished
    send(messages.Finished(run_id=run_id, frames=result.frames, early_stopped=result.early_stopped))
    return result


def analyse_after_training(store: Store, run_id: str) -> None:
    """Analyse the trained run here, where JAX, the device and the compilation cache are warm
    (about a second, against several for a fresh process); the ``analyse`` task reads the record
    and runs the analysis itself only when it is missing.  Never fails the finished training."""
    from flowrl_core.analysis.run import analyse_run, read_analysis, skip_reason

    try:
        if read_analysis(store, run_id) is None and skip_reason(load_job(store, run_id)) is None:
            analyse_run(store, run_id)
    except Exception as exc:  # noqa: BLE001 - the analyse task tries again and reports
        print(f"analysis after training failed ({type(exc).__name__}: {exc}); the analyse step retries it",
              file=sys.stderr, flush=True)


def _record_memory(run: Any) -> None:
    """The peak device memory this training used (where the backend reports it) beside the
    estimate it was packed by, so estimates can be checked (``memory.json``)."""
    from flowrl_core.training.memory import RunMemory, measure_peak

    try:
        previous = RunMemory.from_dict(run.read_doc("memory.json")) if run.has_doc("memory.json") else None
        run.write_doc("memory.json", RunMemory(previous.estimate if previous else None, measure_peak()).to_dict())
    except Exception as exc:  # noqa: BLE001 - a missing figure must not fail a finished training
        print(f"could not record the memory figures: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def configure_jax() -> None:
    import jax

    cache = os.environ.get("FLOWRL_JAX_CACHE", os.path.expanduser("~/.cache/flowrl/jax"))
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def open_given_run(run_id: str) -> Store:
    """The start every per-run child process shares (trainer, analysis, memory estimate): the
    TrainerInput on stdin names the store, so its URL and credentials stay off the command line
    where ``ps`` shows them, and must name the run the command line does; plugins and the JAX
    compilation cache are set up the same way in all of them."""
    given = messages.TrainerInput.from_json(sys.stdin.read())
    if given.run_id != run_id:
        raise messages.ProtocolError(f"--run-id {run_id} differs from the input's run id {given.run_id}")
    return open_child_store(given.store, given.storage_options)


def open_child_store(url: str, storage_options: dict[str, Any]) -> Store:
    """Plugins and the JAX compilation cache set up as in every child process, then the store."""
    load_plugins()
    configure_jax()
    return Store(url, storage_options=storage_options, create=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowrl_core.lifecycle.train",
                                     description="Train one run; reads a TrainerInput JSON document on stdin.")
    parser.add_argument("--run-id", required=True, help="the run to train (also in the input; shown in ps)")
    parser.add_argument("--messages-fd", type=int, default=None, help="pipe for protocol messages (default: none)")
    args = parser.parse_args(argv)
    pipe = os.fdopen(args.messages_fd, "w", buffering=1) if args.messages_fd is not None else None

    def send(message: messages.Message) -> None:
        if pipe is not None:
            pipe.write(messages.encode(message))

    try:
        store = open_given_run(args.run_id)
        run_job(store, args.run_id, send=send)
        analyse_after_training(store, args.run_id)
    except FlowRLError as exc:
        send(messages.Failed(run_id=args.run_id, error=str(exc)))
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except Exception as exc:  # a bug or a failing plugin: the task learns what, the log keeps the traceback
        import traceback

        send(messages.Failed(run_id=args.run_id, error=f"{type(exc).__name__}: {str(exc)[:500]}"))
        traceback.print_exc()
        return 1
    finally:
        if pipe is not None:
            pipe.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
