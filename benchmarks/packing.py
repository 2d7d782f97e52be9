"""How many trainings fit on one GPU: the memory estimate per skill and what packing makes of it.

For each environment size (Craftax-Classic-Symbolic: 1345 inputs, 17 actions; the gridworld: 556
inputs, 16 actions) and each number of experts K, this compiles the trainer's real update at the
profile's config (flowrl_core/training/memory.py) and prints XLA's figures — the state (the
update's argument), its output, the temps, the reset bank's generation — beside a size model
written without XLA, the estimate's total, how long the estimate took, and how many such
trainings packing puts on an 80 GB and a 141 GB GPU (budget = capacity less the 10 % margin;
each training counts its device bytes plus the GPU process overhead, PROCESS_OVERHEAD["gpu"]).

XLA's buffer sizes are the backend's: run it on a GPU for GPU figures.  ``--measure`` also runs
one update and reads the allocator's peak (GPU only: the CPU backend reports none).

    python -m benchmarks.packing                              # both envs, K = 1 4 8, default profile
    python -m benchmarks.packing --envs gridworld --k 2 --profile cpu
    python -m benchmarks.packing --gpu --measure              # on a GPU: estimate vs measured peak
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax

from benchmarks.common import device_line
from flowrl_core.envs import make_env_and_params
from flowrl_core.scheduling.devices import fit_count
from flowrl_core.skills.spec import PlanStep, SkillSpec
from flowrl_core.training.config import base_config
from flowrl_core.training.memory import PROCESS_OVERHEAD, analytic_step_bytes, estimate_training, measure_peak

ITEMS = ("wood", "stone", "coal", "iron", "diamond", "sapling", "wood_pickaxe", "stone_pickaxe")
GPUS = {"80 GB": 80 * 10**9, "141 GB": 141 * 10**9}
MB = 1e6


def plan_of(k: int) -> tuple[list[PlanStep], dict[str, SkillSpec], dict[str, int]]:
    """A k-step plan of distinct collecting skills: K experts, one per step."""
    if not 1 <= k <= len(ITEMS):
        raise SystemExit(f"--k must be in 1..{len(ITEMS)}")
    names = [f"Collect_{item}" for item in ITEMS[:k]]
    specs = {n: SkillSpec(n, gains={item: 1}) for n, item in zip(names, ITEMS)}
    return [PlanStep(n, 1) for n in names], specs, {n: i for i, n in enumerate(names)}


def measure_update(env, params, plan, specs, experts, config) -> int | None:
    """Run one update of the real trainer and return the device allocator's peak (None on CPU)."""
    from flowrl_core.training.ppo import build_training, chunk_size, init_state, make_chunk_fn, make_update_fn

    k, compiled, net, tx, refresh = build_training(env, plan, specs, experts, config)
    state = init_state(env, params, compiled, net, tx, config, k)
    update = make_chunk_fn(make_update_fn(env, params, compiled, net, tx, config, k, refresh),
                           max(1, chunk_size(config, 0)))
    jax.block_until_ready(update(state))
    return measure_peak().peak_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["Craftax-Classic-Symbolic-v1", "gridworld"])
    parser.add_argument("--k", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--profile", default="default", help="training profile (default: the reference GPU config)")
    parser.add_argument("--num-envs", type=int, help="override the profile's num_envs")
    parser.add_argument("--width", type=int, help="override the profile's width")
    parser.add_argument("--measure", action="store_true", help="also run one update and read the device's peak")
    parser.add_argument("--gpu", action="store_true", help="fail unless JAX runs on a GPU")
    args = parser.parse_args()
    device = device_line(args.gpu)
    overrides = {k: v for k, v in (("num_envs", args.num_envs), ("width", args.width)) if v is not None}
    config = base_config(args.profile)
    config = dataclasses.replace(config, total_timesteps=10**9, **overrides)
    gpu_overhead = PROCESS_OVERHEAD["gpu"]
    print(f"{device}; profile {args.profile}: {config.num_envs} envs x {config.num_steps} steps, "
          f"{config.depth} x {config.width} actor and critic per expert, {config.num_minibatches} minibatches "
          f"x {config.update_epochs} epochs")
    print(f"MB = 10^6 bytes; fits: trainings per GPU at (device MB + {gpu_overhead / MB:.0f} MB GPU process "
          "overhead) under 90 % of the GPU")
    head = (f"{'env':<28} {'K':>2} {'state':>8} {'output':>8} {'temps':>8} {'rollout':>8} {'bank init':>9} "
            f"{'XLA peak':>9} {'model':>8} {'model/XLA':>9} {'device':>8} {'est. s':>7}"
            + "".join(f" {'fits ' + g:>12}" for g in GPUS) + (f" {'measured':>9} {'meas/est':>8}" if args.measure else ""))
    print(head)
    for name in args.envs:
        env, params = make_env_and_params(name)
        for k in args.k:
            plan, specs, experts = plan_of(k)
            t0 = time.perf_counter()
            est = estimate_training(env, params, plan, specs, experts, config, cache_dir=None)
            took = time.perf_counter() - t0
            p = est.parts
            model = analytic_step_bytes(p.state, p.params, p.rollout, config)
            per_gpu = est.device_bytes + gpu_overhead
            fits = [fit_count(cap, per_gpu) for cap in GPUS.values()]
            row = (f"{env.name:<28} {k:>2} {p.state / MB:>8.1f} {p.step_output / MB:>8.1f} {p.step_temp / MB:>8.1f} "
                   f"{p.rollout / MB:>8.1f} {p.init_peak / MB:>9.1f} {p.step_peak / MB:>9.1f} {model / MB:>8.1f} "
                   f"{model / p.step_peak:>9.2f} {est.device_bytes / MB:>8.1f} {took:>7.1f}"
                   + "".join(f" {n:>12}" for n in fits))
            if args.measure:
                peak = measure_update(env, params, plan, specs, experts, config)
                row += (f" {peak / MB:>9.1f} {peak / est.device_bytes:>8.2f}" if peak is not None
                        else f" {'n/a':>9} {'':>8}")
            print(row, flush=True)


if __name__ == "__main__":
    main()
