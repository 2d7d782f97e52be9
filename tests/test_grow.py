"""grow-skills: frontier blocking, re-planning after providers finish, curriculum to a target."""

from __future__ import annotations

import pytest

from flowrl_core.lifecycle.job import load_job
from flowrl_core.store.experts import current_version
from flowrl_core.store.objects import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")

TINY = {"num_envs": 8, "num_steps": 16, "num_minibatches": 2, "update_epochs": 1, "width": 16, "depth": 1,
        "total_timesteps": 8 * 16 * 2, "checkpoint_every": 0}


def grow(**kwargs):
    from flows.grow_flow import grow_skills

    state = grow_skills(return_state=True, **kwargs)
    return state, state.result(raise_on_failure=False)


def test_frontier_blocks_generation_until_providers_finish_and_plans_include_them(tmp_path):
    from tests.support import grow_plugins

    state, summary = grow(proposer="tests.support.grow_plugins:scripted", store=str(tmp_path / "store"), env="gridworld",
                          profile="tiny", overrides=TINY, slots=2, retries=0, idle_patience_s=5)
    assert state.is_completed(), state.message
    calls = grow_plugins.CALLS
    # Place_Table needs wood from Collect_Wood, still training when proposed: generation blocked
    # until it finished, so the next question saw it learned; likewise the sword after the table.
    assert calls[0] == {"learned": [], "in_flight": []}
    assert calls[1] == {"learned": [], "in_flight": ["Collect_Wood"]}
    assert calls[2] == {"learned": ["Collect_Wood"], "in_flight": ["Place_Table"]}
    assert set(calls[3]["learned"]) >= {"Collect_Wood", "Place_Table"}
    assert sorted(summary.learned) == ["Collect_Wood", "Make_Wood_Sword", "Place_Table"]
    store = Store(str(tmp_path / "store"), create=False)
    assert all(o.status.value == "trained" for o in summary.outcomes)
    # Place_Table's plan, built at its setup after Collect_Wood finished, routes through Collect_Wood
    runs = [r for r in store.run_ids() if r.startswith("Place-Table")]
    job = load_job(store, runs[0])
    assert [s.skill for s in job.plan] == ["Collect_Wood", "Place_Table"]
    assert job.frames_at_setup[0] == TINY["total_timesteps"]  # seeded from the finished provider
    assert current_version(store, 0).frames > TINY["total_timesteps"]


def test_curriculum_reaches_the_target_and_never_returns_while_training(tmp_path):
    state, summary = grow(proposer="curriculum", proposer_args={"kb": "gridworld", "target": "Make_Wood_Pickaxe"},
                          store=str(tmp_path / "store"), env="gridworld", profile="tiny", overrides=TINY, slots=2,
                          retries=0, max_skills=10)
    assert state.is_completed(), state.message
    assert sorted(summary.learned) == ["Collect_Wood", "Make_Wood_Pickaxe", "Place_Table"]  # only its path
    assert all(o.status.value == "trained" for o in summary.outcomes)
    store = Store(str(tmp_path / "store"), create=False)
    for name in summary.learned:
        assert current_version(store, store.expert_indices()[name]) is not None


def test_max_skills_stops_generation_but_waits_for_training(tmp_path):
    state, summary = grow(proposer="curriculum", proposer_args={"kb": "gridworld", "target": "Collect_Stone"},
                          store=str(tmp_path / "store"), env="gridworld", profile="tiny", overrides=TINY,
                          retries=0, max_skills=1)
    assert state.is_completed()
    assert summary.proposed == 1 and summary.learned == ("Collect_Wood",)
    assert "max_skills" in summary.stop_reason
