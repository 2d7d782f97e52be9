"""Staying alive as part of the reward (``survival_shaping``).

A plan's predicates reward only its own steps, and nothing in a Craftax tech-tree plan eats,
drinks or avoids lava: deep plans (iron, diamonds) die on the way, and a death costs the expert
nothing but the rewards it did not reach.  The reference system adds a *health penalty* to every
step's reward for that reason; this is the same idea with one weight:

    reward += w * (Δhealth + Δfood + Δdrink),   health counted as 0 after a death,

so a death costs ``w`` × the health the agent had (lava kills at full health and is priced
as such), a hit by a zombie costs ``w`` per point, and drinking or eating when low earns what
the clock takes away.  Energy is left out on purpose (see ``CraftaxEnv.vitals``: paying for it
paid for sleeping among zombies).  The env reports these through an optional ``vitals(state)``
(health first) and ``is_dead(state)``; an env without vitals cannot be shaped, which
:func:`check_survival` says before training starts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from flowrl_core.training.config import ConfigError


def died(env: object, state: object) -> jax.Array:
    """The env's ``is_dead(state)`` (one env), False for an env that cannot die."""
    fn = getattr(env, "is_dead", None)
    return jnp.asarray(fn(state), jnp.bool_) if fn is not None else jnp.zeros((), jnp.bool_)


def cause_of_death(env: object, state: object) -> jax.Array:
    """int32 index into ``env.death_causes`` for a dead ``state`` (one env); -1 where the env
    cannot tell causes apart."""
    fn = getattr(env, "death_cause", None)
    return jnp.asarray(fn(state), jnp.int32) if fn is not None else jnp.asarray(-1, jnp.int32)


def survival_reward(prev_vitals: jax.Array, vitals: jax.Array, dead: jax.Array, weight: float) -> jax.Array:
    """float32[...]: ``weight`` × the change of the vitals over one step (last axis: health
    first), with the health after a death counted as 0."""
    after = vitals.at[..., 0].set(jnp.where(dead, 0.0, vitals[..., 0]))
    return (weight * jnp.sum(after - prev_vitals, axis=-1)).astype(jnp.float32)


def check_survival(env: object, weight: float, skill: str | None = None) -> None:
    """Refuse ``survival_shaping`` on an env that has no vitals, before anything trains."""
    if weight > 0 and not hasattr(env, "vitals"):
        who = f"skill {skill!r}: " if skill else ""
        raise ConfigError(
            f"{who}survival_shaping={weight} needs an env that reports health (vitals); {getattr(env, 'name', env)!r} "
            "has none. Fix: drop survival_shaping from the skill's train: map or --set, or use a Craftax env.")
