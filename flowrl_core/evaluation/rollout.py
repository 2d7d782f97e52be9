"""Batched evaluation rollouts: fresh episodes, a step budget, and a trace of every plan step.

Why it is separate from training's rollout: evaluation must not share anything with training that
could flatter it -- episodes start from fresh ``env.reset`` calls with keys from their own stream
(:data:`EVAL_STREAM` folded into the seed, so no world a trainer drew from its reset bank is
replayed), never from the reset bank or a frontier state, and every episode gets exactly the
same step budget.  Episodes run side by side (``vmap`` over the env, one ``jit``), in a
``while_loop`` that stops as soon as every episode has ended.

Success is the *target skill's* completion predicate, checked from the episode's start (its
gains gained since the start, its achievements unlocked), so a policy that ignores the plan (a
random or a flat one) is judged by the same test as the composed one.  Plan-step progress is
tracked for every policy with the training predicates (:mod:`flowrl_core.training.predicates`),
step by step in plan order, which is what "fraction reaching each plan step" reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from flowrl_core.envs.base import Env
from flowrl_core.evaluation.policies import Policy
from flowrl_core.evaluation.records import EndReason, EpisodeTrace, StepTrace
from flowrl_core.skills.spec import PlanStep, SkillSpec
from flowrl_core.training.predicates import CompiledPlan, compile_for_env, nearby, position_names
from flowrl_core.training.survival import cause_of_death, died

PyTree = Any
EVAL_STREAM = 0x5EED_E7A1  # folded into the seed: evaluation keys never coincide with a trainer's
LAST_ACTIONS = 8
_END_CODES = (None, EndReason.SUCCESS, EndReason.BUDGET, EndReason.DEATH, EndReason.ENV_END)


class _Carry(NamedTuple):
    t: jax.Array  # int32 scalar: env steps taken (every episode started at 0)
    state: PyTree
    obs: jax.Array
    over: jax.Array  # bool[E]
    success: jax.Array  # bool[E]
    end_code: jax.Array  # int32[E]: index into _END_CODES
    steps: jax.Array  # int32[E]: env steps the episode ran
    plan_step: jax.Array  # int32[E]
    plan_done: jax.Array  # bool[E]
    completed: jax.Array  # int32[E]: plan steps completed
    step_start_inv: jax.Array  # int32[E, I]: inventory when the current plan step began
    inv0: jax.Array  # int32[E, I]: inventory at the episode's start
    actions: jax.Array  # int32[E, L]: ring of the last actions
    st_start: jax.Array  # int32[E, S]
    st_end: jax.Array  # int32[E, S]
    inv_start: jax.Array  # int32[E, S, I]
    inv_end: jax.Array  # int32[E, S, I]
    inv_pre: jax.Array  # int32[E, S, I]: inventory just before the env step that ended the plan step
    ach_start: jax.Array  # bool[E, S, A]
    ach_end: jax.Array  # bool[E, S, A]
    near_end: jax.Array  # bool[E, S, P]: position flags (P = 0 when the env does not expose nearby blocks)
    held_at_entry: jax.Array  # bool[E, S]: the step's goal already held before the env step that completed it
    cause: jax.Array  # int32[E]: index into env.death_causes for a death, else -1
    key: jax.Array


def goal_predicate(env: Env, target: str, specs: Mapping[str, SkillSpec]) -> CompiledPlan:
    """The target skill's own completion check as a one-step plan (evaluated from the episode start)."""
    return compile_for_env(env, [PlanStep(target, 1)], specs, {target: 0})


