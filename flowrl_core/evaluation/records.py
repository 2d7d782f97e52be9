"""Typed records of an evaluation: one trace per episode, statistics per policy, the report.

Why per-episode traces and not only rates: the same rollouts serve evaluation (how often, how
fast) and trajectory analysis (issue 16: what each plan step actually consumed and gained,
where failing episodes stall, how they end).  A :class:`StepTrace` therefore records, for every
plan step an episode entered, the env step it started and ended at, the inventory and the
achievements at both ends and, where the env exposes them, the block types around the agent when
the step completed.  Inventories are stored sparsely (non-zero items only) so traces stay small.

Every record is a frozen dataclass with ``to_dict``/``from_dict`` (JSON round-trip); nothing
here imports JAX.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from flowrl_core.skills.plan import DEFAULT_STEP_GOAL, STEP_GOAL_BEFORE


class EndReason(str, Enum):
    """Why an episode stopped."""

    SUCCESS = "success"  # the target skill was completed within the budget
    BUDGET = "budget"  # the step budget ran out first
    DEATH = "death"  # the env ended the episode by the agent's death (where the env tells death apart)
    ENV_END = "env_end"  # the env ended the episode otherwise (its own horizon; or death it cannot tell apart)


@dataclass(frozen=True)
class StepTrace:
    """One plan step an episode entered (completed or not)."""

    index: int  # position in the plan
    skill: str
    count: int
    completed: bool
    start_step: int  # env step (0-based, from the episode start) at which the plan step began
    end_step: int  # env step at which it completed, or at which the episode ended (not completed)
    inventory_start: Mapping[str, int]  # non-zero items only
    inventory_end: Mapping[str, int]
    achievements_start: tuple[str, ...]  # unlocked so far in the episode
    achievements_end: tuple[str, ...]
    nearby_end: tuple[str, ...] | None = None  # block types around the agent at the end (None: env does not say)
    # inventory just before the env step that ended the plan step: with ``inventory_end`` it gives
    # what the completing action itself spent and yielded (trajectory analysis reads true costs
    # there; a step's net delta hides items the step collected and spent again).  None: older trace.
    inventory_before_end: Mapping[str, int] | None = None
    # The step's goal already held when it began (an achievement unlocked earlier in the episode;
    # under step_goal "held", items gathered ahead), so it completed on its first env step without
    # anything done toward it: that step says nothing about what the skill costs or yields.
    held_at_entry: bool = False

    @property
    def steps(self) -> int:
        return self.end_step - self.start_step

    def inventory_delta(self) -> dict[str, int]:
        """Items gained (positive) and spent (negative) during the step."""
        keys = set(self.inventory_start) | set(self.inventory_end)
        delta = {k: self.inventory_end.get(k, 0) - self.inventory_start.get(k, 0) for k in sorted(keys)}
        return {k: v for k, v in delta.items() if v}

    def pivot_delta(self) -> dict[str, int] | None:
        """Items the completing env step gained (positive) and spent (negative); None: not recorded."""
        if self.inventory_before_end is None:
            return None
        keys = set(self.inventory_before_end) | set(self.inventory_end)
        delta = {k: self.inventory_end.get(k, 0) - self.inventory_before_end.get(k, 0) for k in sorted(keys)}
        return {k: v for k, v in delta.items() if v}

    def achievements_gained(self) -> tuple[str, ...]:
        return tuple(a for a in self.achievements_end if a not in set(self.achievements_start))

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "skill": self.skill, "count": self.count, "completed": self.completed,
                "start_step": self.start_step, "end_step": self.end_step, "steps": self.steps,
                "inventory_start": dict(self.inventory_start), "inventory_end": dict(self.inventory_end),
                "achievements_start": list(self.achievements_start), "achievements_end": list(self.achievements_end),
                "nearby_end": None if self.nearby_end is None else list(self.nearby_end),
                "inventory_before_end": None if self.inventory_before_end is None else dict(self.inventory_before_end),
                "held_at_entry": self.held_at_entry}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "StepTrace":
        nearby = d.get("nearby_end")
        before = d.get("inventory_before_end")
        return cls(int(d["index"]), str(d["skill"]), int(d["count"]), bool(d["completed"]), int(d["start_step"]),
                   int(d["end_step"]), {str(k): int(v) for k, v in d["inventory_start"].items()},
                   {str(k): int(v) for k, v in d["inventory_end"].items()}, tuple(d["achievements_start"]),
                   tuple(d["achievements_end"]), None if nearby is None else tuple(nearby),
                   None if before is None else {str(k): int(v) for k, v in before.items()},
                   bool(d.get("held_at_entry", False)))


@dataclass(frozen=True)
class EpisodeTrace:
    """One evaluated episode."""

    episode: int
    success: bool  # the target skill's completion predicate held within the budget
    steps: int  # env steps the episode ran
    end: EndReason
    plan_completed: bool  # every plan step completed in order
    plan_steps_completed: int  # how many plan steps were completed (0..len(plan))
    step_traces: tuple[StepTrace, ...]  # every plan step entered, in order
    inventory_end: Mapping[str, int]
    achievements_end: tuple[str, ...]
    last_actions: tuple[str, ...]  # the episode's last actions, oldest first (names where the env has them)
    death_cause: str | None = None  # for a death: the env's likeliest cause (None: not a death, or the env cannot say)

    @property
    def stalled_step(self) -> int | None:
        """The plan step a failed episode was in when it ended (None for a success)."""
        return None if self.success else min(self.plan_steps_completed, len(self.step_traces) - 1)

    def to_dict(self) -> dict[str, Any]:
        return {"episode": self.episode, "success": self.success, "steps": self.steps, "end": self.end.value,
                "plan_completed": self.plan_completed, "plan_steps_completed": self.plan_steps_completed,
                "step_traces": [s.to_dict() for s in self.step_traces], "inventory_end": dict(self.inventory_end),
                "achievements_end": list(self.achievements_end), "last_actions": list(self.last_actions),
                "death_cause": self.death_cause}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EpisodeTrace":
        return cls(int(d["episode"]), bool(d["success"]), int(d["steps"]), EndReason(d["end"]),
                   bool(d["plan_completed"]), int(d["plan_steps_completed"]),
                   tuple(StepTrace.from_dict(s) for s in d["step_traces"]),
                   {str(k): int(v) for k, v in d["inventory_end"].items()}, tuple(d["achievements_end"]),
                   tuple(str(a) for a in d["last_actions"]),
                   None if d.get("death_cause") is None else str(d["death_cause"]))


def death_cause_counts(traces: Sequence[EpisodeTrace]) -> Counter[str]:
    """How many of ``traces`` died of each cause (deaths the env could not attribute are left out)."""
    return Counter(t.death_cause for t in traces if t.end is EndReason.DEATH and t.death_cause is not None)


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial rate (sensible at 0 and 1, unlike the normal one)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return (lo, hi)


@dataclass(frozen=True)
class PlanStepStats:
    """How a policy's episodes fared on one plan step."""

    index: int
    skill: str
    count: int
    reached: float  # fraction of episodes that entered this step
    completed: float  # fraction of episodes that completed it
    mean_steps: float | None  # mean env steps the step took, over the episodes that completed it

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "skill": self.skill, "count": self.count, "reached": self.reached,
                "completed": self.completed, "mean_steps": self.mean_steps}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PlanStepStats":
        return cls(int(d["index"]), str(d["skill"]), int(d["count"]), float(d["reached"]), float(d["completed"]),
                   None if d.get("mean_steps") is None else float(d["mean_steps"]))


