"""CLI conventions: `--json` with documented schemas, no truncation in pipes, `-h` and `--version`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flowrl_core.skills.spec import SkillSpec
from flowrl_core.store.experts import Proposal, merge_proposals
from flowrl_core.store.objects import Store

ROOT = Path(__file__).resolve().parent.parent
LONG = "Make_Wood_Pickaxe_Then_Collect_Stone_For_The_Furnace"


def flowrl(*args: str, cwd: Path = ROOT, columns: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns:
        env["COLUMNS"] = columns
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def store(tmp_path) -> Store:
    """Two skills: one with a merged version and a completed run, one never trained."""
    st = Store(str(tmp_path / "st"))
    for name in (LONG, "Collect_Wood"):
        st.save_skill(SkillSpec(name=name, gains={"wood": 1}))
        st.assign_index(name)
    index = st.expert_indices()[LONG]
    merge_proposals(st, "run-1", [Proposal(index, LONG, 123_456, {"w": np.zeros(2, np.float32)})])
    st.write_json(("skills", LONG, "runs", "run-1.json"),
                  {"run_id": "run-1", "status": "completed", "frames": 123_456, "success_rate": 0.9863945578231292,
                   "completed_at": "2026-01-01T00:00:00Z"})
    return st


def test_status_json_is_one_object_with_a_skills_list(store):
    res = flowrl("status", store.url, "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["schema"] == "flowrl.status/1" and doc["store"] == store.url
    by_name = {s["name"]: s for s in doc["skills"]}
    long = by_name[LONG]
    assert {"name", "expert", "frames", "state", "success_rate"} <= set(long)
    assert long["expert"] == store.expert_indices()[LONG] and long["frames"] == 123_456
    assert long["state"] == "trained" and long["success_rate"] == pytest.approx(0.9863945578231292)
    assert long["version"] and long["completed_runs"] == 1
    wood = by_name["Collect_Wood"]
    assert wood["state"] == "untrained" and wood["frames"] == 0 and wood["success_rate"] is None


def test_status_in_a_pipe_is_not_cut_at_80_columns(store):
    res = flowrl("status", store.url)
    assert res.returncode == 0, res.stderr
    assert LONG in res.stdout and "…" not in res.stdout
    skills = json.loads(flowrl("status", store.url, "--json").stdout)["skills"]
    version = next(s["version"] for s in skills if s["name"] == LONG)
    assert version in res.stdout
    assert "99%" in res.stdout and "123,456" in res.stdout


@pytest.mark.parametrize("columns", ["80", "100", "160"])
def test_status_in_a_terminal_fits_its_width_and_never_breaks_a_name(store, columns):
    """rich's own fitting broke skill names mid-word and spread a version id over eight lines."""
    res = flowrl("status", store.url, columns=columns)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= int(columns)
    assert any(LONG in line for line in lines) and any("Collect_Wood" in line for line in lines)
    version = next(s["version"] for s in json.loads(flowrl("status", store.url, "--json").stdout)["skills"]
                   if s["name"] == LONG)
    assert version not in res.stdout  # 79 characters; its hash's first 8 stand for it where it fits
    text = " ".join(res.stdout.split())
    shown = version.rsplit("-", 1)[-1][:8] in res.stdout
    hidden = re.search(r"not shown at this width: ([a-z ,']+) \(", text)
    assert shown != bool(hidden and "version" in hidden.group(1))  # shown, or said to be left out
    assert "123,456" in res.stdout or (hidden and "expert frames" in hidden.group(1))
    if columns == "160":  # room for all nine columns beside the 52-character name
        assert shown and not hidden and "99%" in res.stdout


def test_plan_json_has_graph_order_critical_path_plans_and_remaps():
    res = flowrl("plan", str(ROOT / "examples" / "gridworld_basic.yaml"), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["schema"] == "flowrl.plan/1"
    assert doc["order"][:3] == ["Collect_Wood", "Place_Table", "Make_Wood_Pickaxe"]
    assert doc["critical_path"] == ["Collect_Wood", "Place_Table", "Make_Wood_Pickaxe", "Collect_Stone"]
    assert {"from": "Collect_Wood", "to": "Place_Table"}.items() <= doc["graph"]["edges"][0].items() or any(
        e["from"] == "Collect_Wood" and e["to"] == "Place_Table" for e in doc["graph"]["edges"])
    pickaxe = next(s for s in doc["skills"] if s["name"] == "Make_Wood_Pickaxe")
    assert pickaxe["plan"] == [{"skill": "Collect_Wood", "count": 2}, {"skill": "Place_Table", "count": 1},
                               {"skill": "Collect_Wood", "count": 1}, {"skill": "Make_Wood_Pickaxe", "count": 1}]
    sword = next(s for s in doc["skills"] if s["name"] == "Make_Wood_Sword")
    assert {"global": 4, "local": 2, "skill": "Make_Wood_Sword", "trained": True} in sword["remap"]
    assert all(r["trained"] for s in doc["skills"] for r in s["remap"])  # the default trains the prerequisites


def test_plan_marks_the_prerequisites_a_skill_keeps_frozen(tmp_path):
    skills = tmp_path / "frozen.yaml"
    skills.write_text("skills:\n- {name: Collect_Wood, gains: {wood: 1}}\n"
                      "- {name: Place_Table, requires: {wood: 2}, consumes: {wood: 2}, "
                      "gains: {'achievement:place_table': 1}, train: {train_prerequisites: false}}\n")
    doc = json.loads(flowrl("plan", str(skills), "--json").stdout)
    table = next(s for s in doc["skills"] if s["name"] == "Place_Table")
    assert [(r["skill"], r["trained"]) for r in table["remap"]] == [("Collect_Wood", False), ("Place_Table", True)]
    res = flowrl("plan", str(skills), columns="160")
    assert res.returncode == 0 and "Collect_Wood (frozen)" in res.stdout, res.stdout


def test_bad_input_with_json_is_still_one_line_exit_2(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("skills: [ {")
    res = flowrl("plan", str(bad), "--json")
    assert res.returncode == 2 and res.stdout == "" and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [[], ["plan"], ["run"], ["status"], ["serve"], ["trigger"], ["pool", "create"],
                                     ["worker", "start"], ["grow"], ["report"], ["continue"]])
def test_dash_h_is_help_everywhere(command):
    res = flowrl(*command, "-h", columns="120")
    assert res.returncode == 0, res.stderr
    assert "Usage:" in res.stdout and "-h" in res.stdout and "--help" in res.stdout


def test_version():
    from importlib.metadata import version

    for flag in ("--version", "-V"):
        res = flowrl(flag)
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith(f"flowrl {version('flowrl')} (prefect {version('prefect')}")
