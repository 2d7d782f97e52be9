"""Global ↔ local expert indices.

Global indices are sparse and permanent (one per skill, never reused); a training run only
holds the experts of its plan.  Local indices are contiguous 0..K-1 in ascending global order,
so skills with experts {0, 5, 10, 50} train a 4-expert MoE, not a 51-expert one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flowrl_core.errors import RemapError
from flowrl_core.skills.spec import PlanStep


@dataclass(frozen=True)
class Remap:
    global_to_local: dict[int, int]
    local_to_global: dict[int, int]
    skill_of_global: dict[int, str]

    @property
    def num_experts(self) -> int:
        return len(self.local_to_global)

    def local_of_skill(self) -> dict[str, int]:
        return {s: self.global_to_local[g] for g, s in self.skill_of_global.items()}

    def to_dict(self) -> dict[str, dict[str, object]]:
        """JSON form (keys become strings; :meth:`from_dict` turns them back)."""
        return {
            "global_to_local": {str(g): l for g, l in self.global_to_local.items()},
            "local_to_global": {str(l): g for l, g in self.local_to_global.items()},
            "skill_of_global": {str(g): s for g, s in self.skill_of_global.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, object]]) -> "Remap":
        return cls(
            global_to_local={int(g): int(l) for g, l in data["global_to_local"].items()},  # type: ignore[arg-type]
            local_to_global={int(l): int(g) for l, g in data["local_to_global"].items()},  # type: ignore[arg-type]
            skill_of_global={int(g): str(s) for g, s in data["skill_of_global"].items()},
        )


def build_remap(skill: str, new_index: int, dependencies: Mapping[str, int | None]) -> Remap:
    """Remap for training ``skill`` (expert ``new_index``) with its dependency experts.

    A dependency whose global index is ``None`` or missing has no expert yet: that is an error,
    not a silent random expert, because the plan would route its steps to an untrained network.
    """
    skill_of: dict[int, str] = {}
    for dep, index in dependencies.items():
        if dep == skill:
            continue
        if index is None:
            raise RemapError(
                f"skill {skill!r}: dependency {dep!r} has no expert index; train or register "
                f"{dep!r} first (it is not found in the store's expert index)")
        _check_index(index, dep)
        if index in skill_of or index == new_index:
            other = skill_of.get(index, skill)
            raise RemapError(f"skill {skill!r}: skills {dep!r} and {other!r} share global expert {index}")
        skill_of[index] = dep
    _check_index(new_index, skill)
    skill_of[new_index] = skill
    ordered = sorted(skill_of)
    return Remap(
        global_to_local={g: l for l, g in enumerate(ordered)},
        local_to_global=dict(enumerate(ordered)),
        skill_of_global={g: skill_of[g] for g in ordered},
    )


def _check_index(index: object, skill: str) -> None:
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise RemapError(f"skill {skill!r}: global expert index must be a non-negative integer, got {index!r}")


def remap_for_plan(skill: str, plan: Sequence[PlanStep], indices: Mapping[str, int]) -> Remap:
    """Remap holding exactly the experts of ``plan``'s skills."""
    if skill not in indices:
        raise RemapError(f"skill {skill!r} has no global expert index; assign one first")
    deps = {step.skill: indices.get(step.skill) for step in plan if step.skill != skill}
    return build_remap(skill, indices[skill], deps)
