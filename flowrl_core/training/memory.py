"""The device memory one training needs, known before it trains, and the peak it really reached.

Packing several trainings on one GPU (:mod:`flowrl_core.scheduling.slots`) needs a figure per
skill *before* it runs.  Guessing from parameter counts misses what dominates at Craftax size:
the rollout buffer, its shuffled minibatch copies and the activations of the update.  XLA knows
all of it once the update is compiled: buffer assignment fixes every temporary, and
``compiled.memory_analysis()`` reports the executable's argument, output, alias, temp and
generated-code bytes.  So the estimate compiles *the trainer's own update* — built by the same
:func:`~flowrl_core.training.ppo.build_training` at the skill's config and K, fed abstract
shapes from ``jax.eval_shape(init_state)`` so nothing is allocated — and reads that analysis.

What the trainer holds, and where it is counted:

* **the train state** (params, Adam state, env states, observations, the reset bank, counters)
  is the update's argument: ``argument_size`` is exactly its pytree size (asserted in the
  tests), so it is not added again;
* **the next state and the metrics** are its output; the update does not donate its input, so
  both states are alive during a call and ``output_size`` counts in full (less ``alias``);
* **the rollout buffer, GAE, the shuffled minibatches, activations, gradients** are temps;
* **the reset bank's generation** at start-up is a separate executable whose peak (its output +
  temps) is usually below the update's; the larger of the two is what the process needs;
* **per-process overhead** outside XLA's buffers (the CUDA context, library handles; on CPU the
  runtime's resident set) is a stated constant per platform, :data:`PROCESS_OVERHEAD`.

Cost: compiling the update takes seconds (8–20 s for the gridworld on a shared 2-core CPU), so
estimates are cached by :func:`memory_key` — only what changes memory: env shapes, K, plan
length, batch geometry, widths — in this process and in a JSON file per key under
``FLOWRL_MEMORY_CACHE`` (default ``~/.cache/flowrl/memory``).  And the compile is not wasted:
with JAX's persistent compilation cache on (the trainer's setting, ``FLOWRL_JAX_CACHE``), the
trainer that follows loads this very executable instead of compiling it (measured: the
gridworld trainer's first compile went from 12.2 s to 2.4 s after an estimate).

Never run the estimate inside the orchestrator on a GPU machine: initialising JAX's GPU backend
there would preallocate 75 % of a GPU.  ``python -m flowrl_core.training.memory --run-id ID``
(a TrainerInput on stdin, like the trainer) runs it in a child with the trainer's environment and
stores the record as the run's ``memory.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import resource
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import jax
import numpy as np

from flowrl_core.envs.base import Env
from flowrl_core.skills.spec import PlanStep, SkillSpec
from flowrl_core.training.config import PPOConfig
from flowrl_core.training.ppo import (
    TrainingParts,
    Transition,
    _make_bank,
    build_training,
    chunk_size,
    init_state,
    make_chunk_fn,
    make_update_fn,
)

PyTree = Any
MiB = 1 << 20
GiB = 1 << 30

# Memory a training process costs on its device beyond XLA's buffers.  CPU: the resident set of a
# bare JAX process measured here (207 MiB), rounded up.  GPU: the CUDA context, cuBLAS/cuDNN
# handles and the allocator's slack; 1 GiB is an assumption (no GPU was available to measure it):
# replace it with ``benchmarks/packing.py --gpu``'s figure (measured peak vs estimate).
PROCESS_OVERHEAD: dict[str, int] = {"cpu": 256 * MiB, "gpu": 1 * GiB, "cuda": 1 * GiB, "rocm": 1 * GiB,
                                    "tpu": 256 * MiB}

# Config fields that change the shapes of the compiled update (and so its memory).  Learning
# rates, coefficients, seeds and thresholds do not; total_timesteps only through the chunk size.
MEMORY_FIELDS: tuple[str, ...] = ("num_envs", "num_steps", "update_epochs", "num_minibatches", "width", "depth",
                                  "reset_bank_size", "bank_refresh", "block_size", "frontier_buffer_size",
                                  "frontier_reset_prob", "frontier_from")


class EstimateMethod(str, Enum):
    XLA = "xla-memory-analysis"  # compiled.memory_analysis() of the trainer's update
    ANALYTIC = "analytic"  # the backend reported no analysis: a size model (see analytic_step_bytes)


@dataclass(frozen=True)
class MemoryParts:
    """The figures an estimate is made of (bytes)."""

    state: int  # the train state pytree: the update's argument
    step_output: int  # next state + metrics
    step_alias: int  # output bytes that reuse argument buffers (0: the update donates nothing)
    step_temp: int  # rollout buffer, GAE, minibatch copies, activations, gradients
    code: int  # generated code resident on the device (0 on CPU)
    init_peak: int  # reset-bank generation at start-up: its output + temps
    rollout: int  # the trajectory alone (analytic; already inside step_temp, for reference)
    params: int  # parameters alone (inside state, for reference)
    process_overhead: int  # outside XLA: CUDA context, runtime (PROCESS_OVERHEAD)

    @property
    def step_peak(self) -> int:
        return self.state + self.step_output - self.step_alias + self.step_temp


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one training needs on its device: ``max(step, init) + code + process overhead``."""

    total_bytes: int
    parts: MemoryParts
    method: EstimateMethod
    platform: str  # the backend it was compiled for ("cpu", "gpu", ...)
    device_kind: str
    key: str  # memory_key: equal keys, equal estimates
    num_experts: int
    chunk_updates: int  # updates per jitted call the trainer runs
    compile_s: float  # seconds the estimate took when it was computed (lower + compile)
    cached: bool = False  # this call was answered from the cache
    jax_version: str = jax.__version__

    @property
    def device_bytes(self) -> int:
        """What the device allocator should see at peak (the estimate without process overhead):
        compare with :class:`MeasuredPeak`.peak_bytes."""
        return self.total_bytes - self.parts.process_overhead

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["method"] = self.method.value
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MemoryEstimate":
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in fields}
        values["parts"] = MemoryParts(**dict(d["parts"]))
        values["method"] = EstimateMethod(d["method"])
        return cls(**values)


