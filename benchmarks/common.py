"""What every benchmark does alike: say which device it measured on, and refuse a silent CPU run.

A GPU figure recorded from a run that quietly fell back to the CPU (no CUDA jaxlib, a hidden
device) would be worse than none, so ``--gpu`` makes the absence of a GPU an error.
"""

from __future__ import annotations

import jax


def device_line(want_gpu: bool = False) -> str:
    """``jax <version> on <platform> (<device kind>)``; raises SystemExit when a GPU was asked for and is absent."""
    device = jax.devices()[0]
    if want_gpu and device.platform != "gpu":
        raise SystemExit(f"--gpu: JAX sees no GPU (first device: {device.platform}); install a CUDA jaxlib "
                         "(pip install 'jax[cuda12]') and check CUDA_VISIBLE_DEVICES")
    return f"jax {jax.__version__} on {device.platform} ({getattr(device, 'device_kind', '?')})"


def env_sizes(name: str, options: dict | None = None) -> tuple[int, int]:
    """(flattened observation size, number of actions) of a registered environment."""
    import math

    from flowrl_core.envs import make_env_and_params

    env, _ = make_env_and_params(name, options)
    return math.prod(env.obs_shape), env.num_actions
