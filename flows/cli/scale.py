"""Scale-out commands: ``flowrl pool``, ``flowrl worker``, ``flowrl trigger``."""

from __future__ import annotations

import os
from typing import Optional

import typer

from flows.cli.app import _parse_settings, app, fail, out

pool_app = typer.Typer(help="Work pools for scale-out (needs PREFECT_API_URL).", no_args_is_help=True)
worker_app = typer.Typer(help="Prefect workers pinned to one GPU.", no_args_is_help=True)
app.add_typer(pool_app, name="pool")
app.add_typer(worker_app, name="worker")


@pool_app.command("create")
def pool_create(
    gpus: Optional[int] = typer.Option(None, min=1, help="GPUs in the whole fleet (default: this machine's)."),
    gpu_pool: str = typer.Option("gpu-pool", help="Name of the GPU pool."),
    cpu_pool: str = typer.Option("cpu-pool", help="Name of the orchestration pool."),
) -> None:
    """Create (or update) the GPU pool with limit = GPUs and the CPU pool; safe to repeat."""
    from deployments.pools import count_gpus, create_pools

    count = gpus or count_gpus()
    if not count:
        fail("no GPU found on this machine; pass --gpus N with the fleet's GPU count")
    for r in create_pools(count, gpu_pool=gpu_pool, cpu_pool=cpu_pool):
        limit = r.concurrency_limit if r.concurrency_limit is not None else "unlimited"
        out.print(f"{'created' if r.created else 'updated'} work pool [bold]{r.name}[/] (limit {limit})")


@worker_app.command("start")
def worker_start(
    gpu: Optional[str] = typer.Option(None, help="GPU id this worker pins (CUDA_VISIBLE_DEVICES)."),
    pool: str = typer.Option("gpu-pool", help="Work pool to serve."),
    limit: int = typer.Option(1, min=1, help="Runs at once on this worker (1 per GPU)."),
    name: Optional[str] = typer.Option(None, help="Worker name (default: pool-host-gpuN)."),
) -> None:
    """Become a Prefect process worker for POOL, pinned to one GPU (exec: signals reach the worker)."""
    from deployments.pools import exec_worker

    if not os.environ.get("PREFECT_API_URL"):
        fail("PREFECT_API_URL is not set: a worker needs a Prefect server (e.g. http://127.0.0.1:4200/api)")
    exec_worker(pool, gpu, limit=limit, name=name)


@app.command()
def trigger(
    deployment: str = typer.Option("train-skill-graph/train-skill-graph", help="flow-name/deployment-name."),
    skills_file: Optional[str] = typer.Option(None, help="Skill file path as the workers see it."),
    store: Optional[str] = typer.Option(None, help="Store URL (default: the deployment's)."),
    param: Optional[list[str]] = typer.Option(None, "--param", help="Flow parameter KEY=VALUE (JSON values)."),
    commit: Optional[str] = typer.Option(None, help="Commit the run must execute (CI: $GITHUB_SHA); the "
                                         "deployment's pull steps check it out or refuse to run another."),
    timeout: float = typer.Option(6 * 3600, min=1, help="Seconds to wait; then the run is cancelled (exit 1)."),
    poll: float = typer.Option(5.0, min=0.2, help="Seconds between state checks."),
) -> None:
    """Run a deployment on the Prefect server, print its URL at once, follow it, exit with its outcome.

    Exit 0 Completed; 1 Failed, Crashed, Cancelled or timed out; 2 no such deployment or bad
    parameters; 3 the API is unreachable; 130 interrupted (SIGINT/SIGTERM), which cancels the run.
    """
    from deployments.trigger import follow

    if not os.environ.get("PREFECT_API_URL"):
        fail("PREFECT_API_URL is not set: trigger runs a deployment on a Prefect server")
    params = _parse_settings(param or [])
    if skills_file:
        params["skills_file"] = skills_file
    if store:
        params["store"] = store
    raise typer.Exit(follow(deployment, params, commit=commit, timeout_s=timeout, poll_s=poll,
                            say=lambda line: (out.print(line, highlight=False, soft_wrap=True), out.file.flush())))
