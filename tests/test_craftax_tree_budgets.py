"""The tree benchmark's ``--budgets``: the derived skill file is the example's, with budgets the
product accepts, so a two-hour run is not lost to a renamed skill or a refused setting."""

from benchmarks.craftax_tree import BUDGETS, FILE, budgeted_file
from benchmarks.library import skill_configs
from flowrl_core.skills.graph import build_graph
from flowrl_core.skills.parsing import load_skill_file


def test_two_hour_budgets_name_every_example_skill_and_resolve(tmp_path):
    example = {s.name: s for s in load_skill_file(FILE)}
    assert set(BUDGETS["two-hours"]) == set(example)
    derived = load_skill_file(budgeted_file("two-hours", tmp_path / "tree.skills.yaml"))
    assert [(s.name, s.requires, s.consumes, s.gains) for s in derived] == \
        [(s.name, s.requires, s.consumes, s.gains) for s in example.values()]
    configs = skill_configs(derived, "cpu")
    assert configs["Make_Iron_Pickaxe"]["total_timesteps"] == 5_000_000
    assert configs["Make_Iron_Pickaxe"]["frontier_reset_prob"] == 0.5
    assert configs["Collect_Wood"]["success_threshold"] == 0.95
    assert sum(c["total_timesteps"] for c in configs.values()) == 13_700_000
    # the leaves, and only they, keep their prerequisites frozen
    graph = build_graph(derived)
    frozen = {name for name, c in configs.items() if not c["train_prerequisites"]}
    assert frozen == {n for n in graph if graph.out_degree(n) == 0} == {"Make_Wood_Sword", "Make_Stone_Sword", "Make_Iron_Sword",
                                                     "Collect_Diamond"}
