"""A trainer child that really runs out of memory when its share is too small (OOM drills).

``python -m tests.support.oom_trainer MIB``: allocates and reduces a MIB-mebibyte JAX array.
On a GPU, ``XLA_PYTHON_CLIENT_MEM_FRACTION`` caps the allocator; the CPU backend ignores it, so
this child enforces the same cap itself: ``fraction x FLOWRL_TEST_DEVICE_BYTES`` (the fake
device's capacity) of address space on top of what the process already maps, via RLIMIT_AS.
An allocation past it fails inside XLA with its real ``RESOURCE_EXHAUSTED: Out of memory``
error, which is what the fallback rule must recognise.
"""

from __future__ import annotations

import os
import resource
import sys

import jax
import jax.numpy as jnp


def main() -> None:
    mib = int(sys.argv[1])
    jnp.ones(8).block_until_ready()  # initialise the runtime before measuring what it maps
    fraction = os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION")
    if fraction:
        cap = int(float(fraction) * int(os.environ["FLOWRL_TEST_DEVICE_BYTES"]))
        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (mapped + cap, resource.RLIM_INFINITY))
    x = jnp.ones((mib, 1 << 18), jnp.float32)  # mib MiB
    print(f"sum {float(jax.device_get(x.sum()))}", flush=True)


def _ppo_or_out_of_memory(real):
    """As a plugin (``FLOWRL_PLUGINS=tests.support.oom_trainer``): the PPO trainer, except that it
    fails the way XLA does when its memory share (``XLA_PYTHON_CLIENT_MEM_FRACTION``) is below
    ``FLOWRL_TEST_OOM_BELOW_FRACTION`` — a flow-level drill of the retry-alone rule on a CPU."""

    def train(ctx):
        limit = float(os.environ.get("FLOWRL_TEST_OOM_BELOW_FRACTION", "0"))
        share = float(os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION", "1"))
        if share < limit:
            raise RuntimeError(f"RESOURCE_EXHAUSTED: Out of memory while trying to allocate (test: share {share} "
                               f"below {limit})")
        return real(ctx)

    return train


if __name__ == "__main__":
    main()
else:
    from flowrl_core.lifecycle import trainers

    trainers.TRAINERS["ppo"] = _ppo_or_out_of_memory(trainers.TRAINERS["ppo"])