@dataclass(frozen=True)
class PolicyStats:
    """Summary of one policy's episodes under one budget."""

    policy: str  # "trained", "random", "flat_ppo", ...
    episodes: int
    successes: int
    success_rate: float
    success_ci95: tuple[float, float]  # Wilson interval
    mean_steps: float | None  # mean env steps to success, over successful episodes (None: no success)
    mean_episode_steps: float  # mean env steps per episode, successful or not
    plan_steps: tuple[PlanStepStats, ...]
    achievements: Mapping[str, float]  # fraction of episodes that unlocked each achievement
    end_reasons: Mapping[str, float]  # fraction of episodes per EndReason value
    # fraction of episodes that died of each cause (the env's names; empty where it cannot say);
    # they sum to end_reasons["death"]
    death_causes: Mapping[str, float] = field(default_factory=dict)

    @property
    def top_death_cause(self) -> str | None:
        """The commonest cause of death (None: nothing died, or the env cannot say)."""
        return max(self.death_causes, key=self.death_causes.__getitem__) if self.death_causes else None

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "episodes": self.episodes, "successes": self.successes,
                "success_rate": self.success_rate, "success_ci95": list(self.success_ci95),
                "mean_steps": self.mean_steps, "mean_episode_steps": self.mean_episode_steps,
                "plan_steps": [s.to_dict() for s in self.plan_steps], "achievements": dict(self.achievements),
                "end_reasons": dict(self.end_reasons), "death_causes": dict(self.death_causes)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PolicyStats":
        lo, hi = d["success_ci95"]
        return cls(str(d["policy"]), int(d["episodes"]), int(d["successes"]), float(d["success_rate"]),
                   (float(lo), float(hi)), None if d.get("mean_steps") is None else float(d["mean_steps"]),
                   float(d["mean_episode_steps"]), tuple(PlanStepStats.from_dict(s) for s in d["plan_steps"]),
                   {str(k): float(v) for k, v in d["achievements"].items()},
                   {str(k): float(v) for k, v in d["end_reasons"].items()},
                   {str(k): float(v) for k, v in (d.get("death_causes") or {}).items()})


