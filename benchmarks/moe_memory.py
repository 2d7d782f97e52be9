"""Memory of a remapped MoE against a sparse one that holds max-index+1 experts.

A skill whose plan uses global experts {0, 5, 10, 50} trains a 4-expert MoE after remapping;
without remapping it would allocate 51.  This prints, for Craftax-sized experts (1345 inputs,
3 x 512 actor and critic, 17 actions): parameter bytes, parameter + Adam state bytes, and the
peak memory XLA reports for one jitted train step (value_and_grad of a PPO-shaped loss + Adam)
at minibatch 2048 — on whatever device JAX uses (CPU here; run it on a GPU for GPU figures).

    python -m benchmarks.moe_memory [--indices 0 5 10 50] [--batch 2048] [--width 512]
    python -m benchmarks.moe_memory --env gridworld          # the gridworld's inputs and actions
    python -m benchmarks.moe_memory --gpu                     # refuses to run without a GPU
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import optax

from benchmarks.common import device_line, env_sizes
from flowrl_core.skills.remap import build_remap
from flowrl_core.training.moe import init_moe_params, moe_forward


def tree_bytes(tree) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


def step_memory(num_experts: int, used: list[int], obs: int, actions: int, width: int, depth: int,
                batch: int) -> dict[str, float]:
    params = init_moe_params(jax.random.PRNGKey(0), num_experts, obs, actions, width, depth)
    tx = optax.adam(1e-4)
    opt_state = tx.init(params)
    x = jnp.zeros((batch, obs), jnp.float32)
    route = jnp.asarray([used[i % len(used)] for i in range(batch)], jnp.int32)  # only the plan's experts act

    def loss(p):
        logits, value = moe_forward(p["actor"], p["critic"], x, route)
        return jnp.mean(jax.nn.logsumexp(logits, axis=-1)) + jnp.mean(value ** 2)

    def step(p, s):
        g = jax.grad(loss)(p)
        updates, s = tx.update(g, s, p)
        return optax.apply_updates(p, updates), s

    compiled = jax.jit(step).lower(params, opt_state).compile()
    mem = compiled.memory_analysis()
    peak = None
    if mem is not None:
        peak = (getattr(mem, "argument_size_in_bytes", 0) + getattr(mem, "output_size_in_bytes", 0)
                + getattr(mem, "temp_size_in_bytes", 0))
    return {"experts": num_experts, "params_mb": tree_bytes(params) / 2**20,
            "params_adam_mb": (tree_bytes(params) + tree_bytes(opt_state)) / 2**20,
            "step_peak_mb": peak / 2**20 if peak is not None else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--indices", type=int, nargs="+", default=[0, 5, 10, 50], help="global experts of the plan")
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--obs", type=int, default=1345)
    parser.add_argument("--actions", type=int, default=17)
    parser.add_argument("--env", help="take --obs and --actions from this env (e.g. gridworld)")
    parser.add_argument("--gpu", action="store_true", help="fail unless JAX runs on a GPU")
    args = parser.parse_args()
    device = device_line(args.gpu)
    if args.env:
        args.obs, args.actions = env_sizes(args.env)
    *deps, new = args.indices
    remap = build_remap("target", new, {f"dep{g}": g for g in deps})
    local = sorted(remap.global_to_local.values())
    rows = [("remapped", step_memory(remap.num_experts, local, args.obs, args.actions, args.width, args.depth, args.batch)),
            ("sparse", step_memory(max(args.indices) + 1, sorted(args.indices), args.obs, args.actions, args.width,
                                   args.depth, args.batch))]
    print(f"{device}; plan experts {args.indices}; batch {args.batch}; {args.obs} inputs, {args.actions} actions, "
          f"{args.depth} x {args.width} actor and critic per expert")
    print(f"{'MoE':<10} {'experts':>7} {'params MB':>10} {'params+Adam MB':>15} {'train-step peak MB':>19}")
    for name, r in rows:
        print(f"{name:<10} {r['experts']:>7} {r['params_mb']:>10.1f} {r['params_adam_mb']:>15.1f} {r['step_peak_mb']:>19.1f}")
    a, b = rows[0][1], rows[1][1]
    print(f"sparse / remapped: params {b['params_mb'] / a['params_mb']:.1f}x, "
          f"train-step peak {b['step_peak_mb'] / a['step_peak_mb']:.1f}x")


if __name__ == "__main__":
    main()
