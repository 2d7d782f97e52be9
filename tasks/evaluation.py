"""Prefect task that measures a skill's current experts on fresh episodes (in a child process)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flowrl_core.lifecycle.context import StoreRef
from tasks.launch import run_evaluation_process


@task(name="evaluate", cache_policy=NO_CACHE, task_run_name="evaluate {skill}")
def evaluate_task(skill: str, store: StoreRef, episodes: int, seed: int = 0) -> str:
    """Record a fresh evaluation of ``skill`` as its latest (``flowrl eval --record``'s figure)."""
    line = run_evaluation_process(store, skill, episodes=episodes, seed=seed)
    get_run_logger().info("%s", line)
    return line
