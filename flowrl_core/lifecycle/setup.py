"""Setup: decide whether a skill still needs training, and write the job of the run that will.

``setup`` decides done / resume / new: the skill's own completed runs already reached the
frame budget → done; an unfinished run of the same kind → resumed (same run id: its checkpoint
and its frames-at-setup are reused, so nothing is counted twice); else a new run.  For a new
run it builds the plan, remaps the plan's experts to local indices and pins the expert versions
to seed from, writing ``job.json``.  The steps after it (:mod:`.train`, :mod:`.merge`) read only
the run folder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flowrl_core.lifecycle.job import SkillJob, load_job
from flowrl_core.skills.plan import execution_plan
from flowrl_core.skills.remap import remap_for_plan
from flowrl_core.skills.spec import SkillSpec
from flowrl_core.store.experts import current_version
from flowrl_core.store.objects import Store, new_run_id
from flowrl_core.store.runs import skill_runs


@dataclass(frozen=True)
class SetupResult:
    """``job`` is None when the skill already reached its budget (``done_frames`` says how far)."""

    skill: str
    job: SkillJob | None
    resumed: bool
    done_frames: int


def setup(
    store: Store,
    specs: Sequence[SkillSpec],
    skill: str,
    *,
    env: str,
    config: Mapping[str, Any],
    continuation: bool = False,
    run_id: str | None = None,
    env_options: Mapping[str, Any] | None = None,
) -> SetupResult:
    """Decide done / resume / new; for a new run, remap and pin the seed versions."""
    budget = int(config["total_timesteps"])
    runs = skill_runs(store, skill)
    completed = [r for r in runs.values() if r.get("status") == "completed"]
    done = sum(int(r.get("frames", 0)) for r in completed)
    reached = any(r.get("early_stopped") for r in completed)  # hit its success threshold: done early
    if not continuation and run_id is None and (done >= budget or reached):
        return SetupResult(skill, None, resumed=False, done_frames=done)
    unfinished = sorted((r.get("started_at", ""), rid) for rid, r in runs.items()
                        if r.get("status") == "started" and bool(r.get("continuation")) == continuation)
    if run_id is None and unfinished:
        run_id = unfinished[-1][1]
    if run_id is not None and store.run(run_id).has_doc("job.json"):
        return SetupResult(skill, load_job(store, run_id), resumed=True, done_frames=done)

    plan = execution_plan(specs, skill)
    indices = store.expert_indices()
    remap = remap_for_plan(skill, plan, indices)
    by_name = {s.name: s for s in specs}
    frames: dict[int, int] = {}
    bases: dict[int, str | None] = {}
    for g in remap.local_to_global.values():
        version = current_version(store, g)
        frames[g] = version.frames if version else 0
        bases[g] = version.version_id if version else None
    job = SkillJob(
        run_id=run_id or new_run_id(skill), skill=skill, env=env, plan=plan,
        specs={s: by_name[s].to_dict() for s in remap.skill_of_global.values()}, remap=remap,
        frames_at_setup=frames, base_versions=bases, config=dict(config), continuation=continuation,
        env_options=dict(env_options or {}),
    )
    store.run(job.run_id).write_doc("job.json", job.to_dict())
    store.write_json(("skills", skill, "runs", f"{job.run_id}.json"),
                     {"run_id": job.run_id, "status": "started", "started_at": job.created_at,
                      "continuation": continuation})
    return SetupResult(skill, job, resumed=False, done_frames=done)
