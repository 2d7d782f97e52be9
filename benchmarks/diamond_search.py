"""Why Collect_Diamond scores 0: what the episodes that reach its plan step find there.

    python -m benchmarks.diamond_search --store STORE [--skill Collect_Diamond] [--episodes 256] [--seed 0]

Rolls out the skill's composed policy exactly as ``flowrl eval`` routes it (same plan, same
experts, same step goal, same fresh-world seed stream and budget) and, for every episode that
enters the plan's last step, reads the Craftax-Classic world state there:

- how far the nearest diamond lies (L1, in cells) when the step begins, and the closest the
  agent ever gets to one during the step;
- whether a diamond ever enters the agent's 7 x 9 view during the step;
- the agent's health when the step begins, how many env steps it survives in it, and how the
  episode ends.

It also counts the diamonds of each fresh world (Craftax-Classic puts them where the mountain
noise is above 0.8, with probability 0.005 per stone cell, plus one on a random stone cell), and
their distance from the spawn point.  The world state is read directly, which is why this is a
benchmark and not part of ``flowrl eval``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import device_line
from flowrl_core.envs import make_env_and_params
from flowrl_core.evaluation.rollout import episode_keys
from flowrl_core.evaluation.store import load_stored_skill
from flowrl_core.store.objects import Store
from flowrl_core.training.budget import step_budget
from flowrl_core.training.predicates import compile_for_env, nearby
from flowrl_core.training.survival import cause_of_death, died

DIAMOND = 10  # craftax_classic.constants.BlockType.DIAMOND
HALF_VIEW = (3, 4)  # OBS_DIM (7, 9) // 2, along the map's axes 0 and 1


def diamond_distance(world: jax.Array, pos: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(L1 distance to the nearest diamond, whether one is inside the view) for one state; 10**6 when none."""
    rows, cols = jnp.meshgrid(jnp.arange(world.shape[0]), jnp.arange(world.shape[1]), indexing="ij")
    d0, d1 = jnp.abs(rows - pos[0]), jnp.abs(cols - pos[1])
    is_d = world == DIAMOND
    dist = jnp.min(jnp.where(is_d, d0 + d1, 10**6))
    seen = jnp.any(is_d & (d0 <= HALF_VIEW[0]) & (d1 <= HALF_VIEW[1]))
    return dist, seen


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--skill", default="Collect_Diamond")
    ap.add_argument("--episodes", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=None)
    args = ap.parse_args(argv)
    print(device_line())
    store = Store(args.store, create=False)
    stored = load_stored_skill(store, args.skill)
    if not stored.job.env.startswith("Craftax-Classic"):
        raise SystemExit(f"{args.skill!r} trained on {stored.job.env!r}; this reads Craftax-Classic's world state")
    env, env_params = make_env_and_params(stored.job.env, dict(stored.job.env_options))
    plan = list(stored.plan)
    budget = args.max_steps or step_budget(stored.job.config.get("max_steps"), env, plan)
    skills = list(dict.fromkeys(step.skill for step in plan))
    compiled = compile_for_env(env, plan, stored.specs, {s: i for i, s in enumerate(skills)},
                               step_goal=stored.job.config["step_goal"])
    last = compiled.num_steps - 1
    policy = stored.policy
    v_plan = jax.vmap(compiled.evaluate)
    v_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    v_inv, v_ach = jax.vmap(env.inventory), jax.vmap(env.achievements)
    v_near = jax.vmap(lambda s: nearby(env, s))
    v_dist = jax.vmap(lambda s: diamond_distance(s.map, s.player_position))
    v_dead, v_cause = jax.vmap(lambda s: died(env, s)), jax.vmap(lambda s: cause_of_death(env, s))
    diamond_item = list(env.item_names).index("diamond")

    def run(params, key, reset_keys, max_steps):
        e = reset_keys.shape[0]
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, env_params)
        spawn_dist, _ = v_dist(state)
        n_diamonds = jnp.sum(state.map == DIAMOND, axis=(1, 2))
        big = jnp.full((e,), 10**6, jnp.int32)
        c = dict(t=jnp.zeros((), jnp.int32), state=state, obs=obs, over=jnp.zeros((e,), bool),
                 step=jnp.zeros((e,), jnp.int32), start_inv=v_inv(state), key=key,
                 t_enter=jnp.full((e,), -1, jnp.int32), d_enter=big, d_min=big, seen=jnp.zeros((e,), bool),
                 hp_enter=jnp.zeros((e,), jnp.int32), t_end=jnp.zeros((e,), jnp.int32),
                 got=jnp.zeros((e,), bool), dead=jnp.zeros((e,), bool), cause=jnp.full((e,), -1, jnp.int32))

        def body(c):
            key, k_act, k_env = jax.random.split(c["key"], 3)
            live = ~c["over"]
            logits = policy.logits(params, c["obs"], c["step"])
            action = jax.random.categorical(k_act, logits).astype(jnp.int32)
            prev_inv = v_inv(c["state"])
            out = v_step(jax.random.split(k_env, e), c["state"], action, env_params)
            inv = v_inv(out.state)
            done, _ = v_plan(c["step"], prev_inv, inv, c["start_inv"], v_ach(out.state), v_near(out.state))
            done = done & live & (c["step"] < last)
            t1 = c["t"] + 1
            entering = done & (c["step"] == last - 1)
            step = jnp.where(done, c["step"] + 1, c["step"])
            dist, seen = v_dist(out.state)
            in_last = live & (step == last)
            got = live & (inv[:, diamond_item] > prev_inv[:, diamond_item]) & (step == last)
            dead = live & v_dead(out.state)
            ended = live & (got | out.done.astype(bool) | (t1 >= max_steps))
            return dict(
                t=t1, key=key, step=step,
                state=jax.tree.map(lambda a, b: jnp.where(live.reshape(live.shape + (1,) * (a.ndim - 1)), a, b),
                                   out.state, c["state"]),
                obs=jnp.where(live.reshape(live.shape + (1,) * (out.obs.ndim - 1)), out.obs, c["obs"]),
                over=c["over"] | ended, start_inv=jnp.where(done[:, None], inv, c["start_inv"]),
                t_enter=jnp.where(entering, t1, c["t_enter"]),
                d_enter=jnp.where(entering, dist, c["d_enter"]),
                d_min=jnp.where(in_last, jnp.minimum(c["d_min"], dist), c["d_min"]),
                seen=c["seen"] | (in_last & seen),
                hp_enter=jnp.where(entering, out.state.player_health, c["hp_enter"]),
                t_end=jnp.where(ended, t1, c["t_end"]), got=c["got"] | got, dead=c["dead"] | (ended & dead),
                cause=jnp.where(ended & dead, v_cause(out.state), c["cause"]))

        c = jax.lax.while_loop(lambda c: (c["t"] < max_steps) & ~jnp.all(c["over"]), body, c)
        return {k: c[k] for k in ("t_enter", "d_enter", "d_min", "seen", "hp_enter", "t_end", "got", "dead", "cause")} | {
            "spawn_dist": spawn_dist, "n_diamonds": n_diamonds}

    reset_keys, k_run = episode_keys(args.seed, args.episodes)
    raw = {k: np.asarray(v) for k, v in jax.device_get(jax.jit(run)(
        policy.params, k_run, reset_keys, jnp.asarray(budget, jnp.int32))).items()}
    causes = tuple(getattr(env, "death_causes", ()))
    reached = raw["t_enter"] >= 0
    n = int(reached.sum())
    q = lambda x: "–" if len(x) == 0 else f"{np.median(x):.0f} [{np.percentile(x, 25):.0f}, {np.percentile(x, 75):.0f}]"  # noqa: E731
    print(f"\n{args.skill} on {args.episodes} fresh worlds (seed {args.seed}, budget {budget})")
    print(f"  diamonds per world: median {np.median(raw['n_diamonds']):.0f}, "
          f"range {raw['n_diamonds'].min()}–{raw['n_diamonds'].max()}; "
          f"nearest from the spawn: {q(raw['spawn_dist'])} cells (median [quartiles])")
    print(f"  episodes reaching the {plan[-1].skill} step: {n} ({n / args.episodes:.1%}), "
          f"at env step {q(raw['t_enter'][reached])}")
    if n == 0:
        return
    r = {k: v[reached] for k, v in raw.items()}
    lived = r["t_end"] - r["t_enter"]
    print(f"  nearest diamond when the step begins: {q(r['d_enter'])} cells; closest reached in it: {q(r['d_min'])}")
    print(f"  a diamond entered the view: {r['seen'].mean():.1%} of them; collected: {r['got'].mean():.1%}")
    print(f"  health when the step begins: {q(r['hp_enter'])} of 9; env steps lived in the step: {q(lived)}")
    dead = r["dead"]
    by_cause = {}
    for i in r["cause"][dead]:
        name = causes[i] if 0 <= i < len(causes) else "other"
        by_cause[name] = by_cause.get(name, 0) + 1
    print(f"  ended in death: {dead.mean():.1%} ({', '.join(f'{k} {v}' for k, v in sorted(by_cause.items(), key=lambda kv: -kv[1]))}); "
          f"budget or env end: {(~dead & ~r['got']).mean():.1%}")
    near = r["d_enter"] <= 10
    if near.any():
        print(f"  of those entering within 10 cells of a diamond ({near.sum()}): saw one {r['seen'][near].mean():.1%}, "
              f"collected {r['got'][near].mean():.1%}")


if __name__ == "__main__":
    main()
