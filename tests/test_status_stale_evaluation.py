"""`flowrl status` marks an evaluation whose experts a later run has replaced.

A dependant's run keeps training its prerequisites' experts, so the evaluation recorded after a
skill's own run can describe parameters the store no longer serves (on the Craftax tree,
Collect_Iron's recorded 0.12 against 0.54 for its current experts). The store here is trained for
real (setup → train job → merge, the gridworld), evaluated with the product's own evaluation, and
read back through the installed command; ``flowrl eval --record`` refreshes it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from flowrl_core.evaluation import evaluate_skill, record_evaluation
from flowrl_core.lifecycle.merge import merge_run
from flowrl_core.lifecycle.setup import setup
from flowrl_core.lifecycle.train import run_job
from flowrl_core.skills.parsing import parse_skills
from flowrl_core.store.objects import Store
from flowrl_core.training.config import resolve_config

ROOT = Path(__file__).resolve().parent.parent
SPECS = parse_skills({"skills": [
    {"name": "Collect_Wood", "gains": {"wood": 1}},
    {"name": "Place_Table", "requires": {"wood": 2}, "consumes": {"wood": 2}, "gains": {"achievement:place_table": 1}},
]})
CFG = resolve_config("tiny", {"num_envs": 8, "num_steps": 8, "num_minibatches": 2, "update_epochs": 1,
                              "width": 16, "depth": 1, "total_timesteps": 8 * 8 * 2, "checkpoint_every": 0})


def _train(store: Store, skill: str) -> None:
    job = setup(store, SPECS, skill, env="gridworld", config=CFG).job
    run_job(store, job.run_id)
    merge_run(store, job.run_id)


def _status(url: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", PYTHONPATH=str(ROOT))
    return subprocess.run(["flowrl", "status", url, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_an_evaluation_is_stale_once_a_dependants_run_retrains_its_experts(tmp_path):
    url = str(tmp_path / "store")
    store = Store(url)
    for s in SPECS:
        store.assign_index(s.name)
    _train(store, "Collect_Wood")
    record_evaluation(store, evaluate_skill(store, "Collect_Wood", episodes=8))
    fresh = json.loads(_status(url, "--json").stdout)["skills"]
    assert next(s for s in fresh if s["name"] == "Collect_Wood")["evaluation_stale"] is False

    _train(store, "Place_Table")  # its plan routes through Collect_Wood's expert and merges a newer version of it
    record_evaluation(store, evaluate_skill(store, "Place_Table", episodes=8))
    res = _status(url, "--json")
    assert res.returncode == 0, res.stderr
    rows = {s["name"]: s for s in json.loads(res.stdout)["skills"]}
    assert rows["Collect_Wood"]["evaluation_stale"] is True
    assert rows["Place_Table"]["evaluation_stale"] is False
    assert rows["Collect_Wood"]["evaluated_success"] is not None  # the figure is still shown, marked

    table = _status(url)
    assert table.returncode == 0, table.stderr
    lines = {line.split()[1]: line for line in table.stdout.splitlines() if line.startswith("│")}
    assert "; stale" in lines["Collect_Wood"] and "; stale" not in lines["Place_Table"]
    assert "stale: a later run retrained its experts since" in table.stdout

    # `flowrl eval --record` measures the current experts and replaces the stale figure
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(ROOT))
    ev = subprocess.run(["flowrl", "eval", "Collect_Wood", "--store", url, "--episodes", "8", "--record", "--json"],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert ev.returncode == 0, ev.stderr
    measured = json.loads(ev.stdout)
    wood = next(s for s in json.loads(_status(url, "--json").stdout)["skills"] if s["name"] == "Collect_Wood")
    assert wood["evaluation_stale"] is False and wood["evaluated_success"] == measured["success_rate"]
