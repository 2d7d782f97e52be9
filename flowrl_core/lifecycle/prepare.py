"""Preparing a graph run: everything checked, layered and decided before anything is written.

:func:`prepare_graph_run` turns a skill file and the caller's settings into a
:class:`GraphRunPlan` — or raises one :class:`~flowrl_core.errors.FlowRLError` naming the skill,
the path and the fix.  It reads (the store, if it exists) but never writes: no store folder, no
index, no spec, no job exists until :func:`claim_graph_run` runs, and the CLI calls it before
Prefect even starts.  What it checks: the graph and every target's execution plan, every training
setting (typed, finite, in range) after layering profile → file → overrides, the environment and
its options, every ``gains`` key and predicate against that environment, the trainer, ``only``
names, slots/GPUs/retries, the store URL (scheme, reachable, a store or creatable) and that every
expert a target's plan routes through is trained already or trained by this run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import networkx as nx

from flowrl_core.defaults import DEFAULT_ENV, DEFAULT_PROFILE, DEFAULT_STORE
from flowrl_core.errors import FlowRLError, did_you_mean, short
from flowrl_core.lifecycle.job import DEFAULT_TRAINER
from flowrl_core.scheduling.slots import PrioritySlots
from flowrl_core.skills.graph import (
    critical_path,
    critical_path_lengths,
    training_order,
)
from flowrl_core.skills.parsing import SkillFileDoc
from flowrl_core.skills.plan import Planner
from flowrl_core.skills.spec import PlanStep, SkillSpec, skill_key
from flowrl_core.store.objects import Store
from flowrl_core.training.config import planned_frames, resolve_config

MAX_SLOTS = 1024
MAX_RETRIES = 100


class RunSettingsError(FlowRLError, ValueError):
    """A run setting (slots, GPUs, retries, only, launcher ...) that cannot work."""


class Launcher(str, Enum):
    LOCAL = "local"  # trainers are child processes of the orchestrating flow
    POOL = "pool"  # each skill trains as a child flow run of the train-skill deployment on a work pool


class Priority(str, Enum):
    CRITICAL_PATH = "critical-path"  # the ready skill with the longest remaining path trains first
    ARRIVAL = "arrival"  # first come, first served (for comparison)


@dataclass(frozen=True)
class RunSettings:
    """What a caller asks of a run beyond its skill file (the CLI's options, the flow's parameters)."""

    store: str = DEFAULT_STORE
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    env: str | None = None  # None: the skill file's env:, else the default
    env_options: Mapping[str, Any] = field(default_factory=dict)  # over the file's env_options
    profile: str = DEFAULT_PROFILE
    overrides: Mapping[str, Any] = field(default_factory=dict)  # over the file's train: maps
    only: tuple[str, ...] = ()
    continuation: bool = False
    slots: int = 1
    gpus: tuple[str, ...] = ()
    per_gpu: str | None = None  # "auto": pack by memory estimates; "N": N trainings per GPU; None: one
    gpu_memory: str | None = None  # capacity per GPU for packing ("80GiB" or "0=80GiB,1=40GiB"); None: nvidia-smi
    retries: int = 2
    priority: Priority = Priority.CRITICAL_PATH
    launcher: Launcher = Launcher.LOCAL
    deployment: str = "train-skill/train-skill"


@dataclass(frozen=True)
class GraphRunPlan:
    """A validated run: what to train, with which settings, in which order, on which devices."""

    doc: SkillFileDoc
    settings: RunSettings
    label: str
    env: str
    env_options: Mapping[str, Any]
    trainer: str
    graph: nx.DiGraph
    order: tuple[str, ...]  # every skill of the file, in training order
    targets: tuple[str, ...]  # the skills this run trains (order, filtered by ``only``)
    plans: Mapping[str, tuple[PlanStep, ...]]
    configs: Mapping[str, Mapping[str, Any]]  # resolved training settings per target
    budgets: Mapping[str, int]  # frames each target trains (whole updates)
    priorities: Mapping[str, float]  # remaining critical-path frames per skill
    critical_path: tuple[str, ...]
    upstream: Mapping[str, tuple[str, ...]]  # target -> the targets it waits for
    devices: tuple[str, ...]  # what each slot pins: a GPU id, or "" on the CPU
    store_exists: bool
    capacities: Mapping[str, int] = field(default_factory=dict)  # bytes per GPU when packing by memory

    def slots(self) -> PrioritySlots:
        """The device slots this run hands out (packed by memory when capacities are known)."""
        return PrioritySlots.packed(self.capacities) if self.capacities else PrioritySlots(self.devices)

    @property
    def specs(self) -> tuple[SkillSpec, ...]:
        return self.doc.specs

    def unblocked_by(self, skill: str) -> dict[str, float]:
        """Targets that become ready when ``skill`` merges, with their priorities."""
        return {n: self.priorities.get(n, 0.0) for n in self.targets if skill in self.upstream.get(n, ())}


def _check_settings(s: RunSettings, order: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if isinstance(s.slots, bool) or not isinstance(s.slots, int) or not 1 <= s.slots <= MAX_SLOTS:
        raise RunSettingsError(f"slots must be an integer in [1, {MAX_SLOTS}], got {short(s.slots)}")
    if isinstance(s.retries, bool) or not isinstance(s.retries, int) or not 0 <= s.retries <= MAX_RETRIES:
        raise RunSettingsError(f"retries must be an integer in [0, {MAX_RETRIES}], got {short(s.retries)}")
    gpus = tuple(str(g).strip() for g in s.gpus)
    if any(not g for g in gpus) or len(set(gpus)) != len(gpus) or len(gpus) > MAX_SLOTS:
        raise RunSettingsError(f"gpus must be distinct, non-empty GPU ids (e.g. 0,1), got {short(list(s.gpus))}")
    devices = gpus if gpus else ("",) * s.slots
    if s.per_gpu not in (None, "", "auto"):
        if not str(s.per_gpu).isdigit() or not 1 <= int(s.per_gpu) <= 64:
            raise RunSettingsError(f"--per-gpu must be 'auto' or a count in [1, 64], got {short(s.per_gpu)}")
        if not gpus:
            raise RunSettingsError("--per-gpu needs --gpus (e.g. --gpus 0,1 --per-gpu 2)")
        devices = tuple(g for g in gpus for _ in range(int(s.per_gpu)))
    unknown = [n for n in s.only if n not in order]
    if unknown:
        keys = {skill_key(n): n for n in order}
        hints = [f"{n!r}" + (f" (did you mean {keys[skill_key(n)]!r}?)" if skill_key(n) in keys
                              else did_you_mean(n, order)) for n in unknown[:5]]
        raise RunSettingsError(f"--only names unknown skill(s) {', '.join(hints)}; the file defines {len(order)}")
    return devices, tuple(n for n in order if not s.only or n in set(s.only))


def prepare_graph_run(doc: SkillFileDoc, settings: RunSettings) -> GraphRunPlan:
    """Validate everything and decide the run (see the module docstring); writes nothing."""
    from flowrl_core.envs import make_env_and_params
    from flowrl_core.lifecycle.trainers import resolve_trainer
    from flowrl_core.training.predicates import block_names, check_specs_for_env, has_view
    from flowrl_core.training.survival import check_survival

    planner = Planner(doc.specs)
    graph = planner.graph
    order = tuple(training_order(graph))
    devices, targets = _check_settings(settings, order)
    env_name = settings.env or doc.env or DEFAULT_ENV
    env_options = {**dict(doc.env_options), **dict(settings.env_options)}
    env, _ = make_env_and_params(env_name, env_options)
    trainer = doc.trainer or DEFAULT_TRAINER
    resolve_trainer(trainer)
    by_name = {s.name: s for s in doc.specs}
    configs = {n: resolve_config(settings.profile, settings.overrides, by_name[n].train, skill=n) for n in targets}
    plans = {n: tuple(planner.plan(n, str(configs[n]["plan_order"]))) for n in targets}
    in_plans = sorted({step.skill for plan in plans.values() for step in plan})
    check_specs_for_env([by_name[n] for n in in_plans], env.item_names, env.achievement_names, env_name=env.name,
                        blocks=block_names(env), view=has_view(env))
    for n in targets:
        check_survival(env, float(configs[n].get("survival_shaping", 0.0)), skill=n)
    store_exists = Store.probe(settings.store, storage_options=dict(settings.storage_options))
    _check_dependencies(settings, targets, plans, store_exists)
    if trainer == DEFAULT_TRAINER:
        _check_plan_networks(targets, plans, configs)
        if settings.continuation:
            _check_networks(settings, targets, plans, configs)
    budgets = {n: planned_frames(configs[n]) for n in targets}
    weights = {n: float(budgets.get(n, 0)) for n in order}
    lengths = critical_path_lengths(graph, weights)
    priorities = lengths if settings.priority is Priority.CRITICAL_PATH else {}
    target_set = set(targets)
    upstream = {n: tuple(d for d in graph.predecessors(n) if d in target_set) for n in targets}
    capacities: dict[str, int] = {}
    if settings.per_gpu == "auto" or settings.gpu_memory:
        from flowrl_core.scheduling.devices import gpu_capacities

        capacities = gpu_capacities(devices if settings.gpus else (), settings.gpu_memory)
    return GraphRunPlan(
        doc=doc, settings=settings, capacities=capacities, label=doc.name or doc.source, env=env_name, env_options=env_options,
        trainer=trainer, graph=graph, order=order, targets=targets, plans=plans, configs=configs, budgets=budgets,
        priorities=priorities, critical_path=tuple(critical_path(graph, weights)), upstream=upstream,
        devices=devices, store_exists=store_exists)


def _check_plan_networks(targets: Sequence[str], plans: Mapping[str, Sequence[PlanStep]],
                         configs: Mapping[str, Mapping[str, Any]]) -> None:
    """A plan's experts form one MoE: a skill whose ``train:`` map gives it another width or depth
    than a skill its plan routes through could never be seeded from that one's expert."""
    from flowrl_core.lifecycle.job import network_of

    for n in targets:
        for name in dict.fromkeys(step.skill for step in plans[n]):
            if name in configs and network_of(configs[name]) != network_of(configs[n]):
                raise RunSettingsError(
                    f"skill {n!r}: its plan routes through {name!r}, whose network is "
                    f"{configs[name]['depth']}x{configs[name]['width']}, but its own is "
                    f"{configs[n]['depth']}x{configs[n]['width']}; the experts of one plan share a shape: "
                    "set width and depth alike in their train: maps (or only with --set)")


