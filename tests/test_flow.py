"""The Prefect DAG, for real: Prefect's test harness, real PPO on the gridworld (tiny budgets),
real trainer child processes and a real local store."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml

from flowrl_core.lifecycle.job import load_job, read_result
from flowrl_core.store.experts import current_version
from flowrl_core.store.objects import Store
from flowrl_core.store.runs import skill_runs

pytestmark = pytest.mark.usefixtures("prefect_harness")

TINY = {"num_envs": 8, "num_steps": 16, "num_minibatches": 2, "update_epochs": 1, "width": 16, "depth": 1,
        "total_timesteps": 8 * 16 * 3, "checkpoint_every": 1}

# Two independent branches after the trunk: pickaxe → stone, and sword.
GRAPH = {"skills": [
    {"name": "Collect_Wood", "gains": {"wood": 1}},
    {"name": "Place_Table", "requires": {"wood": 2}, "consumes": {"wood": 2}, "gains": {"achievement:place_table": 1}},
    {"name": "Make_Wood_Pickaxe", "requires": {"wood": 1, "achievement:place_table": 1}, "consumes": {"wood": 1},
     "gains": {"wood_pickaxe": 1}},
    {"name": "Make_Wood_Sword", "requires": {"wood": 1, "achievement:place_table": 1}, "consumes": {"wood": 1},
     "gains": {"wood_sword": 1}},
    {"name": "Collect_Stone", "requires": {"wood_pickaxe": 1}, "gains": {"stone": 1}},
]}


def write_graph(tmp_path: Path, data: dict, name: str = "skills.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def run_flow(**kwargs):
    from flows.graph_flow import train_skill_graph

    state = train_skill_graph(return_state=True, **kwargs)
    return state, state.result(raise_on_failure=False)


def overlaps(timeline: list[dict]) -> int:
    points = sorted([(t["start"], 1) for t in timeline] + [(t["end"], -1) for t in timeline],
                    key=lambda p: (p[0], p[1]))
    level = peak = 0
    for _, d in points:
        level += d
        peak = max(peak, level)
    return peak


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dag")
    skills_file = write_graph(tmp, GRAPH)
    store_url = str(tmp / "store")
    state, summary = run_flow(skills_file=skills_file, store=store_url, env="gridworld", profile="tiny",
                              overrides=TINY, slots=2, retries=0)
    return state, summary, store_url, skills_file


def assert_experts_hold_the_right_frames(store: Store, rows: list[dict], budgets: dict[str, int]) -> None:
    """Every run trained exactly its budget, and every expert holds the frame-count rule's winner:
    the most frames any run proposed for it (its frames at setup + the frames that run trained)."""
    expected: dict[int, int] = {}
    for row in rows:
        job = load_job(store, row.run_id)
        result = read_result(store, row.run_id)
        assert result.frames == budgets[row.skill]  # every env step counted once
        assert sum(int(v) for v in result.expert_steps_global.values()) == result.frames
        for g, at_setup in job.frames_at_setup.items():
            expected[g] = max(expected.get(g, 0), at_setup + result.frames)
    assert expected
    for g, frames in expected.items():
        assert current_version(store, g).frames == frames


def test_every_skill_trains_and_every_expert_lands_with_the_right_frames(trained):
    state, summary, store_url, _ = trained
    assert state.is_completed(), state.message
    assert [r.status.value for r in summary.outcomes] == ["trained"] * 5
    store = Store(store_url, create=False)
    budget = TINY["total_timesteps"]
    assert_experts_hold_the_right_frames(store, summary.outcomes, {r.skill: budget for r in summary.outcomes})
    # the root expert kept training in every run that had it: more frames than its own budget
    assert current_version(store, summary.indices["Collect_Wood"]).frames > budget
    # each skill links its learning curve and rollout, and the DAG picture is in the store
    for row in summary.outcomes:
        assert set(row.artifacts) == {"learning_curve", "rollout"}
        assert Path(row.artifacts["rollout"]).read_bytes()[:3] == b"GIF"
    assert [n for n in store.list("graphs") if n.endswith("-dag.png")]


def test_every_chain_is_setup_train_analyse_merge_and_leaves_an_analysis(trained):
    """The analyse step runs in each skill's chain, between train and merge, as its own task run;
    its record (the run's policy against random on fresh episodes) lands beside the run and is
    recorded as the skill's latest evaluation."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flowrl_core.analysis import AnalysisStatus, read_analysis
    from flowrl_core.evaluation.store import latest_evaluation

    state, summary, store_url, _ = trained
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[
            state.state_details.flow_run_id])))
    store = Store(store_url, create=False)
    for outcome in summary.outcomes:
        chain = sorted((r for r in runs if r.name.endswith(f" {outcome.skill}") and r.name.split(" ")[0] in
                        ("setup", "train", "analyse", "merge")), key=lambda r: r.start_time)
        assert [r.name.split(" ")[0] for r in chain] == ["setup", "train", "analyse", "merge"], outcome.skill
        assert all(r.state.is_completed() for r in chain)
        record = read_analysis(store, outcome.run_id)
        assert record is not None and record.status is AnalysisStatus.ANALYSED, (outcome.skill, record)
        assert record.episodes > 0 and record.success_rate is not None and record.random_success_rate is not None
        assert {c.skill for c in record.spec_checks} >= {outcome.skill}
        assert outcome.analysis == record.headline()
        evaluation = latest_evaluation(store, outcome.skill)
        assert evaluation is not None and evaluation.success_rate == pytest.approx(record.success_rate)


