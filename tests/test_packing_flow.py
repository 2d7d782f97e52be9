"""Packing in the real flow: with ``per_gpu="auto"`` and a (fake) GPU capacity, each skill gets a
memory estimate before it takes a share of a device, trainings share a device while their
estimates fit, the measured peak is recorded beside the estimate, and a training that runs out of
memory beside others is retried alone.  CPU only: the "GPUs" are labels whose capacity we give."""

from __future__ import annotations

import json

import pytest

from flowrl_core.store.objects import Store
from flowrl_core.training.memory import RunMemory
from tests.test_flow import GRAPH, TINY, run_flow, write_graph

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


def test_skills_share_a_device_while_their_estimates_fit(tmp_path):
    skills_file = write_graph(tmp_path, {"skills": [GRAPH["skills"][0], GRAPH["skills"][3] | {
        "requires": {}, "consumes": {}, "name": "Make_Wood_Sword_Alone", "gains": {"wood_sword": 1}}]})
    store_url = str(tmp_path / "store")
    state, summary = run_flow(skills_file=skills_file, store=store_url, env="gridworld", profile="tiny",
                              overrides=TINY, gpus=["0"], per_gpu="auto", gpu_memory="16GiB", retries=0)
    assert state.is_completed(), state.message
    store = Store(store_url, create=False)
    events = {e["label"]: e for e in summary.slot_events}
    for outcome in summary.outcomes:
        memory = RunMemory.from_dict(store.run(outcome.run_id).read_doc("memory.json"))
        assert memory.estimate is not None and memory.estimate.total_bytes > 0
        assert memory.measured is not None  # recorded after training (its device peak is None on a CPU)
        assert events[outcome.skill]["need_bytes"] == memory.estimate.total_bytes
        assert events[outcome.skill]["device"] == "0"
    assert summary.peak_concurrency == 2  # two independent skills shared the one "GPU"


def test_an_out_of_memory_beside_others_is_retried_alone(tmp_path, monkeypatch):
    from tests.test_fault_drills import ROOT

    monkeypatch.setenv("FLOWRL_PLUGINS", "tests.support.oom_trainer")  # in the trainer children
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("FLOWRL_TEST_OOM_BELOW_FRACTION", "0.5")
    data = {"skills": [{"name": "A", "gains": {"wood": 1}}, {"name": "B", "gains": {"sapling": 1}}]}
    skills_file = write_graph(tmp_path, data)
    state, summary = run_flow(skills_file=skills_file, store=str(tmp_path / "store"), env="gridworld", profile="tiny",
                              overrides=TINY, gpus=["0"], per_gpu="auto", gpu_memory="4GiB", retries=0)
    assert state.is_completed(), state.message
    # each first ran on a small share, ran out of memory, and trained alone on the device
    assert sorted(e["label"] for e in summary.slot_events if e["exclusive"]) == ["A", "B"], \
        json.dumps(summary.slot_events, default=str)
    assert [t["exit"] for t in summary.timeline].count(0) == 2
