"""A flat PPO baseline: one network, the env's own reward, as many frames as a whole `flowrl run`.

    python -m benchmarks.flat_ppo                                   # README example, target Collect_Stone
    python -m benchmarks.flat_ppo --target Make_Wood_Pickaxe --seed 1
    python -m benchmarks.flat_ppo --store ./flowrl-store            # also evaluate the trained library
    python -m benchmarks.flat_ppo --file examples/craftax_classic.yaml --target Make_Stone_Pickaxe

What it does: trains a single actor-critic (purejaxrl's PPO, :func:`benchmarks.trainer.make_reference`:
no plan, no shaping, the env's reward -- achievements unlocked) for the total frames a whole
``flowrl run`` of the skill file may spend (the sum of every skill's ``total_timesteps`` under
the profile), on the env and options the file names.  Then it evaluates that network with the
same code as ``flowrl eval`` (:func:`flowrl_core.evaluation.evaluate_policies`): the target
skill's completion predicate, the target's step budget, fresh worlds from the evaluation seed
stream, a uniform random policy on the same worlds -- and, with ``--store``, the skill library's
composed policy for the target too, so the three are measured side by side in one run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import jax

from benchmarks.common import device_line
from benchmarks.library import skill_configs
from benchmarks.trainer import RefActorCritic, make_reference
from flowrl_core.envs import make_env_and_params
from flowrl_core.evaluation import evaluate_policies, network_policy
from flowrl_core.skills.graph import build_graph, training_order
from flowrl_core.skills.parsing import read_skill_file
from flowrl_core.skills.plan import execution_plan
from flowrl_core.training.budget import plan_runs, step_budget
from flowrl_core.training.config import PPOConfig


def run_frames(specs, profile: str) -> int:
    """Frames a whole ``flowrl run`` of these skills may train: the sum of their budgets."""
    return sum(int(c["total_timesteps"]) for c in skill_configs(specs, profile).values())


def train_flat(env, env_params, config: PPOConfig, frames: int, log=None):
    """(params, rows): purejaxrl PPO on the env's reward for ``frames`` frames (whole updates)."""
    init, update = make_reference(env, env_params, config)
    state = jax.jit(init)(jax.random.PRNGKey(config.seed))
    step = jax.jit(update)
    updates = max(1, frames // config.batch_size)
    rows, t0 = [], time.perf_counter()
    for i in range(updates):
        state, mean_reward = step(state)
        if (i + 1) % 25 == 0 or i + 1 == updates:
            r = float(mean_reward)
            rows.append({"update": i + 1, "frames": (i + 1) * config.batch_size, "mean_reward": r})
            if log:
                log(f"  flat PPO {(i + 1) * config.batch_size:>9,} frames  mean reward/step {r:.4f}  "
                    f"({(i + 1) * config.batch_size / (time.perf_counter() - t0):,.0f} steps/s)")
    return state.params, updates * config.batch_size, rows


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", default="examples/gridworld_basic.yaml")
    ap.add_argument("--target", default=None, help="skill to evaluate on (default: the one with the longest plan)")
    ap.add_argument("--profile", default="cpu", help="sizes the network and the frame total, as flowrl run")
    ap.add_argument("--frames", type=int, default=None, help="override the frame total")
    ap.add_argument("--seed", type=int, default=0, help="training seed (evaluation uses its own stream)")
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--store", default=None, help="also evaluate the target's composed policy from this store")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    log = None if args.quiet else (lambda s: print(s, flush=True))
    print(device_line())
    doc = read_skill_file(args.file)
    specs = list(doc.specs)
    env_name, options = doc.env or "gridworld", dict(doc.env_options)
    env, env_params = make_env_and_params(env_name, options)
    order = training_order(build_graph(specs))
    target = args.target or max(order, key=lambda n: (plan_runs(execution_plan(specs, n)), order.index(n)))
    by_name = {s.name: s for s in specs}
    plan = execution_plan(specs, target)
    target_cfg = skill_configs(specs, args.profile)[target]
    budget = step_budget(target_cfg.get("max_steps"), env, plan)
    frames = args.frames or run_frames(specs, args.profile)
    base = PPOConfig(**{**skill_configs(specs, args.profile)[target], "seed": args.seed})
    print(f"{args.file}: env {env_name} {options}; a whole `flowrl run --profile {args.profile}` may train "
          f"{run_frames(specs, args.profile):,} frames; flat PPO trains {frames:,}")
    t0 = time.perf_counter()
    params, trained, _ = train_flat(env, env_params, base, frames, log=log)
    train_s = time.perf_counter() - t0
    net = RefActorCritic(env.num_actions, base.width, base.depth)
    policies = [network_policy("flat_ppo", params, net.apply)]
    if args.store:
        from flowrl_core.evaluation import load_stored_skill
        from flowrl_core.store.objects import Store

        stored = load_stored_skill(Store(args.store, create=False), target)
        policies.insert(0, stored.policy)
        if list(stored.plan) != plan:
            print(f"note: the store trained {target} on plan {stored.plan}, this file plans {plan}")
    t1 = time.perf_counter()
    results = evaluate_policies(env, env_params, plan, by_name, policies, episodes=args.episodes, max_steps=budget,
                                seed=0)
    eval_s = time.perf_counter() - t1
    print(f"\ntarget {target} (plan {' → '.join(f'{s.skill}×{s.count}' for s in plan)}), budget {budget} steps, "
          f"{args.episodes} fresh episodes per policy; flat PPO: {trained:,} frames in {train_s:.0f}s, "
          f"{base.depth}x{base.width} network; evaluation {eval_s:.0f}s")
    print(f"{'policy':<10} {'success':>8} {'95% CI':>15} {'mean steps':>10}  plan steps reached")
    for name in [p.name for p in policies] + ["random"]:
        s = results[name].stats
        steps = f"{s.mean_steps:.1f}" if s.mean_steps is not None else "-"
        reach = " ".join(f"{p.reached:.2f}" for p in s.plan_steps)
        print(f"{name:<10} {s.success_rate:>8.3f} [{s.success_ci95[0]:.3f},{s.success_ci95[1]:.3f}] {steps:>10}  {reach}")
    ach = results["flat_ppo"].stats.achievements
    top = sorted(((v, a) for a, v in ach.items() if v > 0), reverse=True)[:8]
    print("flat PPO achievements within the budget: " + (", ".join(f"{a} {v:.2f}" for v, a in top) or "none"))


if __name__ == "__main__":
    main()
