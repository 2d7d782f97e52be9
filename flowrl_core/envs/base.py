"""The environment protocol every flowrl trainer talks to.

gymnax-style and pure: ``reset(key, params)`` and ``step(key, state, action, params)`` are
jittable and vmappable (the trainer vmaps them over envs).  ``step`` does NOT auto-reset: skill
predicates must read the inventory of the terminal state before a fresh episode replaces it,
and Craftax's world generation is far too slow to pay on every step.  Resetting is the
trainer's job, through :func:`reset_done` and a bank of pre-generated start states.

Skill predicates never look at env internals: they read :meth:`Env.inventory` and
:meth:`Env.achievements`, vectors laid out in the order of ``item_names`` and
``achievement_names``.  Names follow Craftax-Classic (``wood``, ``wood_pickaxe``,
``place_table``) so one skill file serves every environment.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

PyTree = Any


class StepOut(NamedTuple):
    obs: jax.Array
    state: PyTree
    reward: jax.Array
    done: jax.Array  # the episode ended in ``state`` (death, timeout); not auto-reset
    info: dict[str, jax.Array]


@runtime_checkable
class Env(Protocol):
    """What a trainer needs from an environment (one env; the trainer vmaps)."""

    name: str
    item_names: tuple[str, ...]
    achievement_names: tuple[str, ...]
    num_actions: int
    obs_shape: tuple[int, ...]
    # Env steps one plan run (one skill execution) may take: the default step budget of a skill is
    # this times the runs in its plan (flowrl_core.training.budget).  Measured per env, see there.
    step_allowance: int

    @property
    def default_params(self) -> PyTree: ...

    def reset(self, key: jax.Array, params: PyTree) -> tuple[jax.Array, PyTree]: ...

    def step(self, key: jax.Array, state: PyTree, action: jax.Array, params: PyTree) -> StepOut: ...

    def inventory(self, state: PyTree) -> jax.Array:
        """int32[len(item_names)]: current counts."""
        ...

    def achievements(self, state: PyTree) -> jax.Array:
        """bool[len(achievement_names)]: unlocked so far in this episode."""
        ...


# Optional, read by flowrl_core.evaluation (and the trainer) when present (episode traces get richer):
#   action_names: tuple[str, ...]                 -- names of the actions, by id
#   block_names: tuple[str, ...]                  -- names of the world's block types
#   nearby_blocks(state) -> bool[len(block_names)] -- block types around the agent (crafting range)
#   visible_blocks(state) -> bool[len(block_names)] -- block types in the agent's view (``view:`` keys)
#   is_dead(state) -> bool                        -- the episode ended by death (vs. the env's horizon)
#   death_causes: tuple[str, ...]                 -- names of what can kill the agent, with
#   death_cause(state) -> int32                   -- the likeliest one for a dead ``state`` (an index)
#   vitals(state) -> float32[V]                   -- health first, then food, drink...: what the
#                                                    trainer's survival_shaping weighs (training.survival)


class ResetBank(NamedTuple):
    """A pool of pre-generated start states, so resets cost a gather, not world generation."""

    obs: jax.Array  # [B, *obs_shape]
    state: PyTree  # leaves [B, ...]
    cursor: jax.Array  # int32 scalar: next bank slot to hand out


def make_reset_bank(env: Env, key: jax.Array, params: PyTree, size: int) -> ResetBank:
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, size), params)
    return ResetBank(obs=obs, state=state, cursor=jnp.zeros((), jnp.int32))


def reset_done(bank: ResetBank, done: jax.Array, obs: jax.Array, state: PyTree) -> tuple[jax.Array, PyTree, ResetBank]:
    """Replace the envs where ``done`` with distinct start states from ``bank``.

    Each finished env takes the next bank slot (cumsum over ``done``), so two envs finishing in
    the same step do not start in the same world.  Refresh the bank between rollouts with
    :func:`refresh_bank` to keep start worlds diverse.
    """
    size = bank.obs.shape[0]
    slot = (bank.cursor + jnp.cumsum(done.astype(jnp.int32)) - 1) % size
    pick = lambda fresh, cur: jnp.where(  # noqa: E731
        done.reshape(done.shape + (1,) * (cur.ndim - 1)), fresh[slot], cur
    )
    new_obs = pick(bank.obs, obs)
    new_state = jax.tree.map(pick, bank.state, state)
    cursor = (bank.cursor + done.sum().astype(jnp.int32)) % size
    return new_obs, new_state, bank._replace(cursor=cursor)


def refresh_bank(env: Env, key: jax.Array, params: PyTree, bank: ResetBank, count: int) -> ResetBank:
    """Regenerate ``count`` bank slots starting at the cursor (amortises world generation)."""
    size = bank.obs.shape[0]
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, count), params)
    idx = (bank.cursor + jnp.arange(count)) % size
    new_obs = bank.obs.at[idx].set(obs)
    new_state = jax.tree.map(lambda b, s: b.at[idx].set(s), bank.state, state)
    return bank._replace(obs=new_obs, state=new_state)
