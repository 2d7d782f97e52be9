"""Gridworld-v0: protocol conformance, world generation guarantees and the tech-tree rules."""

from __future__ import annotations

from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowrl_core.envs.base import Env, make_reset_bank, reset_done
from flowrl_core.envs.gridworld import (
    ACHIEVEMENT_NAMES,
    ITEM_NAMES,
    RECIPES,
    Action,
    GridParams,
    Gridworld,
    Tile,
)

A = Action


@pytest.fixture(scope="module")
def env() -> Gridworld:
    return Gridworld()


@pytest.fixture(scope="module")
def step(env):
    return jax.jit(env.step)


@pytest.fixture(scope="module")
def reset(env):
    return jax.jit(env.reset)


@pytest.fixture(scope="module")
def vreset(env):
    """Batched reset (eager vmap would dispatch op by op and cost seconds)."""
    return jax.jit(jax.vmap(env.reset, in_axes=(0, None)))


@pytest.fixture(scope="module")
def vstep(env):
    return jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))


def inv(env: Gridworld, state, item: str) -> int:
    return int(env.inventory(state)[env.item_names.index(item)])


def ach(env: Gridworld, state, name: str) -> bool:
    return bool(env.achievements(state)[env.achievement_names.index(name)])


def test_protocol_and_names(env):
    assert isinstance(env, Env)
    assert env.name == "Gridworld-v0"
    assert env.item_names[:12] == ITEM_NAMES
    assert len(env.achievement_names) == 22 and len(set(env.achievement_names)) == 22
    assert {"collect_wood", "place_table", "eat_cow", "make_iron_sword"} <= set(ACHIEVEMENT_NAMES)
    assert env.obs_shape[0] < 600


def test_reset_and_step_shapes_under_jit_vmap(env, vreset, vstep):
    n = 8
    params = env.default_params
    obs, state = vreset(jax.random.split(jax.random.key(0), n), params)
    assert obs.shape == (n, *env.obs_shape) and obs.dtype == jnp.float32
    actions = jnp.arange(n) % env.num_actions
    out = vstep(jax.random.split(jax.random.key(1), n), state, actions, params)
    assert out.obs.shape == (n, *env.obs_shape) and out.obs.dtype == jnp.float32
    assert out.reward.shape == (n,) and out.reward.dtype == jnp.float32
    assert out.done.shape == (n,) and out.done.dtype == jnp.bool_
    assert env.inventory(out.state).shape == (n, len(env.item_names))
    assert env.inventory(out.state).dtype == jnp.int32
    assert env.achievements(out.state).shape == (n, len(env.achievement_names))
    assert env.achievements(out.state).dtype == jnp.bool_
    # the carried state keeps its dtypes (no weak types), so a scan carry does not retrace
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(out.state)):
        assert (a.dtype, a.shape, a.weak_type) == (b.dtype, b.shape, b.weak_type)
    assert not any(getattr(x, "weak_type", False) for x in jax.tree.leaves(state))


def test_reset_is_deterministic_per_key(env, reset):
    params = env.default_params
    o1, s1 = reset(jax.random.key(7), params)
    o2, s2 = reset(jax.random.key(7), params)
    _, s3 = reset(jax.random.key(8), params)
    assert all(bool(jnp.array_equal(a, b)) for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2)))
    assert bool(jnp.array_equal(o1, o2))
    assert not bool(jnp.array_equal(s1.map, s3.map))


def _reachable_trees(world: np.ndarray, start: tuple[int, int]) -> int:
    """Trees the agent can collect using only its hands (trees become grass when taken)."""
    n = world.shape[0]
    passable = {int(Tile.GRASS), int(Tile.PATH), int(Tile.TREE)}
    seen, todo, trees = {start}, deque([start]), 0
    while todo:
        r, c = todo.popleft()
        trees += world[r, c] == Tile.TREE
        for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            q = (r + dr, c + dc)
            if 0 <= q[0] < n and 0 <= q[1] < n and q not in seen and int(world[q]) in passable:
                seen.add(q)
                todo.append(q)
    return trees