def make_rollout(env: Env, env_params: PyTree, plan: CompiledPlan, goal: CompiledPlan, policy: Policy,
                 *, greedy: bool = False, last_actions: int = LAST_ACTIONS):
    """``run(params, key, uniform, episodes, max_steps) -> numpy arrays`` (one compile per call pattern).

    ``uniform`` (traced) replaces the policy's logits by equal ones: the random baseline runs
    through the same compiled function as the policy, on the same worlds.
    """
    n_plan = plan.num_steps
    n_blocks = len(position_names(env))
    v_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    v_inv, v_ach = jax.vmap(env.inventory), jax.vmap(env.achievements)
    v_near = jax.vmap(lambda s: nearby(env, s))
    v_dead = jax.vmap(lambda s: died(env, s))
    v_cause = jax.vmap(lambda s: cause_of_death(env, s))
    v_plan, v_goal = jax.vmap(plan.evaluate), jax.vmap(goal.evaluate)

    def body(params: PyTree, uniform: jax.Array, max_steps: jax.Array, c: _Carry) -> _Carry:
        e = c.over.shape[0]
        key, k_act, k_env = jax.random.split(c.key, 3)
        live = ~c.over
        logits = policy.logits(params, c.obs, c.plan_step)
        logits = jnp.where(uniform, jnp.zeros_like(logits), logits)
        sampled = jax.random.categorical(k_act, logits)
        action = jnp.where(uniform | (not greedy), sampled, jnp.argmax(logits, axis=-1)).astype(jnp.int32)
        prev_inv = v_inv(c.state)
        # Whether the current step's goal already holds before acting: such a step completes on
        # this env step whatever the action does (see StepTrace.held_at_entry).
        held_before, _ = v_plan(c.plan_step, prev_inv, prev_inv, c.step_start_inv, v_ach(c.state), v_near(c.state))
        out = v_step(jax.random.split(k_env, e), c.state, action, env_params)
        inv, ach = v_inv(out.state), v_ach(out.state)
        near = v_near(out.state)
        t1 = c.t + 1
        step_done, _ = v_plan(c.plan_step, prev_inv, inv, c.step_start_inv, ach, near)
        step_done = step_done & live & ~c.plan_done
        goal_done, _ = v_goal(jnp.zeros((e,), jnp.int32), prev_inv, inv, c.inv0, ach, near)
        success = goal_done & live
        env_end = out.done.astype(bool) & live
        ended = success | env_end | (live & (t1 >= max_steps))
        dead = v_dead(out.state)
        code = jnp.where(success, 1, jnp.where(env_end, jnp.where(dead, 3, 4), 2))
        cause = jnp.where(ended & (code == 3), v_cause(out.state), c.cause)

        idx = jnp.arange(n_plan)[None, :]
        mark_end = (idx == c.plan_step[:, None]) & step_done[:, None]
        advance = step_done & (c.plan_step < n_plan - 1)
        nxt = jnp.where(advance, c.plan_step + 1, c.plan_step)
        mark_start = (idx == nxt[:, None]) & advance[:, None]
        plan_done = c.plan_done | (step_done & (c.plan_step == n_plan - 1))
        # the step an episode ends in without completing it: its end is the episode's end
        mark_end = mark_end | ((idx == nxt[:, None]) & (ended & ~plan_done & ~mark_end.any(1) | ended & advance)[:, None])
        put = lambda mask, new, old: jnp.where(mask.reshape(mask.shape + (1,) * (old.ndim - 2)), new, old)  # noqa: E731
        st_end = put(mark_end, t1, c.st_end)
        inv_end = put(mark_end, inv[:, None, :], c.inv_end)
        inv_pre = put(mark_end, prev_inv[:, None, :], c.inv_pre)
        ach_end = put(mark_end, ach[:, None, :], c.ach_end)
        near_end = put(mark_end, near[:, None, :], c.near_end)
        held_at_entry = c.held_at_entry | ((idx == c.plan_step[:, None]) & (step_done & held_before)[:, None])
        st_start = put(mark_start, t1, c.st_start)
        inv_start = put(mark_start, inv[:, None, :], c.inv_start)
        ach_start = put(mark_start, ach[:, None, :], c.ach_start)

        ring = c.actions.shape[1]
        slot = (jnp.arange(ring)[None, :] == c.t % ring) & live[:, None]
        keep = lambda new, old: jax.tree.map(  # noqa: E731
            lambda a, b: jnp.where(live.reshape(live.shape + (1,) * (a.ndim - 1)), a, b), new, old)
        return _Carry(
            t=t1, state=keep(out.state, c.state), obs=keep(out.obs, c.obs), over=c.over | ended,
            success=c.success | success, end_code=jnp.where(ended, code, c.end_code),
            steps=jnp.where(live, t1, c.steps), plan_step=nxt, plan_done=plan_done,
            completed=c.completed + step_done.astype(jnp.int32),
            step_start_inv=jnp.where(step_done[:, None], inv, c.step_start_inv), inv0=c.inv0,
            actions=jnp.where(slot, action[:, None], c.actions), st_start=st_start, st_end=st_end,
            inv_start=inv_start, inv_end=inv_end, inv_pre=inv_pre, ach_start=ach_start, ach_end=ach_end, near_end=near_end,
            held_at_entry=held_at_entry, cause=cause, key=key)

    def run(params: PyTree, key: jax.Array, uniform: jax.Array, reset_keys: jax.Array, max_steps: jax.Array):
        e = reset_keys.shape[0]
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, env_params)
        inv, ach = v_inv(state), v_ach(state)
        n_items, n_ach = inv.shape[1], ach.shape[1]
        zeros_s = jnp.zeros((e, n_plan), jnp.int32)
        first = (jnp.arange(n_plan) == 0)[None, :]
        c = _Carry(
            t=jnp.zeros((), jnp.int32), state=state, obs=obs, over=jnp.zeros((e,), bool),
            success=jnp.zeros((e,), bool), end_code=jnp.zeros((e,), jnp.int32), steps=jnp.zeros((e,), jnp.int32),
            plan_step=jnp.zeros((e,), jnp.int32), plan_done=jnp.zeros((e,), bool),
            completed=jnp.zeros((e,), jnp.int32), step_start_inv=inv, inv0=inv,
            actions=jnp.full((e, last_actions), -1, jnp.int32), st_start=zeros_s, st_end=zeros_s,
            inv_start=jnp.where(first[..., None], inv[:, None, :], jnp.zeros((e, n_plan, n_items), jnp.int32)),
            inv_end=jnp.zeros((e, n_plan, n_items), jnp.int32), inv_pre=jnp.zeros((e, n_plan, n_items), jnp.int32),
            ach_start=first[..., None] & ach[:, None, :], ach_end=jnp.zeros((e, n_plan, n_ach), bool),
            near_end=jnp.zeros((e, n_plan, n_blocks), bool), held_at_entry=jnp.zeros((e, n_plan), bool),
            cause=jnp.full((e,), -1, jnp.int32), key=key)
        c = jax.lax.while_loop(lambda c: (c.t < max_steps) & ~jnp.all(c.over),
                               lambda c: body(params, uniform, max_steps, c), c)
        inv_fin, ach_fin = v_inv(c.state), v_ach(c.state)
        kept = ("success", "end_code", "steps", "plan_done", "completed", "actions", "st_start", "st_end", "inv_start",
                "inv_end", "inv_pre", "ach_start", "ach_end", "near_end", "held_at_entry", "cause")
        return {k: getattr(c, k) for k in kept} | {"inv_fin": inv_fin, "ach_fin": ach_fin}

    return jax.jit(run)


