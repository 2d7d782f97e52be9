"""Adapter from the ``craftax`` package to the flowrl :class:`~flowrl_core.envs.base.Env` protocol.

``craftax`` is an optional extra (``pip install flowrl[craftax]``): importing it costs ~2 s and
pulls in matplotlib, so it is imported only when a :class:`CraftaxEnv` is built.

What the adapter adds on top of craftax's own ``NoAutoReset`` envs:

* it calls ``reset_env``/``step_env`` directly: craftax's ``reset``/``step`` wrap them in a
  ``jit`` keyed on ``self`` and substitute default params for ``None``, which we never want
  inside the trainer's own ``jit``;
* it strips weak types from every state leaf.  Craftax-Classic's ``reset`` returns a weakly
  typed ``player_direction`` while ``step`` returns it strongly typed, so a rollout called from
  Python a second time silently recompiles (15-30 s here; see perf_anchors.md section 2);
* it exposes inventory and achievements under the Craftax-Classic names shared by every flowrl
  env, so one skill file serves Gridworld, Craftax-Classic and Craftax.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from flowrl_core.envs.base import StepOut
from flowrl_core.envs.gridworld import ITEM_NAMES as CLASSIC_ITEM_NAMES

PyTree = Any

CRAFTAX_ENV_NAMES: tuple[str, ...] = ("Craftax-Classic-Symbolic-v1", "Craftax-Symbolic-v1")

_ENV_CLASSES = {  # name -> (module, NoAutoReset class, constants module, renderer module)
    "Craftax-Classic-Symbolic-v1": (
        "craftax.craftax_classic.envs.craftax_symbolic_env",
        "CraftaxClassicSymbolicEnvNoAutoReset",
        "craftax.craftax_classic.constants",
        "craftax.craftax_classic.renderer",
    ),
    "Craftax-Symbolic-v1": (
        "craftax.craftax.envs.craftax_symbolic_env",
        "CraftaxSymbolicEnvNoAutoReset",
        "craftax.craftax.constants",
        "craftax.craftax.renderer",
    ),
}
_RENDERER_LOCK = threading.Lock()


def _pixel_renderer(renderer_module: str, constants_module: str, block_px: int) -> Callable[[Any], jax.Array]:
    """Craftax's own pixel renderer, with its textures built from the PNG assets it ships.

    ``make_craftax_pixel_renderer`` takes its textures from ``load_all_textures()``, which
    unpickles a texture cache in site-packages, or builds all three sizes (about a minute) and
    writes that pickle first.  flowrl loads no pickles, so we build the one size we draw (a few
    seconds) and hand it to the renderer for the moment it is constructed.
    """
    renderer = _import_craftax(renderer_module)
    textures = _import_craftax(constants_module).load_all_textures_given_size(block_px)
    with _RENDERER_LOCK:
        original = renderer.load_all_textures
        renderer.load_all_textures = lambda: {block_px: textures}
        try:
            return renderer.make_craftax_pixel_renderer(block_px)
        finally:
            renderer.load_all_textures = original

_LEVELS = ("wood", "stone", "iron", "diamond")  # full Craftax stores tools as a level 1-4
_POTIONS = ("red", "green", "blue", "pink", "cyan", "yellow")  # order of inventory.potions
FULL_EXTRA_ITEMS: tuple[str, ...] = (
    "diamond_pickaxe", "diamond_sword", "bow", "arrows", "torches", "ruby", "sapphire", "books",
    "iron_armour", "diamond_armour", *(f"potion_{c}" for c in _POTIONS),
)  # fmt: skip


def _import_craftax(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        if err.name is not None and err.name.split(".")[0] != "craftax":
            raise
        raise ImportError(
            "Craftax environments need the optional 'craftax' package: "
            "install flowrl[craftax] (pip install 'flowrl[craftax]')"
        ) from err


def _strong(x: Any) -> Any:
    """Drop weak typing (and Python scalars) so reset and step states have identical types."""
    x = jnp.asarray(x)
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return x
    return jax.lax.convert_element_type(x, x.dtype)


def _classic_inventory(inv: Any) -> list[jax.Array]:
    return [getattr(inv, name) for name in CLASSIC_ITEM_NAMES]


def _full_inventory(inv: Any) -> list[jax.Array]:
    """Full Craftax keeps one pickaxe/sword *level*; owning a better tool counts as owning the
    lesser ones too, as in Craftax-Classic where crafting a stone pickaxe keeps the wood one."""
    counts: dict[str, jax.Array] = {
        name: getattr(inv, name) for name in ("wood", "stone", "coal", "iron", "diamond", "sapling")
    }
    for level, material in enumerate(_LEVELS, start=1):
        counts[f"{material}_pickaxe"] = (inv.pickaxe >= level).astype(jnp.int32)
        counts[f"{material}_sword"] = (inv.sword >= level).astype(jnp.int32)
    for name in ("bow", "arrows", "torches", "ruby", "sapphire", "books"):
        counts[name] = getattr(inv, name)
    counts["iron_armour"] = (inv.armour >= 1).sum(axis=-1)
    counts["diamond_armour"] = (inv.armour >= 2).sum(axis=-1)
    for i, colour in enumerate(_POTIONS):
        counts[f"potion_{colour}"] = inv.potions[..., i]
    return [counts[name] for name in CLASSIC_ITEM_NAMES + FULL_EXTRA_ITEMS]


# What can kill the agent besides lava and attackers (death_cause checks attackers first).
_NEEDS = (("thirst", "player_drink"), ("hunger", "player_food"), ("fatigue", "player_energy"))
# (cause, state field, reach in L1 steps): a zombie strikes from an adjacent cell; a skeleton
# shoots from 4-5 cells (or closer when cornered), so an arrow death has its skeleton within 6.
_CLASSIC_ATTACKERS = (("zombie", "zombies", 1), ("skeleton", "skeletons", 6))
_FULL_ATTACKERS = (("melee_mob", "melee_mobs", 1), ("ranged_mob", "ranged_mobs", 6))


class CraftaxEnv:
    """A Craftax symbolic env behind the flowrl protocol (step never auto-resets)."""

    # Env steps one plan run may take (a skill's default step budget is this x its plan's runs;
    # flowrl_core.training.budget).  Measured on Craftax-Classic (256 fresh episodes): within 50
    # steps a uniform random policy collects wood in 21.5 % of episodes, within 150 places a table
    # in 6.6 % (and dies in 59 %); a trained Make_Stone_Pickaxe (8 runs) took ~87 steps, so 50 per
    # run leaves room for the exploration iron and diamonds need.  The 10,000-step horizon is no
    # budget: a random policy "succeeds" at the first skills if it only has to survive long enough.
    step_allowance = 50

    def __init__(self, name: str = "Craftax-Classic-Symbolic-v1") -> None:
        if name not in _ENV_CLASSES:
            raise ValueError(f"unknown Craftax env {name!r}; expected one of {CRAFTAX_ENV_NAMES}")
        module, cls_name, constants, self._renderer_module = _ENV_CLASSES[name]
        self._constants_module = constants
        self._render_fn: Callable[[Any], jax.Array] | None = None
        self._env = getattr(_import_craftax(module), cls_name)()
        self.name = name
        self.classic = name.startswith("Craftax-Classic")
        achievement_enum = _import_craftax(constants).Achievement
        by_index = {a.value: a.name.lower() for a in achievement_enum}
        if sorted(by_index) != list(range(len(by_index))):
            raise RuntimeError(f"{name}: achievement indices are not 0..n-1: {sorted(by_index)}")
        self.achievement_names: tuple[str, ...] = tuple(by_index[i] for i in range(len(by_index)))
        if self.classic:
            self.item_names: tuple[str, ...] = CLASSIC_ITEM_NAMES
            self._inventory_fields: Callable[[Any], list[jax.Array]] = _classic_inventory
        else:
            self.item_names = CLASSIC_ITEM_NAMES + FULL_EXTRA_ITEMS
            self._inventory_fields = _full_inventory
        self.num_actions: int = int(self._env.num_actions)
        self.obs_shape: tuple[int, ...] = tuple(self._env.observation_space(self.default_params).shape)
        consts = _import_craftax(constants)
        self.action_names: tuple[str, ...] = tuple(a.name.lower() for a in sorted(consts.Action, key=lambda a: a.value))
        self.block_names: tuple[str, ...] = tuple(b.name.lower() for b in sorted(consts.BlockType,
                                                                              key=lambda b: b.value))
        self._close_blocks = consts.CLOSE_BLOCKS if hasattr(consts, "CLOSE_BLOCKS") else None
        half = np.asarray(consts.OBS_DIM) // 2  # the symbolic observation's local view, centred on the agent
        self._view_offsets = np.stack(np.meshgrid(np.arange(-half[0], half[0] + 1), np.arange(-half[1], half[1] + 1),
                                                  indexing="ij"), -1).reshape(-1, 2).astype(np.int32)
        self._lava = int(consts.BlockType.LAVA.value)
        self._attackers = _CLASSIC_ATTACKERS if self.classic else _FULL_ATTACKERS
        self.death_causes: tuple[str, ...] = (("lava",) + tuple(n for n, _, _ in self._attackers)
                                              + tuple(n for n, _ in _NEEDS) + ("other",))

    def __repr__(self) -> str:
        return f"CraftaxEnv({self.name!r})"

    @property
    def default_params(self) -> PyTree:
        return self._env.default_params

    def reset(self, key: jax.Array, params: PyTree) -> tuple[jax.Array, PyTree]:
        obs, state = self._env.reset_env(key, params)
        return jnp.asarray(obs, jnp.float32), jax.tree.map(_strong, state)

    def step(self, key: jax.Array, state: PyTree, action: jax.Array, params: PyTree) -> StepOut:
        obs, state, reward, done, info = self._env.step_env(key, state, action, params)
        return StepOut(
            obs=jnp.asarray(obs, jnp.float32),
            state=jax.tree.map(_strong, state),
            reward=jnp.asarray(reward, jnp.float32),
            done=jnp.asarray(done, jnp.bool_),
            # Craftax's per-achievement info duplicates achievements(); keep only the discount
            # so every flowrl env returns the same info keys.
            info={"discount": jnp.asarray(info["discount"], jnp.float32)},
        )

    def inventory(self, state: PyTree) -> jax.Array:
        fields = self._inventory_fields(state.inventory)
        return jnp.stack([jnp.asarray(f, jnp.int32) for f in fields], axis=-1)

    def achievements(self, state: PyTree) -> jax.Array:
        return jnp.asarray(state.achievements, jnp.bool_)

    def _level_map(self, state: PyTree) -> jax.Array:
        return state.map if self.classic else state.map[state.player_level]

    def nearby_blocks(self, state: PyTree) -> jax.Array:
        """bool[len(block_names)]: block types within crafting range (Craftax's ``CLOSE_BLOCKS``), plus the agent's own cell."""
        offsets = jnp.concatenate([jnp.zeros((1, 2), jnp.int32), jnp.asarray(self._close_blocks, jnp.int32)])
        return self._blocks_at(state, offsets)

    def visible_blocks(self, state: PyTree) -> jax.Array:
        """bool[len(block_names)]: block types inside the observation's local view (``OBS_DIM`` around the agent)."""
        return self._blocks_at(state, jnp.asarray(self._view_offsets))

    def _blocks_at(self, state: PyTree, offsets: jax.Array) -> jax.Array:
        world = self._level_map(state)
        pos = state.player_position[None, :] + offsets
        inside = jnp.all((pos >= 0) & (pos < jnp.asarray(world.shape)), axis=-1)
        blocks = world[jnp.clip(pos[:, 0], 0, world.shape[0] - 1), jnp.clip(pos[:, 1], 0, world.shape[1] - 1)]
        types = jnp.arange(len(self.block_names))
        return jnp.any(inside[:, None] & (blocks[:, None] == types[None, :]), axis=0)

    def vitals(self, state: PyTree) -> jax.Array:
        """float32[3]: health, food, drink (what ``survival_shaping`` weighs).

        Not energy: sleeping is how energy comes back, and a sleeping agent takes 7 damage a zombie
        hit instead of 2.  Weighing energy paid experts to sleep in the open -- measured on the
        iron pickaxe (1.5M frames, weight 0.1): evaluated episodes that slept rose from 2 % to
        83 % and success fell from 0.074 to 0.016; without energy 11 % slept -- while fatigue
        killed no evaluated episode either way (docs/benchmarks.md)."""
        return jnp.stack([jnp.asarray(v, jnp.float32) for v in (state.player_health, state.player_food,
                                                                 state.player_drink)])

    def is_dead(self, state: PyTree) -> jax.Array:
        """The episode ended by death (health gone, or standing in lava), not by the horizon."""
        world = self._level_map(state)
        in_lava = world[state.player_position[0], state.player_position[1]] == self._lava
        return (state.player_health <= 0) | in_lava

    def death_cause(self, state: PyTree) -> jax.Array:
        """int32 index into :attr:`death_causes`: the likeliest cause of the death ``state`` shows.

        Craftax does not record what dealt the last point of damage, so it is read off the state
        in this order: standing in lava; an attacker in reach (a zombie or melee mob next to the
        agent, a skeleton or ranged mob within arrow range -- the arrow itself is gone once it
        hits): a hit takes 2 health at once, while a need at 0 drains one point per 15 steps;
        then a need at 0 (thirst, hunger, fatigue); else ``other``.  A thirsty agent finished by
        a zombie is a zombie death: thirst had only stopped its health from coming back."""
        world = self._level_map(state)
        checks = [world[state.player_position[0], state.player_position[1]] == self._lava]
        for _, group, reach in self._attackers:
            mobs = getattr(state, group)
            pos, mask = (mobs.position, mobs.mask) if self.classic else (mobs.position[state.player_level],
                                                                         mobs.mask[state.player_level])
            dist = jnp.sum(jnp.abs(pos - state.player_position[None, :]), axis=-1)
            checks.append(jnp.any(mask & (dist <= reach)))
        checks += [jnp.asarray(getattr(state, field)) <= 0 for _, field in _NEEDS]
        checks.append(jnp.asarray(True))
        return jnp.argmax(jnp.stack(checks)).astype(jnp.int32)

    def render(self, state: PyTree) -> jax.Array:
        """uint8[H, W, 3]: Craftax's own picture of the agent's view and inventory (16-px tiles).
        Jittable; the renderer and its textures are built on the first call, eagerly even when
        that call is being traced (texture loading goes through numpy)."""
        if self._render_fn is None:
            with jax.ensure_compile_time_eval():
                self._render_fn = _pixel_renderer(self._renderer_module, self._constants_module, 16)
        pixels = self._render_fn(state)
        return jnp.clip(jnp.round(pixels), 0, 255).astype(jnp.uint8)
