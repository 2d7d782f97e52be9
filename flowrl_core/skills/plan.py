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
(true anywhere, for the rest of the episode) cannot say.  ``view:`` keys (a block in sight) are
positional in the same way: the skill that brings a diamond into view runs right before the one
that mines it.

With ``plan_order: gather_first`` (a training setting) the just-in-time plan is then reordered:
every *gathering* run (one that consumes nothing and gains only items: collecting wood, stone,
coal) moves to the earliest point where it can run without breaking any later step.  In Craftax
the just-in-time order walks back from the iron to the trees for the wood and stone the crafts
use; gathering first buys them while the agent is beside the trees and the rock anyway, and
leaves only placements and the craft after the iron search.  The runs are the same multiset, so
budgets and experts do not change.  It is an option, not the default, because it did not pay:
retrained side by side, the iron pickaxe learned no better in this order (docs/benchmarks.md,
"Gathering first") -- the search moves later in the day and the stations into the cave.

The distinct skills of the plan are exactly the MoE's experts for training the target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import networkx as nx

from flowrl_core.errors import SkillFileError
from flowrl_core.skills.graph import build_graph, needs, provider_for, providers
from flowrl_core.skills.spec import PlanStep, SkillSpec, is_item, is_near, is_positional

MAX_PLAN_RUNS = 10_000
INVENTORY_CAP = 9  # Craftax-Classic's per-item cap; a plan needing more can never be executed
PLAN_ORDERS = ("just_in_time", "gather_first")  # the plan_order training setting
# The step_goal training setting: a step's item target counts from what the env held on entering
# it ("gained"), or from what the plan expects it to hold there ("held"; holdings_at_steps).
STEP_GOALS = ("gained", "held")
DEFAULT_STEP_GOAL = "held"  # measured better on Craftax (docs/benchmarks.md, "Step goal")
STEP_GOAL_BEFORE = "gained"  # what every run stored before the setting existed trained under


class Planner:
    """Plans for many targets of one library: the graph, providers and depths are built once, so
    planning every skill of a 10,000-skill file costs the sum of the plans, not n graphs."""

    def __init__(self, specs: Sequence[SkillSpec], graph: nx.DiGraph | None = None):
        self.by_name = {s.name: s for s in specs}
        self.by_key = providers(specs)
        self.graph = graph if graph is not None else build_graph(list(specs))
        self.depth = self._depths()

    def plan(self, target: str, order: str = "just_in_time") -> list[PlanStep]:
        """Steps that take an empty inventory to a completed run of ``target`` (target last)."""
        if order not in PLAN_ORDERS:
            raise SkillFileError(f"unknown plan order {order!r}; choose one of {', '.join(PLAN_ORDERS)}",
                                 skill=target)
        if target not in self.by_name:
            known = sorted(self.by_name)
            raise SkillFileError(f"unknown target skill {target!r}; known: {', '.join(known[:20])}"
                                 + (f" and {len(known) - 20} more" if len(known) > 20 else ""))
        run = _Run(self, target)
        run.run(target, ())
        runs = run.runs if order == "just_in_time" else self._gather_first(run.runs)
        return group_runs(runs)

    def _gathers(self, name: str) -> bool:
        spec = self.by_name[name]
        return not spec.consumes and bool(spec.gains) and all(is_item(k) for k in spec.gains)

    def _gather_first(self, runs: Sequence[str]) -> list[str]:
        """Each gathering run, in plan order, moved to the earliest point where the whole plan
        still executes -- beside runs of the same skill already moved there, else after them,
        so one skill's runs merge into one step; the target's own run stays last.

        Moving a gathering run from ``j`` to ``i`` only changes the runs in between: each holds
        its items earlier (the cap may break), and the ``near:`` keys it clears at ``i`` are gone
        until the next run that clears them anyway (a station's user there may break).  Needs
        are otherwise only easier to meet, and after ``j`` the inventory is the same.  So each
        candidate costs a running maximum and the few runs up to the next walk-off: quadratic in
        the plan, a second for an 820-run plan."""
        out = list(runs)
        for j in range(len(out) - 1):
            spec = self.by_name[out[j]]
            if not self._gathers(spec.name):
                continue
            before = [{}]  # before[k]: the inventory before out[k], up to k = j
            for run in out[:j]:
                inventory = dict(before[-1])
                apply_run(inventory, self.by_name[run])
                before.append(inventory)
            fits = [False] * j + [True]  # fits[j]: where it is
            peak = {k: before[j].get(k, 0) for k in spec.gains}  # most of each item held in [i, j]
            for i in range(j - 1, -1, -1):
                for k in peak:
                    peak[k] = max(peak[k], before[i].get(k, 0))
                fits[i] = (all(peak[k] + spec.gains[k] <= INVENTORY_CAP for k in peak)
                           and all(before[i].get(k, 0) >= v for k, v in needs(spec).items())
                           and self._stations_hold(out, i, j))
            at = fits.index(True)
            end = at
            while end < j and self._gathers(out[end]) and fits[end + 1]:
                end += 1
            same = [i + 1 for i in range(at, end) if out[i] == spec.name]
            spot = same[-1] if same else end  # beside its own kind, else after the gathering there
            out = out[:spot] + [spec.name] + out[spot:j] + out[j + 1:]
        return out

    def _stations_hold(self, out: Sequence[str], i: int, j: int) -> bool:
        """Whether every run from ``i`` to the next walk-off still finds the stations it needs
        once a gathering run before ``out[i]`` has walked the agent away from all of them."""
        near: set[str] = set()
        for name in out[i:j]:
            spec = self.by_name[name]
            if any(is_positional(k) and k not in near for k in spec.requires):
                return False
            placed = [k for k in spec.gains if is_near(k)]
            if not placed:
                return True  # it walks off too: from here on the stations are as they were
            near.update(placed)
        return True

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
        # searches walk and placements do not, so what must come into view is found before the stations go down
        near = sorted((k for k in need if is_positional(k)), key=lambda k: (is_near(k), k))
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
        apply_run(self.inventory, spec)
        self.runs.append(name)
        if len(self.runs) > MAX_PLAN_RUNS:
            raise self._fail(f"the plan exceeds {MAX_PLAN_RUNS} runs; check gains and consumes")

    def _with_placements(self, spec: SkillSpec, need: dict[str, int], near: list[str]) -> dict[str, int]:
        """``spec``'s non-positional needs, plus what the runs providing its ``near:`` keys need
        and use up: gathered before any placement, so no trip away from the stations follows it."""
        gather = {k: v for k, v in need.items() if not is_positional(k)}
        for key in near:
            provider = provider_for(spec, key, self.by_key)
            if provider is None:
                continue  # satisfy() reports it
            placer = self.by_name[provider]
            for k, amount in placer.consumes.items():
                if is_item(k):
                    gather[k] = gather.get(k, 0) + amount
            for k, amount in placer.requires.items():
                if not is_positional(k) and k not in placer.consumes:
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