def episode_keys(seed: int, episodes: int) -> tuple[jax.Array, jax.Array]:
    """(reset keys [episodes], rollout key) of an evaluation: its own stream, fixed by ``seed``."""
    base = jax.random.fold_in(jax.random.PRNGKey(int(seed)), EVAL_STREAM)
    k_reset, k_run = jax.random.split(base)
    return jax.random.split(k_reset, int(episodes)), k_run


def run_episodes(run, policy: Policy, *, uniform: bool, seed: int, episodes: int, max_steps: int) -> dict[str, np.ndarray]:
    reset_keys, k_run = episode_keys(seed, episodes)
    out = run(policy.params, k_run, jnp.asarray(uniform), reset_keys, jnp.asarray(int(max_steps), jnp.int32))
    return {k: np.asarray(v) for k, v in jax.device_get(out).items()}


def _sparse(names: Sequence[str], counts: np.ndarray) -> dict[str, int]:
    return {n: int(c) for n, c in zip(names, counts) if c}


def _flags(names: Sequence[str], flags: np.ndarray) -> tuple[str, ...]:
    return tuple(n for n, f in zip(names, flags) if f)


def traces_from_arrays(env: Env, plan: Sequence[PlanStep], raw: Mapping[str, np.ndarray]) -> list[EpisodeTrace]:
    """Per-episode :class:`EpisodeTrace` records from :func:`run_episodes`' arrays."""
    items, achs = env.item_names, env.achievement_names
    action_names = getattr(env, "action_names", None)
    blocks = position_names(env) if raw["near_end"].shape[-1] else None
    causes = tuple(getattr(env, "death_causes", ()))
    n_plan = len(plan)
    traces = []
    for e in range(raw["success"].shape[0]):
        steps = int(raw["steps"][e])
        completed = int(raw["completed"][e])
        entered = min(completed + 1, n_plan)
        step_traces = tuple(
            StepTrace(index=j, skill=plan[j].skill, count=int(plan[j].count), completed=j < completed,
                      start_step=int(raw["st_start"][e, j]), end_step=int(raw["st_end"][e, j]),
                      inventory_start=_sparse(items, raw["inv_start"][e, j]),
                      inventory_end=_sparse(items, raw["inv_end"][e, j]),
                      inventory_before_end=_sparse(items, raw["inv_pre"][e, j]),
                      achievements_start=_flags(achs, raw["ach_start"][e, j]),
                      achievements_end=_flags(achs, raw["ach_end"][e, j]),
                      nearby_end=_flags(blocks, raw["near_end"][e, j]) if blocks is not None else None,
                      held_at_entry=bool(raw["held_at_entry"][e, j]))
            for j in range(entered))
        ring = raw["actions"][e]
        n_last = min(steps, ring.shape[0])
        ids = [int(ring[(steps - n_last + i) % ring.shape[0]]) for i in range(n_last)]
        last = tuple(action_names[a] if action_names and 0 <= a < len(action_names) else str(a) for a in ids)
        code = int(raw["end_code"][e])
        cause = int(raw["cause"][e])
        traces.append(EpisodeTrace(
            episode=e, success=bool(raw["success"][e]), steps=steps,
            end=_END_CODES[code] if code else EndReason.BUDGET, plan_completed=bool(raw["plan_done"][e]),
            plan_steps_completed=completed, step_traces=step_traces,
            inventory_end=_sparse(items, raw["inv_fin"][e]), achievements_end=_flags(achs, raw["ach_fin"][e]),
            last_actions=last, death_cause=causes[cause] if 0 <= cause < len(causes) else None))
    return traces
