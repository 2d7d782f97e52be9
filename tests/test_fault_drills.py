"""Fault drills (slow): what survives a killed orchestrator, failing storage and merge storms."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowrl_core.lifecycle.job import read_result
from flowrl_core.store.experts import current_version, store_snapshot
from flowrl_core.store.objects import Store
from flowrl_core.store.runs import RunState, skill_runs

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
from tests.support import faulty_fs  # noqa: F401 - registers faulty:// here
from tests.test_flow import GRAPH, TINY, run_flow, write_graph
from tests.test_merge import assert_storm_equals_replay

HERE = Path(__file__).resolve().parent


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("pattern,mode", [("/versions/", "after"), ("result.json", "before"), ("/blobs/", "before")])
def test_failing_store_write_fails_the_task_clearly_and_the_retry_succeeds(tmp_path, pattern, mode, monkeypatch):
    monkeypatch.setenv("FLOWRL_PLUGINS", "tests.support.faulty_fs")  # the trainer child registers it too
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    skills_file = write_graph(tmp_path, {"skills": GRAPH["skills"][:2]})
    faults = tmp_path / "faults"
    options = {"fail_pattern": pattern, "fail_times": 1, "fail_mode": mode, "state_dir": str(faults)}
    url = f"faulty://{tmp_path / 'store'}"
    state, summary = run_flow(skills_file=skills_file, store=url, env="gridworld", profile="tiny",
                              overrides=TINY, retries=2, storage_options=options)
    assert state.is_completed(), state.message
    assert len(list(faults.iterdir())) == 1  # the fault did fire, once
    store = Store(url, storage_options={})
    for row in summary.outcomes:
        assert row.status.value == "trained"
        assert read_result(store, row.run_id).frames == TINY["total_timesteps"]
    snap = store_snapshot(store)  # every visible version decodes and matches its blob
    assert set(snap) == {0, 1}
    from flowrl_core.store.experts import load_params
    for index in snap:
        load_params(store, current_version(store, index))


PLACE_TABLE_FRAMES = 8 * 16 * 300


def test_killed_flow_process_then_rerun_retrains_nothing_finished(tmp_path):
    data = json.loads(json.dumps({"skills": GRAPH["skills"][:3]}))
    # budgets in the file (a --set would win over every skill's train:); Place_Table runs long
    # enough to be killed mid-training
    for skill in data["skills"]:
        skill["train"] = {"total_timesteps": TINY["total_timesteps"]}
    data["skills"][1]["train"] = {"total_timesteps": PLACE_TABLE_FRAMES}
    skills_file = write_graph(tmp_path, data)
    store_url = str(tmp_path / "store")
    sets = [f"--set={k}={json.dumps(v)}" for k, v in TINY.items() if k != "total_timesteps"]
    cmd = [sys.executable, "-m", "flows.cli", "run", skills_file, "--store", store_url, "--profile", "tiny", *sets]
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120")
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline, killed_run = time.monotonic() + 600, None
    while time.monotonic() < deadline and killed_run is None and first.poll() is None:
        time.sleep(0.5)
        try:
            store = Store(store_url, create=False)
            runs = skill_runs(store, "Place_Table")
        except Exception:
            continue
        for run_id, rec in runs.items():
            if rec.state is RunState.STARTED and store.run(run_id).checkpoints():
                os.killpg(first.pid, signal.SIGKILL)  # the orchestrator and its trainer die at once
                killed_run = run_id
    first.wait(60)
    assert killed_run, "Place_Table never got far enough to be killed"
    store = Store(store_url, create=False)
    wood_run = [r for r, rec in skill_runs(store, "Collect_Wood").items() if rec.state.value == "completed"]
    assert len(wood_run) == 1
    second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    runs = {name: skill_runs(store, name) for name in ("Collect_Wood", "Place_Table", "Make_Wood_Pickaxe")}
    assert list(runs["Collect_Wood"]) == wood_run  # finished skill not retrained
    assert list(runs["Place_Table"]) == [killed_run]  # unfinished one resumed, same run
    result = read_result(store, killed_run)
    assert result.resumed_from_update >= 1 and result.frames == PLACE_TABLE_FRAMES
    assert all(rec.state.value == "completed" for r in runs.values() for rec in r.values())


def test_8_processes_x_50_merges_file_store(tmp_path):
    assert_storm_equals_replay(str(tmp_path / "st"), {}, workers=8, merges=50)


def test_8_processes_x_50_merges_s3_store(s3_url):
    assert_storm_equals_replay(*s3_url, workers=8, merges=50)
