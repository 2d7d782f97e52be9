"""Early stopping waits for an unbiased success rate: one episode horizon, two good updates."""

from __future__ import annotations

from flowrl_core.envs import make_env_and_params
from flowrl_core.skills.spec import PlanStep, SkillSpec
from flowrl_core.training.config import PPOConfig
from flowrl_core.training.ppo import train


def test_early_stop_waits_one_horizon_and_two_good_updates():
    env, params = make_env_and_params("gridworld", {"max_steps": 20})
    specs = {"Collect_Wood": SkillSpec("Collect_Wood", gains={"wood": 1})}
    cfg = PPOConfig.tiny_profile(num_envs=16, num_steps=8, total_timesteps=16 * 8 * 12, width=16, depth=1,
                                 update_epochs=1, success_threshold=0.01, early_stop_min_episodes=1,
                                 checkpoint_every=0)
    rows: list[dict] = []
    result = train(env, params, [PlanStep("Collect_Wood", 1)], specs, {"Collect_Wood": 0}, cfg, on_metrics=rows.append)
    assert result.early_stopped
    # 8 steps per update: the first full 20-step horizon is reached at update 3
    assert result.updates >= 3 and rows[-1]["update"] * cfg.num_steps >= 20
    good = [r["success_rate"] is not None and r["success_rate"] >= 0.01 for r in rows]
    assert good[-1] and good[-2]
    assert result.frames == result.updates * 16 * 8
