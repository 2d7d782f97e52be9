"""The job a run trains, and the result it leaves: the two documents of a run folder.

``runs/<run_id>/job.json`` holds everything the trainer process needs, fixed at setup, so setup,
train and merge can run in different processes or machines and each can be repeated: a resumed
run reads the same job back.  Its :meth:`SkillJob.identity` is a hash of what the job *means*
(skill, plan, specs, config, env, trainer) — not of when it was set up or what it was seeded
from — so a rerun can tell "the same job, resume it" from "the file changed, start afresh".
``runs/<run_id>/result.json`` (:class:`TrainingResult`) is written last by the trainer: its
presence means the run trained.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from flowrl_core.errors import StoreCorruptError
from flowrl_core.skills.plan import STEP_GOAL_BEFORE, plan_from_mapping
from flowrl_core.skills.remap import Remap
from flowrl_core.skills.spec import PlanStep
from flowrl_core.store.objects import Store, now_iso
from flowrl_core.store.runs import RunStore

DEFAULT_TRAINER = "ppo"


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
    trainer: str = DEFAULT_TRAINER  # "ppo" or an import path "pkg.module:function" (see lifecycle.train)

    def identity(self) -> str:
        """Hash of what this job trains; equal for a rerun of the same file, config and env."""
        return job_identity(skill=self.skill, env=self.env, env_options=self.env_options, config=self.config,
                            continuation=self.continuation, plan=self.plan, specs=self.specs, trainer=self.trainer)

    @property
    def trained_experts(self) -> tuple[int, ...]:
        """Global indices of the experts this run trains and proposes to the store: every plan
        expert, or only the skill's own when ``train_prerequisites`` is off (the rest act frozen)."""
        if self.config.get("train_prerequisites", True):
            return tuple(sorted(self.remap.skill_of_global))
        return tuple(g for g, skill in sorted(self.remap.skill_of_global.items()) if skill == self.skill)

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
            config={**ADDED_LATER, **d["config"]}, continuation=bool(d.get("continuation", False)),
            env_options=dict(d.get("env_options") or {}), created_at=d.get("created_at", ""),
            trainer=str(d.get("trainer", DEFAULT_TRAINER)),
        )


# Settings read only once training is over: changing one (or a release adding one) must not
# turn an unfinished run into a different job and abandon its checkpoints.
AFTER_TRAINING = ("analysis_episodes",)
# Settings whose whole effect is the plan, which the identity holds itself: a run planned the
# same way is the same job whether it was asked for by name or by default.
IN_PLAN = ("plan_order",)
# Settings added after runs were stored, with the value those runs trained under: a job.json
# without the key reads as that value, and at that value the key stays out of the identity, so
# naming it resumes an unfinished run of an older flowrl (a new default is a new job).
ADDED_LATER = {"step_goal": STEP_GOAL_BEFORE, "train_prerequisites": True}


def job_identity(*, skill: str, env: str, env_options: Mapping[str, Any], config: Mapping[str, Any],
                 continuation: bool, plan: list[PlanStep], specs: Mapping[str, Any], trainer: str) -> str:
    trained = {k: v for k, v in config.items()
               if k not in AFTER_TRAINING + IN_PLAN and not (k in ADDED_LATER and v == ADDED_LATER[k])}
    doc = {"skill": skill, "env": env, "env_options": dict(env_options), "config": trained,
           "continuation": bool(continuation), "plan": [s.to_dict() for s in plan],
           "specs": {k: specs[k] for k in sorted(specs)}, "trainer": trainer}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TrainingResult:
    """``runs/<run_id>/result.json``: what the trainer produced (the merge reads it)."""

    run_id: str
    skill: str
    frames: int
    updates: int
    early_stopped: bool
    resumed_from_update: int
    expert_steps_global: dict[int, int]  # env steps each expert acted, by global index
    metrics: dict[str, Any]  # the last update's scalar metrics (success_rate, mean_episode_length, ...)
    artifacts: dict[str, str] = field(default_factory=dict)  # learning_curve / rollout paths, or *_error

    @property
    def success_rate(self) -> float | None:
        value = self.metrics.get("success_rate")
        return float(value) if isinstance(value, (int, float)) else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["expert_steps_global"] = {str(k): v for k, v in self.expert_steps_global.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainingResult":
        return cls(run_id=str(d["run_id"]), skill=str(d["skill"]), frames=int(d["frames"]), updates=int(d["updates"]),
                   early_stopped=bool(d.get("early_stopped", False)),
                   resumed_from_update=int(d.get("resumed_from_update", 0)),
                   expert_steps_global={int(k): int(v) for k, v in d.get("expert_steps_global", {}).items()},
                   metrics=dict(d.get("metrics") or {}), artifacts=dict(d.get("artifacts") or {}))


def load_job(store: Store, run_id: str) -> SkillJob:
    run = store.run(run_id)
    data = run.read_doc("job.json")
    try:
        return SkillJob.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StoreCorruptError(store.path(*run.parts("job.json")), f"not a job document ({exc})") from None


def expert_parts(run: RunStore, global_index: int) -> tuple[str, ...]:
    return run.parts("experts", f"{global_index:06d}.msgpack")


def read_result(store: Store, run_id: str) -> TrainingResult | None:
    run = store.run(run_id)
    if not run.has_doc("result.json"):
        return None
    try:
        return TrainingResult.from_dict(run.read_doc("result.json"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StoreCorruptError(store.path(*run.parts("result.json")), f"not a training result ({exc})") from None


def last_completed_job(store: Store, skill: str) -> SkillJob | None:
    """The job of the skill's most recently completed run (what env, options and plan it trained
    with); None when it never completed one."""
    from flowrl_core.store.runs import completed_runs

    completed = completed_runs(store, skill)
    if not completed:
        return None
    return load_job(store, max(completed, key=lambda r: (r.ended_at, r.run_id)).run_id)


# The settings that give an expert's parameters their shapes: a run seeded from a stored version
# must use the ones that version trained with.
NETWORK_KEYS = ("width", "depth")


def network_of(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: config.get(k) for k in NETWORK_KEYS}


def continuation_network(store: Store, skill: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The network settings a continuation of ``skill`` keeps: those of its last completed run,
    except where ``overrides`` names them (then setup checks they still fit the stored experts)."""
    job = last_completed_job(store, skill)
    return {k: v for k, v in network_of(job.config).items() if k not in overrides} if job else {}
