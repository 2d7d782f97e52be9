"""One skill's training lifecycle — setup → train → merge — as store operations.

The three steps talk only through the run's folder in the store, so each can run in a
different process (the trainer runs in a child pinned to a GPU) or on a different machine, and
each is safe to repeat:

- ``setup`` decides whether the skill still needs training (its own completed runs already
  reached the frame budget → done), resumes an unfinished run (same run id: its checkpoint and
  its frames-at-setup are reused, so nothing is counted twice) or starts a new one.  It writes
  ``job.json``: plan, remap, the expert versions to seed from and their frames at setup.
- ``train`` (:mod:`flowrl_core.train_job`) trains from the job and writes the trained experts
  and ``result.json``; a retry resumes from the run's last checkpoint.
- ``merge`` proposes every trained expert with frames = frames at setup + frames trained, and
  records the run as completed under ``skills/<name>/runs/``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from flowrl_core.errors import FlowRLError, StoreCorruptError
from flowrl_core.merge import Decision, Proposal, current_version, merge_run
from flowrl_core.params_io import params_from_bytes
from flowrl_core.plan import execution_plan, plan_from_mapping
from flowrl_core.remap import Remap, remap_for_plan
from flowrl_core.spec import PlanStep, SkillSpec
from flowrl_core.store import RunStore, Store, new_run_id, now_iso


@dataclass
class SkillJob:
    """Everything the trainer needs, as JSON in ``runs/<run_id>/job.json``."""

    run_id: str
    skill: str
    env: str
    plan: list[PlanStep]
    specs: dict[str, dict[str, Any]]
    remap: Remap
    frames_at_setup: dict[int, int]
    base_versions: dict[int, str | None]
    config: dict[str, Any]
    continuation: bool = False
    env_options: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=now_iso)

    @property
    def budget(self) -> int:
        return int(self.config["total_timesteps"])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["plan"] = [s.to_dict() for s in self.plan]
        d["remap"] = self.remap.to_dict()
        d["frames_at_setup"] = {str(k): v for k, v in self.frames_at_setup.items()}
        d["base_versions"] = {str(k): v for k, v in self.base_versions.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SkillJob":
        return cls(
            run_id=d["run_id"], skill=d["skill"], env=d["env"], plan=plan_from_mapping(d["plan"]),
            specs=dict(d["specs"]), remap=Remap.from_dict(d["remap"]),
            frames_at_setup={int(k): int(v) for k, v in d["frames_at_setup"].items()},
            base_versions={int(k): v for k, v in d["base_versions"].items()},
            config=dict(d["config"]), continuation=bool(d.get("continuation", False)),
            env_options=dict(d.get("env_options") or {}), created_at=d.get("created_at", ""),
        )


@dataclass(frozen=True)
class SetupResult:
    """``job`` is None when the skill already reached its budget (``done_frames`` says how far)."""

    skill: str
    job: SkillJob | None
    resumed: bool
    done_frames: int


def load_job(store: Store, run_id: str) -> SkillJob:
    run = store.run(run_id)
    data = run.read_doc("job.json")
    try:
        return SkillJob.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreCorruptError(store.path(*run.parts("job.json")), f"not a job document ({exc})") from None


def skill_runs(store: Store, skill: str) -> dict[str, dict[str, Any]]:
    """run id → its record under ``skills/<name>/runs/`` (status started|completed)."""
    out = {}
    for name in store.list(("skills", skill, "runs")):
        if name.endswith(".json"):
            out[name[:-5]] = store.read_json(("skills", skill, "runs", name))
    return out


def trained_frames(store: Store, skill: str) -> int:
    """Frames trained by this skill's own completed runs (what the budget is measured against)."""
    return sum(int(r.get("frames", 0)) for r in skill_runs(store, skill).values() if r.get("status") == "completed")


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


def expert_parts(run: RunStore, global_index: int) -> tuple[str, ...]:
    return run.parts("experts", f"{global_index:06d}.msgpack")


def read_result(store: Store, run_id: str) -> dict[str, Any] | None:
    run = store.run(run_id)
    return run.read_doc("result.json") if run.has_doc("result.json") else None


def merge(store: Store, run_id: str) -> list[Decision]:
    """Propose every expert the run trained; idempotent, so a retried merge changes nothing."""
    job = load_job(store, run_id)
    run = store.run(run_id)
    result = read_result(store, run_id)
    if result is None:
        raise FlowRLError(f"skill {job.skill!r}: run {run_id} has no result.json yet; train it before merging")
    trained = int(result["frames"])
    steps = {int(k): int(v) for k, v in result.get("expert_steps_global", {}).items()}
    proposals = []
    for g, skill in job.remap.skill_of_global.items():
        parts = expert_parts(run, g)
        params = params_from_bytes(store.read_bytes(parts), store.path(*parts))
        proposals.append(Proposal(index=g, skill=skill, frames=job.frames_at_setup[g] + trained, params=params,
                                  base_version=job.base_versions.get(g), steps_acted=steps.get(g)))
    decisions = merge_run(store, run_id, proposals)
    run.write_doc("merge.json", [d.to_dict() for d in decisions])
    store.write_json(("skills", job.skill, "runs", f"{run_id}.json"),
                     {"run_id": run_id, "status": "completed", "started_at": job.created_at,
                      "completed_at": now_iso(), "frames": trained, "continuation": job.continuation,
                      "early_stopped": bool(result.get("early_stopped")),
                      "success_rate": result.get("metrics", {}).get("success_rate"),
                      "decisions": [d.to_dict() for d in decisions]})
    return decisions


def summarize_store(store: Store) -> dict[str, Any]:
    """What ``flowrl status`` prints: skills, their experts' current versions and their runs."""
    indices = store.expert_indices()
    skills = {}
    for name in sorted(set(store.skill_names()) | set(indices)):
        index = indices.get(name)
        version = current_version(store, index) if index is not None else None
        runs = skill_runs(store, name)
        completed = [r for r in runs.values() if r.get("status") == "completed"]
        last = max(completed, key=lambda r: r.get("completed_at", ""), default=None)
        skills[name] = {
            "index": index,
            "frames": version.frames if version else 0,
            "version": version.version_id if version else None,
            "trained_frames": sum(int(r.get("frames", 0)) for r in completed),
            "runs": len(runs), "completed_runs": len(completed),
            "unfinished_runs": sum(1 for r in runs.values() if r.get("status") == "started"),
            "success_rate": last.get("success_rate") if last else None,
        }
    return {"store": store.url, "skills": skills}


def dumps(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=str)
