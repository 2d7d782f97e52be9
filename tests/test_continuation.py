"""The nightly continuation's choice: the weakest skills by what they really do on fresh episodes
(their latest evaluation, measured again where it is missing or stale), not by the success rate
of their last training update."""

from __future__ import annotations

import pytest

from flowrl_core.evaluation import evaluate_skill
from flowrl_core.evaluation.records import EvalReport, PolicyStats
from flowrl_core.evaluation.store import record_evaluation
from flowrl_core.lifecycle.merge import merge_run
from flowrl_core.lifecycle.setup import setup
from flowrl_core.lifecycle.train import run_job
from flowrl_core.skills.parsing import parse_skills
from flowrl_core.store.experts import current_version
from flowrl_core.training.config import resolve_config
from flowrl_core.store.objects import Store
from flowrl_core.store.runs import RunRecord, RunState, skill_runs, write_run_record
from flowrl_core.lifecycle.continuation import to_reevaluate, weakest
from flowrl_core.reporting.status import summarize_store


def stats(policy: str, rate: float) -> PolicyStats:
    return PolicyStats(policy, 100, int(rate * 100), rate, (rate, rate), None, 10.0, (), {}, {})


def trained(store: Store, skill: str, training_success: float) -> None:
    store.assign_index(skill)
    write_run_record(store, RunRecord(run_id=f"{skill}-r1", skill=skill, state=RunState.COMPLETED,
                                      started_at="t0", ended_at="t1", frames=128, success_rate=training_success))


def test_weakest_are_chosen_by_evaluated_success_when_there_is_one(mem_url):
    store = Store(mem_url)
    trained(store, "A", 0.99)  # looks perfect in training ...
    trained(store, "B", 0.40)
    trained(store, "C", 0.70)
    store.assign_index("Untrained")  # never completed a run: nothing to continue
    record_evaluation(store, EvalReport(skill="A", env="gridworld", env_options={}, episodes=100, max_steps=20,
                                        seed=0, greedy=False, plan=(("A", 1),), versions={},
                                        result=stats("trained", 0.10), baseline=stats("random", 0.05)))
    status = summarize_store(store)
    assert weakest(status, 2) == ["A", "B"]  # ... but succeeds 10 % of the time on fresh episodes
    assert weakest(status, 5) == ["A", "B", "C"]
    assert to_reevaluate(status) == ["B", "C"]  # never evaluated; A's record names no replaced expert


SPECS = parse_skills({"skills": [
    {"name": "Collect_Wood", "gains": {"wood": 1}},
    {"name": "Place_Table", "requires": {"wood": 2}, "consumes": {"wood": 2}, "gains": {"achievement:place_table": 1}},
]})
CFG = resolve_config("tiny", {"num_envs": 8, "num_steps": 8, "num_minibatches": 2, "update_epochs": 1,
                              "width": 16, "depth": 1, "total_timesteps": 8 * 8 * 2, "checkpoint_every": 0})


def _train(store: Store, skill: str) -> None:
    job = setup(store, SPECS, skill, env="gridworld", config=CFG).job
    run_job(store, job.run_id)
    merge_run(store, job.run_id)


def _evaluations(store: Store, skill: str) -> list[EvalReport]:
    names = sorted(n for n in store.list(("skills", skill, "evaluations")) if n.endswith(".json"))
    return [EvalReport.from_dict(store.read_json(("skills", skill, "evaluations", n))) for n in names]


@pytest.mark.usefixtures("prefect_harness")
def test_the_nightly_flow_measures_stale_evaluations_again_before_it_ranks(tmp_path):
    from flows.continuation_flow import continue_weakest

    url = str(tmp_path / "store")
    store = Store(url)
    for s in SPECS:
        store.assign_index(s.name)
        store.save_skill(s)
    _train(store, "Collect_Wood")
    record_evaluation(store, evaluate_skill(store, "Collect_Wood", episodes=8))
    _train(store, "Place_Table")  # retrains Collect_Wood's expert: its record is stale; Place_Table has none
    status = summarize_store(store)
    assert status.skill("Collect_Wood").evaluation_stale and to_reevaluate(status) == ["Collect_Wood", "Place_Table"]
    served = {name: v.version_id for name, v in
              ((n, current_version(store, i)) for n, i in store.expert_indices().items())}

    state = continue_weakest(store=url, count=1, frames=16 * 16 * 2, eval_episodes=16, profile="tiny",
                             return_state=True)
    assert state.is_completed(), state.message
    fresh = {}
    for skill in ("Collect_Wood", "Place_Table"):
        measured = [e for e in _evaluations(store, skill) if e.episodes == 16]
        assert len(measured) == 1, skill  # one evaluate task each, on the experts served before the continuation
        assert all(served[name] == version for name, version in measured[0].versions.items())
        fresh[skill] = measured[0].success_rate
    continued = {r.skill for s in ("Collect_Wood", "Place_Table") for r in skill_runs(store, s).values()
                 if r.continuation and r.state is RunState.COMPLETED}
    assert continued == {min(fresh, key=lambda s: (fresh[s], s))}