@dataclass(frozen=True)
class MeasuredPeak:
    """What the backend says a finished training really used (store it beside the estimate)."""

    platform: str
    device_kind: str
    peak_bytes: int | None  # the device allocator's peak (GPU/TPU); None where not reported (CPU)
    bytes_limit: int | None  # the allocator's limit (XLA_PYTHON_CLIENT_MEM_FRACTION x device)
    host_peak_rss_bytes: int  # this process's peak resident set (on CPU, the device *is* the host)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MeasuredPeak":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class RunMemory:
    """A run's ``memory.json``: the estimate made at setup and, once trained, the measured peak."""

    estimate: MemoryEstimate | None
    measured: MeasuredPeak | None = None

    @property
    def ratio(self) -> float | None:
        """measured / estimated device bytes (see :func:`estimate_ratio`)."""
        if self.estimate is None or self.measured is None:
            return None
        return estimate_ratio(self.estimate, self.measured)

    def to_dict(self) -> dict[str, Any]:
        return {"estimate": self.estimate.to_dict() if self.estimate else None,
                "measured": self.measured.to_dict() if self.measured else None, "ratio": self.ratio}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunMemory":
        return cls(MemoryEstimate.from_dict(d["estimate"]) if d.get("estimate") else None,
                   MeasuredPeak.from_dict(d["measured"]) if d.get("measured") else None)


# --------------------------------------------------------------------------- the estimate


