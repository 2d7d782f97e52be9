"""`flowrl eval` through the installed command, on stores trained here through the lifecycle.

Two tiny gridworld stores: in one Collect_Wood is trained until it succeeds (early stop at 95 %
within its 10-step budget), in the other it trained for a single update (an untrained, near
uniform expert).  The first must beat the random baseline by far, the second must not beat it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.library import train_skills
from flowrl_core.skills.parsing import parse_skills
from flowrl_core.store.objects import Store

ROOT = Path(__file__).resolve().parent.parent
SPECS = parse_skills({"skills": [
    {"name": "Collect_Wood", "gains": {"wood": 1}},
    {"name": "Place_Table", "requires": {"wood": 2}, "consumes": {"wood": 2}, "gains": {"achievement:place_table": 1}},
]})
# constant lr: both stores' updates compile to the same program, so the second training (in the
# product's trainer process, with its persistent compilation cache) reuses the first one's compile
FAST = {"num_envs": 32, "num_steps": 16, "num_minibatches": 2, "update_epochs": 2, "width": 64, "depth": 2,
        "lr": 2e-3, "anneal_lr": False, "checkpoint_every": 0}


def flowrl(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    trained = Store(str(tmp_path_factory.mktemp("trained") / "store"))
    done = train_skills(trained, SPECS, env="gridworld", profile="tiny", only=["Collect_Wood"], child=True,
                        overrides=FAST | {"total_timesteps": 120_000, "success_threshold": 0.95})
    assert done[0].early_stopped, done  # it learned; Place_Table stays untrained in this store
    untrained = Store(str(tmp_path_factory.mktemp("untrained") / "store"))
    train_skills(untrained, SPECS, env="gridworld", profile="tiny", only=["Collect_Wood"], child=True,
                 overrides=FAST | {"total_timesteps": 32 * 16})
    return trained.url, untrained.url


def _eval_json(store: str, *extra: str) -> dict:
    res = flowrl("eval", "Collect_Wood", "--store", store, "--episodes", "200", "--json", *extra)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)  # exactly one JSON object on stdout


def test_trained_expert_beats_random_and_results_repeat_for_a_seed(stores):
    trained, _ = stores
    report = _eval_json(trained, "--seed", "5")
    assert report["schema"] == "flowrl.eval/1" and report["skill"] == "Collect_Wood" and report["episodes"] == 200
    assert report["max_steps"] == 10  # the gridworld's allowance x 1 plan run
    assert report["baseline"]["policy"] == "random" and report["baseline"]["episodes"] == 200
    assert report["success_rate"] >= 0.7
    assert report["success_rate"] - report["baseline"]["success_rate"] >= 0.5
    assert report["success_ci95"][0] > report["baseline"]["success_ci95"][1]  # intervals apart
    assert report["mean_steps"] < report["baseline"]["mean_steps"]
    assert report["plan_steps"][0]["skill"] == "Collect_Wood" and report["plan_steps"][0]["reached"] == 1.0
    assert report["achievements"]["collect_wood"] >= report["success_rate"]
    assert report["death_causes"] == {} == report["baseline"]["death_causes"]  # the gridworld never kills
    assert _eval_json(trained, "--seed", "5") == report


def test_untrained_expert_does_not_beat_random(stores):
    _, untrained = stores
    report = _eval_json(untrained)
    assert abs(report["success_rate"] - report["baseline"]["success_rate"]) < 0.1
    assert report["success_rate"] < 0.5


def test_budget_override_and_table_output(stores):
    trained, _ = stores
    res = flowrl("eval", "Collect_Wood", "--store", trained, "--episodes", "200", "--max-steps", "1")
    assert res.returncode == 0, res.stderr
    assert "budget 1 steps" in res.stdout and "random" in res.stdout and "trained" in res.stdout


@pytest.mark.parametrize("args,fragment", [
    (["No_Such_Skill"], "is not in store"),
    (["Place_Table"], "has no completed training run"),
    (["Collect_Wood", "--env", "no-such-env"], "unknown env"),
])
def test_bad_input_exits_2_with_one_line(stores, args, fragment):
    trained, _ = stores
    res = flowrl("eval", *args, "--store", trained, "--json")
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in res.stderr
    if args[0] != "Collect_Wood":
        assert "flowrl run" in lines[0]  # the fix


def test_missing_store_exits_2(tmp_path):
    res = flowrl("eval", "Collect_Wood", "--store", str(tmp_path / "none"))
    assert res.returncode == 2 and "is not a flowrl store" in res.stderr


def test_status_shows_how_often_evaluated_episodes_died_and_of_what(tmp_path):
    """`flowrl status` (the installed command) reads the latest evaluation's deaths."""
    import jax.numpy as jnp

    from flowrl_core.evaluation import evaluate_against_random, network_policy, record_evaluation
    from tests.support.corridor import MortalCorridor
    from tests.test_evaluation import LENGTH, PLAN, SPECS

    env = MortalCorridor(length=LENGTH)
    walker = network_policy("trained", {}, lambda p, obs: (jnp.zeros((obs.shape[0], env.num_actions)), None))
    rep = evaluate_against_random(env, env.default_params._replace(max_steps=500), PLAN, SPECS, walker,
                                  env_name="Mortal-v0", episodes=64, max_steps=40, seed=3)
    url = str(tmp_path / "store")
    record_evaluation(Store(url), rep)
    res = flowrl("status", url, "--json")
    assert res.returncode == 0, res.stderr
    row = next(s for s in json.loads(res.stdout)["skills"] if s["name"] == "Place_Table")
    assert row["evaluated_deaths"] == pytest.approx(rep.result.end_reasons["death"]) and row["evaluated_deaths"] > 0.5
    assert row["evaluated_death_cause"] == "pit"
    table = flowrl("status", url)
    assert table.returncode == 0 and f"died {rep.result.end_reasons['death']:.0%} (pit)" in table.stdout
    assert "last run's success" in table.stdout and "the latest recorded evaluation on fresh" in table.stdout