def test_dependencies_merge_before_dependants_start_and_slots_cap_concurrency(trained):
    _, summary, _, _ = trained
    timeline = {t["skill"]: t for t in summary.timeline}
    assert overlaps(summary.timeline) <= 2 and summary.peak_concurrency <= 2
    for dep, skill in [("Collect_Wood", "Place_Table"), ("Place_Table", "Make_Wood_Pickaxe"),
                       ("Place_Table", "Make_Wood_Sword"), ("Make_Wood_Pickaxe", "Collect_Stone")]:
        assert timeline[skill]["start"] >= timeline[dep]["end"]


def test_rerun_retrains_nothing(trained):
    _, first, store_url, skills_file = trained
    store = Store(store_url, create=False)
    runs_before = store.run_ids()
    state, summary = run_flow(skills_file=skills_file, store=store_url, env="gridworld", profile="tiny",
                              overrides=TINY, slots=2, retries=0)
    assert state.is_completed()
    assert [r.status.value for r in summary.outcomes] == ["already done"] * 5
    assert store.run_ids() == runs_before
    assert summary.timeline == ()


def test_continuation_trains_a_new_version(trained):
    _, first, store_url, skills_file = trained
    store = Store(store_url, create=False)
    index = first.indices["Make_Wood_Sword"]
    before = current_version(store, index).frames
    state, summary = run_flow(skills_file=skills_file, store=store_url, env="gridworld", profile="tiny",
                              overrides=dict(TINY, total_timesteps=8 * 16 * 2), only=["Make_Wood_Sword"],
                              internal={"continuation": True}, retries=0)
    assert state.is_completed(), state.message
    [row] = summary.outcomes
    assert row.frames == 8 * 16 * 2
    assert current_version(store, index).frames == before + 8 * 16 * 2
    assert {d.skill: d.action for d in row.decisions}["Make_Wood_Sword"] == "updated"