def summarize(policy: str, traces: Sequence[EpisodeTrace], plan: Sequence[tuple[str, int]],
              achievement_names: Sequence[str]) -> PolicyStats:
    """Rates over a policy's traces (``plan``: the plan's ``(skill, count)`` steps)."""
    n = len(traces)
    if n == 0:
        raise ValueError("no episodes to summarize")
    wins = [t for t in traces if t.success]
    steps_stats = []
    for j, (skill, count) in enumerate(plan):
        entered = sum(1 for t in traces if len(t.step_traces) > j)
        done = [t.step_traces[j].steps for t in traces if len(t.step_traces) > j and t.step_traces[j].completed]
        steps_stats.append(PlanStepStats(j, skill, int(count), entered / n, len(done) / n,
                                         sum(done) / len(done) if done else None))
    unlocked = {a: 0 for a in achievement_names}
    for t in traces:
        for a in t.achievements_end:
            unlocked[a] = unlocked.get(a, 0) + 1
    ends = {r.value: sum(1 for t in traces if t.end is r) / n for r in EndReason}
    causes = death_cause_counts(traces)
    return PolicyStats(
        policy=policy, episodes=n, successes=len(wins), success_rate=len(wins) / n,
        success_ci95=wilson_interval(len(wins), n),
        mean_steps=sum(t.steps for t in wins) / len(wins) if wins else None,
        mean_episode_steps=sum(t.steps for t in traces) / n, plan_steps=tuple(steps_stats),
        achievements={a: c / n for a, c in unlocked.items()}, end_reasons=ends,
        death_causes={k: c / n for k, c in causes.most_common()})


@dataclass(frozen=True)
class EvalReport:
    """A skill's composed policy against a uniform random policy, on the same fresh episodes' budget.

    JSON form (:meth:`to_dict`): the evaluated policy's :class:`PolicyStats` fields at the top
    level (``success_rate``, ``mean_steps``, ``plan_steps``, ``achievements``, ...) beside
    ``skill, env, env_options, episodes, max_steps, seed, greedy, plan, versions`` and
    ``baseline`` (the random policy's stats, same fields).
    """

    skill: str
    env: str
    env_options: Mapping[str, Any]
    episodes: int
    max_steps: int
    seed: int
    greedy: bool
    plan: tuple[tuple[str, int], ...]
    versions: Mapping[str, str]  # plan skill -> expert version id that was evaluated
    result: PolicyStats
    baseline: PolicyStats
    traces: tuple[EpisodeTrace, ...] = field(default=(), compare=False)  # the evaluated policy's episodes
    baseline_traces: tuple[EpisodeTrace, ...] = field(default=(), compare=False)
    step_goal: str = DEFAULT_STEP_GOAL  # how plan steps were judged, routing and plan_steps alike (training.predicates)

    @property
    def success_rate(self) -> float:
        return self.result.success_rate

    @property
    def mean_steps(self) -> float | None:
        return self.result.mean_steps

    @property
    def margin(self) -> float:
        """Success rate above the random baseline (absolute)."""
        return self.result.success_rate - self.baseline.success_rate

    def to_dict(self, *, with_traces: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {"skill": self.skill, "env": self.env, "env_options": dict(self.env_options),
                             "episodes": self.episodes, "max_steps": self.max_steps, "seed": self.seed,
                             "greedy": self.greedy, "plan": [{"skill": s, "count": c} for s, c in self.plan],
                             "versions": dict(self.versions), "step_goal": self.step_goal}
        d.update(self.result.to_dict())
        d["baseline"] = self.baseline.to_dict()
        if with_traces:
            d["traces"] = [t.to_dict() for t in self.traces]
            d["baseline_traces"] = [t.to_dict() for t in self.baseline_traces]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EvalReport":
        return cls(
            skill=str(d["skill"]), env=str(d["env"]), env_options=dict(d.get("env_options") or {}),
            episodes=int(d["episodes"]), max_steps=int(d["max_steps"]), seed=int(d["seed"]),
            greedy=bool(d.get("greedy", False)), plan=tuple((str(p["skill"]), int(p["count"])) for p in d["plan"]),
            versions={str(k): str(v) for k, v in (d.get("versions") or {}).items()},
            result=PolicyStats.from_dict(d), baseline=PolicyStats.from_dict(d["baseline"]),
            traces=tuple(EpisodeTrace.from_dict(t) for t in d.get("traces", ())),
            baseline_traces=tuple(EpisodeTrace.from_dict(t) for t in d.get("baseline_traces", ())),
            step_goal=str(d.get("step_goal", STEP_GOAL_BEFORE)))  # older records: before the setting