def _check_networks(settings: RunSettings, targets: Sequence[str], plans: Mapping[str, Sequence[PlanStep]],
                    configs: Mapping[str, Mapping[str, Any]]) -> None:
    """A continuation starts from every stored expert of its plan: their shapes must fit its settings."""
    from flowrl_core.lifecycle.setup import check_network
    from flowrl_core.store.experts import current_version

    store = Store(settings.store, storage_options=dict(settings.storage_options), create=False)
    indices = store.expert_indices()
    for n in targets:
        for name in dict.fromkeys(step.skill for step in plans[n]):
            version = current_version(store, indices[name]) if name in indices else None
            if version is not None:
                check_network(store, n, name, version, configs[n])


def _check_dependencies(settings: RunSettings, targets: Sequence[str], plans: Mapping[str, Sequence[PlanStep]],
                        store_exists: bool) -> None:
    """Every expert a target's plan routes through is trained already, or trained by this run first."""
    from flowrl_core.lifecycle.setup import MissingDependencyError
    from flowrl_core.store.experts import current_version

    needed = sorted({s.skill for n in targets for s in plans[n]} - set(targets))
    if settings.continuation:
        needed = sorted(set(needed) | set(targets))  # continuing needs the skill's own expert too
    if not needed:
        return
    store = Store(settings.store, storage_options=dict(settings.storage_options), create=False) if store_exists else None
    indices = store.expert_indices() if store else {}
    missing = [n for n in needed if n not in indices or current_version(store, indices[n]) is None]  # type: ignore[arg-type]
    if not missing:
        return
    users = sorted(t for t in targets if any(s.skill in missing for s in plans[t]))
    where = f"store {settings.store}" if store_exists else f"store {settings.store} (it does not exist yet)"
    if settings.continuation and set(missing) & set(targets):
        raise MissingDependencyError(
            f"skill(s) {', '.join(sorted(set(missing) & set(targets)))} have no trained expert in {where} to "
            "continue; train them first with flowrl run")
    raise MissingDependencyError(
        f"skill(s) {', '.join(users)} need the expert(s) of {', '.join(missing)}, which {where} does not hold "
        f"trained; train them first (flowrl run FILE --only {missing[0]}) or drop --only")


@dataclass(frozen=True)
class ClaimedRun:
    """The store, after the run claimed its expert indices and saved the library's specs."""

    store: Store
    indices: Mapping[str, int]


def claim_graph_run(plan: GraphRunPlan) -> ClaimedRun:
    """The first writes of a run: create the store if needed, claim indices, save every spec."""
    store = Store(plan.settings.store, storage_options=dict(plan.settings.storage_options))
    indices = {n: store.assign_index(n) for n in plan.order}
    for spec in plan.specs:  # the store keeps the whole library, so reports and continuations see every skill
        store.save_skill(spec)
    return ClaimedRun(store=store, indices=indices)
