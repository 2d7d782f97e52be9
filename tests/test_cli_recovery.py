"""Runs that recover, driven through the installed ``flowrl`` command as a user (or CI) runs it:
a failed run whose skill file is then fixed starts afresh instead of resuming its broken job;
the README's example, rerun, trains nothing; an interrupted run exits 130 and resumes; a run a
live process holds is refused to a second one; a corrupt checkpoint falls back to the previous.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from flowrl_core.store.objects import Store
from flowrl_core.store.runs import RunState, skill_runs
from tests.test_cli_failures import GRAPH, ROOT, flowrl, flowrl_exe, write

SMALL = ["--profile", "tiny", "--set", "num_envs=8", "--set", "num_steps=16", "--set", "num_minibatches=2",
         "--set", "width=16", "--set", "depth=1", "--set", "checkpoint_every=1", "--set", "update_epochs=1"]


def env_for(tmp_path: Path) -> dict[str, str]:
    return {"PREFECT_HOME": str(tmp_path.parent / "prefect-home"), "PREFECT_API_URL": "",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}


def run_json(*args: str, cwd: Path, tmp_path: Path, timeout: float = 600) -> tuple[subprocess.CompletedProcess, dict]:
    res = flowrl(*args, "--json", cwd=cwd, env=env_for(tmp_path), timeout=timeout)
    try:
        doc = json.loads(res.stdout)
    except ValueError:
        doc = {}
    return res, doc


@pytest.mark.slow  # the same rules in-process: test_recovery.py, test_flow.py::test_rerun_retrains_nothing
def test_a_failed_run_whose_file_is_fixed_starts_afresh(tmp_path):
    broken = {**GRAPH, "skills": GRAPH["skills"][:1], "trainer": "tests.support.cli_plugins:failing_trainer"}
    skills = write(tmp_path / "s.yaml", broken)
    store = str(tmp_path / "store")
    res, doc = run_json("run", skills, "--store", store, "--retries", "0", *SMALL, "--set", "total_timesteps=256",
                        cwd=tmp_path, tmp_path=tmp_path)
    assert res.returncode == 1, res.stderr[-3000:]
    assert doc["ok"] is False and "deliberate failure training Collect_Wood" in doc["failed"]["Collect_Wood"]
    assert "did not train" in res.stderr
    [failed] = skill_runs(Store(store, create=False), "Collect_Wood").values()
    assert failed.state is RunState.FAILED and "deliberate failure" in failed.reason

    status = flowrl("status", store, "--json", cwd=tmp_path)
    assert status.returncode == 0 and json.loads(status.stdout)["skills"][0]["state"] == "failed"

    write(tmp_path / "s.yaml", {"skills": GRAPH["skills"][:1]})  # fixed: the built-in trainer
    res, doc = run_json("run", skills, "--store", store, "--retries", "0", *SMALL, "--set", "total_timesteps=256",
                        cwd=tmp_path, tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    [outcome] = doc["skills"]
    assert outcome["status"] == "trained" and outcome["run_id"] != failed.run_id and not outcome["resumed"]
    runs = skill_runs(Store(store, create=False), "Collect_Wood")
    assert runs[failed.run_id].state is RunState.ABANDONED
    assert runs[outcome["run_id"]].state is RunState.COMPLETED


@pytest.mark.slow  # the same rules in-process: test_recovery.py, test_flow.py::test_rerun_retrains_nothing
def test_rerunning_the_readme_example_trains_nothing(tmp_path):
    """The budget is not a whole number of updates (1000 frames at 128 an update): the trainer
    trains 7 updates = 896 frames, and a rerun must count that as done."""
    store = str(tmp_path / "store")
    example = str(ROOT / "examples" / "gridworld_basic.yaml")
    args = ("run", example, "--store", store, "--slots", "2", *SMALL, "--set", "total_timesteps=1000",
            "--set", "success_threshold=null")
    res, first = run_json(*args, cwd=tmp_path, tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert {o["status"] for o in first["skills"]} == {"trained"} and len(first["skills"]) == 5
    assert {o["frames"] for o in first["skills"]} == {896}
    runs_before = sorted(Store(store, create=False).list("runs"))
    res, second = run_json(*args, cwd=tmp_path, tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert [o["status"] for o in second["skills"]] == ["already done"] * 5
    assert sorted(Store(store, create=False).list("runs")) == runs_before


def _wait_for(predicate, timeout: float = 300.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except Exception:  # noqa: BLE001 - the store may not exist yet
            pass
        time.sleep(0.5)
    return False


def _start(args: list[str], tmp_path: Path) -> subprocess.Popen:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", PYTHONPATH=str(ROOT), **env_for(tmp_path))
    return subprocess.Popen([*flowrl_exe(), *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _checkpointed(store: str) -> bool:
    st = Store(store, create=False)
    return any(st.run(r).checkpoints() for r in st.list("runs"))


@pytest.mark.slow
def test_an_interrupted_run_exits_130_and_the_rerun_resumes_it(tmp_path):
    skills = write(tmp_path / "s.yaml", {"skills": GRAPH["skills"][:1]})
    store = str(tmp_path / "store")
    # long enough (3,200 updates) that the interrupt lands mid-training, with the compile cache warm
    args = ["run", skills, "--store", store, *SMALL, "--set", "total_timesteps=409600", "--set", "checkpoint_every=2"]
    proc = _start(args, tmp_path)
    assert _wait_for(lambda: _checkpointed(store)), proc.stderr.read() if proc.poll() is not None else "no checkpoint"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    # one line says what happened; the flow's threads failing to report afterwards is not shown
    assert "interrupted: trainings stopped" in stderr and "Traceback" not in stderr, stderr[-3000:]
    [run_id] = Store(store, create=False).list("runs")
    res, doc = run_json(*args, cwd=tmp_path, tmp_path=tmp_path, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    [outcome] = doc["skills"]
    assert outcome["run_id"] == run_id and outcome["resumed"] and outcome["frames"] == 409600


@pytest.mark.slow
def test_a_second_process_cannot_resume_a_run_a_live_process_holds(tmp_path):
    skills = write(tmp_path / "s.yaml", {"skills": GRAPH["skills"][:1]})
    store = str(tmp_path / "store")
    # a budget the first process cannot finish while the second starts (it is interrupted below)
    args = ["run", skills, "--store", store, *SMALL, "--set", "total_timesteps=4096000", "--set", "checkpoint_every=2"]
    first = _start(args, tmp_path)
    try:
        assert _wait_for(lambda: _checkpointed(store))
        res, doc = run_json(*args, cwd=tmp_path, tmp_path=tmp_path)
        assert res.returncode == 1, res.stderr[-3000:]
        assert "is held by" in doc["failed"]["Collect_Wood"] and "another flowrl process" in doc["failed"]["Collect_Wood"]
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)


@pytest.mark.slow
def test_a_truncated_latest_checkpoint_is_reported_and_the_previous_one_resumes(tmp_path):
    skills = write(tmp_path / "s.yaml", {"skills": GRAPH["skills"][:1]})
    store = str(tmp_path / "store")
    # long enough (3,200 updates) that the interrupt lands mid-training, with the compile cache warm
    args = ["run", skills, "--store", store, *SMALL, "--set", "total_timesteps=409600", "--set", "checkpoint_every=2"]
    proc = _start(args, tmp_path)
    st_path = Path(store)
    assert _wait_for(lambda: len(list(st_path.glob("runs/*/checkpoints/*.msgpack"))) >= 2)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    latest = sorted(st_path.glob("runs/*/checkpoints/*.msgpack"))[-1]
    previous = int(sorted(st_path.glob("runs/*/checkpoints/*.msgpack"))[-2].name[:9])
    latest.write_bytes(latest.read_bytes()[:64])
    res = flowrl(*args, cwd=tmp_path, env=env_for(tmp_path), timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "corrupt checkpoint" in res.stdout + res.stderr and latest.name in res.stdout + res.stderr
    result = json.loads((latest.parent.parent / "result.json").read_text())
    assert result["resumed_from_update"] == previous and result["frames"] == 409600