def test_world_generation_guarantees(env, vreset):
    cfg = env.config
    _, states = vreset(jax.random.split(jax.random.key(3), 200), env.default_params)
    maps, pos = np.asarray(states.map), np.asarray(states.pos)
    for world, (r, c) in zip(maps, pos):
        count = lambda t: int((world == t).sum())  # noqa: E731
        assert count(Tile.TREE) >= cfg.min_trees
        assert count(Tile.COAL) >= cfg.num_coal
        assert count(Tile.IRON) >= cfg.num_iron
        assert count(Tile.DIAMOND) >= cfg.num_diamond
        assert count(Tile.WATER) == 4
        assert count(Tile.STONE) >= 6  # furnace, both stone tools, iron tools and place_stone
        assert world[r, c] == Tile.GRASS
        assert _reachable_trees(world, (int(r), int(c))) >= 8  # wood for the whole tech tree
    assert len({m.tobytes() for m in maps}) == len(maps)


LAYOUT = (
    ".........",
    ".........",
    ".........",
    "....T....",
    "...TAS...",
    "....T....",
    ".........",
    ".........",
    ".........",
)


def test_scripted_wood_table_pickaxe_stone(env, step):
    params = env.default_params
    state = env.state_from_layout(LAYOUT, direction=A.UP)
    key = jax.random.key(0)

    def act(state, action, reward=0.0):
        out = step(key, state, jnp.int32(action), params)
        assert float(out.reward) == reward, (Action(action).name, float(out.reward))
        assert not bool(out.done)
        return out.state

    state = act(state, A.RIGHT)  # facing stone: solid, so the agent only turns
    assert tuple(state.pos.tolist()) == (4, 4) and int(state.direction) == A.RIGHT
    state = act(state, A.DO)  # no pickaxe yet: nothing happens
    assert inv(env, state, "stone") == 0 and state.map[4, 5] == Tile.STONE
    state = act(state, A.MAKE_WOOD_PICKAXE)  # no wood, no table
    assert inv(env, state, "wood_pickaxe") == 0

    state = act(state, A.UP)
    state = act(state, A.DO, reward=1.0)
    assert inv(env, state, "wood") == 1 and ach(env, state, "collect_wood")
    assert state.map[3, 4] == Tile.GRASS  # Craftax-Classic turns a collected tree into grass
    state = act(state, A.PLACE_TABLE)  # a table costs 2 wood
    assert inv(env, state, "wood") == 1 and not ach(env, state, "place_table")
    state = act(state, A.LEFT)
    state = act(state, A.DO)
    state = act(state, A.DOWN)
    state = act(state, A.DO)
    assert inv(env, state, "wood") == 3
    state = act(state, A.PLACE_TABLE, reward=1.0)
    assert inv(env, state, "wood") == 1 and ach(env, state, "place_table")
    assert state.map[5, 4] == Tile.TABLE
    state = act(state, A.MAKE_WOOD_PICKAXE, reward=1.0)
    assert inv(env, state, "wood") == 0 and inv(env, state, "wood_pickaxe") == 1
    assert ach(env, state, "make_wood_pickaxe")
    state = act(state, A.RIGHT)
    state = act(state, A.DO, reward=1.0)
    assert inv(env, state, "stone") == 1 and ach(env, state, "collect_stone")
    assert state.map[4, 5] == Tile.PATH
    state = act(state, A.RIGHT)  # mined stone leaves a walkable path
    assert tuple(state.pos.tolist()) == (4, 5)
    assert int(state.timestep) == 15
    unlocked = {n for n, a in zip(env.achievement_names, env.achievements(state).tolist()) if a}
    assert unlocked == {"collect_wood", "place_table", "make_wood_pickaxe", "collect_stone"}


def test_iron_tier_needs_furnace(env, step):
    layout = (
        ".........",
        ".........",
        ".........",
        "....I....",
        "...tA....",
        ".........",
        "....D....",
        ".........",
        ".........",
    )
    params = env.default_params
    state = env.state_from_layout(
        layout, direction=A.UP, inventory={"wood": 1, "stone": 2, "coal": 1, "stone_pickaxe": 1}
    )
    key = jax.random.key(0)
    run = lambda s, a: step(key, s, jnp.int32(a), params).state  # noqa: E731
    state = run(state, A.DO)
    assert inv(env, state, "iron") == 1 and ach(env, state, "collect_iron")
    assert state.map[3, 4] == Tile.PATH
    state = run(state, A.MAKE_IRON_PICKAXE)  # table but no furnace
    assert inv(env, state, "iron_pickaxe") == 0
    state = run(state, A.PLACE_FURNACE)  # onto the path the iron left; no table needed
    assert state.map[3, 4] == Tile.FURNACE and inv(env, state, "stone") == 1
    assert ach(env, state, "place_furnace")
    state = run(state, A.MAKE_IRON_PICKAXE)
    assert inv(env, state, "iron_pickaxe") == 1 and ach(env, state, "make_iron_pickaxe")
    for item in ("wood", "stone", "coal", "iron"):
        assert inv(env, state, item) == 0
    state = run(state, A.DOWN)
    state = run(state, A.DOWN)  # walks one tile down, then faces the diamond
    state = run(state, A.DO)
    assert inv(env, state, "diamond") == 1 and ach(env, state, "collect_diamond")


