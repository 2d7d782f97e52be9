"""Plan predicates: count-aware item gains, achievements, shaping, user predicates, errors."""

from __future__ import annotations

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowrl_core.skills.plan import holdings_at_steps
from flowrl_core.skills.spec import PlanStep, SkillSpec
from flowrl_core.training.predicates import (
    PredicateError,
    check_specs_for_env,
    compile_plan,
    resolve_predicate,
)

ITEMS = ("wood", "stone", "table")
ACHS = ("collect_wood", "place_table")
SPECS = {
    "Collect_Wood": SkillSpec("Collect_Wood", gains={"wood": 1}),
    "Place_Table": SkillSpec("Place_Table", consumes={"wood": 2}, gains={"table": 1, "achievement:place_table": 1}),
    "Get_Both": SkillSpec("Get_Both", gains={"wood": 2, "stone": 1}),
}
EXPERTS = {"Collect_Wood": 0, "Place_Table": 1, "Get_Both": 2}


def inv(wood=0, stone=0, table=0):
    return jnp.asarray([wood, stone, table], jnp.int32)


NO_ACH = jnp.zeros((2,), bool)
NO_NEAR = jnp.zeros((0,), bool)  # an env without block types


def compiled(plan, specs=SPECS, experts=EXPERTS, **options):
    return compile_plan(ITEMS, ACHS, plan, specs, experts, env_name="Test-v0", **options)


def test_gained_goal_is_count_aware_and_relative_to_step_start():
    plan = compiled([PlanStep("Collect_Wood", 3)], step_goal="gained")
    ev = jax.jit(plan.evaluate)
    start = inv(wood=2)  # owned before the step began: does not count
    done, r = ev(0, inv(wood=2), inv(wood=3), start, NO_ACH, NO_NEAR)
    assert not bool(done) and float(r) == pytest.approx(0.1)
    done, r = ev(0, inv(wood=3), inv(wood=4), start, NO_ACH, NO_NEAR)
    assert not bool(done) and float(r) == pytest.approx(0.1)
    done, r = ev(0, inv(wood=4), inv(wood=5), start, NO_ACH, NO_NEAR)  # +3 relative to the start
    assert bool(done) and float(r) == pytest.approx(1.1)
    # Progress is clipped at the target, and losing an item costs the shaping back.
    done, r = ev(0, inv(wood=5), inv(wood=6), start, NO_ACH, NO_NEAR)
    assert bool(done) and float(r) == pytest.approx(1.0)
    done, r = ev(0, inv(wood=4), inv(wood=3), start, NO_ACH, NO_NEAR)
    assert not bool(done) and float(r) == pytest.approx(-0.1)
    assert plan.num_steps == 1 and int(plan.step_expert[0]) == 0


WOOD_TABLE_WOOD = [PlanStep("Collect_Wood", 2), PlanStep("Place_Table", 1), PlanStep("Collect_Wood", 1)]


def test_planned_holdings_follow_gains_and_consumption():
    assert holdings_at_steps(WOOD_TABLE_WOOD, SPECS) == [{}, {"wood": 2}, {"wood": 0, "table": 1}]


