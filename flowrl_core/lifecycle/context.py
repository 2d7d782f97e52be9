"""What the skill tasks of one orchestrating flow run share, as small typed pieces.

Tasks run in threads of one process, so these live in memory.  Each piece is either frozen
(settings fixed for the run) or guards its own mutable state with a lock (the library a
grow-skills run extends, the timeline every training appends to).  Plain classes rather than
dataclasses where state is mutable: Prefect walks dataclass arguments looking for futures, and
walking a container another thread appends to fails ("dictionary changed size").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowrl_core.lifecycle.job import DEFAULT_TRAINER
from flowrl_core.lifecycle.prepare import GraphRunPlan, Launcher
from flowrl_core.scheduling.slots import PrioritySlots
from flowrl_core.skills.spec import SkillSpec
from flowrl_core.store.objects import Store


@dataclass(frozen=True)
class StoreRef:
    """Where the store is: its URL and fsspec options (which may hold credentials: never logged)."""

    url: str
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    def open(self) -> Store:
        return Store(self.url, storage_options=dict(self.storage_options), create=False)


@dataclass(frozen=True)
class TrainingSetup:
    """How every skill of the run trains."""

    env: str
    env_options: Mapping[str, Any] = field(default_factory=dict)
    trainer: str = DEFAULT_TRAINER
    continuation: bool = False


@dataclass(frozen=True)
class LaunchSettings:
    """Where trainings run and how failures are retried — the same retry story on both launchers:
    Prefect retries the train task; the pool launcher's task fails when its child flow run fails
    or its trainer's heartbeat goes stale (a lost worker)."""

    launcher: Launcher = Launcher.LOCAL
    retries: int = 2
    retry_delay_s: float = 1.0
    deployment: str = "train-skill/train-skill"
    heartbeat_s: float = 5.0
    stale_after_s: float = 90.0


class Library:
    """The skills a run may plan with, their training settings and scheduling facts (thread-safe)."""

    def __init__(self, specs: Sequence[SkillSpec], configs: Mapping[str, Mapping[str, Any]],
                 priorities: Mapping[str, float] | None = None, upstream: Mapping[str, Sequence[str]] | None = None):
        self._lock = threading.Lock()
        self._specs = tuple(specs)
        self._configs = dict(configs)
        self._priorities = dict(priorities or {})
        self._upstream = {k: tuple(v) for k, v in (upstream or {}).items()}

    @classmethod
    def of_plan(cls, plan: GraphRunPlan) -> "Library":
        return cls(plan.specs, plan.configs, plan.priorities, plan.upstream)

    def specs(self) -> tuple[SkillSpec, ...]:
        with self._lock:
            return self._specs

    def config(self, skill: str) -> Mapping[str, Any]:
        with self._lock:
            return self._configs[skill]

    def priority(self, skill: str) -> float:
        with self._lock:
            return self._priorities.get(skill, 0.0)

    def unblocked_by(self, skill: str) -> dict[str, float]:
        """Skills waiting only on ``skill`` among the run's, with their priorities (slot hand-off)."""
        with self._lock:
            return {n: self._priorities.get(n, 0.0) for n, ups in self._upstream.items() if skill in ups}

    def replace(self, spec: SkillSpec, config: Mapping[str, Any]) -> None:
        """A revised spec of a skill already in the library (grow-skills' Revise); later setups plan with it."""
        with self._lock:
            self._specs = tuple(spec if s.name == spec.name else s for s in self._specs)
            self._configs[spec.name] = dict(config)

    def set_config(self, skill: str, config: Mapping[str, Any]) -> None:
        with self._lock:
            self._configs[skill] = dict(config)

    def add(self, spec: SkillSpec, config: Mapping[str, Any], upstream: Sequence[str] = ()) -> None:
        """Grow the library (grow-skills); setups that start later plan with the new skill."""
        with self._lock:
            self._specs = (*self._specs, spec)
            self._configs[spec.name] = dict(config)
            self._upstream[spec.name] = tuple(upstream)

class Recorder:
    """When each training ran (the timeline a benchmark and the summary read) and each merge ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._timeline: list[dict[str, Any]] = []
        self._merged_at: dict[str, float] = {}

    def training(self, entry: Mapping[str, Any]) -> None:
        with self._lock:
            self._timeline.append(dict(entry))

    def merged(self, skill: str) -> None:
        with self._lock:
            self._merged_at[skill] = time.monotonic()

    def timeline(self) -> tuple[dict[str, Any], ...]:
        with self._lock:
            return tuple(dict(t) for t in self._timeline)

    def merged_at(self) -> dict[str, float]:
        with self._lock:
            return dict(self._merged_at)


class RunContext:
    """Everything a skill task needs, passed as one argument (see the module docstring)."""

    def __init__(self, *, store: StoreRef, training: TrainingSetup, library: Library, slots: PrioritySlots,
                 launch: LaunchSettings, owner: str):
        self.store = store
        self.training = training
        self.library = library
        self.slots = slots
        self.launch = launch
        self.owner = owner  # lease owner token of this orchestrating process
        self.recorder = Recorder()
