"""Trainer benchmarks: MoE PPO steps/s at K = 1, 2, 4, 8 against a plain purejaxrl-style PPO, and
the MoE network alone at Craftax size.

    python -m benchmarks.trainer                 # both parts, gridworld, cpu-profile sizes
    python -m benchmarks.trainer --part net      # network only (1345 inputs, 3 x 512, batch 2048)
    python -m benchmarks.trainer --part ppo --width 512 --num-envs 64 --num-steps 64
    python -m benchmarks.trainer --part ppo --env Craftax-Classic-Symbolic-v1   # needs flowrl[craftax]
    python -m benchmarks.trainer --gpu --num-envs 1024 --num-steps 64 --width 512  # refuses to run without a GPU
    python -m benchmarks.trainer --part frontier --env Craftax-Classic-Symbolic-v1 --ks 8  # frontier resets' cost

Why it is built like this: the CPU this runs on is shared, so every variant is compiled first
and then timed in interleaved rounds (one call of each variant per round), keeping the best
round.  A slow neighbour then slows all variants alike instead of whichever ran during it.

Targets (from the brief): the MoE train step at K = 8 costs <= 2x one expert per sample, and
MoE PPO at K = 1 runs at >= 0.95x the reference PPO.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.common import device_line
from flowrl_core.envs.base import Env, make_reset_bank, refresh_bank, reset_done
from flowrl_core.skills.spec import PlanStep, SkillSpec
from flowrl_core.training.config import PPOConfig
from flowrl_core.training.moe import MoEActorCritic, init_moe_params
from flowrl_core.training.ppo import (
    clip_by_expert_norm,
    compute_gae,
    init_state,
    make_chunk_fn,
    make_optimizer,
    make_update_fn,
)
from flowrl_core.training.predicates import compile_for_env


def interleaved_best(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Best wall time of one call per variant over ``rounds`` interleaved rounds."""
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


# --------------------------------------------------------------------------- reference PPO


class RefActorCritic(nn.Module):
    """purejaxrl's ActorCritic: separate actor and critic MLPs, tanh, orthogonal init."""

    num_actions: int
    width: int
    depth: int

    @nn.compact
    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        a, c = x, x
        for _ in range(self.depth):
            a = jnp.tanh(nn.Dense(self.width, kernel_init=nn.initializers.orthogonal(np.sqrt(2)))(a))
            c = jnp.tanh(nn.Dense(self.width, kernel_init=nn.initializers.orthogonal(np.sqrt(2)))(c))
        logits = nn.Dense(self.num_actions, kernel_init=nn.initializers.orthogonal(0.01))(a)
        value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))(c)
        return logits, value[:, 0]


class RefState(NamedTuple):
    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    bank: Any
    rng: jax.Array


class RefTransition(NamedTuple):
    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array


def make_reference(env: Env, env_params: Any, cfg: PPOConfig):
    """A single-network PPO update in purejaxrl's shape (env reward, reset-bank resets)."""
    net = RefActorCritic(env.num_actions, cfg.width, cfg.depth)
    tx = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.lr, eps=1e-5))
    n = cfg.num_envs

    def init(key):
        k_net, k_bank = jax.random.split(key)
        params = net.init(k_net, jnp.zeros((1,) + tuple(env.obs_shape)))
        bank = make_reset_bank(env, k_bank, env_params, 2 * n)
        state = jax.tree.map(lambda x: x[:n], bank.state)
        return RefState(params, tx.init(params), state, bank.obs[:n], bank, key)

    def loss_fn(params, batch, adv, targets):
        logits, value = net.apply(params, batch.obs)
        logp_all = jax.nn.log_softmax(logits)
        logp = jnp.take_along_axis(logp_all, batch.action[:, None], 1)[:, 0]
        ratio = jnp.exp(logp - batch.log_prob)
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        pg = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv).mean()
        v_clip = batch.value + jnp.clip(value - batch.value, -cfg.clip_eps, cfg.clip_eps)
        vl = 0.5 * jnp.maximum(jnp.square(value - targets), jnp.square(v_clip - targets)).mean()
        ent = -jnp.sum(jnp.exp(logp_all) * logp_all, -1).mean()
        return pg + cfg.vf_coef * vl - cfg.ent_coef * ent

    def update(s: RefState):
        rng, k_bank, k_roll, k_ep = jax.random.split(s.rng, 4)
        bank = refresh_bank(env, k_bank, env_params, s.bank, max(1, n // 4))

        def step(carry, _):
            params, env_state, obs, bank, key = carry
            key, k_a, k_e = jax.random.split(key, 3)
            logits, value = net.apply(params, obs)
            action = jax.random.categorical(k_a, logits)
            logp = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], 1)[:, 0]
            out = jax.vmap(env.step, in_axes=(0, 0, 0, None))(jax.random.split(k_e, n), env_state, action, env_params)
            obs2, state2, bank = reset_done(bank, out.done, out.obs, out.state)
            return (params, state2, obs2, bank, key), RefTransition(obs, action, logp, value, out.reward, out.done)

        (_, env_state, obs, bank, _), traj = jax.lax.scan(step, (s.params, s.env_state, s.obs, bank, k_roll), None,
                                                          cfg.num_steps)
        _, last_value = net.apply(s.params, obs)
        adv, targets = compute_gae(traj.value, traj.reward, traj.done, last_value, cfg.gamma, cfg.gae_lambda)

        def mb_step(carry, mb):
            params, opt_state = carry
            grads = jax.grad(loss_fn)(params, *mb)
            upd, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, upd), opt_state), None

        def epoch(carry, key):
            flat = jax.tree.map(lambda x: x.reshape((cfg.batch_size,) + x.shape[2:]), (traj, adv, targets))
            perm = jax.random.permutation(key, cfg.batch_size)
            mbs = jax.tree.map(lambda x: x[perm].reshape((cfg.num_minibatches, -1) + x.shape[1:]), flat)
            return jax.lax.scan(mb_step, carry, mbs)[0], None

        (params, opt_state), _ = jax.lax.scan(epoch, (s.params, s.opt_state),
                                              jax.random.split(k_ep, cfg.update_epochs))
        return RefState(params, opt_state, env_state, obs, bank, rng), traj.reward.mean()

    return init, update


