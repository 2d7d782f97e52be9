"""setup → train job → merge through the store, in-process (the flow runs the job in a child)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from flowrl_core.lifecycle.job import read_result
from flowrl_core.lifecycle.merge import merge_run
from flowrl_core.lifecycle.setup import setup
from flowrl_core.lifecycle.train import run_job
from flowrl_core.reporting.status import summarize_store
from flowrl_core.skills.parsing import parse_skills
from flowrl_core.store.experts import current_version
from flowrl_core.store.objects import Store
from flowrl_core.store.runs import skill_runs, trained_frames
from flowrl_core.training.config import resolve_config

SPECS = parse_skills({"skills": [
    {"name": "Collect_Wood", "gains": {"wood": 1}},
    {"name": "Place_Table", "requires": {"wood": 2}, "consumes": {"wood": 2}, "gains": {"achievement:place_table": 1}},
]})
CFG = resolve_config("tiny", {"num_envs": 8, "num_steps": 8, "num_minibatches": 2, "update_epochs": 1,
                              "width": 16, "depth": 1, "total_timesteps": 8 * 8 * 2, "checkpoint_every": 1})


@pytest.fixture(scope="module")
def two_skills():
    store = Store("memory://skill-run-module")
    for s in SPECS:
        store.assign_index(s.name)
    first = setup(store, SPECS, "Collect_Wood", env="gridworld", config=CFG)
    run_job(store, first.job.run_id)
    d1 = merge_run(store, first.job.run_id)
    second = setup(store, SPECS, "Place_Table", env="gridworld", config=CFG)
    return store, first, d1, second


def test_setup_pins_seed_versions_and_frames(two_skills):
    store, first, _, second = two_skills
    assert first.job.frames_at_setup == {0: 0} and first.job.base_versions == {0: None}
    job = second.job
    assert job.remap.global_to_local == {0: 0, 1: 1}
    assert job.frames_at_setup == {0: 128, 1: 0}
    assert job.base_versions[0] == current_version(store, 0).version_id


def test_train_job_writes_result_experts_metrics_and_pictures(two_skills):
    store, first, decisions, _ = two_skills
    result = read_result(store, first.job.run_id)
    assert result.frames == 128 and result.updates == 2
    assert [d.action for d in decisions] == ["new"]
    rows = store.run(first.job.run_id).read_metrics()
    assert [r["update"] for r in rows] == [1, 2]
    png = store.read_bytes(("runs", first.job.run_id, "artifacts", "learning_curve.png"))
    assert Image.open(io.BytesIO(png)).format == "PNG"
    gif = Image.open(io.BytesIO(store.read_bytes(("runs", first.job.run_id, "artifacts", "rollout.gif"))))
    assert gif.format == "GIF" and gif.n_frames >= 1


def test_dependant_seeds_from_store_and_merge_updates_dependency(two_skills):
    store, _, _, second = two_skills
    run_job(store, second.job.run_id)
    decisions = {d.skill: d for d in merge_run(store, second.job.run_id)}
    assert decisions["Collect_Wood"].action == "updated" and decisions["Collect_Wood"].current_frames == 256
    assert decisions["Place_Table"].action == "new"
    again = {d.skill: d for d in merge_run(store, second.job.run_id)}  # a retried merge changes nothing
    assert all(d.already_merged for d in again.values())
    assert current_version(store, 0).frames == 256


def test_budget_reached_means_done_and_run_job_is_idempotent(two_skills):
    store, first, _, _ = two_skills
    assert trained_frames(store, "Collect_Wood") == 128
    again = setup(store, SPECS, "Collect_Wood", env="gridworld", config=CFG)
    assert again.job is None and again.done_frames == 128
    before = read_result(store, first.job.run_id)
    assert run_job(store, first.job.run_id) == before
    wood = summarize_store(store).skill("Collect_Wood")
    assert wood.completed_runs == 1 and wood.frames >= 128 and wood.state == "trained"


def test_unfinished_run_is_resumed_not_restarted():
    store = Store("memory://skill-run-resume")
    store.assign_index("Collect_Wood")
    first = setup(store, SPECS[:1], "Collect_Wood", env="gridworld", config=CFG)
    again = setup(store, SPECS[:1], "Collect_Wood", env="gridworld", config=CFG)
    assert again.resumed and again.job.run_id == first.job.run_id
    assert list(skill_runs(store, "Collect_Wood")) == [first.job.run_id]
