"""Work pools and workers for scale-out: a GPU pool with one worker per GPU, a CPU pool.

Prefect counts but does not place GPUs, so placement comes from the workers: each GPU gets its
own process worker started with ``CUDA_VISIBLE_DEVICES=<gpu>`` and ``--limit 1``; flow runs
inherit the worker's environment, so every ``train-skill`` run lands on exactly one GPU.  The
pool's concurrency limit (= GPUs in the fleet) caps trainings across all machines.

Workers are started with ``exec`` so the worker *is* the process a supervisor signals, with
SIGINT/SIGTERM reset to their defaults first: a worker started as a background child of a
non-interactive shell otherwise ignores SIGINT and keeps taking runs after SIGTERM (measured,
see shared/research/prefect.md).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass

GPU_POOL = "gpu-pool"
CPU_POOL = "cpu-pool"


@dataclass(frozen=True)
class PoolResult:
    name: str
    created: bool
    concurrency_limit: int | None


def ensure_pool(name: str, concurrency_limit: int | None, *, description: str = "") -> PoolResult:
    """Create a process work pool, or set its limit if it exists (idempotent)."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process", concurrency_limit=concurrency_limit,
                                                   description=description))
            return PoolResult(name, True, concurrency_limit)
        except ObjectAlreadyExists:
            client.update_work_pool(name, WorkPoolUpdate(concurrency_limit=concurrency_limit))
            return PoolResult(name, False, concurrency_limit)


def count_gpus() -> int:
    """GPUs on this machine (nvidia-smi), 0 when there are none or no driver."""
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "--list-gpus"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def create_pools(gpus: int, *, gpu_pool: str = GPU_POOL, cpu_pool: str = CPU_POOL) -> list[PoolResult]:
    """The GPU pool limited to ``gpus`` concurrent skills and an unlimited CPU pool for orchestration."""
    if gpus < 1:
        raise ValueError(f"the GPU pool needs a limit >= 1, got {gpus}; pass the fleet's GPU count")
    return [
        ensure_pool(gpu_pool, gpus, description="flowrl train-skill runs, one per GPU"),
        ensure_pool(cpu_pool, None, description="flowrl orchestrating flows (train-skill-graph)"),
    ]


def worker_command(pool: str, name: str, limit: int = 1) -> list[str]:
    return ["prefect", "worker", "start", "--pool", pool, "--name", name, "--limit", str(limit),
            "--type", "process"]


def worker_env(gpu: str | None, base: dict[str, str] | None = None, limit: int = 1) -> dict[str, str]:
    """The worker's environment, inherited by its flow runs: pinned GPU, no preallocation, and with
    ``limit`` > 1 an even memory share per run (flowrl_core.scheduling.process_memory)."""
    from flowrl_core.scheduling.process_memory import worker_memory_env

    env = worker_memory_env(gpu, limit).apply(dict(os.environ if base is None else base))
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    return env


def worker_name(pool: str, gpu: str | None) -> str:
    host = socket.gethostname().split(".")[0]
    return f"{pool}-{host}-gpu{gpu}" if gpu is not None else f"{pool}-{host}"


def exec_worker(pool: str = GPU_POOL, gpu: str | None = None, *, limit: int = 1, name: str | None = None) -> None:
    """Replace this process with a Prefect worker pinned to ``gpu`` (never returns)."""
    cmd = worker_command(pool, name or worker_name(pool, gpu), limit)
    # A shell's `cmd &` starts us with SIGINT ignored, and an ignored signal stays ignored across
    # exec: the worker would then shrug off the SIGINT it sends itself on SIGTERM and keep taking
    # runs.  Restore the defaults so one SIGTERM stops it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.execvpe(cmd[0], cmd, worker_env(gpu, limit=limit))
