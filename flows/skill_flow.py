"""``train-skill``: train one prepared run — the unit a GPU worker runs.

Deployed on the GPU work pool (see prefect.yaml); the worker's environment pins its GPU, so the
trainer child inherits ``CUDA_VISIBLE_DEVICES``.  The orchestrating flow (``train-skill-graph``
with ``launcher: pool``) has already run setup — the run's ``job.json`` is in the shared store,
its dependencies' experts pinned — and merges afterwards, so a re-run of this flow after a lost
worker simply resumes the same run from its last checkpoint.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flowrl_core.errors import FlowRLError
from flowrl_core.lifecycle.context import StoreRef
from flowrl_core.lifecycle.job import load_job, read_result
from flowrl_core.plugins import load_plugins
from tasks.launch import TrainingFailed, run_trainer_process


@task(name="train", cache_policy=NO_CACHE, task_run_name="train {skill}")
def train_on_worker(skill: str, store: StoreRef, run_id: str) -> dict[str, Any]:
    entry = run_trainer_process(store, run_id, skill=skill, device="", log=get_run_logger())
    result = read_result(store.open(), run_id)
    if result is None:
        raise TrainingFailed(f"skill {skill!r}: the trainer finished but run {run_id} has no result.json")
    return {**entry, "frames": result.frames}


@flow(name="train-skill", log_prints=True, flow_run_name="train {run_id}")
def train_skill(store: str, run_id: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the prepared run ``run_id`` of ``store`` (its job.json says which skill and how)."""
    load_plugins()
    ref = StoreRef(store, dict(storage_options or {}))
    st = ref.open()
    if not st.run(run_id).has_doc("job.json"):
        raise FlowRLError(f"run {run_id} has no job.json in store {st.url}: train-skill trains runs that "
                          "train-skill-graph prepared; run that flow (launcher: pool) instead")
    job = load_job(st, run_id)
    return train_on_worker(job.skill, ref, run_id)
