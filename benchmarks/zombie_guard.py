"""A zombie guard at evaluation time: does handing control to a zombie-fighting expert whenever a
zombie is next to the agent save a Craftax-Classic plan's episodes?

    python -m benchmarks.zombie_guard --store STORE                        # Make_Iron_Pickaxe, r = 1 2 3
    python -m benchmarks.zombie_guard --store STORE --skill Collect_Iron --radius 1

STORE must hold the skill and a trained guard skill (``--guard``, default ``Defeat_Zombie``: a
skill file entry ``gains: {"achievement:defeat_zombie": 1}``, trained with ``flowrl run FILE
--only Defeat_Zombie``).  The skill's plan and experts are exactly what ``flowrl eval`` rolls
out; the guarded policy differs only in that the guard's expert acts while a zombie stands within
L1 distance ``r`` of the agent.  Nothing is retrained, so this asks whether the plan's experts
would do better with such routing, not what training with it would give.  All policies run on
the same fresh worlds (the evaluation's seed stream), side by side in one call.

The zombie is read off Craftax-Classic's symbolic observation (its 7 x 9 local view, one-hot
blocks then 4 mob channels, zombie first), which is why this is a benchmark and not a router.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import device_line
from flowrl_core.envs import make_env_and_params
from flowrl_core.evaluation.evaluate import evaluate_policies
from flowrl_core.evaluation.policies import Policy, expert_logits
from flowrl_core.evaluation.store import load_stored_skill
from flowrl_core.store.experts import current_version, load_params
from flowrl_core.store.objects import Store
from flowrl_core.training.budget import step_budget

VIEW = (7, 9)  # Craftax-Classic's OBS_DIM
CHANNELS = 17 + 4  # block types, then zombie, cow, skeleton, arrow
ZOMBIE = 17


def zombie_within(radius: int) -> jax.Array:
    """bool[7, 9]: view cells within L1 ``radius`` of the agent (the centre), the centre excluded."""
    rows, cols = np.meshgrid(np.arange(VIEW[0]), np.arange(VIEW[1]), indexing="ij")
    dist = np.abs(rows - VIEW[0] // 2) + np.abs(cols - VIEW[1] // 2)
    return jnp.asarray((dist <= radius) & (dist > 0))


def guarded_policy(base: Policy, guard_actor, radius: int) -> Policy:
    """``base`` (a composed plan policy) with one more expert that acts while a zombie is near."""
    actors = jax.tree.map(lambda a, g: jnp.concatenate([a, jnp.asarray(g, jnp.float32)[None]]),
                          base.params["actor"], guard_actor)
    guard = jax.tree.leaves(base.params["actor"])[0].shape[0]
    cells = zombie_within(radius)

    def logits(p, obs, plan_step):
        x = obs.reshape(obs.shape[0], -1)
        view = x[:, :VIEW[0] * VIEW[1] * CHANNELS].reshape(-1, *VIEW, CHANNELS)[..., ZOMBIE] > 0.5
        near = jnp.any(view & cells[None], axis=(1, 2))
        return expert_logits(p["actor"], obs, jnp.where(near, guard, p["step_expert"][plan_step]))

    return Policy(f"guard r={radius}", {"actor": actors, "step_expert": base.params["step_expert"]}, logits)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--skill", default="Make_Iron_Pickaxe")
    ap.add_argument("--guard", default="Defeat_Zombie")
    ap.add_argument("--radius", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--episodes", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(device_line())
    store = Store(args.store, create=False)
    stored = load_stored_skill(store, args.skill)
    if not stored.job.env.startswith("Craftax-Classic"):
        raise SystemExit(f"{args.skill!r} trained on {stored.job.env!r}; the guard reads Craftax-Classic's observation")
    index = store.expert_indices().get(args.guard)
    version = current_version(store, index) if index is not None else None
    if version is None:
        raise SystemExit(f"store {args.store} has no trained {args.guard!r}; train it first "
                         f"(flowrl run FILE --store {args.store} --only {args.guard})")
    env, env_params = make_env_and_params(stored.job.env, dict(stored.job.env_options))
    budget = step_budget(stored.job.config.get("max_steps"), env, list(stored.plan))
    guard_actor = load_params(store, version)["actor"]
    policies = [stored.policy] + [guarded_policy(stored.policy, guard_actor, r) for r in args.radius]
    results = evaluate_policies(env, env_params, list(stored.plan), stored.specs, policies, episodes=args.episodes,
                                max_steps=budget, seed=args.seed, with_random=False,
                                step_goal=stored.job.config["step_goal"])
    print(f"\n{args.skill}, {args.episodes} fresh episodes, seed {args.seed}, budget {budget}; "
          f"guard {args.guard} at {version.frames:,} frames")
    print(f"{'policy':>12} {'success':>8} {'95% CI':>14} {'died':>6} {'zombie':>7}")
    base = results[stored.policy.name].stats.success_rate
    for policy in policies:
        s = results[policy.name].stats
        lo, hi = s.success_ci95
        print(f"{policy.name:>12} {s.success_rate:>8.3f} {f'[{lo:.2f}, {hi:.2f}]':>14} "
              f"{s.end_reasons.get('death', 0.0):>6.2f} {s.death_causes.get('zombie', 0.0):>7.2f}"
              + (f"  ({s.success_rate - base:+.3f})" if policy is not stored.policy else ""))


if __name__ == "__main__":
    main()
