"""`flowrl trigger` as CI uses it: the run's URL at once, progress, exit codes that say what went
wrong, and a Prefect run cancelled when the trigger is (SIGTERM, as GitHub cancels a job)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def trigger(*args: str, api: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PREFECT_API_URL=api, NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "flows.cli", "trigger", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_unreachable_api_exits_3():
    from deployments.local_cluster import free_port

    res = trigger("--deployment", "a/b", api=f"http://127.0.0.1:{free_port()}/api", timeout=120)
    assert res.returncode == 3, res.stderr
    assert "unreachable" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_unknown_deployment_exits_2_naming_the_real_ones(prefect_harness):
    from prefect import flow
    from prefect.settings import PREFECT_API_URL

    @flow(name="train-skill-graph")
    def graph_flow() -> None:  # a deployment needs a flow; this one is never run
        pass

    from prefect.deployments.runner import RunnerDeployment

    RunnerDeployment.from_flow(graph_flow, name="nightly-continuation").apply()
    api = PREFECT_API_URL.value()
    res = trigger("--deployment", "nightly-continuation", api=api)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "no deployment 'nightly-continuation'" in lines[0]
    assert "did you mean 'train-skill-graph/nightly-continuation'" in lines[0]
    res = trigger("--deployment", "nope/nope", api=api)
    assert res.returncode == 2 and "train-skill-graph/nightly-continuation" in res.stderr


@pytest.mark.slow
def test_trigger_reports_failure_and_cancels_on_sigterm(tmp_path):
    """A real server, the prefect.yaml deployments and a CPU-pool worker, no GPU workers."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.local_cluster import LocalCluster

    store = str(tmp_path / "store")
    with LocalCluster(tmp_path, extra_env={"FLOWRL_STORE": store}) as c:
        c.create_pools(1)
        c.deploy("train-skill-graph", "train-skill")
        c.spawn("cpu-worker", [sys.executable, "-m", "flows.cli", "worker", "start", "--pool", "cpu-pool", "--limit", "2"])

        # a run that fails: exit 1, URL first, state changes as they happen
        res = c.flowrl("trigger", "--skills-file", str(tmp_path / "missing.yaml"), "--store", store, "--poll", "1",
                       timeout=400)
        assert res.returncode == 1, res.stdout + res.stderr
        first = res.stdout.splitlines()[0]
        assert re.search(rf"http://127\.0\.0\.1:{c.port}/runs/flow-run/[0-9a-f-]{{36}}$", first), first
        assert "state: Scheduled" in res.stdout or "state: Pending" in res.stdout
        assert re.search(r"state: Failed — .*missing\.yaml", res.stdout), res.stdout

        # a run that would wait for GPU workers forever: SIGTERM the trigger, the run is cancelled
        proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "trigger", "--skills-file",
                                 "examples/gridworld_basic.yaml", "--store", store, "--poll", "1"],
                                cwd=ROOT, env=c.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "state: Running" in line:
                break
        assert "state: Running" in lines[-1], "".join(lines) + (proc.stderr.read() if proc.poll() is not None else "")
        run_id = re.search(r"flow-run/([0-9a-f-]{36})", lines[0]).group(1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, out + err
        assert "got SIGTERM" in out and "Cancelling" in out
        with temporary_settings(updates={PREFECT_API_URL: c.api}):
            with get_client(sync_client=True) as client:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    state = client.read_flow_run(run_id).state
                    if state.is_cancelled():
                        break
                    time.sleep(2)
                assert state.is_cancelled(), state
