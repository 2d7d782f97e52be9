"""Execution plans: consumption- and count-aware, from an empty inventory, target last."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowrl_core.errors import SkillFileError
from flowrl_core.skills.parsing import load_skill_file, parse_skills
from flowrl_core.skills.plan import execution_plan, plan_skills
from flowrl_core.skills.spec import PlanStep

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def steps(plan):
    return [(s.skill, s.count) for s in plan]


def simulate(specs, plan):
    """Replay a plan on an inventory; every run's needs must hold when it starts.  A ``near:`` or
    ``view:`` key holds only until a run that does not place a block (the agent walks off, searches, or crafts)."""
    by = {s.name: s for s in specs}
    inv: dict[str, int] = {}
    for step in plan:
        spec = by[step.skill]
        for _ in range(step.count):
            for k, v in spec.requires.items():
                assert inv.get(k, 0) >= v, f"{spec.name} needs {k}={v}, has {inv.get(k, 0)}"
            for k, v in spec.consumes.items():
                assert inv.get(k, 0) >= v
                inv[k] -= v
            if not any(k.startswith("near:") for k in spec.gains):
                inv = {k: v for k, v in inv.items() if not k.startswith(("near:", "view:"))}
            for k, v in spec.gains.items():
                flag = k.startswith(("achievement:", "near:", "view:"))
                inv[k] = max(inv.get(k, 0), 1) if flag else inv.get(k, 0) + v
    return inv


def test_root_skill_plan_is_itself():
    specs = load_skill_file(EXAMPLES / "gridworld_basic.yaml")
    assert execution_plan(specs, "Collect_Wood") == [PlanStep("Collect_Wood", 1)]


def test_consumption_aware_pickaxe_plan():
    specs = load_skill_file(EXAMPLES / "gridworld_basic.yaml")
    plan = execution_plan(specs, "Make_Wood_Pickaxe")
    # the table eats both wood, so wood is gathered again before the pickaxe
    assert steps(plan) == [("Collect_Wood", 2), ("Place_Table", 1), ("Collect_Wood", 1), ("Make_Wood_Pickaxe", 1)]
    assert plan_skills(plan) == ["Collect_Wood", "Place_Table", "Make_Wood_Pickaxe"]


def test_count_aware_runs_provider_as_often_as_needed():
    specs = parse_skills({"skills": [
        {"name": "Wood", "gains": {"wood": 2}},
        {"name": "Big", "requires": {"wood": 5}, "consumes": {"wood": 5}, "gains": {"sapling": 1}},
    ]})
    assert steps(execution_plan(specs, "Big")) == [("Wood", 3), ("Big", 1)]


@pytest.mark.parametrize("target", [s.name for s in load_skill_file(EXAMPLES / "craftax_classic.yaml")])
def test_every_craftax_plan_is_executable_and_ends_with_target(target):
    specs = load_skill_file(EXAMPLES / "craftax_classic.yaml")
    plan = execution_plan(specs, target)
    assert plan[-1] == PlanStep(target, 1)
    inv = simulate(specs, plan)
    spec = {s.name: s for s in specs}[target]
    for key in spec.gains:
        assert inv.get(key, 0) >= 1
    assert all(v <= 9 for k, v in inv.items() if not k.startswith("achievement:"))


@pytest.mark.parametrize("tool", ["Make_Iron_Pickaxe", "Make_Iron_Sword"])
def test_iron_tools_place_table_and_furnace_beside_the_agent_right_before_crafting(tool):
    """Craftax crafts an iron tool only with a table and a furnace in range at once: everything the
    craft and both placements use is gathered first, and no collecting run separates them."""
    specs = load_skill_file(EXAMPLES / "craftax_classic.yaml")
    plan = execution_plan(specs, tool)
    assert steps(plan)[-3:] == [("Place_Table", 1), ("Place_Furnace", 1), (tool, 1)]
    gathered = simulate(specs, plan[:-3])
    assert gathered.get("wood", 0) >= 3 and gathered.get("stone", 0) >= 2  # table 2 + tool 1; furnace 1 + tool 1
    assert gathered.get("coal", 0) >= 1 and gathered.get("iron", 0) >= 1


def station_specs():
    """A table that two crafts need in range: the second craft follows a walk-off."""
    return parse_skills({"skills": [
        {"name": "Wood", "gains": {"wood": 1}},
        {"name": "Table", "requires": {"wood": 2}, "consumes": {"wood": 2},
         "gains": {"achievement:place_table": 1, "near:crafting_table": 1}},
        {"name": "Pick", "requires": {"wood": 1, "near:crafting_table": 1}, "consumes": {"wood": 1},
         "gains": {"wood_pickaxe": 1}},
        {"name": "Sword", "requires": {"wood": 1, "near:crafting_table": 1, "wood_pickaxe": 1},
         "consumes": {"wood": 1}, "gains": {"wood_sword": 1}},
    ]})


def test_a_near_key_is_lost_by_walking_off_and_placed_again():
    specs = station_specs()
    assert steps(execution_plan(specs, "Pick")) == [("Wood", 3), ("Table", 1), ("Pick", 1)]
    # after crafting the pickaxe and chopping again the agent is no longer at the table
    plan = execution_plan(specs, "Sword")
    assert steps(plan) == [("Wood", 3), ("Table", 1), ("Pick", 1), ("Wood", 3), ("Table", 1), ("Sword", 1)]
    simulate(specs, plan)


def test_diamond_plan_gathers_resources_the_iron_pickaxe_consumes():
    specs = load_skill_file(EXAMPLES / "craftax_classic.yaml")
    plan = execution_plan(specs, "Collect_Diamond")
    names = plan_skills(plan)
    assert names[0] == "Collect_Wood" and names[-1] == "Collect_Diamond"
    assert {"Place_Furnace", "Collect_Coal", "Collect_Iron", "Make_Iron_Pickaxe"} <= set(names)
    assert "Make_Wood_Sword" not in names  # only what the target needs


def test_unknown_target_and_over_cap_are_clear_errors():
    specs = parse_skills({"skills": [
        {"name": "Wood", "gains": {"wood": 1}},
        {"name": "Hoard", "requires": {"wood": 12}, "gains": {"sapling": 1}},
    ]})
    with pytest.raises(SkillFileError, match="unknown target skill 'Nope'"):
        execution_plan(specs, "Nope")
    with pytest.raises(SkillFileError, match="over the inventory cap"):
        execution_plan(specs, "Hoard")


def runs_of(plan):
    return sorted(step.skill for step in plan for _ in range(step.count))


@pytest.mark.parametrize("target", [s.name for s in load_skill_file(EXAMPLES / "craftax_classic.yaml")])
def test_gather_first_is_the_same_runs_reordered_and_still_executable(target):
    specs = load_skill_file(EXAMPLES / "craftax_classic.yaml")
    just_in_time = execution_plan(specs, target)
    gather_first = execution_plan(specs, target, "gather_first")
    assert runs_of(gather_first) == runs_of(just_in_time)  # same experts, same default budget
    assert gather_first[-1] == PlanStep(target, 1)
    inv = simulate(specs, gather_first)
    assert all(inv.get(key, 0) >= 1 for key in {s.name: s for s in specs}[target].gains)


def test_gather_first_leaves_the_iron_search_last_with_only_placements_and_the_craft_after_it():
    """The just-in-time plan walks back from the iron for stone and three wood; gathering first
    buys them by the trees and the rock, and only the stations and the craft follow the iron."""
    specs = load_skill_file(EXAMPLES / "craftax_classic.yaml")
    plan = execution_plan(specs, "Make_Iron_Pickaxe", "gather_first")
    assert steps(plan) == [("Collect_Wood", 7), ("Place_Table", 1), ("Make_Wood_Pickaxe", 1), ("Collect_Stone", 3),
                           ("Collect_Coal", 1), ("Make_Stone_Pickaxe", 1), ("Collect_Iron", 1), ("Place_Table", 1),
                           ("Place_Furnace", 1), ("Make_Iron_Pickaxe", 1)]
    assert steps(execution_plan(specs, "Make_Iron_Pickaxe"))[7:10] == [
        ("Collect_Iron", 1), ("Collect_Coal", 1), ("Collect_Stone", 2)]  # the default is unchanged


def test_gather_first_keeps_a_station_placed_again_after_the_agent_crafts_away_from_it():
    specs = station_specs()
    plan = execution_plan(specs, "Sword", "gather_first")
    assert steps(plan) == [("Wood", 6), ("Table", 1), ("Pick", 1), ("Table", 1), ("Sword", 1)]
    simulate(specs, plan)


def test_gather_first_stops_at_the_inventory_cap():
    specs = parse_skills({"skills": [
        {"name": "Wood", "gains": {"wood": 1}},
        {"name": "Chest", "requires": {"wood": 6}, "consumes": {"wood": 6}, "gains": {"sapling": 1}},
        {"name": "Box", "requires": {"wood": 6, "sapling": 1}, "consumes": {"wood": 6, "sapling": 1},
         "gains": {"wood_pickaxe": 1}},
    ]})
    assert steps(execution_plan(specs, "Box")) == [("Wood", 6), ("Chest", 1), ("Wood", 6), ("Box", 1)]
    plan = execution_plan(specs, "Box", "gather_first")
    assert steps(plan) == [("Wood", 9), ("Chest", 1), ("Wood", 3), ("Box", 1)]  # 12 wood would not fit


def test_an_unknown_plan_order_is_refused_in_every_place_it_can_be_written():
    from flowrl_core.training.config import ConfigError, resolve_config

    specs = load_skill_file(EXAMPLES / "gridworld_basic.yaml")
    with pytest.raises(SkillFileError, match="gather_first"):
        execution_plan(specs, "Collect_Stone", "greedy")
    with pytest.raises(ConfigError, match="'plan_order' must be one of just_in_time, gather_first, got 'greedy'"):
        resolve_config("cpu", {"plan_order": "greedy"})
    with pytest.raises(SkillFileError, match="'train.plan_order' must be one of just_in_time, gather_first"):
        parse_skills({"skills": [{"name": "Wood", "gains": {"wood": 1}, "train": {"plan_order": 1}}]})
    # the words a train: map takes are accepted there (frontier_from was refused as "not a number")
    specs = parse_skills({"skills": [{"name": "Wood", "gains": {"wood": 1},
                                      "train": {"plan_order": "gather_first", "frontier_from": "failed_step"}}]})
    assert resolve_config("cpu", None, specs[0].train)["frontier_from"] == "failed_step"


def test_a_view_key_is_searched_for_right_before_the_skill_that_needs_it():
    """``view:`` keys are positional like ``near:``: the search runs last, after everything the
    collecting skill needs is gathered, and a run that walks off (or searches) loses the stations."""
    specs = parse_skills({"skills": [
        {"name": "Wood", "gains": {"wood": 1}},
        {"name": "Table", "requires": {"wood": 2}, "consumes": {"wood": 2}, "gains": {"near:crafting_table": 1}},
        {"name": "Pick", "requires": {"wood": 1, "near:crafting_table": 1}, "consumes": {"wood": 1},
         "gains": {"wood_pickaxe": 1}},
        {"name": "Find_Stone", "gains": {"view:stone": 1}},
        {"name": "Mine", "requires": {"wood_pickaxe": 1, "view:stone": 1}, "gains": {"stone": 1}},
        {"name": "Mine_Twice", "requires": {"stone": 1, "view:stone": 1}, "gains": {"coal": 1}},
    ]})
    assert steps(execution_plan(specs, "Mine")) == [("Wood", 3), ("Table", 1), ("Pick", 1), ("Find_Stone", 1),
                                                    ("Mine", 1)]
    # Mining walked to the stone and away from the view: the second use searches again.
    plan = execution_plan(specs, "Mine_Twice")
    assert steps(plan)[-4:] == [("Find_Stone", 1), ("Mine", 1), ("Find_Stone", 1), ("Mine_Twice", 1)]
    assert simulate(specs, plan)["coal"] == 1


def test_a_search_run_walks_away_from_the_stations():
    specs = parse_skills({"skills": [
        {"name": "Wood", "gains": {"wood": 1}},
        {"name": "Table", "requires": {"wood": 1}, "consumes": {"wood": 1}, "gains": {"near:crafting_table": 1}},
        {"name": "Find_Stone", "gains": {"view:stone": 1}},
        {"name": "Craft", "requires": {"near:crafting_table": 1, "view:stone": 1}, "gains": {"stone_pickaxe": 1}},
    ]})
    # the table is placed after the search: searching would have left it behind
    assert steps(execution_plan(specs, "Craft")) == [("Wood", 1), ("Find_Stone", 1), ("Table", 1), ("Craft", 1)]
