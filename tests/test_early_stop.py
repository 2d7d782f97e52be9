"""Step budgets and early stopping: an attempt ends as a failure at its budget, and early stopping
waits for one budget of env steps (not the env's own, possibly 10,000-step, horizon) and two good
updates in a row."""

from __future__ import annotations

import pytest

from flowrl_core.envs import make_env_and_params
from flowrl_core.skills.spec import PlanStep, SkillSpec
from flowrl_core.training.budget import StepBudgetError, default_step_budget, plan_runs, step_budget
from flowrl_core.training.config import PPOConfig
from flowrl_core.training.ppo import train

SPECS = {"Collect_Wood": SkillSpec("Collect_Wood", gains={"wood": 1})}
PLAN = [PlanStep("Collect_Wood", 1)]


def _cfg(**kw) -> PPOConfig:
    base = dict(num_envs=16, num_steps=8, total_timesteps=16 * 8 * 12, width=16, depth=1, update_epochs=1,
                early_stop_min_episodes=1, checkpoint_every=0)
    return PPOConfig.tiny_profile(**{**base, **kw})


def test_early_stop_waits_one_budget_not_the_env_horizon_and_two_good_updates():
    # The env's own horizon is 5,000 steps; the budget (20) is what early stopping waits for.
    env, params = make_env_and_params("gridworld", {"max_steps": 5000})
    rows: list[dict] = []
    result = train(env, params, PLAN, SPECS, {"Collect_Wood": 0}, _cfg(success_threshold=0.01, max_steps=20),
                   on_metrics=rows.append)
    assert result.early_stopped and result.max_steps == 20
    # 8 steps per update: the first full 20-step budget is reached at update 3
    assert result.updates == 3 and rows[-1]["update"] * 8 >= 20
    good = [r["success_rate"] is not None and r["success_rate"] >= 0.01 for r in rows]
    assert good[-1] and good[-2]
    assert result.frames == result.updates * 16 * 8


def test_an_attempt_that_runs_out_of_budget_ends_as_a_failure():
    env, params = make_env_and_params("gridworld", {"max_steps": 5000})
    rows: list[dict] = []
    result = train(env, params, PLAN, SPECS, {"Collect_Wood": 0}, _cfg(max_steps=3, total_timesteps=16 * 8 * 3),
                   on_metrics=rows.append)
    assert result.max_steps == 3
    for r in rows:
        # 8 steps per env per update, episodes of at most 3 steps: each env ends at least 2 per update
        assert r["episodes"] >= 16 * (8 // 3)
        assert r["mean_episode_length"] <= 3.0
        # nothing else can end an episode here: every attempt is a success or ran out of budget
        assert r["success_rate"] + r["out_of_budget"] == pytest.approx(1.0)
        assert r["out_of_budget"] > 0.3  # three steps rarely reach a tree


def test_default_budget_is_the_env_allowance_times_the_plan_runs():
    env, params = make_env_and_params("gridworld")
    plan = [PlanStep("Collect_Wood", 2), PlanStep("Place_Table", 1)]
    assert plan_runs(plan) == 3
    assert default_step_budget(env, plan) == 3 * env.step_allowance
    assert step_budget(None, env, plan) == 3 * env.step_allowance and step_budget(7, env, plan) == 7
    result = train(env, params, PLAN, SPECS, {"Collect_Wood": 0}, _cfg(total_timesteps=16 * 8))
    assert result.max_steps == env.step_allowance

    class NoAllowance:
        name = "Plain-v0"

    with pytest.raises(StepBudgetError, match="set max_steps in the skill's train: map"):
        default_step_budget(NoAllowance(), plan)
    with pytest.raises(ValueError, match="max_steps"):
        PPOConfig(max_steps=0)
