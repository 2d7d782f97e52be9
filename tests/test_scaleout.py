"""Scale-out end to end (slow): a real `prefect server` on 127.0.0.1, the pools and deployments
of prefect.yaml, two GPU-pool workers (limit 2), an S3 store served by moto on 127.0.0.1, a
diamond-shaped skill graph, and a worker killed mid-skill.  Every process it starts is stopped."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import psutil
import pytest

from deployments.local_cluster import LocalCluster, kill_tree
from flowrl_core.lifecycle.job import read_result
from flowrl_core.store.experts import current_version
from flowrl_core.store.objects import Store
from flowrl_core.store.runs import skill_runs

pytestmark = pytest.mark.slow
from tests.test_flow import GRAPH, TINY, assert_experts_hold_the_right_frames

HERE = Path(__file__).resolve().parent

# The two branches of test_flow's graph joined again: Collect_Stone also waits for the sword.
# Budgets in the file, since the command line's (overrides) would win over a skill's ``train:``.
DIAMOND = {"skills": [dict(s, train={"total_timesteps": TINY["total_timesteps"]}) for s in GRAPH["skills"][:4]] + [
    dict(GRAPH["skills"][4], depends_on=["Make_Wood_Sword"], train={"total_timesteps": 8 * 16 * 30})]}
SETTINGS = {k: v for k, v in TINY.items() if k != "total_timesteps"}


@pytest.fixture
def cluster(tmp_path, s3_server):
    _, options = s3_server
    store = f"s3://flowrl/e2e-{uuid.uuid4().hex[:8]}"
    with LocalCluster(tmp_path, extra_env={"FLOWRL_STORE": store}) as c:
        c.create_pools(2)
        again = c.flowrl("pool", "create", "--gpus", "2")  # idempotent
        assert again.returncode == 0 and "updated work pool gpu-pool" in again.stdout
        c.deploy()
        c.start_workers(range(2))
        yield {"api": c.api, "env": c.env, "workers": c.workers, "options": options, "store": store,
               "logs": c.logs, "cluster": c}
        started = list(c.started)
    for proc in started:  # the cluster stopped every process it started
        assert proc.poll() is not None


def _flow_run_intervals(api: str) -> list[tuple[float, float]]:
    from prefect import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
    )
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api}):
        with get_client(sync_client=True) as client:
            deps = client.read_deployments(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["train-skill"])))
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(deployment_id={"any_": [deps[0].id]}))
    out = []
    for r in runs:
        if r.start_time:
            end = r.end_time or r.state.timestamp
            out.append((r.start_time.timestamp(), end.timestamp()))
    return out


def test_pool_diamond_on_s3_with_a_worker_killed_mid_skill(cluster):
    import threading

    from prefect.settings import PREFECT_API_URL, temporary_settings

    store_url, options = cluster["store"], cluster["options"]
    box: dict = {}

    def orchestrate():
        from flows.graph_flow import train_skill_graph

        with temporary_settings(updates={PREFECT_API_URL: cluster["api"]}):
            state = train_skill_graph(internal={"skills": DIAMOND, "stale_after_s": 25}, store=store_url, env="gridworld", profile="tiny",
                                      overrides=SETTINGS, slots=2, retries=2, launcher="pool",
                                      storage_options=options, return_state=True)
            box["state"], box["summary"] = state, state.result(raise_on_failure=False)

    thread = threading.Thread(target=orchestrate)
    thread.start()
    killed_run = None
    deadline = time.monotonic() + 900
    while thread.is_alive() and killed_run is None and time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            store = Store(store_url, storage_options=options, create=False)
            runs = skill_runs(store, "Collect_Stone")
        except Exception:
            continue
        for run_id in runs:
            run = store.run(run_id)
            if run.checkpoints() and run.has_doc("heartbeat.json") and read_result(store, run_id) is None:
                trainer_pid = run.read_doc("heartbeat.json")["pid"]
                for worker in cluster["workers"]:
                    tree = {p.pid for p in psutil.Process(worker.pid).children(recursive=True)}
                    if trainer_pid in tree:
                        kill_tree(worker.pid)  # the machine dies: worker, its flow run and the trainer
                        killed_run = run_id
    thread.join(900)
    assert killed_run, "never caught Collect_Stone training to kill its worker"
    state, summary = box["state"], box["summary"]
    assert state.is_completed(), state.message
    assert {r.skill: r.status.value for r in summary.outcomes} == {s["name"]: "trained" for s in DIAMOND["skills"]}
    stone = [t for t in summary.timeline if t["skill"] == "Collect_Stone"]
    # Lost: our stale-heartbeat watch noticed first; Crashed: the server did (either way it was retried)
    assert stone[0]["state"] in ("Lost", "Crashed") and stone[-1]["state"] == "Completed"
    store = Store(store_url, storage_options=options, create=False)
    result = read_result(store, killed_run)
    assert result.resumed_from_update >= 1 and result.frames == 8 * 16 * 30
    budgets = {s["name"]: s.get("train", {}).get("total_timesteps", TINY["total_timesteps"]) for s in DIAMOND["skills"]}
    assert_experts_hold_the_right_frames(store, summary.outcomes, budgets)
    assert current_version(store, summary.indices["Collect_Stone"]).frames == 8 * 16 * 30
    from flowrl_core.analysis import AnalysisStatus, read_analysis

    for outcome in summary.outcomes:  # the analyse step ran in every chain on the pool launcher too
        analysis = read_analysis(store, outcome.run_id)
        assert analysis is not None and analysis.status is AnalysisStatus.ANALYSED, (outcome.skill, analysis)
        assert outcome.analysis == analysis.headline()
    intervals = _flow_run_intervals(cluster["api"])
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals], key=lambda p: (p[0], p[1]))
    level = peak = 0
    for _, d in points:
        level += d
        peak = max(peak, level)
    assert 1 <= peak <= 2  # the pool's limit held across workers
