"""Evaluate policies on a skill: fresh episodes, one step budget, a uniform random baseline beside.

Pure functions over an env, a plan and policies; :mod:`flowrl_core.evaluation.store` adds the
store (which experts, which env, which budget).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flowrl_core.envs.base import Env
from flowrl_core.evaluation.policies import Policy
from flowrl_core.evaluation.records import EpisodeTrace, EvalReport, PolicyStats, summarize
from flowrl_core.evaluation.rollout import goal_predicate, make_rollout, run_episodes, traces_from_arrays
from flowrl_core.skills.plan import DEFAULT_STEP_GOAL
from flowrl_core.skills.spec import PlanStep, SkillSpec
from flowrl_core.training.predicates import compile_for_env

PyTree = Any
DEFAULT_EPISODES = 256


@dataclass(frozen=True)
class PolicyEvaluation:
    """One policy's statistics and the traces they were computed from."""

    stats: PolicyStats
    traces: tuple[EpisodeTrace, ...]


def evaluate_policies(env: Env, env_params: PyTree, plan: Sequence[PlanStep], specs: Mapping[str, SkillSpec],
                      policies: Sequence[Policy], *, episodes: int = DEFAULT_EPISODES, max_steps: int,
                      seed: int = 0, greedy: bool = False, with_random: bool = True,
                      step_goal: str = DEFAULT_STEP_GOAL) -> dict[str, PolicyEvaluation]:
    """Every policy (and, with ``with_random``, a uniform random one) on the same fresh worlds.

    The target is the plan's last skill.  Same seed: same worlds, same env randomness, same
    result.  The random policy runs through the first policy's compiled rollout with equal logits,
    so it costs no second compile.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    if not policies:
        raise ValueError("no policy to evaluate")
    target = plan[-1].skill
    skills = list(dict.fromkeys(step.skill for step in plan))
    # Routing follows the plan steps as the experts were trained to (step_goal); success is the target alone.
    compiled = compile_for_env(env, plan, specs, {s: i for i, s in enumerate(skills)}, step_goal=step_goal)
    goal = goal_predicate(env, target, specs)
    plan_pairs = [(step.skill, int(step.count)) for step in plan]
    out: dict[str, PolicyEvaluation] = {}

    def record(name: str, raw) -> None:
        traces = traces_from_arrays(env, plan, raw)
        out[name] = PolicyEvaluation(summarize(name, traces, plan_pairs, env.achievement_names), tuple(traces))

    for i, policy in enumerate(policies):
        if policy.name in out or policy.name == "random" and with_random:
            raise ValueError(f"two policies named {policy.name!r}")
        run = make_rollout(env, env_params, compiled, goal, policy, greedy=greedy)
        record(policy.name, run_episodes(run, policy, uniform=False, seed=seed, episodes=episodes, max_steps=max_steps))
        if i == 0 and with_random:
            record("random", run_episodes(run, policy, uniform=True, seed=seed, episodes=episodes,
                                          max_steps=max_steps))
    return out


def evaluate_against_random(env: Env, env_params: PyTree, plan: Sequence[PlanStep], specs: Mapping[str, SkillSpec],
                            policy: Policy, *, env_name: str, env_options: Mapping[str, Any] | None = None,
                            episodes: int = DEFAULT_EPISODES, max_steps: int, seed: int = 0, greedy: bool = False,
                            versions: Mapping[str, str] | None = None, step_goal: str = DEFAULT_STEP_GOAL) -> EvalReport:
    """A skill's policy beside a uniform random policy under the same budget, as an :class:`EvalReport`."""
    results = evaluate_policies(env, env_params, plan, specs, [policy], episodes=episodes, max_steps=max_steps,
                                seed=seed, greedy=greedy, step_goal=step_goal)
    trained, random = results[policy.name], results["random"]
    return EvalReport(
        skill=plan[-1].skill, env=env_name, env_options=dict(env_options or {}), episodes=episodes,
        max_steps=int(max_steps), seed=int(seed), greedy=greedy,
        plan=tuple((s.skill, int(s.count)) for s in plan), versions=dict(versions or {}),
        result=trained.stats, baseline=random.stats, traces=trained.traces, baseline_traces=random.traces,
        step_goal=step_goal)
