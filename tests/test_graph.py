"""Skill files: parsing, dependency inference, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowrl_core.errors import SkillFileError
from flowrl_core.skills.graph import (
    build_graph,
    critical_path,
    critical_path_lengths,
    training_order,
)
from flowrl_core.skills.parsing import load_skill_file, parse_skills

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def skills(*items):
    return {"skills": list(items)}


def test_examples_load_and_validate():
    grid = load_skill_file(EXAMPLES / "gridworld_basic.yaml")
    craft = load_skill_file(EXAMPLES / "craftax_classic.yaml")
    assert [s.name for s in grid][:3] == ["Collect_Wood", "Place_Table", "Make_Wood_Pickaxe"]
    names = {s.name for s in craft}
    assert {"Collect_Diamond", "Make_Iron_Pickaxe", "Make_Stone_Sword", "Place_Furnace"} <= names
    order = training_order(build_graph(craft))
    assert order.index("Collect_Wood") < order.index("Place_Table") < order.index("Make_Wood_Pickaxe")
    assert order.index("Make_Iron_Pickaxe") < order.index("Collect_Diamond")


def test_count_aware_inference_needs_three_served_by_one_per_run():
    specs = parse_skills(skills(
        {"name": "Wood", "gains": {"wood": 1}},
        {"name": "Bundle", "requires": {"wood": 3}, "gains": {"sapling": 1}},
    ))
    g = build_graph(specs)
    assert list(g.edges) == [("Wood", "Bundle")]
    assert g.edges["Wood", "Bundle"]["reason"] == "wood"


def test_consumes_implies_requirement_and_explicit_depends_on():
    specs = parse_skills(skills(
        {"name": "Wood", "gains": {"wood": 1}},
        {"name": "Stone", "gains": {"stone": 1}},
        {"name": "Table", "consumes": {"wood": 2}, "gains": {"achievement:place_table": 1},
         "depends_on": ["Stone"]},
    ))
    g = build_graph(specs)
    assert set(g.predecessors("Table")) == {"Wood", "Stone"}
    assert g.edges["Stone", "Table"]["reason"] == "depends_on"


def test_json_and_yaml_give_the_same_specs(tmp_path):
    data = skills({"name": "Wood", "gains": {"wood": 1}, "train": {"total_timesteps": 1e5}},
                  {"name": "Table", "requires": {"wood": 2}, "consumes": {"wood": 2},
                   "gains": {"achievement:place_table": 1}})
    (tmp_path / "s.json").write_text(json.dumps(data))
    import yaml

    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    a = load_skill_file(tmp_path / "s.json")
    b = load_skill_file(tmp_path / "s.yaml")
    assert a == b
    assert a[0].train["total_timesteps"] == 100000 and isinstance(a[0].train["total_timesteps"], int)
    assert parse_skills({"skills": [s.to_dict() for s in a]}) == a


def test_critical_path_prefers_the_longest_chain():
    specs = parse_skills(skills(
        {"name": "A", "gains": {"wood": 1}},
        {"name": "B", "requires": {"wood": 1}, "gains": {"stone": 1}},
        {"name": "C", "requires": {"stone": 1}, "gains": {"coal": 1}},
        {"name": "D", "requires": {"wood": 1}, "gains": {"iron": 1}},
    ))
    g = build_graph(specs)
    assert critical_path(g) == ["A", "B", "C"]
    lengths = critical_path_lengths(g)
    assert lengths["A"] == 3 and lengths["B"] == 2 and lengths["D"] == 1


W = {"name": "Wood", "gains": {"wood": 1}}

# (id, file text or data, expected fragment of the one-line error)
BAD = [
    ("yaml-syntax", "skills: [ {name: A", "not valid YAML"),
    ("top-level-list", "- {name: A, gains: {wood: 1}}", "top-level 'skills:' list"),
    ("missing-skills", "name: x", "'skills:' must be a non-empty list"),
    ("empty-skills", "skills: []", "'skills:' must be a non-empty list"),
    ("unknown-top-key", skills(W) | {"skils": 1}, "did you mean 'skills'"),
    ("skill-not-map", skills("Wood"), "skills[0] must be a map"),
    ("missing-name", skills({"gains": {"wood": 1}}), "has no 'name'"),
    ("empty-name", skills({"name": "", "gains": {"wood": 1}}), "is empty"),
    ("name-slash", skills({"name": "a/b", "gains": {"wood": 1}}), "path separator"),
    ("name-backslash", skills({"name": "a\\b", "gains": {"wood": 1}}), "path separator"),
    ("name-dotdot", skills({"name": "..", "gains": {"wood": 1}}), "'..'"),
    ("name-control", skills({"name": "a\x07b", "gains": {"wood": 1}}), "control character"),
    ("name-too-long", skills({"name": "x" * 101, "gains": {"wood": 1}}), "the limit is 100"),
    ("name-whitespace", skills({"name": " Wood", "gains": {"wood": 1}}), "leading or trailing whitespace"),
    ("name-not-string", skills({"name": 5, "gains": {"wood": 1}}), "must be a string"),
    ("duplicate-name", skills(W, W), "duplicate skill name"),
    ("duplicate-casefold", skills(W, {"name": "wood", "gains": {"stone": 1}}), "case-insensitive"),
    ("unknown-skill-key", skills({"name": "A", "gains": {"wood": 1}, "require": {}}), "did you mean 'requires'"),
    ("unknown-item", skills({"name": "A", "gains": {"wod": 1}}), "did you mean 'wood'"),
    ("unknown-achievement", skills({"name": "A", "gains": {"achievement:place_tabel": 1}}),
     "did you mean 'achievement:place_table'"),
    ("achievement-without-prefix", skills({"name": "A", "gains": {"place_table": 1}}), "achievement:place_table"),
    ("unknown-block", skills({"name": "A", "requires": {"near:crafting_tabel": 1}, "gains": {"wood": 1}}),
     "did you mean 'near:crafting_table'"),
    ("near-consumed", skills({"name": "A", "consumes": {"near:furnace": 1}, "gains": {"wood": 1}}),
     "not used up; move it to 'requires'"),
    ("near-count", skills({"name": "A", "gains": {"near:furnace": 2}}), "must be 1"),
    ("unknown-view-block", skills({"name": "A", "gains": {"view:diamnd": 1}}), "did you mean 'view:diamond'"),
    ("view-consumed", skills({"name": "A", "consumes": {"view:diamond": 1}, "gains": {"wood": 1}}),
     "a block in view is not used up"),
    ("view-count", skills({"name": "A", "gains": {"view:diamond": 3}}), "must be 1 (the block is in view or not)"),
    ("negative-count", skills({"name": "A", "gains": {"wood": -1}}), "must be a positive integer"),
    ("zero-count", skills({"name": "A", "gains": {"wood": 0}}), "drop the key"),
    ("float-count", skills({"name": "A", "gains": {"wood": 1.5}}), "must be a positive integer"),
    ("bool-count", skills({"name": "A", "gains": {"wood": True}}), "must be a positive integer"),
    ("string-count", skills({"name": "A", "gains": {"wood": "2"}}), "must be a positive integer"),
    ("counts-not-map", skills({"name": "A", "gains": ["wood"]}), "must be a map"),
    ("nobody-provides", skills({"name": "A", "requires": {"iron": 1}, "gains": {"wood": 1}}),
     "requires 'iron' but no skill gains it"),
    ("unknown-dependency", skills(W, {"name": "B", "gains": {"stone": 1}, "depends_on": ["Wod"]}),
     "unknown skill 'Wod' (did you mean 'Wood'?)"),
    ("self-dependency", skills({"name": "A", "gains": {"wood": 1}, "depends_on": ["A"]}), "the skill itself"),
    ("depends-on-string", skills(W, {"name": "B", "gains": {"stone": 1}, "depends_on": "Wood"}), "must be a list"),
    ("cycle", skills({"name": "A", "requires": {"stone": 1}, "gains": {"wood": 1}},
                     {"name": "B", "requires": {"wood": 1}, "gains": {"stone": 1}}), "dependency cycle"),
    ("no-gains", skills({"name": "A"}), "nothing tells when the skill is done"),
    ("train-unknown", skills({"name": "A", "gains": {"wood": 1}, "train": {"total_steps": 5}}),
     "did you mean 'total_timesteps'"),
    ("train-negative", skills({"name": "A", "gains": {"wood": 1}, "train": {"total_timesteps": -5}}), "must be positive"),
    ("train-switch-number", skills({"name": "A", "gains": {"wood": 1}, "train": {"train_prerequisites": 0}}),
     "'train.train_prerequisites' must be true or false, got 0"),
    ("train-number-switch", skills({"name": "A", "gains": {"wood": 1}, "train": {"lr": True}}),
     "'train.lr' must be a number"),
    ("predicate-no-colon", skills({"name": "A", "gains": {"wood": 1}, "predicate": "os.system"}), "import path"),
    ("yaml-duplicate-key", "skills:\n  - name: A\n    gains: {wood: 1}\n    gains: {stone: 1}\n", "duplicate key 'gains'"),
]


@pytest.mark.parametrize("text,fragment", [(t, f) for _, t, f in BAD], ids=[i for i, _, _ in BAD])
def test_bad_skill_file_is_one_clear_error(tmp_path, text, fragment):
    path = tmp_path / "skills.yaml"
    path.write_text(text if isinstance(text, str) else json.dumps(text))
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SkillFileError) as info:
        load_skill_file(path)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    assert message.startswith(str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_bad_json_and_extension_and_missing_file(tmp_path):
    bad_json = tmp_path / "s.json"
    bad_json.write_text('{"skills": [}')
    with pytest.raises(SkillFileError, match="not valid JSON"):
        load_skill_file(bad_json)
    dup_json = tmp_path / "d.json"
    dup_json.write_text('{"skills": [], "skills": []}')
    with pytest.raises(SkillFileError, match="duplicate key"):
        load_skill_file(dup_json)
    txt = tmp_path / "s.txt"
    txt.write_text("skills: []")
    with pytest.raises(SkillFileError, match=r"must end in \.yaml, \.yml or \.json"):
        load_skill_file(txt)
    with pytest.raises(SkillFileError, match="no such file"):
        load_skill_file(tmp_path / "missing.yaml")
    with pytest.raises(SkillFileError, match="is a directory"):
        load_skill_file(tmp_path / "dir.yaml") if (tmp_path / "dir.yaml").mkdir() is None else None


def test_train_keys_match_the_trainer_config():
    import dataclasses

    from flowrl_core.training.config import TRAIN_KEYS, PPOConfig

    assert set(TRAIN_KEYS) == {f.name for f in dataclasses.fields(PPOConfig)}