def test_held_goal_counts_what_the_agent_holds_against_the_plan():
    held = compiled(WOOD_TABLE_WOOD)  # the default
    gained = compiled(WOOD_TABLE_WOOD, step_goal="gained")
    # A wood picked up while placing the table: entering step 2 with it, the held goal is already
    # met (the plan expects 0 wood there), the gained goal still wants one more from here.
    entry = inv(wood=1, table=1)
    done, r = held.evaluate(2, entry, entry, entry, NO_ACH, NO_NEAR)
    assert bool(done) and float(r) == pytest.approx(1.0)
    done, _ = gained.evaluate(2, entry, entry, entry, NO_ACH, NO_NEAR)
    assert not bool(done)
    # Entering step 0 with a wood already: the held goal counts it (the plan expects none there),
    # so one more completes the step; the gained goal wants two more.
    start = inv(wood=1)
    done, _ = held.evaluate(0, inv(wood=1), inv(wood=1), start, NO_ACH, NO_NEAR)
    assert not bool(done)
    done, r = held.evaluate(0, inv(wood=1), inv(wood=2), start, NO_ACH, NO_NEAR)
    assert bool(done) and float(r) == pytest.approx(1.1)
    done, _ = gained.evaluate(0, inv(wood=1), inv(wood=2), start, NO_ACH, NO_NEAR)
    assert not bool(done)
    # Shaping counts toward the plan's holdings too, clipped at the target.
    _, r = held.evaluate(0, inv(wood=0), inv(wood=1), inv(), NO_ACH, NO_NEAR)
    assert float(r) == pytest.approx(0.1)
    _, r = held.evaluate(0, inv(wood=2), inv(wood=3), inv(), NO_ACH, NO_NEAR)
    assert float(r) == pytest.approx(1.0)


def test_unknown_step_goal_is_refused():
    with pytest.raises(PredicateError, match="step_goal must be one of gained, held"):
        compiled(WOOD_TABLE_WOOD, step_goal="owned")


def test_multiple_items_all_required():
    plan = compiled([PlanStep("Get_Both", 2)])  # wood 4 and stone 2
    done, _ = plan.evaluate(0, inv(), inv(wood=4, stone=1), inv(), NO_ACH, NO_NEAR)
    assert not bool(done)
    done, r = plan.evaluate(0, inv(wood=4, stone=1), inv(wood=4, stone=2), inv(), NO_ACH, NO_NEAR)
    assert bool(done) and float(r) == pytest.approx(1.1)


def test_achievement_step():
    plan = compiled([PlanStep("Collect_Wood", 1), PlanStep("Place_Table", 1)])
    assert int(plan.step_expert[1]) == 1
    ach = jnp.asarray([True, True])
    # The table item is also a gain: both must hold.
    done, _ = plan.evaluate(1, inv(wood=2), inv(wood=0), inv(wood=2), ach, NO_NEAR)
    assert not bool(done)
    done, r = plan.evaluate(1, inv(wood=2), inv(wood=0, table=1), inv(wood=2), ach, NO_NEAR)
    assert bool(done) and float(r) == pytest.approx(1.1)
    done, _ = plan.evaluate(1, inv(wood=2), inv(wood=0, table=1), inv(wood=2), jnp.asarray([True, False]), NO_NEAR)
    assert not bool(done)


def test_vectorised_over_envs_in_different_steps():
    plan = compiled([PlanStep("Collect_Wood", 1), PlanStep("Get_Both", 1)], step_goal="gained")
    steps = jnp.asarray([0, 1, 1])
    prev = jnp.stack([inv(), inv(wood=1), inv(wood=2)])
    cur = jnp.stack([inv(wood=1), inv(wood=2), inv(wood=2, stone=1)])
    start = jnp.stack([inv(), inv(wood=0), inv(wood=0)])
    done, r = jax.jit(jax.vmap(plan.evaluate))(steps, prev, cur, start, jnp.zeros((3, 2), bool), jnp.zeros((3, 0), bool))
    np.testing.assert_array_equal(done, [True, False, True])
    np.testing.assert_allclose(r, [1.1, 0.1, 1.1], atol=1e-6)


def test_unknown_keys_name_skill_key_and_env():
    specs = dict(SPECS, Mine=SkillSpec("Mine", gains={"diamond": 1}))
    with pytest.raises(ValueError, match=r"'Mine'.*'diamond'.*'Test-v0'"):
        compiled([PlanStep("Mine", 1)], specs, dict(EXPERTS, Mine=0))
    specs = dict(SPECS, Eat=SkillSpec("Eat", gains={"achievement:eat_cow": 1}))
    with pytest.raises(ValueError, match=r"'Eat'.*'achievement:eat_cow'.*'Test-v0'"):
        compiled([PlanStep("Eat", 1)], specs, dict(EXPERTS, Eat=0))
    with pytest.raises(ValueError, match="no local expert"):
        compiled([PlanStep("Collect_Wood", 1)], SPECS, {})
    with pytest.raises(ValueError, match="no gains and no predicate"):
        compiled([PlanStep("Idle", 1)], {"Idle": SkillSpec("Idle")}, {"Idle": 0})


