"""Gridworld-v0: a small, fast JAX gridworld with Craftax-Classic's tech tree.

Why it exists: Craftax-Classic costs ~100 us per env-step on our CPU (and 25-45 s to compile),
which makes skill-graph experiments and tests slow.  This env keeps the part of Craftax-Classic
that the skill graph cares about (items, recipes, achievements, names) and drops the rest
(health, food, day/night, mobs), so the same skill file runs here at >100k steps/s.

Rules follow ``craftax.craftax_classic.game_logic`` 1.6.1 where they exist:

* ``do`` on the facing tile: tree -> +1 wood (the tree becomes grass, as in Craftax-Classic);
  stone -> +1 stone and coal -> +1 coal (need a wood pickaxe); iron -> +1 iron (stone
  pickaxe); diamond -> +1 diamond (iron pickaxe); mined rock becomes path.  Grass yields a
  sapling with probability ``params.sapling_prob`` (0.1); water unlocks ``collect_drink``.
* placing (onto the facing tile, which must not be solid): table costs 2 wood; furnace costs
  1 stone (Craftax-Classic does NOT require a nearby table for it); stone costs 1 stone and may
  also go onto water; plant costs 1 sapling and needs grass.
* crafting needs a table among the 8 neighbours (and a furnace for iron tools):
  wood pickaxe / wood sword = 1 wood; stone pickaxe / stone sword = 1 wood + 1 stone;
  iron pickaxe / iron sword = 1 wood + 1 stone + 1 coal + 1 iron (table AND furnace).
* the inventory is capped at 9; reward = number of achievements newly unlocked this step.
* the episode ends (``done``) when ``timestep`` reaches ``params.max_steps``.  There is no
  death.  Plants never ripen, and there are no cows, zombies or skeletons, so ``eat_cow``,
  ``eat_plant``, ``defeat_*`` and ``wake_up`` stay false; they are listed so that skill files
  validate against both this env and Craftax.

The whole step is table-driven: every (action, facing tile) pair indexes small constant tables
(requirement, inventory delta, resulting tile, achievement), so one step is a handful of tiny
gathers and elementwise ops over the map, and vmaps to hundreds of envs cheaply.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from flowrl_core.envs.base import StepOut
from flowrl_core.skills.vocab import CLASSIC_ACHIEVEMENTS, CLASSIC_ITEMS

ITEM_NAMES: tuple[str, ...] = CLASSIC_ITEMS  # Craftax-Classic's inventory, in its order

# Craftax-Classic's Achievement enum, lower-cased, in its index order (so indices agree too).
ACHIEVEMENT_NAMES: tuple[str, ...] = CLASSIC_ACHIEVEMENTS

INVENTORY_CAP = 9


class Tile(IntEnum):
    GRASS = 0
    WATER = 1
    STONE = 2
    TREE = 3
    PATH = 4
    COAL = 5
    IRON = 6
    DIAMOND = 7
    TABLE = 8
    FURNACE = 9
    PLANT = 10


NUM_TILES = len(Tile)
OOB = NUM_TILES  # pseudo tile for "facing the edge of the world": nothing is allowed on it
WALKABLE = (Tile.GRASS, Tile.PATH)


class Action(IntEnum):
    """Craftax-Classic's action order without SLEEP (ids 0-5 coincide with Craftax's)."""

    NOOP = 0
    LEFT = 1
    RIGHT = 2
    UP = 3
    DOWN = 4
    DO = 5
    PLACE_STONE = 6
    PLACE_TABLE = 7
    PLACE_FURNACE = 8
    PLACE_PLANT = 9
    MAKE_WOOD_PICKAXE = 10
    MAKE_STONE_PICKAXE = 11
    MAKE_IRON_PICKAXE = 12
    MAKE_WOOD_SWORD = 13
    MAKE_STONE_SWORD = 14
    MAKE_IRON_SWORD = 15


NUM_ACTIONS = len(Action)
# (drow, dcol) per direction; directions reuse the move action ids 1-4, as Craftax does.
DIRECTIONS = np.array([[0, 0], [0, -1], [0, 1], [-1, 0], [1, 0]], dtype=np.int32)

TILE_CHARS = {
    ".": Tile.GRASS, "~": Tile.WATER, "S": Tile.STONE, "T": Tile.TREE, "_": Tile.PATH,
    "C": Tile.COAL, "I": Tile.IRON, "D": Tile.DIAMOND, "t": Tile.TABLE, "f": Tile.FURNACE,
    "p": Tile.PLANT,
}  # fmt: skip

PALETTE = np.array(
    [
        [91, 160, 64],  # grass
        [52, 110, 200],  # water
        [128, 128, 128],  # stone
        [30, 90, 30],  # tree
        [190, 170, 130],  # path
        [40, 40, 40],  # coal
        [200, 140, 100],  # iron
        [160, 240, 240],  # diamond
        [140, 90, 40],  # table
        [90, 60, 60],  # furnace
        [170, 210, 60],  # plant
    ],
    dtype=np.uint8,
)
AGENT_COLOR = np.array([230, 40, 40], dtype=np.uint8)
FACING_COLOR = np.array([255, 230, 0], dtype=np.uint8)


def _item(name: str) -> int:
    return ITEM_NAMES.index(name)


def _ach(name: str) -> int:
    return ACHIEVEMENT_NAMES.index(name)


class _Rules(NamedTuple):
    """Constant rule tables indexed by ``action * (NUM_TILES + 1) + facing_tile``."""

    tile_ok: np.ndarray  # bool[K]: the facing tile allows the action
    require: np.ndarray  # int32[K, items]: inventory must be >= this
    delta: np.ndarray  # int32[K, items]: inventory change on success
    new_tile: np.ndarray  # int8[K]: facing tile afterwards, -1 = unchanged
    achievement: np.ndarray  # int32[K]: achievement unlocked on success, -1 = none
    random_gate: np.ndarray  # bool[K]: succeeds only with probability sapling_prob
    need_table: np.ndarray  # bool[A]
    need_furnace: np.ndarray  # bool[A]


def _build_rules() -> _Rules:
    n_t, n_i = NUM_TILES + 1, len(ITEM_NAMES)
    shape = (NUM_ACTIONS, n_t)
    tile_ok = np.zeros(shape, bool)
    require = np.zeros(shape + (n_i,), np.int32)
    delta = np.zeros(shape + (n_i,), np.int32)
    new_tile = np.full(shape, -1, np.int8)
    achievement = np.full(shape, -1, np.int32)
    random_gate = np.zeros(shape, bool)
    need_table = np.zeros(NUM_ACTIONS, bool)
    need_furnace = np.zeros(NUM_ACTIONS, bool)

    tile_ok[Action.NOOP, :] = True
    for move in (Action.LEFT, Action.RIGHT, Action.UP, Action.DOWN):
        tile_ok[move, list(WALKABLE)] = True

    # do: (tile, tool needed, item gained, tile left behind, achievement)
    mining = [
        (Tile.TREE, None, "wood", Tile.GRASS, "collect_wood"),
        (Tile.STONE, "wood_pickaxe", "stone", Tile.PATH, "collect_stone"),
        (Tile.COAL, "wood_pickaxe", "coal", Tile.PATH, "collect_coal"),
        (Tile.IRON, "stone_pickaxe", "iron", Tile.PATH, "collect_iron"),
        (Tile.DIAMOND, "iron_pickaxe", "diamond", Tile.PATH, "collect_diamond"),
    ]
    for tile, tool, item, left, ach in mining:
        tile_ok[Action.DO, tile] = True
        if tool is not None:
            require[Action.DO, tile, _item(tool)] = 1
        delta[Action.DO, tile, _item(item)] = 1
        new_tile[Action.DO, tile] = left
        achievement[Action.DO, tile] = _ach(ach)
    tile_ok[Action.DO, Tile.GRASS] = True
    random_gate[Action.DO, Tile.GRASS] = True
    delta[Action.DO, Tile.GRASS, _item("sapling")] = 1
    achievement[Action.DO, Tile.GRASS] = _ach("collect_sapling")
    tile_ok[Action.DO, Tile.WATER] = True
    achievement[Action.DO, Tile.WATER] = _ach("collect_drink")

    # place: (action, allowed facing tiles, cost, tile placed, achievement)
    placing = [
        (Action.PLACE_TABLE, WALKABLE, {"wood": 2}, Tile.TABLE, "place_table"),
        (Action.PLACE_FURNACE, WALKABLE, {"stone": 1}, Tile.FURNACE, "place_furnace"),
        (Action.PLACE_STONE, WALKABLE + (Tile.WATER,), {"stone": 1}, Tile.STONE, "place_stone"),
        (Action.PLACE_PLANT, (Tile.GRASS,), {"sapling": 1}, Tile.PLANT, "place_plant"),
    ]
    for action, onto, cost, placed, ach in placing:
        for tile in onto:
            tile_ok[action, tile] = True
            new_tile[action, tile] = placed
            achievement[action, tile] = _ach(ach)
            for item, n in cost.items():
                require[action, tile, _item(item)] = n
                delta[action, tile, _item(item)] = -n

    # craft: (action, cost, item made, needs furnace)
    basic = {"wood": 1}
    stone = {"wood": 1, "stone": 1}
    iron = {"wood": 1, "stone": 1, "coal": 1, "iron": 1}
    crafting = [
        (Action.MAKE_WOOD_PICKAXE, basic, "wood_pickaxe", False),
        (Action.MAKE_STONE_PICKAXE, stone, "stone_pickaxe", False),
        (Action.MAKE_IRON_PICKAXE, iron, "iron_pickaxe", True),
        (Action.MAKE_WOOD_SWORD, basic, "wood_sword", False),
        (Action.MAKE_STONE_SWORD, stone, "stone_sword", False),
        (Action.MAKE_IRON_SWORD, iron, "iron_sword", True),
    ]
    for action, cost, made, furnace in crafting:
        tile_ok[action, :] = True  # crafting ignores the facing tile
        need_table[action] = True
        need_furnace[action] = furnace
        achievement[action, :] = _ach("make_" + made)
        for item, n in cost.items():
            require[action, :, _item(item)] = n
            delta[action, :, _item(item)] = -n
        delta[action, :, _item(made)] = 1

    k = NUM_ACTIONS * n_t
    return _Rules(
        tile_ok.reshape(k), require.reshape(k, n_i), delta.reshape(k, n_i),
        new_tile.reshape(k), achievement.reshape(k), random_gate.reshape(k),
        need_table, need_furnace,
    )  # fmt: skip


RULES = _build_rules()

RECIPES: dict[str, dict[str, int]] = {
    "place_table": {"wood": 2},
    "place_furnace": {"stone": 1},
    "place_stone": {"stone": 1},
    "place_plant": {"sapling": 1},
    "make_wood_pickaxe": {"wood": 1},
    "make_wood_sword": {"wood": 1},
    "make_stone_pickaxe": {"wood": 1, "stone": 1},
    "make_stone_sword": {"wood": 1, "stone": 1},
    "make_iron_pickaxe": {"wood": 1, "stone": 1, "coal": 1, "iron": 1},
    "make_iron_sword": {"wood": 1, "stone": 1, "coal": 1, "iron": 1},
}
"""Inventory cost per success (the same numbers as Craftax-Classic 1.6.1), for docs and tests."""


class GridParams(NamedTuple):
    """Dynamic parameters (may be traced; change them without recompiling)."""

    max_steps: int = 200
    sapling_prob: float = 0.1


class GridConfig(NamedTuple):
    """Static configuration: it fixes array shapes and the world-generation layout."""

    size: int = 9  # the world is size x size
    view: int = 7  # odd: the agent sees a view x view window centred on itself
    min_trees: int = 10  # 8 wood buy the whole tech tree (table 2 + 6 tools), plus slack
    extra_tree_prob: float = 0.1
    num_coal: int = 3
    num_iron: int = 2
    num_diamond: int = 1


class GridState(NamedTuple):
    map: jax.Array  # int8[size, size] of Tile
    pos: jax.Array  # int32[2]: (row, col)
    direction: jax.Array  # int32: facing, one of the move action ids 1-4
    inventory: jax.Array  # int32[len(ITEM_NAMES)]
    achievements: jax.Array  # bool[len(ACHIEVEMENT_NAMES)]
    timestep: jax.Array  # int32


class Gridworld:
    """Craftax-Classic-like tech tree on a tiny map; see the module docstring for the rules."""

    name = "Gridworld-v0"
    item_names = ITEM_NAMES
    achievement_names = ACHIEVEMENT_NAMES
    num_actions = NUM_ACTIONS
    action_names: tuple[str, ...] = tuple(a.name.lower() for a in Action)
    # Craftax's names, so a skill file's ``near:crafting_table`` means the same block in both envs.
    block_names: tuple[str, ...] = tuple({"table": "crafting_table"}.get(t.name.lower(), t.name.lower()) for t in Tile)

    def __init__(self, **config: int | float) -> None:
        cfg = GridConfig(**config)
        if cfg.view % 2 != 1 or cfg.view < 1:
            raise ValueError(f"view must be odd and positive, got {cfg.view}")
        if cfg.size < 6:
            raise ValueError(f"size must be at least 6, got {cfg.size}")
        self.config = cfg
        # Env steps one plan run may take (a skill's default step budget is this x its plan's runs;
        # flowrl_core.training.budget).  Measured on the default 9x9 map (benchmarks.gridworld_eval,
        # docs/benchmarks.md): trained experts take 2-4 steps per run, a uniform random policy
        # collects wood within 10 steps in ~19 % of episodes and places a table within 30 in ~2 %.
        # Walking distances grow with the map's side, so the allowance does too.
        self.step_allowance = max(10, -(-10 * cfg.size // 9))
        n, v = cfg.size, cfg.view
        self.obs_shape = (v * v * NUM_TILES + len(ITEM_NAMES) + 4 + 1,)
        # view_index[cell] lists, for an agent at flat cell index, the flat map cells in its
        # view window (-1 outside the map): the view is one gather instead of a dynamic slice.
        r, c = np.divmod(np.arange(n * n), n)
        off = np.arange(v) - v // 2
        vr = r[:, None, None] + off[None, :, None]
        vc = c[:, None, None] + off[None, None, :]
        inside = (vr >= 0) & (vr < n) & (vc >= 0) & (vc < n)
        self._view_index = np.where(inside, vr * n + vc, -1).reshape(n * n, v * v).astype(np.int32)
        # rot_index[k] permutes a flat map by k quarter turns (world generation picks one).
        grid = np.arange(n * n).reshape(n, n)
        self._rot_index = np.stack([np.rot90(grid, k).reshape(-1) for k in range(4)]).astype(np.int32)

    def __repr__(self) -> str:
        return f"Gridworld({self.config})"

    @property
    def default_params(self) -> GridParams:
        return GridParams()

    # -- world generation ---------------------------------------------------------------------

    def reset(self, key: jax.Array, params: GridParams) -> tuple[jax.Array, GridState]:
        """A random world: a mountain band (stone with coal, iron and, in its deepest row,
        diamond) along one random side, grassland with trees and a 2x2 pond elsewhere.

        Why this layout: every step of the tech tree stays reachable.  The grassland is a
        rectangle at least 3 deep, so the 2x2 pond cannot cut it in two, and trees (the only other
        grassland obstacles) turn into grass when collected; everything in the mountain can be
        mined once the matching pickaxe is made.  (For the default size 9 the mountain is 3-4
        rows deep.)
        """
        cfg = self.config
        n = cfg.size
        k_depth, k_ore, k_pond, k_tree, k_extra, k_rot, k_agent = jax.random.split(key, 7)
        rows = jnp.arange(n)[:, None] * jnp.ones((1, n), jnp.int32)
        cols = jnp.arange(n)[None, :] * jnp.ones((n, 1), jnp.int32)
        lo = max(2, round(0.3 * n))
        hi = max(lo, min(int(0.45 * n), n - 3))
        depth = jax.random.randint(k_depth, (), lo, hi + 1)
        mountain = rows < depth
        world = jnp.where(mountain, Tile.STONE, Tile.GRASS).reshape(-1)

        def pick(key: jax.Array, allowed: jax.Array, count: int) -> jax.Array:
            """Mask of ``count`` distinct random cells among ``allowed`` (Gumbel top-k)."""
            score = jnp.where(allowed.reshape(-1), jax.random.uniform(key, (n * n,)), -1.0)
            _, idx = jax.lax.top_k(score, count)
            # a compare instead of a scatter: batched scatters compile slowly on CPU
            chosen = jnp.any(jnp.arange(n * n)[:, None] == idx[None, :], axis=1)
            return chosen & allowed.reshape(-1)

        k_dia, k_iron, k_coal = jax.random.split(k_ore, 3)
        diamond = pick(k_dia, rows == 0, cfg.num_diamond)
        world = jnp.where(diamond, Tile.DIAMOND, world)
        iron = pick(k_iron, mountain.reshape(-1) & ~diamond, cfg.num_iron)
        world = jnp.where(iron, Tile.IRON, world)
        coal = pick(k_coal, (world == Tile.STONE), cfg.num_coal)
        world = jnp.where(coal, Tile.COAL, world)

        pr = jax.random.randint(k_pond, (2,), jnp.array([0, 0]), jnp.array([n - 1, n - 1]))
        pond_row = depth + pr[0] % (n - depth - 1)
        pond = (rows >= pond_row) & (rows <= pond_row + 1) & (cols >= pr[1]) & (cols <= pr[1] + 1)
        world = jnp.where(pond.reshape(-1), Tile.WATER, world)
        grass = world == Tile.GRASS
        trees = pick(k_tree, grass, cfg.min_trees)
        trees |= grass & (jax.random.uniform(k_extra, (n * n,)) < cfg.extra_tree_prob)
        world = jnp.where(trees, Tile.TREE, world)

        rot = jnp.asarray(self._rot_index)[jax.random.randint(k_rot, (), 0, 4)]
        world = world[rot].astype(jnp.int8)
        score = jnp.where(world == Tile.GRASS, jax.random.uniform(k_agent, (n * n,)), -1.0)
        cell = jnp.argmax(score).astype(jnp.int32)
        state = GridState(
            map=world.reshape(n, n),
            pos=jnp.stack([cell // n, cell % n]),
            direction=jnp.asarray(Action.UP, jnp.int32),
            inventory=jnp.zeros(len(ITEM_NAMES), jnp.int32),
            achievements=jnp.zeros(len(ACHIEVEMENT_NAMES), bool),
            timestep=jnp.zeros((), jnp.int32),
        )
        return self.observe(state, params), state

    def state_from_layout(
        self,
        layout: Sequence[str],
        direction: Action = Action.UP,
        inventory: dict[str, int] | None = None,
    ) -> GridState:
        """A hand-made state (tests, demos).  One string per row, one char per cell, using
        :data:`TILE_CHARS` plus ``A`` for the agent (standing on grass)."""
        n = self.config.size
        if len(layout) != n or any(len(row) != n for row in layout):
            raise ValueError(f"layout must be {n} rows of {n} chars")
        chars = dict(TILE_CHARS, A=Tile.GRASS)
        world = np.array([[chars[ch] for ch in row] for row in layout], np.int8)
        agent = [(r, c) for r, row in enumerate(layout) for c, ch in enumerate(row) if ch == "A"]
        if len(agent) != 1:
            raise ValueError("layout needs exactly one 'A'")
        inv = np.zeros(len(ITEM_NAMES), np.int32)
        for item, count in (inventory or {}).items():
            inv[ITEM_NAMES.index(item)] = count
        return GridState(
            map=jnp.asarray(world),
            pos=jnp.asarray(agent[0], jnp.int32),
            direction=jnp.asarray(int(direction), jnp.int32),
            inventory=jnp.asarray(inv),
            achievements=jnp.zeros(len(ACHIEVEMENT_NAMES), bool),
            timestep=jnp.zeros((), jnp.int32),
        )

    # -- dynamics -----------------------------------------------------------------------------

    def step(self, key: jax.Array, state: GridState, action: jax.Array, params: GridParams) -> StepOut:
        n = self.config.size
        rules = RULES
        action = jnp.asarray(action, jnp.int32)
        is_move = (action >= Action.LEFT) & (action <= Action.DOWN)
        direction = jnp.where(is_move, action, state.direction)
        target = state.pos + jnp.asarray(DIRECTIONS)[direction]
        inside = jnp.all((target >= 0) & (target < n))
        flat = state.map.reshape(-1)
        target_idx = jnp.where(inside, target[0] * n + target[1], 0)
        facing = jnp.where(inside, flat[target_idx].astype(jnp.int32), OOB)

        k = action * (NUM_TILES + 1) + facing
        near = jnp.max(jnp.abs(self._cell_coords() - state.pos), axis=-1) <= 1
        near_table = jnp.any(near & (flat == Tile.TABLE))
        near_furnace = jnp.any(near & (flat == Tile.FURNACE))
        inv = state.inventory
        ok = (
            jnp.asarray(rules.tile_ok)[k]
            & jnp.all(inv >= jnp.asarray(rules.require)[k])
            & (near_table | ~jnp.asarray(rules.need_table)[action])
            & (near_furnace | ~jnp.asarray(rules.need_furnace)[action])
            & (~jnp.asarray(rules.random_gate)[k] | (jax.random.uniform(key) < params.sapling_prob))
        )
        inv = jnp.minimum(inv + ok * jnp.asarray(rules.delta)[k], INVENTORY_CAP)
        new_tile = jnp.asarray(rules.new_tile)[k]
        change = ok & (new_tile >= 0) & (jnp.arange(n * n) == target_idx)
        flat = jnp.where(change, new_tile, flat)
        unlocked = ok & (jnp.arange(len(ACHIEVEMENT_NAMES)) == jnp.asarray(rules.achievement)[k])
        achievements = state.achievements | unlocked
        new_state = GridState(
            map=flat.reshape(n, n),
            pos=jnp.where(ok & is_move, target, state.pos),
            direction=direction,
            inventory=inv,
            achievements=achievements,
            timestep=state.timestep + 1,
        )
        reward = jnp.sum(achievements & ~state.achievements).astype(jnp.float32)
        done = new_state.timestep >= params.max_steps
        info = {"discount": 1.0 - done.astype(jnp.float32)}
        return StepOut(self.observe(new_state, params), new_state, reward, done, info)

    def _cell_coords(self) -> jax.Array:
        n = self.config.size
        return jnp.asarray(np.stack(np.divmod(np.arange(n * n), n), axis=-1), jnp.int32)

    # -- views --------------------------------------------------------------------------------

    def observe(self, state: GridState, params: GridParams) -> jax.Array:
        """float32[obs_shape]: one-hot egocentric view (zeros outside the map), inventory / 9,
        facing one-hot, and the fraction of the episode elapsed (the timeout is part of the
        task, so the value function needs to see it)."""
        n = self.config.size
        cell = state.pos[0] * n + state.pos[1]
        idx = jnp.asarray(self._view_index)[cell]
        view = jnp.where(idx >= 0, state.map.reshape(-1)[jnp.maximum(idx, 0)].astype(jnp.int32), -1)
        onehot = (view[:, None] == jnp.arange(NUM_TILES)).astype(jnp.float32).reshape(-1)
        facing = (state.direction == jnp.arange(1, 5)).astype(jnp.float32)
        time = jnp.asarray(state.timestep, jnp.float32)[None] / params.max_steps
        inv = state.inventory.astype(jnp.float32) / INVENTORY_CAP
        return jnp.concatenate([onehot, inv, facing, time.astype(jnp.float32)])

    def inventory(self, state: GridState) -> jax.Array:
        return state.inventory

    def nearby_blocks(self, state: GridState) -> jax.Array:
        """bool[len(block_names)]: tile types in the crafting range (the agent's cell and its 8 neighbours)."""
        near = jnp.max(jnp.abs(self._cell_coords() - state.pos), axis=-1) <= 1
        flat = state.map.reshape(-1).astype(jnp.int32)
        return jnp.any(near[:, None] & (flat[:, None] == jnp.arange(NUM_TILES)[None, :]), axis=0)

    def achievements(self, state: GridState) -> jax.Array:
        return state.achievements

    def render(self, state: GridState, tile_px: int = 8) -> jax.Array:
        """uint8[size*tile_px, size*tile_px, 3]: coloured tiles, the agent as a red square with
        a yellow mark on the side it faces.  Jittable (``tile_px`` static)."""
        n = self.config.size
        img = jnp.asarray(PALETTE)[state.map.astype(jnp.int32)]
        img = jnp.repeat(jnp.repeat(img, tile_px, axis=0), tile_px, axis=1)
        py = jnp.arange(n * tile_px)[:, None]
        px = jnp.arange(n * tile_px)[None, :]
        oy = py - state.pos[0] * tile_px
        ox = px - state.pos[1] * tile_px
        lo, hi = tile_px // 5, tile_px - 1 - tile_px // 5
        body = (oy >= lo) & (oy <= hi) & (ox >= lo) & (ox <= hi)
        d = jnp.asarray(DIRECTIONS)[state.direction]
        mid = (tile_px - 1) / 2
        my = mid + d[0] * (mid - lo)
        mx = mid + d[1] * (mid - lo)
        mark = (jnp.abs(oy - my) <= tile_px / 8 + 0.5) & (jnp.abs(ox - mx) <= tile_px / 8 + 0.5)
        img = jnp.where(body[..., None], jnp.asarray(AGENT_COLOR), img)
        img = jnp.where((body & mark)[..., None], jnp.asarray(FACING_COLOR), img)
        return img.astype(jnp.uint8)
