"""Corridor-v0: a tiny env implementing the protocol, for trainer tests and benchmarks.

It exists so the trainer can be tested in seconds without any real env: a 1-D corridor where
``do`` at the right end yields wood (and the ``collect_wood`` achievement) and ``do`` at the left
end with 2 wood places a table (``place_table``).  Names follow Craftax-Classic so the same
skill specs apply.  The start cell is random in the left half; the episode times out after
``max_steps``; there is no death (:class:`MortalCorridor` adds a pit, for evaluation's death causes).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from flowrl_core.envs.base import StepOut

NOOP, LEFT, RIGHT, DO = 0, 1, 2, 3
CAP = 9


class CorridorParams(NamedTuple):
    max_steps: int = 64


class CorridorState(NamedTuple):
    pos: jax.Array  # int32
    wood: jax.Array  # int32
    tables: jax.Array  # int32
    achievements: jax.Array  # bool[2]
    t: jax.Array  # int32


class Corridor:
    name = "Corridor-v0"
    item_names = ("wood", "table")
    achievement_names = ("collect_wood", "place_table")
    num_actions = 4

    def __init__(self, length: int = 8) -> None:
        self.length = int(length)
        self.obs_shape = (self.length + 3,)
        # one plan run walks at most the corridor's length, then acts: two lengths leave slack
        self.step_allowance = 2 * self.length

    @property
    def default_params(self) -> CorridorParams:
        return CorridorParams()

    def _obs(self, s: CorridorState, params: CorridorParams) -> jax.Array:
        pos = jax.nn.one_hot(s.pos, self.length)
        extra = jnp.stack([s.wood / CAP, s.tables / CAP, s.t / params.max_steps]).astype(jnp.float32)
        return jnp.concatenate([pos, extra])

    def reset(self, key: jax.Array, params: CorridorParams) -> tuple[jax.Array, CorridorState]:
        pos = jax.random.randint(key, (), 0, max(1, self.length // 2))
        z = jnp.zeros((), jnp.int32)
        s = CorridorState(pos=pos.astype(jnp.int32), wood=z, tables=z, achievements=jnp.zeros((2,), bool), t=z)
        return self._obs(s, params), s

    def step(self, key: jax.Array, state: CorridorState, action: jax.Array, params: CorridorParams) -> StepOut:
        pos = jnp.clip(state.pos + jnp.where(action == RIGHT, 1, 0) - jnp.where(action == LEFT, 1, 0),
                       0, self.length - 1)
        chop = (action == DO) & (state.pos == self.length - 1)
        place = (action == DO) & (state.pos == 0) & (state.wood >= 2)
        wood = jnp.minimum(state.wood + chop, CAP) - 2 * place
        tables = jnp.minimum(state.tables + place, CAP)
        ach = state.achievements | jnp.stack([chop, place])
        s = CorridorState(pos=pos.astype(jnp.int32), wood=wood.astype(jnp.int32), tables=tables.astype(jnp.int32),
                          achievements=ach, t=state.t + 1)
        reward = jnp.sum(ach & ~state.achievements).astype(jnp.float32)
        done = s.t >= params.max_steps
        return StepOut(self._obs(s, params), s, reward, done, {})

    def inventory(self, state: CorridorState) -> jax.Array:
        return jnp.stack([state.wood, state.tables]).astype(jnp.int32)

    def achievements(self, state: CorridorState) -> jax.Array:
        return state.achievements


class MortalCorridor(Corridor):
    """The corridor with a pit past its left wall: stepping left from the first cell kills."""

    death_causes = ("pit", "other")

    def step(self, key, state, action, params):
        out = super().step(key, state, action, params)
        fell = (action == LEFT) & (state.pos == 0)
        s = out.state._replace(pos=jnp.where(fell, -1, out.state.pos).astype(jnp.int32))
        return out._replace(state=s, done=out.done | fell)

    def is_dead(self, state):
        return state.pos < 0

    def death_cause(self, state):
        return jnp.where(state.pos < 0, 0, 1).astype(jnp.int32)