USER_MODULE = textwrap.dedent('''
    import jax.numpy as jnp

    def two_of_anything(prev_inventory, inventory, start_inventory, achievements, count):
        gained = jnp.sum(jnp.maximum(inventory - start_inventory, 0))
        return gained >= 2 * count, 0.5 * (jnp.sum(inventory) - jnp.sum(prev_inventory))

    def wrong_arity(inventory):
        return inventory[0] > 0, 0.0

    NOT_A_FUNCTION = 3
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "flowrl_user_preds.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "flowrl_user_preds"


def test_user_predicate_by_import_path(user_module):
    specs = dict(SPECS, Custom=SkillSpec("Custom", gains={"wood": 1}, predicate=f"{user_module}:two_of_anything"))
    plan = compiled([PlanStep("Collect_Wood", 1), PlanStep("Custom", 2)], specs, dict(EXPERTS, Custom=1))
    ev = jax.jit(jax.vmap(plan.evaluate))
    steps = jnp.asarray([0, 1, 1])
    prev = jnp.stack([inv(), inv(wood=1, stone=2), inv()])
    cur = jnp.stack([inv(wood=1), inv(wood=2, stone=2), inv(stone=1)])
    start = jnp.stack([inv(), inv(), inv()])
    done, r = ev(steps, prev, cur, start, jnp.zeros((3, 2), bool), jnp.zeros((3, 0), bool))
    # env 0: built-in check; env 1: gained 4 >= 2*2 -> done, 0.5 + 1.0; env 2: gained 1 -> not done.
    np.testing.assert_array_equal(done, [True, True, False])
    np.testing.assert_allclose(r, [1.1, 1.5, 0.5], atol=1e-6)


def test_bad_predicate_paths(user_module):
    with pytest.raises(PredicateError, match="form 'package.module:function'"):
        resolve_predicate("no_colon_here", skill="S")
    with pytest.raises(PredicateError, match="cannot be imported"):
        resolve_predicate("flowrl_no_such_module_xyz:fn", skill="S")
    with pytest.raises(PredicateError, match="has no 'missing'"):
        resolve_predicate(f"{user_module}:missing", skill="S")
    with pytest.raises(PredicateError, match="not a function"):
        resolve_predicate(f"{user_module}:NOT_A_FUNCTION", skill="S")
    specs = {"Bad": SkillSpec("Bad", gains={"wood": 1}, predicate=f"{user_module}:wrong_arity")}
    with pytest.raises(PredicateError, match="'Bad'.*abstract inputs"):
        compiled([PlanStep("Bad", 1)], specs, {"Bad": 0})
    specs = {"Bad": SkillSpec("Bad", gains={"wood": 1}, predicate="flowrl_no_such_module_xyz:fn")}
    with pytest.raises(ValueError, match="'Bad'"):
        compiled([PlanStep("Bad", 1)], specs, {"Bad": 0})


BLOCKS = ("grass", "crafting_table", "furnace")
NEAR_SPECS = dict(SPECS, Place_Table=SkillSpec("Place_Table", consumes={"wood": 2},
                                               gains={"achievement:place_table": 1, "near:crafting_table": 1}),
                  Place_Furnace=SkillSpec("Place_Furnace", gains={"near:furnace": 1}))


def near(*names):
    return jnp.asarray([b in names for b in BLOCKS])


def test_near_step_needs_the_block_beside_the_agent_not_only_the_achievement():
    plan = compile_plan(ITEMS, ACHS, [PlanStep("Collect_Wood", 1), PlanStep("Place_Table", 1)], NEAR_SPECS,
                        {"Collect_Wood": 0, "Place_Table": 1}, env_name="Test-v0", blocks=BLOCKS)
    placed = jnp.asarray([True, True])
    # The table was placed earlier in the episode (achievement held) but the agent walked away.
    done, _ = plan.evaluate(1, inv(), inv(), inv(), placed, near("grass"))
    assert not bool(done)
    done, r = plan.evaluate(1, inv(), inv(), inv(), placed, near("grass", "crafting_table"))
    assert bool(done) and float(r) == pytest.approx(1.0)
    # A block beside the agent without the achievement is not a placement either.
    done, _ = plan.evaluate(1, inv(), inv(), inv(), jnp.asarray([True, False]), near("crafting_table"))
    assert not bool(done)


def test_near_keys_are_checked_against_the_envs_blocks():
    with pytest.raises(PredicateError, match=r"'Place_Furnace'.*'near:furnace'.*'Test-v0'.*no nearby blocks"):
        compile_plan(ITEMS, ACHS, [PlanStep("Place_Furnace", 1)], NEAR_SPECS, {"Place_Furnace": 0},
                     env_name="Test-v0")
    craft = SkillSpec("Craft", requires={"near:anvil": 1}, gains={"stone": 1})
    with pytest.raises(PredicateError, match=r"'Craft'.*'near:anvil'.*known: grass, crafting_table, furnace"):
        check_specs_for_env([craft], ITEMS, ACHS, env_name="Test-v0", blocks=BLOCKS)
    check_specs_for_env(list(NEAR_SPECS.values()), ITEMS, ACHS, env_name="Test-v0", blocks=BLOCKS)


VIEW_SPECS = dict(SPECS, Find_Furnace=SkillSpec("Find_Furnace", gains={"view:furnace": 1}),
                  Place_Furnace=SkillSpec("Place_Furnace", gains={"near:furnace": 1}))


def test_view_step_reads_the_view_flags_after_the_crafting_range_flags():
    """Position flags are [crafting range per block, then view per block]: a ``view:`` step is done when
    its block is in sight, whether or not it is beside the agent, and a ``near:`` step is not done by sight."""
    plan = compile_plan(ITEMS, ACHS, [PlanStep("Find_Furnace", 1), PlanStep("Place_Furnace", 1)], VIEW_SPECS,
                        {"Find_Furnace": 0, "Place_Furnace": 1}, env_name="Test-v0", blocks=BLOCKS, view=True)
    assert plan.near_required.shape == (2, 2 * len(BLOCKS))
    flags = lambda near_blocks, seen: jnp.concatenate([near(*near_blocks), near(*seen)])  # noqa: E731
    no_ach = jnp.asarray([False, False])
    done, r = plan.evaluate(0, inv(), inv(), inv(), no_ach, flags((), ("furnace",)))
    assert bool(done) and float(r) == pytest.approx(1.0)
    assert not bool(plan.evaluate(0, inv(), inv(), inv(), no_ach, flags(("furnace",), ()))[0])
    assert not bool(plan.evaluate(1, inv(), inv(), inv(), no_ach, flags((), ("furnace",)))[0])
    assert bool(plan.evaluate(1, inv(), inv(), inv(), no_ach, flags(("furnace",), ()))[0])


def test_view_keys_need_an_env_that_says_what_the_agent_sees():
    with pytest.raises(PredicateError, match=r"'Find_Furnace'.*'view:furnace'.*'Test-v0'.*visible_blocks"):
        compile_plan(ITEMS, ACHS, [PlanStep("Find_Furnace", 1)], VIEW_SPECS, {"Find_Furnace": 0},
                     env_name="Test-v0", blocks=BLOCKS)
    with pytest.raises(PredicateError, match=r"'Find_Furnace'.*'view:furnace'.*visible_blocks"):
        check_specs_for_env([VIEW_SPECS["Find_Furnace"]], ITEMS, ACHS, env_name="Test-v0", blocks=BLOCKS)
    check_specs_for_env(list(VIEW_SPECS.values()), ITEMS, ACHS, env_name="Test-v0", blocks=BLOCKS, view=True)
