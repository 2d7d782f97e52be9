"""Everything ``flowrl plan`` shows, computed without training or writing anything.

Kept apart from the CLI so flows and tests read the same facts the user sees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import networkx as nx

from flowrl_core.skills.graph import (
    critical_path,
    critical_path_lengths,
    training_order,
)
from flowrl_core.skills.plan import Planner
from flowrl_core.skills.remap import Remap, remap_for_plan
from flowrl_core.skills.spec import PlanStep, SkillSpec


@dataclass(frozen=True)
class SkillOverview:
    name: str
    depends_on: list[str]
    plan: list[PlanStep]
    index: int
    index_is_new: bool
    remap: Remap
    remaining_path: float


@dataclass(frozen=True)
class GraphOverview:
    graph: nx.DiGraph
    order: list[str]
    critical_path: list[str]
    skills: dict[str, SkillOverview]


def proposed_indices(order: Sequence[str], existing: Mapping[str, int]) -> dict[str, tuple[int, bool]]:
    """Indices the store has, plus the ones a run would claim next, in training order."""
    out = {name: (idx, False) for name, idx in existing.items() if name in order}
    nxt = 1 + max(existing.values(), default=-1)
    for name in order:
        if name not in out:
            out[name] = (nxt, True)
            nxt += 1
    return out


def overview(specs: Sequence[SkillSpec], existing_indices: Mapping[str, int] | None = None) -> GraphOverview:
    planner = Planner(specs)
    graph = planner.graph
    order = training_order(graph)
    indices = proposed_indices(order, existing_indices or {})
    flat = {name: idx for name, (idx, _) in indices.items()}
    lengths = critical_path_lengths(graph)
    skills = {}
    for name in order:
        plan = planner.plan(name)
        skills[name] = SkillOverview(
            name=name, depends_on=sorted(graph.predecessors(name)), plan=plan, index=indices[name][0],
            index_is_new=indices[name][1], remap=remap_for_plan(name, plan, flat),
            remaining_path=lengths[name],
        )
    return GraphOverview(graph=graph, order=order, critical_path=critical_path(graph), skills=skills)
