"""The job a run trains: everything the trainer process needs, fixed at setup.

Stored as ``runs/<run_id>/job.json`` so setup, train and merge can run in different processes
or on different machines and each can be repeated: a resumed run reads the same job back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from flowrl_core.errors import StoreCorruptError
from flowrl_core.skills.plan import plan_from_mapping
from flowrl_core.skills.remap import Remap
from flowrl_core.skills.spec import PlanStep
from flowrl_core.store.objects import Store, now_iso
from flowrl_core.store.runs import RunStore


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


def load_job(store: Store, run_id: str) -> SkillJob:
    run = store.run(run_id)
    data = run.read_doc("job.json")
    try:
        return SkillJob.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreCorruptError(store.path(*run.parts("job.json")), f"not a job document ({exc})") from None


def expert_parts(run: RunStore, global_index: int) -> tuple[str, ...]:
    return run.parts("experts", f"{global_index:06d}.msgpack")


def read_result(store: Store, run_id: str) -> dict[str, Any] | None:
    run = store.run(run_id)
    return run.read_doc("result.json") if run.has_doc("result.json") else None
