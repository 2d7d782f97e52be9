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
from flowrl_core.skills.plan import Planner, file_plan_order
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
    trains_prerequisites: bool = True  # the file's train: map; False: the plan's other experts act frozen

    def trains(self, global_index: int) -> bool:
        return self.trains_prerequisites or self.remap.skill_of_global[global_index] == self.name


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
        plan = planner.plan(name, file_plan_order(planner.by_name[name]))
        skills[name] = SkillOverview(
            name=name, depends_on=sorted(graph.predecessors(name)), plan=plan, index=indices[name][0],
            index_is_new=indices[name][1], remap=remap_for_plan(name, plan, flat),
            remaining_path=lengths[name],
            trains_prerequisites=bool(planner.by_name[name].train.get("train_prerequisites", True)),
        )
    return GraphOverview(graph=graph, order=order, critical_path=critical_path(graph), skills=skills)


PLAN_SCHEMA = "flowrl.plan/1"


def plan_document(view: GraphOverview, source: str) -> dict:
    """``flowrl plan --json``: the same facts as the printed plan (README "Commands" has the schema)."""
    return {
        "schema": PLAN_SCHEMA, "source": source,
        "graph": {
            "skills": list(view.order),
            "edges": [{"from": u, "to": v, "reason": view.graph.edges[u, v].get("reason", "")}
                      for u, v in sorted(view.graph.edges)],
        },
        "order": list(view.order),
        "critical_path": list(view.critical_path),
        "skills": [{
            "name": name, "depends_on": list(s.depends_on), "expert": s.index, "expert_is_new": s.index_is_new,
            "plan": [{"skill": p.skill, "count": p.count} for p in s.plan],
            "remap": [{"global": int(g), "local": int(loc), "skill": s.remap.skill_of_global[g],
                       "trained": s.trains(g)} for g, loc in s.remap.global_to_local.items()],
            "remaining_path": s.remaining_path,
        } for name, s in ((n, view.skills[n]) for n in view.order)],
    }
