"""A continuation starts from the stored experts, so it must use their network shape.

Before: `flowrl continue` with the default (cpu, 3x128) profile on a store trained at another
width failed in the trainer, three times over its retries, as a leaf-shape mismatch. Now a
continuation keeps the shape the skill last trained with, and settings that ask for another are
refused up front with the shape to use -- through the installed command, on a real store.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from flowrl_core.lifecycle.merge import merge_run
from flowrl_core.lifecycle.setup import NetworkMismatchError, setup
from flowrl_core.lifecycle.train import run_job
from flowrl_core.skills.parsing import parse_skills
from flowrl_core.store.objects import Store
from flowrl_core.store.runs import RunState, skill_runs
from flowrl_core.training.config import resolve_config

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = parse_skills({"skills": [{"name": "Collect_Wood", "gains": {"wood": 1}}]})
CFG = resolve_config("tiny", {"num_envs": 8, "num_steps": 8, "num_minibatches": 2, "update_epochs": 1,
                              "width": 16, "depth": 1, "total_timesteps": 8 * 8 * 2, "checkpoint_every": 0})


def flowrl(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", PYTHONPATH=str(ROOT))
    return subprocess.run(["flowrl", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _trained(tmp_path: Path) -> tuple[str, Store]:
    url = str(tmp_path / "store")
    store = Store(url)
    store.save_skill(SPECS[0])
    store.assign_index("Collect_Wood")
    job = setup(store, SPECS, "Collect_Wood", env="gridworld", config=CFG).job
    run_job(store, job.run_id)
    merge_run(store, job.run_id)
    return url, store


def test_another_width_is_refused_before_anything_runs_and_the_stored_one_is_kept(tmp_path):
    url, store = _trained(tmp_path)
    runs_before = set(skill_runs(store, "Collect_Wood"))

    res = flowrl("continue", "Collect_Wood", "--store", url, "--frames", "256", "--profile", "tiny",
                 "--set", "width=64")
    assert res.returncode == 2, res.stderr[-2000:]
    assert "expert of 'Collect_Wood'" in res.stderr and "is a 1x16 network" in res.stderr
    assert "--set width=16 --set depth=1" in res.stderr
    assert set(skill_runs(store, "Collect_Wood")) == runs_before  # nothing started

    with pytest.raises(NetworkMismatchError, match="ask for 2x32"):  # setup refuses it too (flowrl run's path)
        setup(store, SPECS, "Collect_Wood", env="gridworld", config=resolve_config("tiny"), continuation=True)

    res = flowrl("continue", "Collect_Wood", "--store", url, "--frames", "256", "--profile", "tiny", "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    continued = [r for r in skill_runs(store, "Collect_Wood").values() if r.continuation]
    assert [r.state for r in continued] == [RunState.COMPLETED]
    job = json.loads((tmp_path / "store" / "runs" / continued[0].run_id / "job.json").read_text())
    assert (job["config"]["width"], job["config"]["depth"]) == (16, 1)  # the tiny profile says 32 and 2
