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
    """Replay a plan on an inventory; every run's needs must hold when it starts."""
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
            for k, v in spec.gains.items():
                inv[k] = max(inv.get(k, 0), 1) if k.startswith("achievement:") else inv.get(k, 0) + v
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
