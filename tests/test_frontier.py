"""Frontier resets: episodes start where the plan's prerequisites are done, frames stay exact,
checkpoints carry the buffer.

Corridor (tests/support), plan Collect_Wood×2 → Place_Table: the frontier is an env that has just
collected its second wood.  With ``frontier_reset_prob = p`` a fraction ~p of new episodes must
start in the last plan step holding the wood; with 0, none.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from flowrl_core.skills.spec import PlanStep, SkillSpec
from flowrl_core.training.config import PPOConfig
from flowrl_core.training.moe import MoEActorCritic
from flowrl_core.training.ppo import init_state, make_chunk_fn, make_optimizer, make_update_fn, train
from flowrl_core.training.predicates import compile_plan
from tests.support.corridor import Corridor

SPECS = {
    "Collect_Wood": SkillSpec("Collect_Wood", gains={"wood": 1}),
    "Place_Table": SkillSpec("Place_Table", consumes={"wood": 2}, gains={"achievement:place_table": 1}),
}
PLAN = [PlanStep("Collect_Wood", 2), PlanStep("Place_Table", 1)]
EXPERTS = {"Collect_Wood": 0, "Place_Table": 1}
UPDATES = 8


def _cfg(p: float, **kw) -> PPOConfig:
    base = dict(num_envs=64, num_steps=16, total_timesteps=64 * 16 * UPDATES, width=16, depth=1, update_epochs=1,
                frontier_reset_prob=p, checkpoint_every=0)
    return PPOConfig.tiny_profile(**{**base, **kw})


def _run(p: float, plan=PLAN, **kw):
    env = Corridor(length=4)
    params = env.default_params
    cfg = _cfg(p, **kw)
    compiled = compile_plan(env.item_names, env.achievement_names, plan, SPECS, EXPERTS)
    net = MoEActorCritic(2, env.num_actions, cfg.width, cfg.depth)
    tx = make_optimizer(cfg)
    state = init_state(env, params, compiled, net, tx, cfg, 2)
    update = make_update_fn(env, params, compiled, net, tx, cfg, 2, 16,
                            max_steps=kw.get("max_steps") or 3 * env.step_allowance)
    state, metrics = make_chunk_fn(update, UPDATES)(state)
    return env, cfg, state, jax.device_get(metrics)


@pytest.fixture(scope="module")
def with_frontier():
    return _run(0.5)


@pytest.fixture(scope="module")
def without_frontier():
    return _run(0.0)


def test_frontier_resets_change_where_episodes_start(with_frontier, without_frontier):
    _, _, _, on = with_frontier
    _, _, off_state, off = without_frontier
    assert off["frontier_starts"].sum() == 0 and off_state.frontier is None
    starts, frontier = on["episode_starts"][1:].sum(), on["frontier_starts"][1:].sum()
    assert starts > 300  # enough episodes for the fraction below to mean something
    # fraction of new episodes that begin in the plan's last step: ~p once the buffer holds states
    assert 0.4 < frontier / starts < 0.6, (frontier, starts)
    # every episode that ends starts another; fresh and frontier episodes are counted apart
    np.testing.assert_array_equal(on["episodes"] + on["frontier_episodes"], on["episode_starts"])


def test_frontier_episodes_start_in_the_last_step_holding_the_prerequisites(with_frontier):
    env, cfg, state, _ = with_frontier
    from_frontier = np.asarray(state.from_frontier)
    assert from_frontier.any() and not from_frontier.all()
    wood = env.item_names.index("wood")
    # the last plan step, its start inventory the frontier state's: the two collected wood
    assert (np.asarray(state.plan_step)[from_frontier] == 1).all()
    assert (np.asarray(state.start_inv)[from_frontier, wood] >= 2).all()
    # the episode's step count came along, so the budget still counts the whole attempt
    assert (np.asarray(state.ep_len)[from_frontier] >= 2).all()
    buf = state.frontier
    size = int(buf.size)
    assert 0 < size <= cfg.num_envs
    held = np.asarray(jax.vmap(env.inventory)(jax.tree.map(lambda x: x[:size], buf.state)))
    assert (held[:, wood] >= 2).all()


# --- frontier_from="failed_step": a failed episode retries the step it failed in -------------------
# Three one-run steps (wood, wood, table) and a budget too short for an untrained policy to finish
# them all: episodes fail in every step, so retry points exist in steps 1 and 2.
PLAN3 = [PlanStep("Collect_Wood", 1), PlanStep("Collect_Wood", 1), PlanStep("Place_Table", 1)]


@pytest.fixture(scope="module")
def with_retries():
    return _run(0.5, PLAN3, frontier_from="failed_step", max_steps=12)


@pytest.fixture(scope="module")
def last_step_only():
    return _run(0.5, PLAN3, max_steps=12)


def test_failed_step_retries_start_in_the_step_that_failed_not_only_the_last(with_retries, last_step_only):
    _, _, _, retry = with_retries
    _, _, _, last = last_step_only
    at = retry["frontier_start_steps"].sum(0)
    assert at[0] == 0  # a failure in the first step has nothing to retry from: a fresh world
    assert at[1] > 20 and at[2] > 20, at  # both later steps are retried where they failed
    assert at.sum() == retry["frontier_starts"].sum()
    only_last = last["frontier_start_steps"].sum(0)
    assert only_last[0] == only_last[1] == 0 and only_last[2] > 0, only_last


def test_only_failed_episodes_are_retried(with_retries):
    _, _, _, m = with_retries
    failed = (m["episodes"] - m["successes"]) + (m["frontier_episodes"] - m["frontier_successes"])
    assert (m["frontier_starts"] <= failed).all(), (m["frontier_starts"], failed)
    # a coin (p = 0.5) per failure that has a point; failures in the first step have none, so
    # well above no retries and at most half of all failures
    assert 0.05 < m["frontier_starts"][1:].sum() / failed[1:].sum() < 0.5
    np.testing.assert_array_equal(m["episodes"] + m["frontier_episodes"], m["episode_starts"])


def test_retry_points_hold_the_state_their_step_was_entered_in(with_retries):
    env, cfg, state, _ = with_retries
    points = state.frontier
    valid = np.asarray(points.valid)
    assert valid.any()
    wood = env.item_names.index("wood")
    held = np.asarray(jax.vmap(env.inventory)(points.state))[:, wood]
    step = np.asarray(points.step)
    # entering step j took j collected wood; the episode had run at least j env steps by then
    assert set(step[valid]) <= {1, 2}
    assert (held[valid] >= step[valid]).all() and (np.asarray(points.ep_len)[valid] >= step[valid]).all()
    # an env running a retried episode is in (or past) its point's step
    running = np.asarray(state.from_frontier)
    assert (np.asarray(state.plan_step)[running] >= step[running]).all()


def test_frontier_from_is_checked_before_training():
    from flowrl_core.training.config import ConfigError, resolve_config

    with pytest.raises(ConfigError, match="'frontier_from' must be one of last_step, failed_step"):
        resolve_config("tiny", {"frontier_from": "deepest"}, skill="Collect_Iron")


@pytest.mark.parametrize("frontier_from", ["last_step", "failed_step"])
def test_frames_exact_and_checkpoint_resume_with_frontier(frontier_from):
    from tests.test_ppo import MemoryIO

    env = Corridor(length=4)
    cfg = _cfg(0.5, num_envs=16, total_timesteps=16 * 16 * 4, checkpoint_every=2, frontier_from=frontier_from)
    reference = train(env, env.default_params, PLAN, SPECS, EXPERTS, cfg, checkpoint_io=MemoryIO())
    assert reference.frames == 4 * 16 * 16 == sum(reference.expert_steps)
    io = MemoryIO()

    def crash_at_3(row):
        if row["update"] == 3:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated"):
        train(env, env.default_params, PLAN, SPECS, EXPERTS, cfg, checkpoint_io=io, on_metrics=crash_at_3)
    resumed = train(env, env.default_params, PLAN, SPECS, EXPERTS, cfg, checkpoint_io=io)
    assert resumed.frames == reference.frames and resumed.expert_steps == reference.expert_steps
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(reference.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
