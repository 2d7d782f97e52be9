"""Plugins the CLI tests name from skill files: a predicate with the wrong signature, and a
trainer that fails at run time (after validation passed), the way a real training can."""

from __future__ import annotations

from typing import Any


def one_argument_predicate(inventory: Any) -> Any:
    return inventory


def failing_trainer(ctx: Any) -> Any:
    raise RuntimeError(f"deliberate failure training {ctx.job.skill}")


def done_when_wood(prev_inventory: Any, inventory: Any, start_inventory: Any, achievements: Any, count: Any) -> Any:
    """A valid predicate everywhere except in the trainer process, where it raises: a skill whose
    code passes validation and then fails at run time (as code can on the machine that trains)."""
    import sys

    import jax.numpy as jnp

    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", "") == "flowrl_core.lifecycle.train":
        raise RuntimeError("deliberate failure inside the trainer")
    done = inventory[0] > start_inventory[0]
    return done, jnp.float32(0.0)
