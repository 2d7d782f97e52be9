"""Survival shaping: what a step's change of the vitals (health first) is worth, and that
an env without vitals is refused rather than trained unshaped."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from flowrl_core.envs import make_env
from flowrl_core.skills.spec import PlanStep, SkillSpec
from flowrl_core.training.config import ConfigError, PPOConfig
from flowrl_core.training.ppo import train
from flowrl_core.training.survival import died, survival_reward

FULL = jnp.array([9.0, 9.0, 9.0, 9.0])  # any vitals, health first (four here)


def reward(prev, after, dead=False, w=0.1) -> float:
    return float(survival_reward(jnp.asarray(prev, jnp.float32), jnp.asarray(after, jnp.float32),
                                 jnp.asarray(dead), w))


def test_a_hit_costs_the_health_it_took_and_a_drink_earns_what_it_gave():
    assert reward(FULL, [7, 9, 9, 9]) == pytest.approx(-0.2)
    assert reward([9, 9, 5, 9], [9, 9, 6, 9]) == pytest.approx(0.1)
    assert reward(FULL, FULL) == 0.0
    assert reward([9, 9, 9, 9], [9, 8, 9, 9], w=0.5) == pytest.approx(-0.5)  # the clock's toll, weighted


def test_a_death_costs_all_the_health_that_was_left_even_in_lava_at_full_health():
    assert reward(FULL, FULL, dead=True) == pytest.approx(-0.9)  # lava: health unchanged, still dead
    assert reward([2, 9, 9, 9], [0, 9, 9, 9], dead=True) == pytest.approx(-0.2)  # died of the last hit
    assert reward([2, 9, 9, 9], [0, 9, 9, 9], dead=True) > reward(FULL, FULL, dead=True)


def test_batched_over_envs():
    prev = jnp.stack([FULL, FULL, jnp.array([3.0, 0, 0, 9])])
    after = jnp.stack([FULL, jnp.array([8.0, 9, 9, 9]), jnp.array([2.0, 0, 0, 9])])
    out = np.asarray(survival_reward(prev, after, jnp.array([False, False, False]), 1.0))
    np.testing.assert_allclose(out, [0.0, -1.0, -1.0])


def test_an_env_without_vitals_is_refused_before_training_and_cannot_die():
    env = make_env("gridworld")
    assert not bool(died(env, env.reset(__import__("jax").random.key(0), env.default_params)[1]))
    specs = {"Collect_Wood": SkillSpec("Collect_Wood", gains={"wood": 1})}
    cfg = PPOConfig.tiny_profile(survival_shaping=0.1)
    with pytest.raises(ConfigError, match="survival_shaping=0.1 needs an env that reports health"):
        train(env, env.default_params, [PlanStep("Collect_Wood", 1)], specs, {"Collect_Wood": 0}, cfg)


def test_training_reports_the_death_rate_beside_the_success_rate():
    env = make_env("gridworld")
    specs = {"Collect_Wood": SkillSpec("Collect_Wood", gains={"wood": 1})}
    rows: list[dict] = []
    train(env, env.default_params, [PlanStep("Collect_Wood", 1)], specs, {"Collect_Wood": 0},
          PPOConfig.tiny_profile(checkpoint_every=0), on_metrics=rows.append)
    finished = [r for r in rows if r["episodes"]]
    assert finished and all(r["death_rate"] == 0.0 for r in finished)  # nothing dies in the gridworld
