"""The analyse step in the product: a wrong prior is caught, corrected and retrained through `flowrl`.

The skill file says a table costs 1 wood (the gridworld, like Craftax-Classic, charges 2).  Its
plan therefore hands Place_Table one wood and the trained expert must chop the second itself:
it learns to, but within the budget far less often.  The analysis of that run must flag exactly
the two claims the wrong prior makes (consumes wood 1, requires wood 1), propose 2 for both,
and name the stalling plan step; `flowrl run --apply-analysis` must print that diff, retrain
Place_Table on the corrected plan, and `flowrl eval` must then find it succeeding more often.
Everything runs through the installed command in subprocesses, on a real local store.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from flowrl_core.analysis import AnalysisRecord, AnalysisStatus, ClaimKind, Verdict
from flowrl_core.store.objects import Store

ROOT = Path(__file__).resolve().parent.parent
WRONG = """\
name: wrong-table
env: gridworld
skills:
  - name: Collect_Wood
    gains: {wood: 1}
  - name: Place_Table
    requires: {wood: 1}
    consumes: {wood: 1}
    gains: {"achievement:place_table": 1}
"""
# the settings test_eval_cli trains with (its compiles are cached), and enough frames to learn
FAST = {"num_envs": 32, "num_steps": 16, "num_minibatches": 2, "update_epochs": 2, "width": 64, "depth": 2,
        "lr": 0.002, "anneal_lr": False, "checkpoint_every": 0, "total_timesteps": 60000, "analysis_episodes": 64}
SETTINGS = [arg for k, v in FAST.items() for arg in ("--set", f"{k}={json.dumps(v)}")]


def flowrl(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", PYTHONPATH=str(ROOT))
    return subprocess.run(["flowrl", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _analysis(store: Store, skill: str) -> AnalysisRecord:
    from flowrl_core.analysis import latest_analyses

    return latest_analyses(store, [skill])[skill]


def _success(store: str, skill: str) -> float:
    res = flowrl("eval", skill, "--store", store, "--episodes", "200", "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["success_rate"]


@pytest.mark.slow
def test_wrong_prior_is_flagged_corrected_and_retrained_better(tmp_path):
    skills = tmp_path / "wrong.yaml"
    skills.write_text(WRONG)
    store_url = str(tmp_path / "store")
    first = flowrl("run", str(skills), "--store", store_url, "--profile", "tiny", *SETTINGS)
    assert first.returncode == 0, first.stderr[-3000:]
    store = Store(store_url, create=False)

    record = _analysis(store, "Place_Table")
    assert record.status is AnalysisStatus.ANALYSED and record.episodes == 64
    assert json.loads((tmp_path / "store" / "runs" / record.run_id / "analysis.json").read_text())["schema"] \
        == "flowrl.analysis/1"
    bad = {(c.skill, c.kind, c.key, c.spec_value, c.proposed) for c in record.contradictions()}
    assert bad == {("Place_Table", ClaimKind.CONSUMES, "wood", 1, 2), ("Place_Table", ClaimKind.REQUIRES, "wood", 1, 2)}
    assert record.corrections() == {"Place_Table": {"name": "Place_Table", "requires": {"wood": 2},
                                                    "consumes": {"wood": 2},
                                                    "gains": {"achievement:place_table": 1}}}
    wood_check = next(c for c in record.spec_checks if c.skill == "Collect_Wood")
    assert {c.verdict for c in wood_check.claims} == {Verdict.CONFIRMED}
    # below its target (0.9): the failure analysis names the step the episodes stall in
    assert record.failure is not None and record.failure.stall_step == 1
    assert "never finish step 2 (Place_Table×1) within the budget" in record.failure.summary
    # the analyse step recorded trained vs random, which `flowrl status` reads
    status = flowrl("status", store_url, "--json")
    assert status.returncode == 0, status.stderr
    row = next(s for s in json.loads(status.stdout)["skills"] if s["name"] == "Place_Table")
    assert row["evaluated_success"] == record.success_rate and row["random_success"] == record.random_success_rate
    assert row["evaluated_deaths"] == 0.0 and row["evaluated_death_cause"] is None  # the gridworld never kills
    before = _success(store_url, "Place_Table")

    second = flowrl("run", str(skills), "--store", store_url, "--profile", "tiny", *SETTINGS, "--apply-analysis")
    assert second.returncode == 0, second.stderr[-3000:]
    diff = second.stdout
    assert diff.index('-    "wood": 1') < diff.index('+    "wood": 2') < diff.index("results in")  # diff first
    assert "retraining Place_Table with the corrected spec(s)" in diff
    assert skills.read_text() == WRONG  # the user's file is left alone
    history = store.spec_history("Place_Table")
    assert [h["spec"]["consumes"] for h in history] == [{"wood": 1}, {"wood": 2}]
    assert store.load_skill("Place_Table").consumes == {"wood": 2}
    fixed = _analysis(store, "Place_Table")
    assert fixed.run_id != record.run_id and not fixed.contradictions()
    after = _success(store_url, "Place_Table")
    assert after > before + 0.15, (before, after)

    # nothing left to apply: exit 0 and say so
    third = flowrl("run", str(skills), "--store", store_url, "--profile", "tiny", *SETTINGS, "--apply-analysis")
    assert third.returncode == 0, third.stderr
    assert "propose no consistent correction" in third.stdout
    report = flowrl("report", store_url)
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "store" / "report.html").read_text()
    assert "<h4>Analysis</h4>" in html and fixed.headline().split(";")[0] in html  # the latest run's analysis
    assert "at least what the completing step spent" in html

    # the analyse task's own path, when the trainer left no record: a child process pinned like the trainer
    import logging

    from flowrl_core.lifecycle.context import StoreRef
    from tasks.launch import run_analysis_process

    run_dir = tmp_path / "store" / "runs" / fixed.run_id
    (run_dir / "analysis.json").unlink()
    again = run_analysis_process(StoreRef(store_url), fixed.run_id, skill="Place_Table", device="",
                                 log=logging.getLogger("test"))
    assert again.status is AnalysisStatus.ANALYSED and again.spec_checks == fixed.spec_checks
    # ...and when the analysis itself fails, the record says so and nothing is raised (the merge goes on)
    (run_dir / "analysis.json").unlink()
    expert = next((run_dir / "experts").iterdir())
    expert.write_bytes(b"not msgpack")
    failed = run_analysis_process(StoreRef(store_url), fixed.run_id, skill="Place_Table", device="",
                                  log=logging.getLogger("test"))
    assert failed.status is AnalysisStatus.FAILED and failed.reason


def test_apply_analysis_without_analyses_exits_2(tmp_path):
    skills = tmp_path / "wrong.yaml"
    skills.write_text(WRONG)
    Store(str(tmp_path / "store"))  # an empty store
    res = flowrl("run", str(skills), "--store", str(tmp_path / "store"), "--apply-analysis")
    assert res.returncode == 2 and "holds no analysis" in res.stderr and len(res.stderr.strip().splitlines()) <= 3


def test_a_trainer_without_a_policy_is_skipped_at_once(mem_url):
    """The orchestration benchmark's sleep trainer: no rollout, no child process, a skipped record."""
    import time

    from flowrl_core.lifecycle.context import StoreRef
    from flowrl_core.lifecycle.setup import setup
    from flowrl_core.skills.parsing import parse_skills
    from flowrl_core.training.config import resolve_config
    from tasks.launch import run_analysis_process

    store = Store(mem_url)
    specs = parse_skills({"skills": [{"name": "Collect_Wood", "gains": {"wood": 1}}]})
    store.assign_index("Collect_Wood")
    res = setup(store, specs, "Collect_Wood", env="gridworld", config=resolve_config("tiny"),
                trainer="benchmarks.orchestration:sleep_trainer")
    assert res.job is not None
    t0 = time.perf_counter()
    record = run_analysis_process(StoreRef(store.url), res.job.run_id, skill="Collect_Wood", device="", log=None)
    assert time.perf_counter() - t0 < 1.0
    assert record.status is AnalysisStatus.SKIPPED
    assert record.reason == "trainer benchmarks.orchestration:sleep_trainer has no policy to analyse"
    assert AnalysisRecord.from_dict(store.run(res.job.run_id).read_doc("analysis.json")) == record


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_grow_revises_a_contradicted_skill_and_retrains_it(tmp_path):
    """The file proposer gets Place_Table's analysis, revises its spec, and the flow retrains it."""
    from flowrl_core.lifecycle.job import load_job
    from flows.grow_flow import grow_skills

    skills = tmp_path / "wrong.yaml"
    skills.write_text(WRONG)
    state = grow_skills(return_state=True, proposer="file", proposer_args={"path": str(skills)},
                        store=str(tmp_path / "store"), env="gridworld", profile="tiny", overrides=FAST, slots=1,
                        retries=0)
    summary = state.result(raise_on_failure=False)
    assert state.is_completed(), state.message
    assert [(o.skill, o.status.value) for o in summary.outcomes] == [
        ("Collect_Wood", "trained"), ("Place_Table", "trained"), ("Place_Table", "trained")]
    store = Store(str(tmp_path / "store"), create=False)
    assert [h["spec"]["consumes"] for h in store.spec_history("Place_Table")] == [{"wood": 1}, {"wood": 2}]
    first, second = (o.run_id for o in summary.outcomes[1:])
    assert [(s.skill, s.count) for s in load_job(store, second).plan] == [("Collect_Wood", 2), ("Place_Table", 1)]
    assert load_job(store, second).continuation  # a new version on top of the first, through the normal path
    from flowrl_core.analysis import read_analysis

    assert read_analysis(store, first).corrections() and not read_analysis(store, second).contradictions()
    assert read_analysis(store, second).success_rate > read_analysis(store, first).success_rate