# --------------------------------------------------------------------------- PPO benchmark


def moe_ppo(env: Env, env_params: Any, cfg: PPOConfig, k: int):
    """(state, compiled one-update fn) for a K-step plan with one expert per step."""
    specs = {f"Wood_{i}": SkillSpec(f"Wood_{i}", gains={"wood": 1}) for i in range(k)}
    plan = [PlanStep(f"Wood_{i}", 1) for i in range(k)]
    experts = {f"Wood_{i}": i for i in range(k)}
    compiled = compile_for_env(env, plan, specs, experts)
    net = MoEActorCritic(k, env.num_actions, cfg.width, cfg.depth, cfg.block_size)
    tx = make_optimizer(cfg)
    state = init_state(env, env_params, compiled, net, tx, cfg, k)
    update = make_update_fn(env, env_params, compiled, net, tx, cfg, k, max(1, cfg.num_envs // 4))
    return state, make_chunk_fn(update, 1).lower(state).compile()


def bench_ppo(env: Env, env_params: Any, cfg: PPOConfig, ks: list[int], rounds: int) -> None:
    print(f"\n== PPO steps/s on {env.name}: {cfg.num_envs} envs x {cfg.num_steps} steps, "
          f"{cfg.depth} x {cfg.width} nets, {cfg.update_epochs} epochs x {cfg.num_minibatches} minibatches ==")
    runners: dict[str, Callable[[], Any]] = {}
    t0 = time.perf_counter()
    init, update = make_reference(env, env_params, cfg)
    ref_state = [jax.jit(init)(jax.random.PRNGKey(0))]
    ref_update = jax.jit(update).lower(ref_state[0]).compile()
    print(f"reference compiled in {time.perf_counter() - t0:.1f}s")

    def run_ref():
        ref_state[0], r = ref_update(ref_state[0])
        return r

    runners["reference"] = run_ref
    for k in ks:
        t0 = time.perf_counter()
        state, fn = moe_ppo(env, env_params, cfg, k)
        box = [state]

        def run(box=box, fn=fn):
            box[0], m = fn(box[0])
            return m["acted"]

        runners[f"moe K={k}"] = run
        print(f"moe K={k} compiled in {time.perf_counter() - t0:.1f}s")
    for fn in runners.values():  # warm up: first calls, and let routing spread over plan steps
        for _ in range(2):
            jax.block_until_ready(fn())
    best = interleaved_best(runners, rounds)
    ref = best["reference"]
    for name, t in best.items():
        print(f"{name:>12}: {cfg.batch_size / t:9,.0f} steps/s  ({ref / t:.2f}x reference)")


def bench_frontier(env: Env, env_params: Any, cfg: PPOConfig, k: int, rounds: int) -> None:
    """What frontier resets cost per env step: off, last_step and failed_step (p = 0.5) side by side.
    Both modes copy whole env states (a Craftax state holds its 64 x 64 map): the ring buffer
    scatters the states that enter the last step, the retry points overwrite each env's own."""
    print(f"\n== frontier resets' cost on {env.name}: K = {k} plan steps, {cfg.num_envs} envs x {cfg.num_steps} steps ==")
    runners: dict[str, Callable[[], Any]] = {}
    for name, extra in (("off", {}), ("last_step", {"frontier_reset_prob": 0.5}),
                        ("failed_step", {"frontier_reset_prob": 0.5, "frontier_from": "failed_step"})):
        t0 = time.perf_counter()
        state, fn = moe_ppo(env, env_params, dataclasses.replace(cfg, **extra), k)
        box = [state]

        def run(box=box, fn=fn):
            box[0], m = fn(box[0])
            return m["acted"]

        runners[name] = run
        print(f"{name} compiled in {time.perf_counter() - t0:.1f}s")
    for fn in runners.values():
        for _ in range(2):
            jax.block_until_ready(fn())
    best = interleaved_best(runners, rounds)
    for name, t in best.items():
        print(f"{name:>12}: {cfg.batch_size / t:9,.0f} steps/s  ({best['off'] / t:.2f}x off)")


# --------------------------------------------------------------------------- network benchmark


def bench_net(ks: list[int], obs: int, width: int, depth: int, actions: int, batch: int, rounds: int) -> None:
    print(f"\n== MoE network alone: {obs} inputs, {depth} x {width} actor + critic, {actions} actions, "
          f"batch {batch} ==")
    x = jax.random.normal(jax.random.PRNGKey(1), (batch, obs))
    act = jax.random.randint(jax.random.PRNGKey(3), (batch,), 0, actions)
    tx = optax.chain(clip_by_expert_norm(1.0), optax.adam(1e-4, eps=1e-5))

    def ppo_shaped_loss(params, apply, idx):
        logits, value = apply(params, x, idx)
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits), act[:, None], 1)[:, 0]
        return -jnp.mean(logp) + 0.5 * jnp.mean(jnp.square(value - 1.0))

    fns: dict[str, Callable[[], Any]] = {}
    ref = RefActorCritic(actions, width, depth)
    ref_params = ref.init(jax.random.PRNGKey(0), x[:1])
    ref_tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-4, eps=1e-5))
    ref_apply = lambda p, x, idx: ref.apply(p, x)  # noqa: E731

    def add(name, params, apply, tx, idx):
        opt_state = tx.init(params)
        fwd = jax.jit(lambda p, i: apply(p, x, i))

        @jax.jit
        def train_step(p, o, i):
            grads = jax.grad(ppo_shaped_loss)(p, apply, i)
            upd, o = tx.update(grads, o, p)
            return optax.apply_updates(p, upd), o

        box = [params, opt_state]

        def run_train():
            box[0], box[1] = train_step(box[0], box[1], idx)
            return box[0]

        fns[f"{name} fwd"] = lambda: fwd(params, idx)
        fns[f"{name} train"] = run_train

    add("single MLP", ref_params, ref_apply, ref_tx, jnp.zeros((batch,), jnp.int32))
    for k in ks:
        net = MoEActorCritic(k, actions, width, depth)
        params = {"params": init_moe_params(jax.random.PRNGKey(0), k, obs, actions, width, depth)}
        uniform = jax.random.randint(jax.random.PRNGKey(2), (batch,), 0, k)
        add(f"K={k} uniform", params, net.apply, tx, uniform)
        if k > 1:
            add(f"K={k} skewed", params, net.apply, tx, jnp.zeros((batch,), jnp.int32))
    t0 = time.perf_counter()
    for fn in fns.values():
        jax.block_until_ready(fn())
    print(f"compiled all variants in {time.perf_counter() - t0:.1f}s")
    best = interleaved_best(fns, rounds)
    base = {"fwd": best["single MLP fwd"], "train": best["single MLP train"]}
    for name, t in best.items():
        kind = name.rsplit(" ", 1)[1]
        print(f"{name:>22}: {batch / t:9,.0f} samples/s  ({t / base[kind]:.2f}x single MLP time per sample)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["all", "ppo", "net", "frontier"], default="all")
    p.add_argument("--env", default="gridworld",
                   help="gridworld, corridor, or any registered env (e.g. Craftax-Classic-Symbolic-v1)")
    p.add_argument("--gpu", action="store_true", help="fail unless JAX runs on a GPU")
    p.add_argument("--ks", default="1,2,4,8")
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--num-steps", type=int, default=32)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--net-batch", type=int, default=2048)
    p.add_argument("--net-width", type=int, default=512)
    p.add_argument("--net-rounds", type=int, default=6)
    args = p.parse_args(argv)
    ks = [int(k) for k in args.ks.split(",")]
    print(device_line(args.gpu))
    if args.part in ("all", "ppo", "frontier"):
        if args.env == "corridor":
            from tests.support.corridor import Corridor
            env: Env = Corridor()
            env_params = env.default_params
        else:
            from flowrl_core.envs import make_env_and_params

            env, env_params = make_env_and_params(args.env)
        cfg = PPOConfig.cpu_profile(num_envs=args.num_envs, num_steps=args.num_steps, width=args.width,
                                    depth=args.depth, anneal_lr=False)
        if args.part == "frontier":
            bench_frontier(env, env_params, cfg, max(ks), args.rounds)
        else:
            bench_ppo(env, env_params, cfg, ks, args.rounds)
    if args.part in ("all", "net"):
        bench_net(ks, 1345, args.net_width, args.depth, 17, args.net_batch, args.net_rounds)  # Craftax-Classic sizes


if __name__ == "__main__":
    main()
