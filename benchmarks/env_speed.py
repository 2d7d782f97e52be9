"""Env-only throughput (steps/s) under random actions: the gridworld, and Craftax with --craftax.

Each config is one ``jit(lax.scan(vmap(step)))`` call of ``steps`` env-steps per env, compiled
ahead of time (compile excluded from SPS), then timed ``--repeats`` times.  Env states are
carried from call to call so that later calls step mid-episode worlds, as a trainer does.

The scan accumulates the sum of every observation: a rollout reads its observations, and
without that use XLA would drop the observation computation as dead code.

Modes:
  noreset  finished envs keep stepping their terminal state (bounds the cost of a step; not a
           valid training setup)
  bank     finished envs take a pre-generated start state from a reset bank
           (:func:`flowrl_core.envs.base.reset_done`); the bank is closed over, not carried
           through the scan, and generated outside the timed region

Usage:  python -m benchmarks.env_speed [--envs 16 64 256 1024] [--craftax]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp

from flowrl_core.envs import make_env
from flowrl_core.envs.base import Env, ResetBank, make_reset_bank, reset_done


def make_rollout(env: Env, params: Any, num_envs: int, steps: int, bank: ResetBank | None):
    vstep = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def rollout(obs, state, cursor, key):
        def body(carry, key):
            obs, state, cursor, acc = carry
            k_act, k_step = jax.random.split(key)
            actions = jax.random.randint(k_act, (num_envs,), 0, env.num_actions)
            out = vstep(jax.random.split(k_step, num_envs), state, actions, params)
            obs, state = out.obs, out.state
            if bank is not None:
                obs, state, b = reset_done(bank._replace(cursor=cursor), out.done, obs, state)
                cursor = b.cursor
            acc = acc + obs.sum() + out.reward.sum() + out.done.sum()
            return (obs, state, cursor, acc), None

        init = (obs, state, cursor, jnp.zeros((), jnp.float32))
        (obs, state, cursor, acc), _ = jax.lax.scan(body, init, jax.random.split(key, steps))
        return obs, state, cursor, acc

    return jax.jit(rollout)


def bench(env: Env, num_envs: int, steps: int, repeats: int, mode: str, bank_size: int) -> dict[str, Any]:
    params = env.default_params
    key = jax.random.key(0)
    obs, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(jax.random.split(key, num_envs), params)
    bank = None
    if mode == "bank":
        bank = jax.jit(lambda k: make_reset_bank(env, k, params, bank_size))(jax.random.key(1))
    cursor = jnp.zeros((), jnp.int32)
    fn = make_rollout(env, params, num_envs, steps, bank)
    t0 = time.perf_counter()
    compiled = fn.lower(obs, state, cursor, key).compile()
    compile_s = time.perf_counter() - t0
    obs, state, cursor, acc = compiled(obs, state, cursor, jax.random.key(2))  # warm-up
    jax.block_until_ready(acc)
    sps = []
    for i in range(repeats):
        t0 = time.perf_counter()
        obs, state, cursor, acc = compiled(obs, state, cursor, jax.random.key(3 + i))
        jax.block_until_ready(acc)
        sps.append(num_envs * steps / (time.perf_counter() - t0))
    return {"env": env.name, "mode": mode, "num_envs": num_envs, "steps": steps,
            "compile_s": compile_s, "sps": sps}  # fmt: skip


def print_row(r: dict[str, Any]) -> None:
    sps = r["sps"]
    print(
        f"| {r['env']:<27} | {r['mode']:<7} | {r['num_envs']:>5} | {r['steps']:>6} | "
        f"{r['compile_s']:>7.1f} | {statistics.mean(sps):>12,.0f} | {min(sps):>10,.0f}-{max(sps):<10,.0f} |",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", type=int, nargs="+", default=[16, 64, 256, 1024])
    ap.add_argument("--gridworld-steps", type=int, default=1 << 18, help="env-steps per timed call")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-gridworld", action="store_true")
    ap.add_argument("--craftax", action="store_true", help="also time Craftax-Classic-Symbolic-v1")
    ap.add_argument("--craftax-envs", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--craftax-steps", type=int, default=8192, help="env-steps per timed call")
    ap.add_argument("--bank-size", type=int, default=256)
    args = ap.parse_args()

    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; SPS mean (min-max) of {args.repeats} calls")
    print("| env                         | mode    | envs  | steps  | compile | SPS mean     | SPS range             |")
    print("|-----------------------------|---------|-------|--------|---------|--------------|-----------------------|")
    if not args.no_gridworld:
        env = make_env("gridworld")
        for n in args.envs:
            steps = max(16, args.gridworld_steps // n)
            print_row(bench(env, n, steps, args.repeats, "noreset", args.bank_size))
        for n in args.envs:
            steps = max(16, args.gridworld_steps // n)
            # every env times out on the same step here, so the bank must cover all of them
            print_row(bench(env, n, steps, args.repeats, "bank", max(args.bank_size, n)))
    if args.craftax:
        env = make_env("Craftax-Classic-Symbolic-v1")
        for mode in ("noreset", "bank"):
            for n in args.craftax_envs:
                steps = max(8, args.craftax_steps // n)
                print_row(bench(env, n, steps, args.repeats, mode, args.bank_size))


if __name__ == "__main__":
    main()