def test_recipe_table_matches_rules(env, step):
    """Every crafting recipe consumes exactly RECIPES[...] next to a table and a furnace."""
    layout = (".........",) * 3 + ("...tf....",) + ("....A....",) + (".........",) * 4
    params = env.default_params
    full = {item: 5 for item in ("wood", "stone", "coal", "iron")}
    for action in (A.MAKE_WOOD_PICKAXE, A.MAKE_STONE_PICKAXE, A.MAKE_IRON_PICKAXE,
                   A.MAKE_WOOD_SWORD, A.MAKE_STONE_SWORD, A.MAKE_IRON_SWORD):  # fmt: skip
        state = env.state_from_layout(layout, inventory=full)
        out = step(jax.random.key(0), state, jnp.int32(action), params)
        name = action.name.lower()
        spent = {item: 5 - inv(env, out.state, item) for item in full}
        assert {k: v for k, v in spent.items() if v} == RECIPES[name]
        assert inv(env, out.state, name.removeprefix("make_")) == 1 and ach(env, out.state, name)
        assert float(out.reward) == 1.0


def test_inventory_cap(env, step):
    layout = (".........",) * 3 + ("....T....", "....A....") + (".........",) * 4
    state = env.state_from_layout(layout, direction=A.UP, inventory={"wood": 9})
    out = step(jax.random.key(0), state, jnp.int32(A.DO), env.default_params)
    assert inv(env, out.state, "wood") == 9
    assert ach(env, out.state, "collect_wood") and out.state.map[3, 4] == Tile.GRASS


def test_sapling_and_plant(env, step):
    layout = (".........",) * 4 + ("....A....",) + (".........",) * 4
    params = GridParams(sapling_prob=1.0)
    state = env.state_from_layout(layout, direction=A.UP)
    state = step(jax.random.key(0), state, jnp.int32(A.DO), params).state
    assert inv(env, state, "sapling") == 1 and ach(env, state, "collect_sapling")
    state = step(jax.random.key(0), state, jnp.int32(A.PLACE_PLANT), params).state
    assert inv(env, state, "sapling") == 0 and state.map[3, 4] == Tile.PLANT
    never = GridParams(sapling_prob=0.0)
    state = step(jax.random.key(0), env.state_from_layout(layout), jnp.int32(A.DO), never).state
    assert inv(env, state, "sapling") == 0


def test_timeout_sets_done(env, step, reset):
    params = GridParams(max_steps=5)
    _, state = reset(jax.random.key(0), params)
    dones = []
    for _ in range(6):
        out = step(jax.random.key(1), state, jnp.int32(A.NOOP), params)
        dones.append(bool(out.done))
        state = out.state
    assert dones == [False, False, False, False, True, True]
    assert float(out.info["discount"]) == 0.0


def test_edge_of_world_is_solid(env, step):
    layout = ("A........",) + (".........",) * 8
    state = env.state_from_layout(layout, inventory={"wood": 2})
    for action in (A.UP, A.LEFT, A.PLACE_TABLE, A.DO):
        state = step(jax.random.key(0), state, jnp.int32(action), env.default_params).state
    assert tuple(state.pos.tolist()) == (0, 0) and int(state.direction) == A.LEFT
    assert inv(env, state, "wood") == 2 and not bool(env.achievements(state).any())


def test_render(env, reset):
    _, state = reset(jax.random.key(0), env.default_params)
    img = jax.jit(env.render, static_argnums=1)(state, 8)
    assert img.shape == (72, 72, 3) and img.dtype == jnp.uint8
    r, c = state.pos.tolist()
    body = np.asarray(img[r * 8 + 5, c * 8 + 5])  # lower half: the agent faces up at reset
    facing_mark = np.asarray(img[r * 8 + 1, c * 8 + 3])
    assert body.tolist() == [230, 40, 40] and facing_mark.tolist() == [255, 230, 0]


