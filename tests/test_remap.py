"""Global → local expert remapping: contiguous, ascending global order, errors name the skill."""

from __future__ import annotations

import itertools

import pytest

from flowrl_core.errors import RemapError
from flowrl_core.skills.remap import Remap, build_remap, remap_for_plan
from flowrl_core.skills.spec import PlanStep


def test_contiguous_deps():
    r = build_remap("P", 2, {"A": 0, "B": 1})
    assert r.global_to_local == {0: 0, 1: 1, 2: 2}
    assert r.local_to_global == {0: 0, 1: 1, 2: 2}


def test_sparse_deps():
    r = build_remap("P", 7, {"A": 0, "B": 5})
    assert r.global_to_local == {0: 0, 5: 1, 7: 2}
    assert r.local_to_global == {0: 0, 1: 5, 2: 7}
    assert r.num_experts == 3
    assert r.local_of_skill() == {"A": 0, "B": 1, "P": 2}


def test_single_dep_and_no_dep():
    assert build_remap("B", 1, {"A": 0}).global_to_local == {0: 0, 1: 1}
    r = build_remap("A", 0, {})
    assert r.global_to_local == {0: 0} and r.local_to_global == {0: 0}


@pytest.mark.parametrize("order", list(itertools.permutations([("a", 10), ("b", 3), ("c", 7)])))
def test_any_input_order(order):
    r = build_remap("new", 15, dict(order))
    assert r.global_to_local == {3: 0, 7: 1, 10: 2, 15: 3}
    assert r.local_to_global == {0: 3, 1: 7, 2: 10, 3: 15}


def test_new_expert_below_deps_sorts_first():
    r = build_remap("P", 1, {"A": 4, "B": 9})
    assert r.local_to_global == {0: 1, 1: 4, 2: 9}


def test_dependency_without_expert_is_named():
    with pytest.raises(RemapError, match="dependency 'Place_Table' has no expert index"):
        build_remap("Pickaxe", 3, {"Wood": 0, "Place_Table": None})
    with pytest.raises(RemapError, match="'Table'"):
        remap_for_plan("Pickaxe", [PlanStep("Wood", 2), PlanStep("Table", 1), PlanStep("Pickaxe", 1)],
                       {"Wood": 0, "Pickaxe": 4})


def test_bad_indices_are_errors():
    with pytest.raises(RemapError, match="share global expert 2"):
        build_remap("P", 2, {"A": 2})
    with pytest.raises(RemapError, match="non-negative integer"):
        build_remap("P", -1, {})


def test_plan_remap_keeps_only_plan_experts_and_round_trips():
    plan = [PlanStep("Wood", 2), PlanStep("Table", 1), PlanStep("Wood", 1), PlanStep("Pick", 1)]
    r = remap_for_plan("Pick", plan, {"Wood": 0, "Stone": 1, "Table": 5, "Pick": 50})
    assert r.global_to_local == {0: 0, 5: 1, 50: 2}
    assert Remap.from_dict(r.to_dict()) == r
