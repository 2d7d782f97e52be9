"""Plan-routed MoE PPO on Craftax-Classic: a smoke run of the real trainer on the real env.

Why it exists: every other PPO test runs on the corridor or the gridworld; this one checks that
the trainer's jitted update (reset bank, predicates on Craftax's inventory, MoE dispatch)
compiles and runs on Craftax-Classic's 1345-float observations and 17 actions, with exact frame
accounting.  Compiling Craftax's world generation and step costs tens of seconds on this CPU,
so it is marked slow.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

pytest.importorskip("craftax")

from flowrl_core.envs import make_env
from flowrl_core.skills.spec import PlanStep, SkillSpec
from flowrl_core.training.config import PPOConfig
from flowrl_core.training.ppo import extract_experts, train

NUM_ENVS, NUM_STEPS, UPDATES = 16, 8, 2


@pytest.mark.slow
def test_craftax_classic_ppo_smoke():
    env = make_env("Craftax-Classic-Symbolic-v1")
    specs = {"Collect_Wood": SkillSpec("Collect_Wood", gains={"wood": 1})}
    plan = [PlanStep("Collect_Wood", 1)]
    cfg = PPOConfig.tiny_profile(num_envs=NUM_ENVS, num_steps=NUM_STEPS, total_timesteps=UPDATES * NUM_ENVS * NUM_STEPS,
                                 width=32, depth=1, checkpoint_every=0, reset_bank_size=NUM_ENVS)
    rows: list[dict] = []
    t0 = time.perf_counter()
    result = train(env, env.default_params, plan, specs, {"Collect_Wood": 0}, cfg, on_metrics=rows.append)
    wall = time.perf_counter() - t0
    print(f"\nCraftax-Classic PPO smoke: {result.frames} frames in {wall:.1f}s "
          f"(compile {rows[0].get('compile_s', float('nan')):.1f}s)")

    assert result.updates == UPDATES and len(rows) == UPDATES
    assert result.frames == UPDATES * NUM_ENVS * NUM_STEPS
    assert sum(result.expert_steps) == result.frames and result.expert_steps == [result.frames]
    assert [r["frames"] for r in rows] == [NUM_ENVS * NUM_STEPS * (i + 1) for i in range(UPDATES)]
    for r in rows:
        assert sum(r["expert_steps"]) == NUM_ENVS * NUM_STEPS
        for key in ("policy_loss", "value_loss", "entropy"):
            assert len(r[key]) == 1 and r[key][0] is not None and math.isfinite(r[key][0]), (key, r[key])
        assert math.isfinite(r["approx_kl"]) and math.isfinite(r["mean_reward"])
        assert r["success_rate"] is None or 0.0 <= r["success_rate"] <= 1.0
    expert = extract_experts(result.params)[0]
    assert expert["actor"]["layer_0"]["kernel"].shape == (env.obs_shape[0], 32)
    assert expert["actor"]["head"]["kernel"].shape == (32, env.num_actions)

    # the trained policy's rollout, drawn by Craftax's own renderer, as the GIF a run stores
    from flowrl_core.reporting.plots import frames_to_gif
    from flowrl_core.training.rollout import rollout
    ro = rollout(env, env.default_params, plan, specs, {"Collect_Wood": 0}, cfg, result.params, max_steps=20)
    assert ro.frames.dtype == np.uint8 and ro.frames.shape[1:] == (144, 144, 3) and 2 <= len(ro.frames) <= 21
    assert len(ro.captions) == len(ro.frames)
    assert len(set(ro.frames.reshape(len(ro.frames), -1).sum(1).tolist())) > 1  # the picture changes as it acts
    gif = frames_to_gif(ro.frames, captions=ro.captions)
    assert gif[:6] in (b"GIF87a", b"GIF89a")


@pytest.mark.slow
def test_craftax_survival_shaping_trains_and_counts_deaths():
    """survival_shaping on the real env: the update compiles with the vitals in the reward, and
    the death rate is reported (a random start dies rarely in a few steps, so only its range)."""
    env = make_env("Craftax-Classic-Symbolic-v1")
    specs = {"Collect_Wood": SkillSpec("Collect_Wood", gains={"wood": 1})}
    cfg = PPOConfig.tiny_profile(num_envs=NUM_ENVS, num_steps=NUM_STEPS, total_timesteps=UPDATES * NUM_ENVS * NUM_STEPS,
                                 width=32, depth=1, checkpoint_every=0, reset_bank_size=NUM_ENVS,
                                 survival_shaping=0.1, max_steps=4)
    rows: list[dict] = []
    result = train(env, env.default_params, [PlanStep("Collect_Wood", 1)], specs, {"Collect_Wood": 0}, cfg,
                   on_metrics=rows.append)
    assert result.frames == UPDATES * NUM_ENVS * NUM_STEPS
    finished = [r for r in rows if r["episodes"]]
    assert finished, rows  # a 4-step budget ends episodes within every update
    assert all(0.0 <= r["death_rate"] <= 1.0 and math.isfinite(r["mean_reward"]) for r in finished)
