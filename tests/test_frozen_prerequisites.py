"""`train_prerequisites: false`: a skill trains only its own expert, its prerequisites' stay as stored.

On the Craftax tree, Collect_Diamond's 2M frames (no diamond ever found) merged newer versions of
every expert on its plan under the frame-count rule, and Make_Iron_Pickaxe's evaluated success
fell from 0.203 to 0.137. With the setting off, the prerequisites act with the versions setup
pinned, get exactly no update, and the merge proposes only the skill's own expert. Checked through
the installed command on a real local store (gridworld, real PPO), against the default on the
same store: a continuation that does train the prerequisites publishes a new version of them.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import jax
import numpy as np

from flowrl_core.lifecycle.job import expert_parts, load_job
from flowrl_core.store.experts import current_version, load_params, version_keys
from flowrl_core.store.objects import Store
from flowrl_core.store.params import params_from_bytes
from flowrl_core.store.runs import RunState, skill_runs

ROOT = Path(__file__).resolve().parent.parent
SKILLS = """\
name: frozen-prerequisites
env: gridworld
skills:
  - name: Collect_Wood
    gains: {wood: 1}
  - name: Place_Table
    requires: {wood: 2}
    consumes: {wood: 2}
    gains: {"achievement:place_table": 1}
    train: {train_prerequisites: false}
"""
FAST = {"num_envs": 16, "num_steps": 16, "num_minibatches": 2, "update_epochs": 1, "width": 16, "depth": 1,
        "checkpoint_every": 0, "total_timesteps": 16 * 16 * 3, "analysis_episodes": 8}
SETTINGS = [arg for k, v in FAST.items() for arg in ("--set", f"{k}={json.dumps(v)}")]


def flowrl(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", PYTHONPATH=str(ROOT))
    return subprocess.run(["flowrl", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _completed_run(store: Store, skill: str, *, continuation: bool) -> str:
    runs = [r for r in skill_runs(store, skill).values()
            if r.state is RunState.COMPLETED and r.continuation == continuation]
    assert len(runs) == 1, runs
    return runs[0].run_id


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def test_frozen_prerequisites_keep_their_stored_version_and_the_default_does_not(tmp_path):
    skills = tmp_path / "skills.yaml"
    skills.write_text(SKILLS)
    url = str(tmp_path / "store")
    res = flowrl("run", str(skills), "--store", url, "--profile", "tiny", *SETTINGS)
    assert res.returncode == 0, res.stderr[-3000:]
    store = Store(url, create=False)
    wood, table = store.expert_indices()["Collect_Wood"], store.expert_indices()["Place_Table"]
    wood_run = _completed_run(store, "Collect_Wood", continuation=False)
    table_run = _completed_run(store, "Place_Table", continuation=False)

    # Collect_Wood's expert has only its own run's version; Place_Table's run proposed only its own
    assert len(version_keys(store, wood)) == 1 and current_version(store, wood).run_id == wood_run
    assert current_version(store, table).run_id == table_run
    merged = store.run(table_run).read_doc("merge.json")
    assert [(d["skill"], d["action"]) for d in merged] == [("Place_Table", "new")]
    assert load_job(store, table_run).trained_experts == (table,)
    # the run's copy of the frozen expert is the stored one, bit for bit; its own expert moved
    run = store.run(table_run)
    acted = params_from_bytes(store.read_bytes(expert_parts(run, wood)), "wood")
    assert _same(acted, load_params(store, current_version(store, wood)))
    record = store.run(table_run).read_doc("result.json")
    assert int(record["expert_steps_global"][str(wood)]) > 0  # it did act, routed by the plan
    # the run's analysis names the pinned version, so the evaluation is still current after the merge
    status = flowrl("status", url, "--json")
    assert status.returncode == 0, status.stderr
    rows = {s["name"]: s for s in json.loads(status.stdout)["skills"]}
    assert rows["Place_Table"]["evaluated_success"] is not None
    assert rows["Place_Table"]["evaluation_stale"] is False
    assert rows["Collect_Wood"]["evaluation_stale"] is False

    # the same store, the default: a continuation of Place_Table trains Collect_Wood's expert too
    res = flowrl("continue", "Place_Table", "--store", url, "--frames", str(16 * 16 * 3), "--profile", "tiny",
                 *SETTINGS, "--set", "train_prerequisites=true")
    assert res.returncode == 0, res.stderr[-3000:]
    again = _completed_run(store, "Place_Table", continuation=True)
    assert current_version(store, wood).run_id == again
    assert not _same(load_params(store, current_version(store, wood)), acted)
