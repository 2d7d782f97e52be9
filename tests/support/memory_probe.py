"""Independent check of a memory estimate: run the trainer's update and watch the resident set.

``python -m tests.support.memory_probe '{"num_envs": 512, ...}' K CACHE_DIR`` (gridworld, K
experts): estimate the training — which also fills JAX's persistent compilation cache, so the
update compiled next is loaded, not compiled again — then build the trainer's state and update
exactly as ``train()`` does, and execute the update once while a thread samples
``/proc/self/statm`` every 0.5 ms.  The peak resident set above the one just before the call is
what that execution allocated (outputs + temps), as the kernel counts it, not XLA; on CPU the
device *is* host memory.  Only the first execution is measured: later ones reuse memory the
allocator kept.  Prints one JSON document.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import time

import jax

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def main() -> None:
    overrides, k, cache = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    from flowrl_core.envs import make_env_and_params
    from flowrl_core.skills.spec import PlanStep, SkillSpec
    from flowrl_core.training.config import PPOConfig
    from flowrl_core.training.memory import estimate_training, tree_bytes
    from flowrl_core.training.ppo import build_training, chunk_size, init_state, make_chunk_fn, make_update_fn

    env, params = make_env_and_params("gridworld")
    names = ["Collect_Wood", "Collect_Sapling", "Collect_Stone", "Collect_Coal"][:k]
    items = ["wood", "sapling", "stone", "coal"]
    specs = {n: SkillSpec(n, gains={items[i]: 1}) for i, n in enumerate(names)}
    plan = [PlanStep(n, 1) for n in names]
    experts = {n: i for i, n in enumerate(names)}
    config = PPOConfig.tiny_profile(**{"total_timesteps": 10**7, **overrides})
    estimate = estimate_training(env, params, plan, specs, experts, config, cache_dir=None)

    k_, compiled_plan, net, tx, refresh, max_steps = build_training(env, plan, specs, experts, config)
    state = init_state(env, params, compiled_plan, net, tx, config, k_)
    update = make_update_fn(env, params, compiled_plan, net, tx, config, k_, refresh, max_steps)
    t0 = time.perf_counter()
    step = make_chunk_fn(update, chunk_size(config, 0)).lower(state).compile()
    load_s = time.perf_counter() - t0
    jax.block_until_ready(state)
    gc.collect()

    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.0005)

    base = rss()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    jax.block_until_ready(step(state))
    stop.set()
    thread.join()
    print(json.dumps({"estimate": estimate.to_dict(), "state_bytes": tree_bytes(state),
                      "rss_delta": max(peak[0], rss()) - base, "second_compile_s": load_s}))


if __name__ == "__main__":
    main()
