"""`flowrl plan`: the first user-facing command, run as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def flowrl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_plan_prints_graph_order_plans_and_remaps(tmp_path):
    res = flowrl("plan", str(ROOT / "examples" / "gridworld_basic.yaml"), cwd=ROOT)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "5 skills" in out and "valid" in out
    assert "training order: Collect_Wood → Place_Table → Make_Wood_Pickaxe" in out
    assert "critical path: Collect_Wood → Place_Table → Make_Wood_Pickaxe → Collect_Stone" in out
    assert "Collect_Wood×2 → Place_Table → Collect_Wood → Make_Wood_Pickaxe" in out
    assert "4→2 Make_Wood_Sword" in out  # sparse global 4 remapped to local 2


def test_plan_uses_existing_store_indices_read_only(tmp_path):
    from flowrl_core.store.objects import Store
    store = Store(str(tmp_path / "st"))
    store.assign_index("Other")
    store.assign_index("Place_Table")
    before = sorted(p.name for p in (tmp_path / "st").rglob("*"))
    res = flowrl("plan", str(ROOT / "examples" / "gridworld_basic.yaml"), "--store", str(tmp_path / "st"), cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "0→0 Collect_Wood" not in res.stdout  # Collect_Wood gets a new index after the store's
    assert "1→0 Place_Table" in res.stdout or "1→1 Place_Table" in res.stdout
    assert sorted(p.name for p in (tmp_path / "st").rglob("*")) == before


@pytest.mark.parametrize("content,fragment", [
    ("skills: [{name: A, requires: {wod: 1}, gains: {stone: 1}}]", "did you mean 'wood'"),
    ("skills: [{name: A, requires: {stone: 1}, gains: {wood: 1}}, {name: B, requires: {wood: 1}, gains: {stone: 1}}]",
     "dependency cycle"),
    ("skills: [ {", "not valid YAML"),
    ("skills: [{name: A, gains: {wood: 1}, train: {plan_order: greedy}}]", "must be one of just_in_time, gather_first"),
    ("skills: [{name: A, gains: {wood: 1}, train: {step_goal: owned}}]", "must be one of gained, held"),
])
def test_bad_input_is_one_line_on_stderr_and_nonzero(tmp_path, content, fragment):
    path = tmp_path / "s.yaml"
    path.write_text(content)
    res = flowrl("plan", str(path), cwd=tmp_path)
    assert res.returncode == 2
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]  # nothing written


def test_missing_store_is_clear(tmp_path):
    res = flowrl("plan", str(ROOT / "examples" / "gridworld_basic.yaml"), "--store", str(tmp_path / "none"), cwd=ROOT)
    assert res.returncode == 2 and "is not a flowrl store" in res.stderr
    assert not (tmp_path / "none").exists()


def test_plan_shows_the_order_a_skill_files_train_map_sets(tmp_path):
    import json

    import yaml

    doc = yaml.safe_load((ROOT / "examples" / "gridworld_basic.yaml").read_text())
    for skill in doc["skills"]:
        if skill["name"] == "Collect_Stone":
            skill["train"] = {**skill.get("train", {}), "plan_order": "gather_first"}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    res = flowrl("plan", str(path), "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    plans = {s["name"]: [(p["skill"], p["count"]) for p in s["plan"]] for s in json.loads(res.stdout)["skills"]}
    assert plans["Collect_Stone"] == [("Collect_Wood", 3), ("Place_Table", 1), ("Make_Wood_Pickaxe", 1),
                                      ("Collect_Stone", 1)]
    assert plans["Make_Wood_Pickaxe"] == [("Collect_Wood", 2), ("Place_Table", 1), ("Collect_Wood", 1),
                                          ("Make_Wood_Pickaxe", 1)]  # the rest keep the default
