"""Trainers: what turns a run's job into trained experts.  A new one is a function and one line in
:data:`TRAINERS` (or an import path ``pkg.module:function`` named by the skill file's ``trainer:``).

A trainer receives a :class:`TrainerContext` and returns a :class:`TrainedRun`; the trainer process
(:mod:`flowrl_core.lifecycle.train`) does the rest the same way for every trainer — refuses
non-finite parameters, writes the experts and ``result.json``, talks to its task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flowrl_core.errors import FlowRLError
from flowrl_core.lifecycle.job import SkillJob
from flowrl_core.plugins import ImportPathError, resolve_callable
from flowrl_core.store.objects import Store
from flowrl_core.store.runs import RunStore


class TrainerError(FlowRLError, ValueError):
    pass


@dataclass(frozen=True)
class TrainerContext:
    store: Store
    job: SkillJob
    run: RunStore
    resumed_from_update: int
    on_progress: Callable[[dict[str, Any]], None]  # one call per update, with its metrics row


@dataclass(frozen=True)
class TrainedRun:
    experts: dict[int, Any]  # global expert index -> its parameter tree (every expert of the job's remap)
    frames: int
    updates: int
    early_stopped: bool
    expert_steps: dict[int, int]  # global expert index -> env steps it acted
    metrics: dict[str, Any]  # the last update's scalar metrics
    artifacts: dict[str, str] = field(default_factory=dict)


Trainer = Callable[[TrainerContext], TrainedRun]


def train_ppo(ctx: TrainerContext) -> TrainedRun:
    """Plan-routed MoE PPO (:mod:`flowrl_core.training.ppo`), seeded from the versions pinned at setup."""
    from flowrl_core.envs import make_env_and_params
    from flowrl_core.lifecycle.artifacts import write_artifacts
    from flowrl_core.skills.parsing import parse_skill
    from flowrl_core.store.experts import load_params, version_by_id
    from flowrl_core.training.config import PPOConfig
    from flowrl_core.training.ppo import extract_experts, train

    job = ctx.job
    env, env_params = make_env_and_params(job.env, job.env_options)
    specs = {name: parse_skill(d) for name, d in job.specs.items()}
    config = PPOConfig(**job.config)
    seeds = {job.remap.global_to_local[g]: load_params(ctx.store, version_by_id(ctx.store, vid))
             for g, vid in job.base_versions.items() if vid is not None}
    metrics = _MetricsLog(ctx)
    result = train(env, env_params, job.plan, specs, job.remap.local_of_skill(), config, init_params=seeds,
                   checkpoint_io=_CheckpointWithMetrics(ctx.run, metrics), on_metrics=metrics)
    metrics.flush()
    experts = {job.remap.local_to_global[local]: p for local, p in extract_experts(result.params).items()}
    artifacts = write_artifacts(ctx.store, job, env, env_params, specs, config, result.params, metrics.rows)
    return TrainedRun(
        experts=experts, frames=int(result.frames), updates=int(result.updates),
        early_stopped=bool(result.early_stopped),
        expert_steps={job.remap.local_to_global[i]: int(v) for i, v in enumerate(result.expert_steps)},
        metrics={k: v for k, v in (result.metrics or {}).items() if isinstance(v, (int, float, str, bool))},
        artifacts=artifacts)


class _MetricsLog:
    """Keeps every update's row, rewrites ``metrics.jsonl`` at most every ``every_s`` and reports each row."""

    def __init__(self, ctx: TrainerContext, every_s: float = 2.0):
        import time

        self._time = time
        self.ctx = ctx
        self.rows: list[dict[str, Any]] = ctx.run.read_metrics()  # a resumed run keeps its history
        self.every_s = every_s
        self.last = 0.0

    def __call__(self, row: dict[str, Any]) -> None:
        self.rows = [r for r in self.rows if r.get("update", -1) < row.get("update", 0)] + [row]
        self.ctx.on_progress(row)
        if self._time.monotonic() - self.last >= self.every_s:
            self.flush()

    def flush(self) -> None:
        self.ctx.run.write_metrics(self.rows)
        self.last = self._time.monotonic()


class _CheckpointWithMetrics:
    """Flushes metrics before each checkpoint, so a resumed run's history has no gap."""

    def __init__(self, run: RunStore, metrics: _MetricsLog):
        self.run, self.metrics = run, metrics

    def save(self, update: int, data: bytes) -> None:
        self.metrics.flush()
        self.run.save(update, data)

    def load_latest(self) -> bytes | None:
        return self.run.load_latest()


TRAINERS: dict[str, Trainer] = {"ppo": train_ppo}


def resolve_trainer(name: str) -> Trainer:
    if name in TRAINERS:
        return TRAINERS[name]
    try:
        return resolve_callable(name, "trainer function")
    except ImportPathError as exc:
        raise TrainerError(f"trainer {name!r}: {exc}; built-in trainers: {', '.join(TRAINERS)}") from None