def apply_run(inventory: dict[str, int], spec: SkillSpec) -> None:
    """One run's effect on the simulated inventory: positional keys lost unless it places a
    station (a run that brings a block into view walks, so it loses them too), then what it
    consumes and gains (flags are set, items counted)."""
    if not any(is_near(k) for k in spec.gains):
        for key in [k for k in inventory if is_positional(k)]:
            del inventory[key]
    for key, amount in spec.consumes.items():
        inventory[key] -= amount
    for key, amount in spec.gains.items():
        if not is_item(key):  # a flag: achievements and positional keys
            inventory[key] = max(inventory.get(key, 0), 1)
        else:
            inventory[key] = inventory.get(key, 0) + amount


def holdings_at_steps(plan: Sequence[PlanStep], specs: Mapping[str, SkillSpec]) -> list[dict[str, int]]:
    """The items the plan expects the agent to hold on entering each step, from an empty
    inventory: what a ``step_goal: held`` step counts its target from (training.predicates)."""
    inventory: dict[str, int] = {}
    out = []
    for step in plan:
        out.append({k: v for k, v in inventory.items() if is_item(k)})
        spec = specs[step.skill]
        for _ in range(int(step.count)):
            for key in spec.consumes:
                inventory.setdefault(key, 0)
            apply_run(inventory, spec)
    return out


def group_runs(runs: Sequence[str]) -> list[PlanStep]:
    steps: list[PlanStep] = []
    for name in runs:
        if steps and steps[-1].skill == name:
            steps[-1] = PlanStep(name, steps[-1].count + 1)
        else:
            steps.append(PlanStep(name, 1))
    return steps


def execution_plan(specs: Sequence[SkillSpec], target: str, order: str = "just_in_time") -> list[PlanStep]:
    """Steps that take an empty inventory to a completed run of ``target`` (target last)."""
    return Planner(specs).plan(target, order)


def file_plan_order(spec: SkillSpec) -> str:
    """The plan order the skill file's ``train:`` map sets for ``spec`` -- what ``flowrl plan``
    shows; a run's ``--set plan_order=...`` may still override it."""
    return str(spec.train.get("plan_order", PLAN_ORDERS[0]))


def plan_skills(plan: Sequence[PlanStep]) -> list[str]:
    """Distinct skills of a plan in first-appearance order: the MoE's members."""
    return list(dict.fromkeys(step.skill for step in plan))


def plan_from_mapping(steps: Sequence[Mapping[str, object]]) -> list[PlanStep]:
    return [PlanStep(str(s["skill"]), int(s["count"])) for s in steps]  # type: ignore[call-overload]
