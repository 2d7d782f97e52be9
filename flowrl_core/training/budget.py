"""Step budgets: how many env steps one attempt at a skill may take before it counts as a failure.

Why a budget at all: an episode that only ends on completion or at the env's own horizon
(Craftax: 10,000 steps) turns "success" into "survived long enough to stumble into it", which a
random policy does for the first skills of the tech tree.  With a budget, success means doing the
skill *within a bounded number of steps*, for training, early stopping and evaluation alike.

The default budget is ``env.step_allowance * runs(plan)``: the allowance is what one plan run
(one collected wood, one placed table, ...) may take in that env, and a plan of ``n`` runs (the
sum of its steps' counts) gets ``n`` times it.  The allowance belongs to the env, not to a
hidden constant here, because it depends on the world: walking to the next tree on a 9x9
gridworld takes a few steps, on Craftax's 64x64 map it takes dozens.  A skill overrides the
default with ``max_steps`` in its ``train:`` map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flowrl_core.skills.spec import PlanStep


class StepBudgetError(ValueError):
    """No budget can be derived (the env declares no allowance and the skill sets none)."""


def plan_runs(plan: Sequence[PlanStep]) -> int:
    """Skill runs in a plan: the sum of its steps' counts (``Collect_Wood×2 → Place_Table`` is 3)."""
    return sum(int(step.count) for step in plan)


def default_step_budget(env: Any, plan: Sequence[PlanStep]) -> int:
    """``env.step_allowance`` steps per plan run (see the module docstring)."""
    allowance = getattr(env, "step_allowance", None)
    if isinstance(allowance, bool) or not isinstance(allowance, int) or allowance < 1:
        name = getattr(env, "name", type(env).__name__)
        target = plan[-1].skill if plan else "?"
        raise StepBudgetError(f"skill {target!r}: env {name!r} declares no step_allowance (steps per plan run), so "
                              f"no default step budget exists; set max_steps in the skill's train: map or give "
                              f"the env a positive int step_allowance")
    return allowance * plan_runs(plan)


def step_budget(max_steps: int | None, env: Any, plan: Sequence[PlanStep]) -> int:
    """The budget a run uses: the skill's ``max_steps`` if set, else :func:`default_step_budget`."""
    if max_steps is not None:
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise StepBudgetError(f"max_steps must be a positive int or None, got {max_steps!r}")
        return int(max_steps)
    return default_step_budget(env, plan)
