"""The nightly continuation's choice: the weakest skills by what they really do on fresh episodes
(their latest evaluation), not by the success rate of their last training update."""

from __future__ import annotations

from flowrl_core.evaluation.records import EvalReport, PolicyStats
from flowrl_core.evaluation.store import record_evaluation
from flowrl_core.store.objects import Store
from flowrl_core.store.runs import RunRecord, RunState, write_run_record
from flows.continuation_flow import weakest


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
    assert weakest(store, 2) == ["A", "B"]  # ... but succeeds 10 % of the time on fresh episodes
    assert weakest(store, 5) == ["A", "B", "C"]
