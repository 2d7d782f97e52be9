"""Execution plans: the ordered ``(skill, count)`` steps a policy follows to run a target skill.

The plan is built by simulating an inventory from empty.  To run a skill, each of its needs
(requirements, raised to what it consumes) is satisfied by running the key's provider as many
times as it takes — recursively, one run at a time, so whatever an intermediate run consumes is
gathered again.  Needs are satisfied deepest-first (the tool before the wood), and the loop
repeats until all hold at once, because satisfying one need can use up another.  Consecutive
runs of the same skill are merged into one step with a count.

``near:`` keys (a block in crafting range) are positional, so they are fleeting: a run of a skill
that gains no ``near:`` key (walking off to collect, or crafting) clears them all, while a run
that gains one (placing a station) keeps the others, since the agent places beside itself.  A
skill needing ``near:`` keys therefore gathers first everything its own run and the placements
will use, then runs the placements last, back to back, so the table and the furnace stand next
to the agent together when it crafts -- which is what Craftax checks, and what an achievement
(true anywhere, for the rest of the episode) cannot say.

The distinct skills of the plan are exactly the MoE's experts for training the target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import networkx as nx

from flowrl_core.errors import SkillFileError
from flowrl_core.skills.graph import build_graph, needs, provider_for, providers
from flowrl_core.skills.spec import PlanStep, SkillSpec, is_item, is_near

MAX_PLAN_RUNS = 10_000
INVENTORY_CAP = 9  # Craftax-Classic's per-item cap; a plan needing more can never be executed


class Planner:
    """Plans for many targets of one library: the graph, providers and depths are built once, so
    planning every skill of a 10,000-skill file costs the sum of the plans, not n graphs."""

    def __init__(self, specs: Sequence[SkillSpec], graph: nx.DiGraph | None = None):
        self.by_name = {s.name: s for s in specs}
        self.by_key = providers(specs)
        self.graph = graph if graph is not None else build_graph(list(specs))
        self.depth = self._depths()

    def plan(self, target: str) -> list[PlanStep]:
        """Steps that take an empty inventory to a completed run of ``target`` (target last)."""
        if target not in self.by_name:
            known = sorted(self.by_name)
            raise SkillFileError(f"unknown target skill {target!r}; known: {', '.join(known[:20])}"
                                 + (f" and {len(known) - 20} more" if len(known) > 20 else ""))
        run = _Run(self, target)
        run.run(target, ())
        return group_runs(run.runs)

    def _depths(self) -> dict[str, int]:
        depth: dict[str, int] = {}
        for node in nx.topological_sort(self.graph):
            depth[node] = 1 + max((depth[p] for p in self.graph.predecessors(node)), default=0)
        return depth


class _Run:
    """One target's simulation: an inventory from empty and the runs that fill it."""

    def __init__(self, planner: Planner, target: str):
        self.by_name, self.by_key, self.depth = planner.by_name, planner.by_key, planner.depth
        self.target = target
        self.runs: list[str] = []
        self.inventory: dict[str, int] = {}

    def _fail(self, message: str) -> SkillFileError:
        return SkillFileError(message, skill=self.target)

    def run(self, name: str, stack: tuple[str, ...]) -> None:
        if name in stack:
            raise self._fail(f"cannot plan: {' -> '.join(stack + (name,))} needs itself")
        spec = self.by_name[name]
        need = needs(spec)
        near = sorted(k for k in need if is_near(k))
        gather = self._with_placements(spec, need, near)
        order = sorted(gather, key=lambda k: (-self._provider_depth(spec, k), k))
        for _ in range(len(need) + 2):
            if all(self.inventory.get(k, 0) >= v for k, v in need.items()):
                break
            for key in order:
                self.satisfy(spec, key, gather[key], stack + (name,))
            for key in near:
                self.satisfy(spec, key, 1, stack + (name,))
        else:
            missing = {k: v for k, v in need.items() if self.inventory.get(k, 0) < v}
            raise self._fail(f"cannot plan {name!r}: satisfying its needs keeps using up {missing}")
        if not any(is_near(k) for k in spec.gains):
            for key in [k for k in self.inventory if is_near(k)]:
                del self.inventory[key]
        for key, amount in spec.consumes.items():
            self.inventory[key] -= amount
        for key, amount in spec.gains.items():
            if not is_item(key):  # a flag: achievements and near: keys
                self.inventory[key] = max(self.inventory.get(key, 0), 1)
            else:
                self.inventory[key] = self.inventory.get(key, 0) + amount
        self.runs.append(name)
        if len(self.runs) > MAX_PLAN_RUNS:
            raise self._fail(f"the plan exceeds {MAX_PLAN_RUNS} runs; check gains and consumes")

    def _with_placements(self, spec: SkillSpec, need: dict[str, int], near: list[str]) -> dict[str, int]:
        """``spec``'s non-positional needs, plus what the runs providing its ``near:`` keys need
        and use up: gathered before any placement, so no trip away from the stations follows it."""
        gather = {k: v for k, v in need.items() if not is_near(k)}
        for key in near:
            provider = provider_for(spec, key, self.by_key)
            if provider is None:
                continue  # satisfy() reports it
            placer = self.by_name[provider]
            for k, amount in placer.consumes.items():
                if is_item(k):
                    gather[k] = gather.get(k, 0) + amount
            for k, amount in placer.requires.items():
                if not is_near(k) and k not in placer.consumes:
                    gather[k] = max(gather.get(k, 0), amount)
        return gather

    def _provider_depth(self, spec: SkillSpec, key: str) -> int:
        provider = provider_for(spec, key, self.by_key)
        return self.depth.get(provider, 0) if provider else 0

    def satisfy(self, spec: SkillSpec, key: str, amount: int, stack: tuple[str, ...]) -> None:
        provider = provider_for(spec, key, self.by_key)
        if provider is None:
            raise self._fail(f"{spec.name!r} requires {key!r} but no skill gains it")
        if is_item(key) and amount > INVENTORY_CAP:
            raise self._fail(f"{spec.name!r} needs {amount} {key}, over the inventory cap of {INVENTORY_CAP}")
        per_run = self.by_name[provider].gains[key]
        while self.inventory.get(key, 0) < amount:
            before = self.inventory.get(key, 0)
            for _ in range(max(1, math.ceil((amount - before) / per_run))):
                self.run(provider, stack)
            if self.inventory.get(key, 0) <= before:
                raise self._fail(f"cannot plan: running {provider!r} does not increase {key!r}")


def group_runs(runs: Sequence[str]) -> list[PlanStep]:
    steps: list[PlanStep] = []
    for name in runs:
        if steps and steps[-1].skill == name:
            steps[-1] = PlanStep(name, steps[-1].count + 1)
        else:
            steps.append(PlanStep(name, 1))
    return steps


def execution_plan(specs: Sequence[SkillSpec], target: str) -> list[PlanStep]:
    """Steps that take an empty inventory to a completed run of ``target`` (target last)."""
    return Planner(specs).plan(target)


def plan_skills(plan: Sequence[PlanStep]) -> list[str]:
    """Distinct skills of a plan in first-appearance order: the MoE's members."""
    return list(dict.fromkeys(step.skill for step in plan))


def plan_from_mapping(steps: Sequence[Mapping[str, object]]) -> list[PlanStep]:
    return [PlanStep(str(s["skill"]), int(s["count"])) for s in steps]  # type: ignore[call-overload]