def test_reset_bank_gives_distinct_fresh_states(env, vreset, vstep):
    params = env.default_params
    n = 8  # the batch size the shape test compiled for
    bank = jax.jit(lambda key: make_reset_bank(env, key, params, size=8))(jax.random.key(10))
    obs, state = vreset(jax.random.split(jax.random.key(11), n), params)
    out = vstep(jax.random.split(jax.random.key(12), n), state, jnp.full(n, A.NOOP), params)
    done = jnp.array([True, False, True, False, False, False, False, False])
    new_obs, new_state, bank = jax.jit(reset_done)(bank, done, out.obs, out.state)
    assert new_state.timestep.tolist() == [0, 1, 0, 1, 1, 1, 1, 1]
    assert bool(jnp.array_equal(new_state.map[1], out.state.map[1]))
    assert bool(jnp.array_equal(new_obs[3], out.obs[3]))
    assert not bool(jnp.array_equal(new_state.map[0], new_state.map[2]))
    assert bool(jnp.array_equal(new_state.map[0], bank.state.map[0]))
    assert bool(jnp.array_equal(new_state.map[2], bank.state.map[1]))
    assert bool(jnp.array_equal(new_obs[2], bank.obs[1]))
    assert int(bank.cursor) == 2


def test_registry_builds_gridworld_and_rejects_unknown_names():
    from flowrl_core.envs import ENV_NAMES, make_env

    assert {"Gridworld-v0", "Craftax-Classic-Symbolic-v1", "Craftax-Symbolic-v1"} <= set(ENV_NAMES)
    assert make_env("gridworld").name == make_env("Gridworld-v0").name == "Gridworld-v0"
    assert make_env("gridworld", size=11).config.size == 11
    with pytest.raises(ValueError, match="Did you mean 'gridworld'") as err:
        make_env("gridwrld")
    assert "Craftax-Classic-Symbolic-v1" in str(err.value)
    with pytest.raises(ValueError, match="Did you mean 'Craftax-Classic-Symbolic-v1'"):
        make_env("craftax-classic-symbolic-v1")


def test_evaluation_hooks_nearby_blocks_names_and_allowance(env):
    """What evaluation traces read: the tile types in crafting range, action names, the step allowance."""
    layout = (".........", ".........", ".........", "....T....", "...TAS...", "....T....",
              ".........", "......~..", ".........")
    state = env.state_from_layout(layout)
    near = dict(zip(env.block_names, np.asarray(env.nearby_blocks(state)).tolist()))
    assert near["tree"] and near["stone"] and near["grass"]
    assert not near["water"] and not near["crafting_table"]  # the pond is 3 rows away
    assert env.action_names[Action.PLACE_TABLE] == "place_table" and len(env.action_names) == env.num_actions
    assert env.step_allowance == 10 and Gridworld(size=18).step_allowance == 20


def test_near_steps_read_the_blocks_in_crafting_range(env, step):
    """The example's placements compiled against the gridworld: a placement step holds while its
    block stands beside the agent, and no longer once the agent has walked off."""
    from flowrl_core.skills.parsing import load_skill_file
    from flowrl_core.skills.spec import PlanStep
    from flowrl_core.training.predicates import compile_for_env, nearby
    from pathlib import Path

    specs = {s.name: s for s in load_skill_file(Path(__file__).parent.parent / "examples" / "craftax_classic.yaml")}
    plan = compile_for_env(env, [PlanStep("Place_Table", 1), PlanStep("Place_Furnace", 1)], specs,
                           {"Place_Table": 0, "Place_Furnace": 1})
    layout = (".........", ".........", ".........", ".........", "....A....",
              ".........", ".........", ".........", ".........")
    state = env.state_from_layout(layout, direction=A.UP, inventory={"wood": 2, "stone": 1})
    key, params = jax.random.key(0), env.default_params
    run = lambda s, a: step(key, s, jnp.int32(a), params).state  # noqa: E731

    def done(k, before, after):
        d, _ = plan.evaluate(k, env.inventory(before), env.inventory(after), env.inventory(before),
                             env.achievements(after), nearby(env, after))
        return bool(d)

    placed = run(state, A.PLACE_TABLE)
    assert done(0, state, placed)
    furnace = run(run(placed, A.LEFT), A.PLACE_FURNACE)  # the table is still one cell off the diagonal
    assert done(1, placed, furnace) and done(0, placed, furnace)
    away = run(run(run(furnace, A.DOWN), A.DOWN), A.DOWN)
    assert ach(env, away, "place_table") and not done(0, furnace, away)  # the achievement stays, the table is gone from range