def tree_bytes(tree: PyTree) -> int:
    """Bytes of a pytree of arrays or ``ShapeDtypeStruct`` s."""
    return sum(int(math.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def _device() -> Any:
    return jax.devices()[0]


def memory_key(env: Env, env_params: PyTree, config: PPOConfig, num_experts: int, plan_steps: int) -> str:
    """Hash of what decides the memory of a training: backend, env shapes, K, batch geometry."""
    state = jax.eval_shape(env.reset, jax.ShapeDtypeStruct((2,), np.uint32), env_params)
    shapes = [(tuple(x.shape), str(x.dtype)) for x in jax.tree.leaves(state)]
    device = _device()
    doc = {"jax": jax.__version__, "platform": device.platform, "kind": getattr(device, "device_kind", ""),
           "env": env.name, "obs": list(env.obs_shape), "actions": int(env.num_actions), "state": shapes,
           "k": int(num_experts), "plan": int(plan_steps), "chunk": chunk_size(config, 0),
           **{f: getattr(config, f) for f in MEMORY_FIELDS}}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:24]


def rollout_bytes(obs_bytes_per_env: int, config: PPOConfig) -> int:
    """The trajectory of one update: per env step the observation and the Transition's other
    fields (scalars, counted as 4 bytes: the few bools are 1), plus advantages and targets."""
    scalars = len(Transition._fields) - 1
    return config.num_steps * config.num_envs * (obs_bytes_per_env + 4 * scalars + 8)


def analytic_step_bytes(state: int, params: int, rollout: int, config: PPOConfig) -> int:
    """A size model of the update's peak, for backends without a memory analysis.

    Both states (argument and output), the trajectory about 2.5 times (the buffer, its flat
    and shuffled minibatch copies), parameters four times (gradients, Adam's update and
    temporaries) and one minibatch's activations forward and backward.  Checked against XLA's
    CPU analysis in tests/test_packing.py (within a factor 1.6 either way).
    """
    activations = 2 * 2 * config.depth * (config.batch_size // config.num_minibatches) * config.width * 4
    return 2 * state + int(2.5 * rollout) + 4 * params + activations


_cache: dict[str, MemoryEstimate] = {}
_cache_lock = threading.Lock()
_key_locks: dict[str, threading.Lock] = {}  # one compile per key when threads ask at once


def _key_lock(key: str) -> threading.Lock:
    with _cache_lock:
        return _key_locks.setdefault(key, threading.Lock())


def default_cache_dir() -> Path | None:
    value = os.environ.get("FLOWRL_MEMORY_CACHE", os.path.expanduser("~/.cache/flowrl/memory"))
    return Path(value) if value else None


def _read_cached(key: str, cache_dir: Path | None) -> MemoryEstimate | None:
    with _cache_lock:
        hit = _cache.get(key)
    if hit is None and cache_dir is not None:
        path = cache_dir / f"{key}.json"
        try:
            hit = MemoryEstimate.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent or unreadable: recompute (and rewrite) rather than trust it
        if hit.key != key:
            return None
        with _cache_lock:
            _cache[key] = hit
    return dataclasses.replace(hit, cached=True) if hit is not None else None


def _write_cached(estimate: MemoryEstimate, cache_dir: Path | None) -> None:
    with _cache_lock:
        _cache[estimate.key] = estimate
    if cache_dir is None:
        return
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir / f".{estimate.key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(estimate.to_dict(), sort_keys=True))
        os.replace(tmp, cache_dir / f"{estimate.key}.json")
    except OSError:
        pass  # a cache that cannot be written only costs a recompile next time


def clear_memory_cache() -> None:
    """Forget this process's estimates (the files under the cache dir stay)."""
    with _cache_lock:
        _cache.clear()


def _analysis(compiled: Any) -> Any | None:
    try:
        return compiled.memory_analysis()
    except (AttributeError, NotImplementedError, RuntimeError):
        return None


def estimate_training(env: Env, env_params: PyTree, plan: Sequence[PlanStep], specs: Mapping[str, SkillSpec],
                      expert_of_skill: Mapping[str, int], config: PPOConfig, *,
                      process_overhead_bytes: int | None = None,
                      cache_dir: Path | str | None | bool = True) -> MemoryEstimate:
    """The memory :func:`~flowrl_core.training.ppo.train` will need with these arguments.

    Compiles the trainer's update for the default JAX backend (nothing is allocated: the state
    is abstract).  ``cache_dir``: True for :func:`default_cache_dir`, a path, or None/False for
    this process's cache only.
    """
    directory = default_cache_dir() if cache_dir is True else (Path(cache_dir) if cache_dir else None)
    parts_in = build_training(env, plan, specs, expert_of_skill, config)
    device = _device()
    overhead = PROCESS_OVERHEAD.get(device.platform, 1 * GiB) if process_overhead_bytes is None \
        else int(process_overhead_bytes)
    key = memory_key(env, env_params, config, parts_in.k, len(plan))
    key = hashlib.sha256(f"{key}:{overhead}".encode()).hexdigest()[:24]
    with _key_lock(key):
        cached = _read_cached(key, directory)
        if cached is not None:
            return cached
        estimate = _compile_estimate(env, env_params, config, parts_in, key, overhead, device)
        _write_cached(estimate, directory)
        return estimate


def _compile_estimate(env: Env, env_params: PyTree, config: PPOConfig, parts_in: TrainingParts, key: str,
                      overhead: int, device: Any) -> MemoryEstimate:
    t0 = time.perf_counter()
    k, compiled_plan, net, tx, refresh, max_steps = parts_in
    state = jax.eval_shape(lambda: init_state(env, env_params, compiled_plan, net, tx, config, k))
    n = max(1, chunk_size(config, 0))
    update = make_update_fn(env, env_params, compiled_plan, net, tx, config, k, refresh, max_steps)
    step = _analysis(make_chunk_fn(update, n).lower(state).compile())
    bank_size = config.reset_bank_size or 2 * config.num_envs
    key_shape = jax.ShapeDtypeStruct((2,), np.uint32)
    bank = _analysis(_make_bank.lower(env, key_shape, env_params, bank_size).compile())
    compile_s = time.perf_counter() - t0

    state_b = tree_bytes(state)
    params_b = tree_bytes(state.params)
    obs_per_env = tree_bytes(state.obs) // config.num_envs
    rollout_b = rollout_bytes(obs_per_env, config)
    if step is not None:
        method = EstimateMethod.XLA
        out_b, alias_b = int(step.output_size_in_bytes), int(step.alias_size_in_bytes)
        temp_b = int(step.temp_size_in_bytes)
        code_b = int(step.generated_code_size_in_bytes)
        # The argument is the state; XLA may drop unused leaves, so trust the larger figure.
        state_b = max(state_b, int(step.argument_size_in_bytes))
    else:
        method = EstimateMethod.ANALYTIC
        out_b, alias_b, code_b = state_b, 0, 0
        temp_b = analytic_step_bytes(state_b, params_b, rollout_b, config) - 2 * state_b
    if bank is not None:
        init_b = int(bank.output_size_in_bytes) + int(bank.temp_size_in_bytes) + params_b
        code_b += int(bank.generated_code_size_in_bytes)
    else:
        init_b = tree_bytes(state.bank) + params_b
    parts = MemoryParts(state=state_b, step_output=out_b, step_alias=alias_b, step_temp=temp_b, code=code_b,
                        init_peak=init_b, rollout=rollout_b, params=params_b, process_overhead=overhead)
    total = max(parts.step_peak, parts.init_peak) + parts.code + parts.process_overhead
    return MemoryEstimate(total_bytes=int(total), parts=parts, method=method, platform=device.platform,
                          device_kind=str(getattr(device, "device_kind", "")), key=key, num_experts=k,
                          chunk_updates=n, compile_s=round(compile_s, 3))


def estimate_job(job: Any, **kwargs: Any) -> MemoryEstimate:
    """:func:`estimate_training` for a :class:`~flowrl_core.lifecycle.job.SkillJob` (as written at setup)."""
    from flowrl_core.envs import make_env_and_params
    from flowrl_core.skills.parsing import parse_skill

    env, env_params = make_env_and_params(job.env, job.env_options)
    specs = {name: parse_skill(d) for name, d in job.specs.items()}
    return estimate_training(env, env_params, job.plan, specs, job.remap.local_of_skill(), PPOConfig(**job.config),
                             **kwargs)


# --------------------------------------------------------------------------- after training


def measure_peak() -> MeasuredPeak:
    """The peak this process's device allocator reached (call it in the trainer, after training).

    GPU/TPU backends report ``peak_bytes_in_use``; the CPU backend reports nothing, so there the
    process's peak resident set is the only measure (it includes the Python runtime).
    """
    device = _device()
    try:
        stats = device.memory_stats()
    except (AttributeError, NotImplementedError, RuntimeError):
        stats = None
    stats = stats or {}
    peak = stats.get("peak_bytes_in_use")
    limit = stats.get("bytes_limit")
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return MeasuredPeak(platform=device.platform, device_kind=str(getattr(device, "device_kind", "")),
                        peak_bytes=int(peak) if peak is not None else None,
                        bytes_limit=int(limit) if limit is not None else None,
                        host_peak_rss_bytes=int(rss_kib) * 1024)


def estimate_ratio(estimate: MemoryEstimate, measured: MeasuredPeak) -> float | None:
    """measured / estimated device bytes (< 1: the estimate was safe); None where nothing was measured."""
    if measured.peak_bytes is None or estimate.device_bytes <= 0:
        return None
    return measured.peak_bytes / estimate.device_bytes


# --------------------------------------------------------------------------- child process


def main(argv: list[str] | None = None) -> int:
    """``python -m flowrl_core.training.memory --run-id ID`` with a TrainerInput JSON document on stdin
    (the trainer's protocol: the store URL and its options stay off the command line): estimate the
    prepared run and store :class:`RunMemory` as its ``memory.json``.  Run it where and as the trainer
    runs (pinned GPU, no preallocation), never inside the orchestrator.  A job whose trainer is not
    the PPO trainer gets ``estimate: null`` (packing runs it alone)."""
    from flowrl_core.errors import FlowRLError
    from flowrl_core.lifecycle.job import DEFAULT_TRAINER, load_job
    from flowrl_core.lifecycle.train import open_given_run

    parser = argparse.ArgumentParser(prog="python -m flowrl_core.training.memory",
                                     description="Estimate one prepared run's memory; reads a TrainerInput on stdin.")
    parser.add_argument("--run-id", required=True, help="the run to estimate (also in the input; shown in ps)")
    args = parser.parse_args(argv)
    try:
        store = open_given_run(args.run_id)
        job = load_job(store, args.run_id)
        estimate = estimate_job(job) if job.trainer == DEFAULT_TRAINER else None
        store.run(args.run_id).write_doc("memory.json", RunMemory(estimate).to_dict())
    except FlowRLError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