def test_a_failed_skill_fails_only_its_descendants(tmp_path):
    data = json.loads(json.dumps(GRAPH))
    data["skills"][2]["predicate"] = "tests.support.cli_plugins:done_when_wood"  # fails only inside its trainer
    skills_file = write_graph(tmp_path, data)
    state, summary = run_flow(skills_file=skills_file, store=str(tmp_path / "store"), env="gridworld",
                              profile="tiny", overrides=TINY, slots=2, retries=0)
    assert state.is_failed()
    status = {r.skill: r.status.value for r in summary.outcomes}
    assert status == {"Collect_Wood": "trained", "Place_Table": "trained", "Make_Wood_Pickaxe": "failed",
                      "Make_Wood_Sword": "trained", "Collect_Stone": "skipped"}
    assert "deliberate failure inside the trainer" in summary.failed["Make_Wood_Pickaxe"]
    assert summary.failed["Collect_Stone"] == "upstream failed: Make_Wood_Pickaxe"
    assert "2 of 5 skill(s) did not train" in state.message
    store = Store(str(tmp_path / "store"), create=False)
    assert current_version(store, summary.indices["Make_Wood_Sword"]) is not None  # partial results kept
    assert current_version(store, summary.indices["Collect_Stone"]) is None


def test_bad_input_fails_before_anything_is_written(tmp_path):
    data = json.loads(json.dumps(GRAPH))
    data["skills"][4]["train"] = {"num_envz": 3}
    skills_file = write_graph(tmp_path, data)
    state, _ = run_flow(skills_file=skills_file, store=str(tmp_path / "store"), env="gridworld", profile="tiny")
    assert state.is_failed() and "num_envz" in state.message
    state, _ = run_flow(skills_file=write_graph(tmp_path, GRAPH, "ok.yaml"), store=str(tmp_path / "store"),
                        env="no-such-env", profile="tiny")
    assert state.is_failed() and "no-such-env" in state.message
    state, _ = run_flow(skills_file=write_graph(tmp_path, GRAPH, "ok2.yaml"), store=str(tmp_path / "store"),
                        env="gridworld", profile="tiny", overrides={"lr": "fast"})
    assert state.is_failed()
    assert not (tmp_path / "store").exists()


def _trainer_children(run_hint: str) -> list[psutil.Process]:
    out = []
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        try:
            cmd = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if "flowrl_core.lifecycle.train" in cmd and run_hint in cmd:
            out.append(proc)
    return out


def test_sigkilled_trainer_is_retried_and_resumes_from_its_checkpoint(tmp_path):
    skills_file = write_graph(tmp_path, {"skills": [GRAPH["skills"][0]]})
    store_url = str(tmp_path / "store")
    budget = 8 * 16 * 40
    box: dict = {}
    flow_thread = threading.Thread(target=lambda: box.update(out=run_flow(
        skills_file=skills_file, store=store_url, env="gridworld", profile="tiny",
        overrides=dict(TINY, total_timesteps=budget, checkpoint_every=2), retries=2)))
    flow_thread.start()
    killed = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and flow_thread.is_alive() and killed is None:
        time.sleep(0.2)
        try:
            store = Store(store_url, create=False)
            runs = skill_runs(store, "Collect_Wood")
        except Exception:
            continue
        for run_id in runs:
            if store.run(run_id).checkpoints() and read_result(store, run_id) is None:
                for proc in _trainer_children(run_id):
                    proc.send_signal(signal.SIGKILL)
                    killed = run_id
    flow_thread.join(600)
    assert killed, "never saw a checkpoint to kill the trainer after"
    state, summary = box["out"]
    assert state.is_completed(), state.message
    [row] = summary.outcomes
    assert row.run_id == killed  # the retry continued the same run
    exits = [t["exit"] for t in summary.timeline]
    assert exits[0] == -signal.SIGKILL and exits[-1] == 0
    store = Store(store_url, create=False)
    result = read_result(store, killed)
    assert result.resumed_from_update >= 2
    assert result.frames == budget  # frames counted once across the kill
    updates = [r["update"] for r in store.run(killed).read_metrics()]
    assert updates == list(range(1, 41))
    assert current_version(store, 0).frames == budget
    # the retried train did not leave the earlier subtask "RolledBack" in the UI
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    names = {r.name.split(" ")[0]: r.state.name for r in runs}
    assert names["setup"] == "Completed" and names["train"] == "Completed" and names["merge"] == "Completed", names
