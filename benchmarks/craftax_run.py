"""A longer Craftax-Classic training run of one skill, then the trained policy's achievement rates.

    python -m benchmarks.craftax_run                              # Collect_Wood, 1M frames, 64 envs
    python -m benchmarks.craftax_run --skill Place_Table --frames 500000
    python -m benchmarks.craftax_run --frames 100000 --eval-episodes 64

Why: the tests only smoke-run Craftax (it costs ~100 us per env step and tens of seconds to
compile on a small CPU), so this is the place to see the trainer learn on the real game and to
measure its throughput there.  The skill's plan comes from the skill file
(``examples/craftax_classic.yaml`` by default) through ``execution_plan``, exactly as
``flowrl run`` would plan it; all plan skills start from random experts.

What it prints: compile time, steps/s, a success-rate curve over training (mean over the
updates since the previous line, over episodes ended in them), and at the end, for
``--eval-episodes`` fresh episodes of the final policy run plan-routed as in training (the
episode ends at plan success, at Craftax's own end, or after ``--eval-max-steps``): the plan
success rate and the fraction of episodes that unlocked each achievement (``env.achievements``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

ROOT = Path(__file__).resolve().parents[1]

from flowrl_core.envs import make_env
from flowrl_core.envs.base import Env
from flowrl_core.skills.parsing import load_skill_file
from flowrl_core.skills.plan import execution_plan, plan_skills
from flowrl_core.skills.spec import PlanStep, SkillSpec
from flowrl_core.training.config import PPOConfig
from flowrl_core.training.moe import MoEActorCritic
from flowrl_core.training.ppo import train
from flowrl_core.training.predicates import compile_for_env, nearby

PyTree = Any
SKILL_FILE = ROOT / "examples" / "craftax_classic.yaml"
ENV_NAME = "Craftax-Classic-Symbolic-v1"


def evaluate(env: Env, env_params: PyTree, plan: Sequence[PlanStep], specs: Mapping[str, SkillSpec],
             expert_of_skill: Mapping[str, int], config: PPOConfig, params: PyTree, *, episodes: int = 64,
             max_steps: int = 1000, seed: int = 0, greedy: bool = False) -> dict[str, Any]:
    """Play ``episodes`` episodes in parallel (one per env, one jitted scan) with plan routing.

    Each env's record (achievements, success, length) freezes when its episode ends; the env
    keeps stepping afterwards (cheaper than masking the step), but nothing it does counts.
    """
    compiled = compile_for_env(env, plan, specs, expert_of_skill, shaping=config.shaping,
                               completion_reward=config.completion_reward, step_goal=config.step_goal)
    k = len(set(expert_of_skill.values()))
    net = MoEActorCritic(num_experts=k, num_actions=env.num_actions, width=config.width, depth=config.depth)
    n_plan = compiled.num_steps
    v_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    v_inv, v_ach, v_eval = jax.vmap(env.inventory), jax.vmap(env.achievements), jax.vmap(compiled.evaluate)

    def body(carry, key):
        state, obs, step, start_inv, over, ach, success, length = carry
        k_act, k_env = jax.random.split(key)
        logits, _ = net.apply(params, obs, compiled.step_expert[step])
        action = jnp.argmax(logits, -1) if greedy else jax.random.categorical(k_act, logits)
        prev_inv = v_inv(state)
        out = v_step(jax.random.split(k_env, episodes), state, action, env_params)
        inv = v_inv(out.state)
        done, _ = v_eval(step, prev_inv, inv, start_inv, v_ach(out.state), jax.vmap(lambda s: nearby(env, s))(out.state))
        live = ~over
        succ = done & (step == n_plan - 1)
        ach = jnp.where(live[:, None], v_ach(out.state), ach)
        success = success | (succ & live)
        length = length + live.astype(jnp.int32)
        over = over | succ | out.done.astype(bool)
        step = jnp.where(done & (step < n_plan - 1), step + 1, step)
        start_inv = jnp.where(done[:, None], inv, start_inv)
        return (out.state, out.obs, step, start_inv, over, ach, success, length), None

    @jax.jit
    def run(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        k_reset, k_steps = jax.random.split(key)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, episodes), env_params)
        zeros = jnp.zeros((episodes,), jnp.int32)
        carry = (state, obs, zeros, v_inv(state), jnp.zeros((episodes,), bool), v_ach(state),
                 jnp.zeros((episodes,), bool), zeros)
        carry, _ = jax.lax.scan(body, carry, jax.random.split(k_steps, max_steps))
        _, _, _, _, over, ach, success, length = carry
        return over, ach, success, length

    t0 = time.perf_counter()
    over, ach, success, length = jax.device_get(run(jax.random.PRNGKey(seed)))
    return {
        "episodes": episodes, "finished": int(over.sum()), "success_rate": float(success.mean()),
        "mean_length": float(length.mean()), "wall_s": time.perf_counter() - t0,
        "achievement_rates": {name: float(ach[:, i].mean()) for i, name in enumerate(env.achievement_names)},
    }


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skill", default="Collect_Wood", help="skill of the skill file to train (its plan is used)")
    ap.add_argument("--skill-file", type=Path, default=SKILL_FILE)
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--num-envs", type=int, default=64)
    ap.add_argument("--num-steps", type=int, default=32)
    ap.add_argument("--width", type=int, default=128, help="cpu_profile network: 3 x 128")
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--updates-per-call", type=int, default=4, help="updates fused into one jitted call")
    ap.add_argument("--log-lines", type=int, default=20, help="about this many success-rate lines")
    ap.add_argument("--eval-episodes", type=int, default=64)
    ap.add_argument("--eval-max-steps", type=int, default=1000)
    ap.add_argument("--greedy", action="store_true", help="evaluate the argmax policy instead of sampling")
    args = ap.parse_args(argv)

    specs = {s.name: s for s in load_skill_file(args.skill_file)}
    plan = execution_plan(list(specs.values()), args.skill)
    local = {name: i for i, name in enumerate(plan_skills(plan))}
    env = make_env(ENV_NAME)
    env_params = env.default_params
    config = PPOConfig.cpu_profile(num_envs=args.num_envs, num_steps=args.num_steps, total_timesteps=args.frames,
                                   width=args.width, depth=args.depth, seed=args.seed, checkpoint_every=0,
                                   updates_per_call=args.updates_per_call)
    plan_text = " -> ".join(f"{p.skill}x{p.count}" if p.count > 1 else p.skill for p in plan)
    print(f"{ENV_NAME}: skill {args.skill}, plan {plan_text}, {len(local)} expert(s); {config.num_updates} updates "
          f"of {config.num_envs} envs x {config.num_steps} steps; network {config.depth} x {config.width}", flush=True)

    every = max(1, config.num_updates // max(1, args.log_lines))
    pending: list[dict[str, Any]] = []
    curve: list[tuple[int, float | None]] = []
    compile_s = 0.0
    update_s = 0.0  # time inside the jitted update calls (rows carry their call's steps/s)

    def on_metrics(row: dict[str, Any]) -> None:
        nonlocal compile_s, update_s
        compile_s += row.get("compile_s") or 0.0
        update_s += config.batch_size / row["steps_per_s"]
        pending.append(row)
        if row["update"] % every and row["update"] != config.num_updates:
            return
        eps = sum(r["episodes"] for r in pending)
        succ = sum((r["success_rate"] or 0.0) * r["episodes"] for r in pending)
        rate = succ / eps if eps else None
        lengths = [r["mean_episode_length"] * r["episodes"] for r in pending if r["episodes"]]
        curve.append((row["frames"], rate))
        print(f"  {row['frames']:>10,} frames  success {'-' if rate is None else f'{rate:.3f}'} over {eps} episodes"
              f"  mean length {sum(lengths) / eps if eps else float('nan'):.1f}  {row['steps_per_s']:,.0f} steps/s",
              flush=True)
        pending.clear()

    t0 = time.perf_counter()
    result = train(env, env_params, plan, specs, local, config, on_metrics=on_metrics)
    wall = time.perf_counter() - t0
    print(f"trained {result.frames:,} frames in {wall:.1f}s: {result.frames / max(update_s, 1e-9):,.0f} steps/s in "
          f"the updates ({update_s:.1f}s), update compile {compile_s:.1f}s, setup (reset bank: compile + world "
          f"generation) {wall - update_s - compile_s:.1f}s; {result.frames / wall:,.0f} steps/s overall; "
          f"expert steps {dict(zip(local, result.expert_steps))}")

    ev = evaluate(env, env_params, plan, specs, local, config, result.params, episodes=args.eval_episodes,
                  max_steps=args.eval_max_steps, seed=args.seed + 1, greedy=args.greedy)
    print(f"final policy ({'greedy' if args.greedy else 'sampled'}), {ev['episodes']} episodes of at most "
          f"{args.eval_max_steps} steps ({ev['wall_s']:.1f}s incl. compile): plan success {ev['success_rate']:.3f}, "
          f"mean length {ev['mean_length']:.1f}, {ev['finished']} ended before the cap")
    print("achievement rates (fraction of episodes unlocking each):")
    for name, rate in sorted(ev["achievement_rates"].items(), key=lambda kv: -kv[1]):
        if rate > 0:
            print(f"  {name:<20} {rate:.3f}")
    zero = [n for n, r in ev["achievement_rates"].items() if r == 0]
    print(f"  (0.000: {', '.join(zero)})")


if __name__ == "__main__":
    main()
