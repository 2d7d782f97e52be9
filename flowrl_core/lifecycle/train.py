"""The trainer's process: ``python -m flowrl_core.lifecycle.train --store URL --run-id ID``.

Runs in a child process so that a crash, an out-of-memory or a SIGKILL is an ordinary task
failure the orchestrator retries, and so each child can be pinned to one GPU with
``CUDA_VISIBLE_DEVICES`` (set by the parent, with JAX preallocation off).  Everything it needs
is in the run's ``job.json``; everything it produces goes back into the run folder:
checkpoints (resume), ``metrics.jsonl``, the trained experts and, last, ``result.json``.
A run that already has ``result.json`` is finished: running it again does nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from flowrl_core.errors import FlowRLError
from flowrl_core.lifecycle.artifacts import write_artifacts
from flowrl_core.lifecycle.job import SkillJob, expert_parts, load_job, read_result
from flowrl_core.plugins import load_plugins
from flowrl_core.store.objects import Store
from flowrl_core.store.params import params_to_bytes
from flowrl_core.store.runs import RunStore


class MetricsWriter:
    """Buffers per-update metrics and rewrites ``metrics.jsonl`` at most every ``every_s``."""

    def __init__(self, run: RunStore, every_s: float = 2.0, echo: bool = True):
        self.run = run
        self.rows: list[dict[str, Any]] = run.read_metrics()  # a resumed run keeps its history
        self.every_s = every_s
        self.last = 0.0
        self.echo = echo

    def __call__(self, row: dict[str, Any]) -> None:
        self.rows = [r for r in self.rows if r.get("update", -1) < row.get("update", 0)] + [row]
        if self.echo:
            print(json.dumps({"metrics": row}, default=float), flush=True)
        if time.monotonic() - self.last >= self.every_s:
            self.flush()

    def flush(self) -> None:
        self.run.write_metrics(self.rows)
        self.last = time.monotonic()


class CheckpointWithMetrics:
    """Flushes metrics before each checkpoint, so a resumed run's history has no gap."""

    def __init__(self, run: RunStore, metrics: MetricsWriter):
        self.run, self.metrics = run, metrics

    def save(self, update: int, data: bytes) -> None:
        self.metrics.flush()
        self.run.save(update, data)

    def load_latest(self) -> bytes | None:
        return self.run.load_latest()


def seed_params(store: Store, job: SkillJob) -> dict[int, Any]:
    """local index → expert params from the versions pinned at setup (missing: random init)."""
    from flowrl_core.store.experts import load_params, version_by_id
    return {job.remap.global_to_local[g]: load_params(store, version_by_id(store, vid))
            for g, vid in job.base_versions.items() if vid is not None}


def run_job(store: Store, run_id: str, *, echo: bool = True) -> dict[str, Any]:
    from flowrl_core.envs import make_env_and_params
    from flowrl_core.skills.parsing import parse_skill
    from flowrl_core.training.config import PPOConfig
    from flowrl_core.training.ppo import extract_experts, train
    existing = read_result(store, run_id)
    if existing is not None:
        return existing
    job = load_job(store, run_id)
    run = store.run(run_id)
    checkpoints = run.checkpoints()
    resumed_from = int(checkpoints[-1][:9]) if checkpoints else 0
    if resumed_from:
        print(f"resuming run {run_id} from its checkpoint at update {resumed_from}", flush=True)
    env, env_params = make_env_and_params(job.env, job.env_options)
    specs = {name: parse_skill(d) for name, d in job.specs.items()}
    config = PPOConfig(**job.config)
    metrics = MetricsWriter(run, echo=echo)
    result = train(env, env_params, job.plan, specs, job.remap.local_of_skill(), config,
                   init_params=seed_params(store, job), checkpoint_io=CheckpointWithMetrics(run, metrics),
                   on_metrics=metrics)
    metrics.flush()
    experts = extract_experts(result.params)
    for local, params in experts.items():
        store.write_bytes(expert_parts(run, job.remap.local_to_global[local]), params_to_bytes(params))
    doc = {
        "run_id": run_id, "skill": job.skill, "frames": int(result.frames), "updates": int(result.updates),
        "early_stopped": bool(result.early_stopped), "resumed_from_update": resumed_from,
        "expert_steps_global": {str(job.remap.local_to_global[int(l)]): int(v)
                                for l, v in enumerate(result.expert_steps)},
        "metrics": {k: v for k, v in (result.metrics or {}).items() if isinstance(v, (int, float, str, bool))},
    }
    doc["artifacts"] = write_artifacts(store, job, env, env_params, specs, config, result.params, metrics.rows)
    run.write_doc("result.json", doc)  # last: its presence means the run is finished
    return doc


def _configure_jax() -> None:
    import jax

    cache = os.environ.get("FLOWRL_JAX_CACHE", os.path.expanduser("~/.cache/flowrl/jax"))
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowrl_core.lifecycle.train")
    parser.add_argument("--store", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--storage-options", default="{}", help="JSON dict for fsspec")
    args = parser.parse_args(argv)
    try:
        load_plugins()
        _configure_jax()
        store = Store(args.store, storage_options=json.loads(args.storage_options), create=False)
        doc = run_job(store, args.run_id)
    except FlowRLError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    print(json.dumps({"result": doc}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
