"""Watch a trained policy: one plan-routed episode rendered frame by frame, and success rates.

Uses the same plan routing as training (the current plan step picks the expert, the step's
predicate advances it), so what the GIF shows is what the trainer optimised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flowrl_core.envs.base import Env
from flowrl_core.skills.spec import PlanStep, SkillSpec
from flowrl_core.training.config import PPOConfig
from flowrl_core.training.moe import MoEActorCritic
from flowrl_core.training.predicates import compile_for_env, nearby


@dataclass
class Rollout:
    frames: np.ndarray  # [T, H, W, 3] uint8 (T = steps until the episode ended, + the start frame)
    captions: list[str]
    success: bool
    steps_reached: int  # plan steps completed


def rollout(env: Env, env_params: Any, plan: Sequence[PlanStep], specs: Mapping[str, SkillSpec],
            expert_of_skill: Mapping[str, int], config: PPOConfig, params: Any, *, seed: int = 0,
            max_steps: int = 200, greedy: bool = False) -> Rollout:
    """Run one episode of the MoE policy ``params`` (as trained: ``TrainResult.params``)."""
    if not hasattr(env, "render"):
        raise ValueError(f"environment {env.name} has no renderer")
    compiled = compile_for_env(env, plan, specs, expert_of_skill, shaping=config.shaping,
                               completion_reward=config.completion_reward, step_goal=config.step_goal)
    k = len(set(expert_of_skill[s.skill] for s in plan))
    net = MoEActorCritic(num_experts=k, num_actions=env.num_actions, width=config.width, depth=config.depth)
    n_plan = compiled.num_steps

    def body(carry, key):
        state, obs, step, start_inv, over = carry
        k_act, k_env = jax.random.split(key)
        logits, _ = net.apply(params, obs[None], compiled.step_expert[step][None])
        action = jnp.argmax(logits[0]) if greedy else jax.random.categorical(k_act, logits[0])
        prev_inv = env.inventory(state)
        out = env.step(k_env, state, action, env_params)
        inv = env.inventory(out.state)
        done, _ = compiled.evaluate(step, prev_inv, inv, start_inv, env.achievements(out.state),
                                    nearby(env, out.state))
        success = done & (step == n_plan - 1)
        new_step = jnp.where(done & (step < n_plan - 1), step + 1, step)
        new_start = jnp.where(done, inv, start_inv)
        ended = over | success | out.done.astype(bool)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(over, b, a), new, old)  # noqa: E731
        state2 = keep(out.state, state)
        carry = (state2, keep(out.obs, obs), keep(new_step, step), keep(new_start, start_inv), ended)
        record = (env.render(state2), keep(new_step, step), over, success & ~over)
        return carry, record

    @jax.jit
    def run(key):
        k_reset, k_steps = jax.random.split(key)
        obs, state = env.reset(k_reset, env_params)
        carry = (state, obs, jnp.zeros((), jnp.int32), env.inventory(state), jnp.zeros((), bool))
        _, (frames, steps, was_over, succ) = jax.lax.scan(body, carry, jax.random.split(k_steps, max_steps))
        return env.render(state), frames, steps, was_over, succ

    first, frames, steps, was_over, succ = jax.device_get(run(jax.random.PRNGKey(seed)))
    live = int(np.sum(~was_over))  # frames recorded before the episode had ended
    labels = [f"{i + 1}. {p.skill}" + (f"×{p.count}" if p.count > 1 else "") for i, p in enumerate(plan)]
    success = bool(np.any(succ))
    captions = [f"step {labels[0]}"] + [
        ("done: success" if success and i == live - 1 else f"step {labels[int(s)]}") for i, s in enumerate(steps[:live])]
    return Rollout(frames=np.concatenate([first[None], frames[:live]]).astype(np.uint8), captions=captions,
                   success=success, steps_reached=int(steps[live - 1]) + int(success) if live else 0)
