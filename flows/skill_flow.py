"""``train-skill``: setup → train → merge for one skill — the unit a GPU worker runs.

Deployed on the GPU work pool (see prefect.yaml); the worker's environment pins its GPU, so
the trainer child inherits ``CUDA_VISIBLE_DEVICES``.  Given a ``run_id`` prepared by the
orchestrating flow, setup resumes that run (same job, same checkpoint), so re-running the
child after a crashed worker continues instead of starting over.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flowrl_core.scheduling.slots import PrioritySlots
from flowrl_core.skills.parsing import parse_skills
from flowrl_core.store.objects import Store
from tasks.skill import GraphRun, merge_task, setup_task, train_task


@flow(name="train-skill", log_prints=True)
def train_skill(
    skill: str,
    skills: dict[str, Any],
    store: str,
    env: str = "gridworld",
    config: dict[str, Any] | None = None,
    run_id: str | None = None,
    retries: int = 2,
    continuation: bool = False,
    storage_options: dict[str, Any] | None = None,
    env_options: dict[str, Any] | None = None,
    trainer: str = "subprocess",
) -> dict[str, Any]:
    """``skills`` is the decoded skill file (``{"skills": [...]}``); ``config`` the resolved
    training settings of this skill (from the orchestrator, or the cpu profile).  ``trainer``
    is "subprocess" (the product's PPO child process) or an in-process fixture's import path
    (the orchestration benchmark's slot-holding trainer)."""
    from flowrl_core.training.config import resolve_config
    specs = parse_skills(skills, source="parameter 'skills'")
    cfg = dict(config) if config else resolve_config("cpu", None, {s.name: s for s in specs}[skill].train, skill=skill)
    st = Store(store, storage_options=storage_options)
    for s in specs:
        st.assign_index(s.name)
        st.save_skill(s)
    ctx = GraphRun(store_url=st.url, storage_options=dict(storage_options or {}), env=env, specs=specs,
                   configs={skill: cfg}, slots=PrioritySlots.cpu(1), priority={}, retries=retries,
                   continuation=continuation, env_options=env_options, trainer=trainer)
    result = setup_task(skill, ctx, run_id)
    if result.job is None:
        return {"skill": skill, "status": "already done", "frames": result.done_frames, "decisions": []}
    job = result.job
    trained = train_task.with_options(retries=retries)(skill, job.run_id, ctx)
    decisions = merge_task(skill, job.run_id, ctx)
    return {"skill": skill, "status": "trained", "run_id": job.run_id, "frames": trained["frames"],
            "success_rate": trained.get("metrics", {}).get("success_rate"), "decisions": decisions}
