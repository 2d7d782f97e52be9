"""Runs that recover: same job → resume, changed job → abandon and start afresh, a live run is not
taken by a second process, a corrupt checkpoint falls back to the previous one, a finished skill
is never retrained, and a store can be created by many processes at once.  The lifecycle is tested
in-process here; tests/test_cli_recovery.py drives the same cases through the ``flowrl`` command.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from flowrl_core.errors import StoreError
from flowrl_core.lifecycle.job import read_result
from flowrl_core.lifecycle.merge import merge_run
from flowrl_core.lifecycle.setup import MissingDependencyError, is_done, record_failure, setup
from flowrl_core.lifecycle.train import run_job
from flowrl_core.skills.parsing import parse_skills
from flowrl_core.store import leases
from flowrl_core.store.objects import Store
from flowrl_core.store.runs import RunState, skill_runs
from flowrl_core.training.config import planned_frames, resolve_config

SPECS = parse_skills({"skills": [
    {"name": "Collect_Wood", "gains": {"wood": 1}},
    {"name": "Place_Table", "requires": {"wood": 2}, "consumes": {"wood": 2}, "gains": {"achievement:place_table": 1}},
]})
CFG = resolve_config("tiny", {"num_envs": 8, "num_steps": 8, "num_minibatches": 2, "update_epochs": 1,
                              "width": 16, "depth": 1, "total_timesteps": 8 * 8 * 3, "checkpoint_every": 1})


def fresh(name: str) -> Store:
    store = Store(f"memory://recovery-{name}-{time.monotonic_ns()}")
    for s in SPECS:
        store.assign_index(s.name)
    return store


def test_same_job_resumes_and_a_changed_job_abandons_the_old_run():
    store = fresh("identity")
    first = setup(store, SPECS, "Collect_Wood", env="gridworld", config=CFG)
    again = setup(store, SPECS, "Collect_Wood", env="gridworld", config=CFG)
    assert again.resumed and again.job.run_id == first.job.run_id and again.abandoned == ()
    changed = setup(store, SPECS, "Collect_Wood", env="gridworld", config=dict(CFG, lr=5e-4))
    assert not changed.resumed and changed.job.run_id != first.job.run_id
    assert changed.abandoned == (first.job.run_id,)
    record = skill_runs(store, "Collect_Wood")[first.job.run_id]
    assert record.state is RunState.ABANDONED and "differs" in record.reason
    other_env = setup(store, SPECS, "Collect_Wood", env="gridworld", config=dict(CFG, lr=5e-4),
                      env_options={"max_steps": 30})
    assert other_env.job.run_id != changed.job.run_id and other_env.abandoned == (changed.job.run_id,)


def test_a_setting_read_only_after_training_does_not_change_the_job():
    store = fresh("after-training")
    first = setup(store, SPECS, "Collect_Wood", env="gridworld", config=CFG)
    again = setup(store, SPECS, "Collect_Wood", env="gridworld", config=dict(CFG, analysis_episodes=0))
    assert again.resumed and again.job.run_id == first.job.run_id and again.abandoned == ()


def test_a_failed_run_of_the_same_job_is_resumed():
    store = fresh("failed")
    first = setup(store, SPECS, "Collect_Wood", env="gridworld", config=CFG)
    record_failure(store, first.job, "RuntimeError: the GPU fell off")
    assert skill_runs(store, "Collect_Wood")[first.job.run_id].state is RunState.FAILED
    again = setup(store, SPECS, "Collect_Wood", env="gridworld", config=CFG)
    assert again.resumed and again.job.run_id == first.job.run_id
    assert skill_runs(store, "Collect_Wood")[first.job.run_id].state is RunState.STARTED


def test_a_run_held_by_a_live_process_is_not_taken_by_another():
    store = fresh("lease")
    mine = setup(store, SPECS, "Collect_Wood", env="gridworld", config=CFG, owner="host-a:1:aaaa")
    assert mine.lease is not None
    with pytest.raises(leases.RunBusyError, match="held by host-a:1:aaaa"):
        setup(store, SPECS, "Collect_Wood", env="gridworld", config=CFG, owner="host-b:2:bbbb")
    leases.release(store, mine.lease)
    theirs = setup(store, SPECS, "Collect_Wood", env="gridworld", config=CFG, owner="host-b:2:bbbb")
    assert theirs.resumed and theirs.job.run_id == mine.job.run_id
    with pytest.raises(leases.LeaseLostError):
        leases.renew(store, mine.lease)  # the first holder learns it lost the run


def test_an_expired_lease_is_taken_over_and_two_takers_cannot_both_win():
    store = fresh("expiry")
    run_id = "Collect-Wood-x"
    old = leases.acquire(store, run_id, "host-a:1:aaaa", ttl_s=0.05)
    time.sleep(0.1)
    winner = leases.acquire(store, run_id, "host-b:2:bbbb")
    assert winner.seq == old.seq + 1
    with pytest.raises(leases.RunBusyError):
        leases.acquire(store, run_id, "host-c:3:cccc")


def test_a_dead_local_holder_does_not_block_a_rerun():
    store = fresh("dead")
    proc = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
    proc.start()
    proc.join()
    import socket

    leases.acquire(store, "Collect-Wood-y", f"{socket.gethostname()}:{proc.pid}:dead")
    assert leases.acquire(store, "Collect-Wood-y", "someone-else").owner == "someone-else"


def test_a_dependency_without_a_trained_expert_is_an_error_not_a_random_init():
    store = fresh("deps")
    with pytest.raises(MissingDependencyError, match="Collect_Wood.*no trained expert"):
        setup(store, SPECS, "Place_Table", env="gridworld", config=CFG)
    assert skill_runs(store, "Place_Table") == {}  # nothing written


def test_the_budget_rule_is_the_trainers_so_a_rerun_trains_nothing():
    store = fresh("budget")
    cfg = dict(CFG, total_timesteps=8 * 8 * 3 + 50)  # not a whole number of updates
    assert planned_frames(cfg) == 8 * 8 * 3
    first = setup(store, SPECS, "Collect_Wood", env="gridworld", config=cfg)
    result = run_job(store, first.job.run_id)
    assert result.frames == planned_frames(cfg)
    merge_run(store, first.job.run_id)
    assert is_done(store, "Collect_Wood", cfg)
    assert setup(store, SPECS, "Collect_Wood", env="gridworld", config=cfg).job is None


def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    store = Store(str(tmp_path / "store"))
    for s in SPECS:
        store.assign_index(s.name)
    first = setup(store, SPECS, "Collect_Wood", env="gridworld", config=CFG)
    run_id = first.job.run_id
    run_job(store, run_id)
    run = store.run(run_id)
    assert [int(n[:9]) for n in run.checkpoints()] == [2, 3]
    latest = Path(store.path(*run.parts("checkpoints", run.checkpoints()[-1])))
    latest.write_bytes(latest.read_bytes()[:100])  # truncated by a crash mid-write
    store.delete(run.parts("result.json"))  # as if the trainer died after that checkpoint
    with caplog.at_level(logging.WARNING, logger="flowrl"):
        result = run_job(store, run_id)
    assert str(latest) in caplog.text and "corrupt checkpoint" in caplog.text
    assert result.resumed_from_update == 2 and result.frames == 8 * 8 * 3
    assert [r["update"] for r in run.read_metrics()] == [1, 2, 3]


def test_a_checkpoint_with_nothing_readable_starts_over_from_scratch(tmp_path):
    store = Store(str(tmp_path / "store"))
    store.assign_index("Collect_Wood")
    first = setup(store, SPECS[:1], "Collect_Wood", env="gridworld", config=CFG)
    run = store.run(first.job.run_id)
    run.save(1, b"\x00garbage")
    assert run.load_latest() is None


def _open_store(url: str) -> str:
    try:
        Store(url)
        return "ok"
    except StoreError as exc:
        return str(exc)


def test_creating_one_fresh_store_from_many_processes_at_once_never_fails(tmp_path):
    url = str(tmp_path / "fresh")
    with multiprocessing.get_context("forkserver").Pool(12) as pool:  # not fork: JAX runs threads here
        results = pool.map(_open_store, [url] * 60)
    assert results == ["ok"] * 60
    assert sorted(os.listdir(url)) == ["store.json"]


def test_confusable_names_collide_in_the_store():
    store = Store(f"memory://recovery-names-{time.monotonic_ns()}")
    store.assign_index("Collect_Wood")
    with pytest.raises(StoreError, match="reads the same as 'Collect_Wood'"):
        store.assign_index("\uff23ollect_wood")


def test_storage_options_never_reach_the_trainers_command_line_or_environment(tmp_path):
    """The store's options may hold credentials: they travel on the trainer's stdin only."""
    import threading

    import psutil

    from flowrl_core.lifecycle.context import StoreRef
    from tasks.launch import run_trainer_process

    secret = "s3cr3t-token-31337"
    store = Store(str(tmp_path / "store"))
    store.assign_index("Collect_Wood")
    first = setup(store, SPECS[:1], "Collect_Wood", env="gridworld", config=dict(CFG, total_timesteps=8 * 8 * 20))
    seen: list[str] = []

    def spy() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not seen:
            for proc in psutil.Process().children(recursive=True):
                try:
                    if "flowrl_core.lifecycle.train" in " ".join(proc.cmdline()):
                        seen.append(" ".join(proc.cmdline()) + "\n" + "\n".join(f"{k}={v}" for k, v in proc.environ().items()))
                except psutil.Error:
                    continue
            time.sleep(0.05)

    watcher = threading.Thread(target=spy)
    watcher.start()
    log = logging.getLogger("test")
    run_trainer_process(StoreRef(store.url, {"auto_mkdir": True, "secret_token": secret}), first.job.run_id,
                        skill="Collect_Wood", device="", log=log)
    watcher.join()
    assert seen and first.job.run_id in seen[0]
    assert secret not in seen[0]
    assert read_result(store, first.job.run_id).frames == 8 * 8 * 20


def test_run_record_round_trips_and_reads_records_of_flowrl_0_1():
    from flowrl_core.store.runs import RunRecord

    rec = RunRecord(run_id="r1", skill="A", state=RunState.FAILED, started_at="t0", reason="boom", frames=5)
    assert RunRecord.from_dict(rec.to_dict(), skill="A", path="p") == rec
    old = {"run_id": "r0", "status": "completed", "started_at": "t", "completed_at": "t2", "frames": 7}
    assert dataclasses.asdict(RunRecord.from_dict(old, skill="A", path="p"))["state"] is RunState.COMPLETED


def test_plan_order_plans_the_job_and_naming_the_default_is_the_same_job():
    """The job holds the plan its plan_order made; a job written before the setting existed (no
    key) and one naming the default are the same job, so an upgrade abandons no checkpoint."""
    store = fresh("plan-order")
    specs = parse_skills({"skills": [
        *[s.to_dict() for s in SPECS],
        {"name": "Make_Pick", "requires": {"wood": 1, "achievement:place_table": 1}, "consumes": {"wood": 1},
         "gains": {"wood_pickaxe": 1}},
    ]})
    store.assign_index("Make_Pick")
    for dependency in ("Collect_Wood", "Place_Table"):
        trained = setup(store, specs, dependency, env="gridworld", config=CFG)
        run_job(store, trained.job.run_id)
        merge_run(store, trained.job.run_id)
    old = {k: v for k, v in CFG.items() if k != "plan_order"}
    first = setup(store, specs, "Make_Pick", env="gridworld", config=old)
    assert [(s.skill, s.count) for s in first.job.plan] == [
        ("Collect_Wood", 2), ("Place_Table", 1), ("Collect_Wood", 1), ("Make_Pick", 1)]
    named = setup(store, specs, "Make_Pick", env="gridworld", config=dict(CFG, plan_order="just_in_time"))
    assert named.resumed and named.job.run_id == first.job.run_id
    gathered = setup(store, specs, "Make_Pick", env="gridworld", config=dict(CFG, plan_order="gather_first"))
    assert not gathered.resumed and gathered.abandoned == (first.job.run_id,)
    assert [(s.skill, s.count) for s in gathered.job.plan] == [("Collect_Wood", 3), ("Place_Table", 1), ("Make_Pick", 1)]


def test_a_job_of_before_step_goal_reads_as_gained_and_the_new_default_is_another_job():
    """A job.json written before step_goal existed trained under "gained": it reads back so (the
    trainer resuming it, eval and analysis route that way), naming "gained" resumes it, and the
    new default "held" is a new job."""
    from flowrl_core.lifecycle.job import SkillJob, job_identity
    from flowrl_core.skills.spec import PlanStep

    plan = [PlanStep("Collect_Wood", 1)]
    common = dict(skill="Collect_Wood", env="gridworld", env_options={}, continuation=False, plan=plan,
                  specs={"Collect_Wood": {"name": "Collect_Wood"}}, trainer="ppo")
    old_config = {k: v for k, v in CFG.items() if k != "step_goal"}
    before = job_identity(config=old_config, **common)
    assert job_identity(config=dict(CFG, step_goal="gained"), **common) == before
    assert CFG["step_goal"] == "held" and job_identity(config=CFG, **common) != before
    store = fresh("step-goal")
    job = setup(store, SPECS, "Collect_Wood", env="gridworld", config=CFG).job
    doc = job.to_dict()
    assert doc["config"]["step_goal"] == "held" and SkillJob.from_dict(doc).config["step_goal"] == "held"
    doc["config"] = old_config
    assert SkillJob.from_dict(doc).config["step_goal"] == "gained"


def test_a_job_of_before_train_prerequisites_trains_them_and_resumes_unchanged():
    """A job.json written before the setting existed trained every plan expert: it reads back so,
    and its identity is unchanged (an upgrade abandons no unfinished run); freezing is a new job."""
    from flowrl_core.lifecycle.job import SkillJob, job_identity
    from flowrl_core.skills.spec import PlanStep

    plan = [PlanStep("Collect_Wood", 1)]
    common = dict(skill="Collect_Wood", env="gridworld", env_options={}, continuation=False, plan=plan,
                  specs={"Collect_Wood": {"name": "Collect_Wood"}}, trainer="ppo")
    old_config = {k: v for k, v in CFG.items() if k != "train_prerequisites"}
    assert CFG["train_prerequisites"] is True
    assert job_identity(config=CFG, **common) == job_identity(config=old_config, **common)
    assert job_identity(config=dict(CFG, train_prerequisites=False), **common) != job_identity(config=CFG, **common)
    store = fresh("train-prerequisites")
    doc = setup(store, SPECS, "Collect_Wood", env="gridworld", config=CFG).job.to_dict()
    doc["config"] = old_config
    job = SkillJob.from_dict(doc)
    assert job.config["train_prerequisites"] is True and job.trained_experts == tuple(job.remap.skill_of_global)
