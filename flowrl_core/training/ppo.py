"""Plan-routed mixture-of-experts PPO (purejaxrl-style: one jitted update, state in NamedTuples).

Every env walks through the plan: its current plan step selects the expert that acts, the step's
predicate (:mod:`flowrl_core.training.predicates`) gives the reward and says when to move on, and
completing the last step ends the episode as a success.  Each sample remembers the expert that
acted, so the update routes it through the same expert.

Choices that differ from a single-network PPO, and why:

* **GAE is cut at every plan-step boundary** and at episode end: an expert's critic estimates
  the return of its own sub-task, which ends with that step's completion reward.  Nothing is
  bootstrapped across a step boundary or across the reset after the final step.
* **Per-expert normalisation**: advantages are normalised per expert within a minibatch and the
  loss is the *sum over experts of each expert's mean* loss, so an expert that owns 3 % of the
  samples gets as strong a gradient as one that owns 97 %.  Gradients are clipped by each
  expert's own norm (``max_grad_norm`` per expert).  At K = 1 this is exactly purejaxrl's PPO.
* **Exact accounting**: every env step is one frame (``num_envs * num_steps`` per update) and is
  credited to the one expert that acted; both live in the state as exact 60-bit counters
  (two int32 limbs), so a checkpoint restores them and a resumed run never counts twice.
* **Resets** come from a bank of pre-generated start states (:mod:`flowrl_core.envs.base`);
  ``bank_refresh`` slots are regenerated each update to keep start worlds diverse.
* **Step budget** (:mod:`flowrl_core.training.budget`): an episode that has not completed the
  plan within ``max_steps`` env steps ends there as a failure, like a timeout; GAE is cut there
  (the budget is part of the task, so running out of it is terminal, not a truncation).  Early
  stopping waits for one budget of env steps, not the env's own (possibly 10,000-step) horizon.
* **Frontier resets** (``frontier_reset_prob`` > 0; the reference system's "frontier
  checkpointing"): the moment an env enters the plan's last step (every prerequisite done) its
  state is saved into a bounded ring buffer; that fraction of new episodes then starts from a
  saved state (plan step = last, start inventory read from the state, the episode's step count
  restored so the budget means the same) instead of a fresh world.  The new expert practises its
  own step without re-walking the plan.  Such episodes are counted in frames like any other but
  kept out of the success rate (``frontier_*`` metrics report them), so the success rate and
  early stopping still measure whole-plan attempts from fresh worlds.
  With ``frontier_from = "failed_step"`` the saved states are per env instead (the reference
  system's per-env snapshot at the furthest plan step reached): each env keeps the state in
  which its current episode entered its current plan step, and that fraction of the episodes
  that *fail* restart there, in the step they failed in.  Practice then goes where the plan
  breaks -- on a deep plan that is a middle step (searching for iron), while the last step is
  mostly done once reached; an expert that stops failing stops being retried.
* **Survival shaping** (``survival_shaping`` > 0, :mod:`flowrl_core.training.survival`): the
  change in health, food and drink, weighted, is added to every step's reward, and a
  death costs the health that was left, so a long plan's experts learn not to die on the way.
  Deaths are counted either way (``death_rate``: finished fresh-world episodes that ended in death).
* **Frozen prerequisites** (``train_prerequisites = False``): the experts of the plan's earlier
  steps still act, but their gradients are zeroed before Adam, so they keep their seeded
  parameters exactly; only the last step's (the skill's own) expert learns.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, NamedTuple, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization

from flowrl_core.envs.base import (
    Env,
    ResetBank,
    make_reset_bank,
    refresh_bank,
    reset_done,
)
from flowrl_core.skills.spec import PlanStep, SkillSpec
from flowrl_core.training.budget import step_budget
from flowrl_core.training.config import PPOConfig
from flowrl_core.training.moe import (
    MoEActorCritic,
    get_expert,
    init_moe_params,
    num_experts,
    set_expert,
)
from flowrl_core.training.predicates import CompiledPlan, compile_for_env, nearby
from flowrl_core.training.survival import check_survival, died, survival_reward

PyTree = Any
CHECKPOINT_FORMAT = "flowrl-ppo-v1"


# --------------------------------------------------------------------------- configuration


class CheckpointIO(Protocol):
    """Where checkpoints go (e.g. :class:`flowrl_core.store.runs.RunStore`)."""

    def save(self, update: int, data: bytes) -> None: ...

    def load_latest(self) -> bytes | None: ...


# --------------------------------------------------------------------------- state


class Count(NamedTuple):
    """Exact counter beyond int32 (JAX runs without x64): value = hi * 2**30 + lo."""

    hi: jax.Array
    lo: jax.Array

    @staticmethod
    def zeros(shape: tuple[int, ...] = ()) -> "Count":
        return Count(jnp.zeros(shape, jnp.int32), jnp.zeros(shape, jnp.int32))

    def add(self, inc: jax.Array) -> "Count":  # inc < 2**30 per call
        lo = self.lo + inc.astype(jnp.int32)
        return Count(self.hi + (lo >> 30), lo & ((1 << 30) - 1))

    def value(self) -> np.ndarray:
        hi, lo = jax.device_get((self.hi, self.lo))
        return np.asarray(hi, np.int64) * (1 << 30) + np.asarray(lo, np.int64)


class FrontierBuffer(NamedTuple):
    """Env states saved when an env entered the plan's last step (a ring buffer)."""

    obs: jax.Array  # [F, *obs_shape]
    state: PyTree  # leaves [F, ...]
    ep_len: jax.Array  # int32[F]: the episode's step count when it was saved
    size: jax.Array  # int32: slots filled (<= F)
    cursor: jax.Array  # int32: next slot to write


class RetryPoints(NamedTuple):
    """Per env: the state in which its current episode entered its current plan step
    (``frontier_from = "failed_step"``); an episode that fails restarts from it."""

    obs: jax.Array  # [N, *obs_shape]
    state: PyTree  # leaves [N, ...]
    ep_len: jax.Array  # int32[N]: the episode's step count when it entered the step
    step: jax.Array  # int32[N]: the plan step it entered
    valid: jax.Array  # bool[N]: saved during the current episode (a fresh episode has none yet)


class TrainState(NamedTuple):
    params: PyTree  # {"params": {"actor", "critic"}}, experts stacked on axis 0
    opt_state: PyTree
    env_state: PyTree  # leaves [num_envs, ...]
    obs: jax.Array  # [num_envs, *obs_shape]
    plan_step: jax.Array  # int32[num_envs]: current plan step
    start_inv: jax.Array  # int32[num_envs, items]: inventory when the current step began
    ep_len: jax.Array  # int32[num_envs]
    rng: jax.Array
    update: jax.Array  # int32: updates done
    frames: Count  # env steps trained
    expert_steps: Count  # [K]: env steps acted per local expert
    bank: ResetBank
    ep_return: jax.Array  # float32[num_envs]: reward summed over the current episode so far
    from_frontier: jax.Array  # bool[num_envs]: the current episode started from a frontier state
    frontier: FrontierBuffer | RetryPoints | None  # None when frontier_reset_prob == 0


class Transition(NamedTuple):
    obs: jax.Array
    expert: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    cut: jax.Array  # the sub-task ended here (plan step completed or episode ended): no bootstrap
    ep_end: jax.Array
    success: jax.Array
    reached: jax.Array  # plan step the episode had entered when it ended
    ep_len: jax.Array
    ep_return: jax.Array  # the episode's return up to and including this step
    out_of_budget: jax.Array  # the episode ended because its step budget ran out
    frontier: jax.Array  # the episode that ended here had started from a frontier state
    # the plan step the episode starting after this step starts in when it starts from a frontier
    # state, -1 for a fresh world (int8 or int16: the rollout stays as small as with a flag)
    restart_at: jax.Array
    died: jax.Array  # the episode ended here by the agent's death


@dataclass
class TrainResult:
    params: PyTree
    frames: int
    expert_steps: list[int]  # per local expert
    metrics: dict[str, Any] | None  # of the last update
    updates: int
    early_stopped: bool
    max_steps: int = 0  # the step budget episodes ran under


# --------------------------------------------------------------------------- PPO pieces


def compute_gae(values: jax.Array, rewards: jax.Array, cuts: jax.Array, last_value: jax.Array, gamma: float,
                gae_lambda: float) -> tuple[jax.Array, jax.Array]:
    """(advantages, value targets) over [T, N]; ``cuts[t]`` stops bootstrapping after step t."""

    def body(carry, x):
        gae, next_value = carry
        value, reward, cut = x
        keep = 1.0 - cut.astype(jnp.float32)
        delta = reward + gamma * next_value * keep - value
        gae = delta + gamma * gae_lambda * keep * gae
        return (gae, value), gae

    _, adv = jax.lax.scan(body, (jnp.zeros_like(last_value), last_value), (values, rewards, cuts), reverse=True)
    return adv, adv + values


def clip_by_expert_norm(max_norm: float) -> optax.GradientTransformation:
    """``clip_by_global_norm`` applied to each expert separately (leaves stacked on axis 0)."""

    def update(updates, state, params=None):
        leaves = jax.tree.leaves(updates)
        k = leaves[0].shape[0]
        sq = sum(jnp.sum(jnp.square(g.reshape(k, -1)), axis=1) for g in leaves)
        norm = jnp.sqrt(sq)
        scale = jnp.where(norm < max_norm, 1.0, max_norm / jnp.maximum(norm, 1e-12))
        return jax.tree.map(lambda g: g * scale.reshape((k,) + (1,) * (g.ndim - 1)), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def freeze_experts(trainable: Sequence[bool]) -> optax.GradientTransformation:
    """Zero the gradients of the experts not in ``trainable`` (leaves stacked on axis 0).  Adam's
    moments then stay at zero for them, so their update is exactly zero: they keep the parameters
    they were seeded with, bit for bit."""
    mask = jnp.asarray(trainable, jnp.float32)

    def update(updates, state, params=None):
        return jax.tree.map(lambda g: g * mask.reshape((-1,) + (1,) * (g.ndim - 1)).astype(g.dtype), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(config: PPOConfig, trainable: Sequence[bool] | None = None) -> optax.GradientTransformation:
    """Adam with per-expert clipping; ``trainable`` (one flag per local expert) freezes the others."""
    steps = max(1, config.num_updates * config.update_epochs * config.num_minibatches)
    lr = optax.linear_schedule(config.lr, 0.0, steps) if config.anneal_lr else config.lr
    chain = [clip_by_expert_norm(config.max_grad_norm), optax.adam(lr, eps=1e-5)]
    if trainable is not None and not all(trainable):
        chain.insert(0, freeze_experts(trainable))
    return optax.chain(*chain)


def trainable_experts(plan: Sequence[PlanStep], expert_of_skill: Mapping[str, int], k: int,
                      config: PPOConfig) -> tuple[bool, ...]:
    """Which local experts learn: all, or only the plan's last step's (the skill's own) when
    ``train_prerequisites`` is off."""
    if config.train_prerequisites:
        return (True,) * k
    own = int(expert_of_skill[plan[-1].skill])
    return tuple(i == own for i in range(k))


def _segment_mean(onehot: jax.Array, counts: jax.Array, x: jax.Array) -> jax.Array:
    return (onehot.T @ x) / jnp.maximum(counts, 1.0)


def ppo_loss(params: PyTree, net: MoEActorCritic, batch: Transition, adv: jax.Array, targets: jax.Array,
             config: PPOConfig, k: int) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Clipped PPO loss, summed over experts of each expert's mean (see module docstring)."""
    logits, value = net.apply(params, batch.obs, batch.expert)
    logp_all = jax.nn.log_softmax(logits)
    logp = jnp.take_along_axis(logp_all, batch.action[:, None], axis=1)[:, 0]
    entropy = -jnp.sum(jnp.exp(logp_all) * logp_all, axis=-1)
    onehot = jax.nn.one_hot(batch.expert, k, dtype=jnp.float32)
    counts = onehot.sum(0)
    mean = _segment_mean(onehot, counts, adv)[batch.expert]
    std = jnp.sqrt(_segment_mean(onehot, counts, jnp.square(adv - mean))[batch.expert])
    adv_n = (adv - mean) / (std + 1e-8)
    ratio = jnp.exp(logp - batch.log_prob)
    pg = -jnp.minimum(ratio * adv_n, jnp.clip(ratio, 1 - config.clip_eps, 1 + config.clip_eps) * adv_n)
    v_clip = batch.value + jnp.clip(value - batch.value, -config.clip_eps, config.clip_eps)
    vl = 0.5 * jnp.maximum(jnp.square(value - targets), jnp.square(v_clip - targets))
    per_sample = pg + config.vf_coef * vl - config.ent_coef * entropy
    loss = jnp.sum(_segment_mean(onehot, counts, per_sample))
    aux = {
        "pg_sum": onehot.T @ pg, "vl_sum": onehot.T @ vl, "ent_sum": onehot.T @ entropy, "count": counts,
        "approx_kl": jnp.mean((ratio - 1) - jnp.log(ratio)),
        "clip_frac": jnp.mean((jnp.abs(ratio - 1) > config.clip_eps).astype(jnp.float32)),
    }
    return loss, aux


# --------------------------------------------------------------------------- the jitted update


def _where_env(mask: jax.Array, new: jax.Array, old: jax.Array) -> jax.Array:
    """``new`` where the per-env ``mask`` [N] holds, else ``old`` (leaves [N, ...])."""
    return jnp.where(mask.reshape(mask.shape + (1,) * (old.ndim - 1)), new, old)


def make_update_fn(env: Env, env_params: PyTree, plan: CompiledPlan, net: MoEActorCritic,
                   tx: optax.GradientTransformation, config: PPOConfig, k: int,
                   bank_refresh: int, max_steps: int | None = None
                   ) -> Callable[[TrainState], tuple[TrainState, dict[str, jax.Array]]]:
    """One PPO update as a pure function of the state; ``max_steps`` is the resolved step budget
    (None: no budget, episodes end only on success or the env's own end)."""
    n_env, n_steps, n_plan = config.num_envs, config.num_steps, plan.num_steps
    budget = jnp.int32(max_steps if max_steps is not None else np.iinfo(np.int32).max)
    frontier_on = config.frontier_reset_prob > 0 and n_plan > 1
    retry = frontier_on and config.frontier_from == "failed_step"
    restart_dtype = jnp.int8 if n_plan <= 127 else jnp.int16 if n_plan <= 32_767 else jnp.int32
    v_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    v_inv = jax.vmap(env.inventory)
    v_ach = jax.vmap(env.achievements)
    v_eval = jax.vmap(plan.evaluate)
    v_near = jax.vmap(lambda s: nearby(env, s))
    v_died = jax.vmap(lambda s: died(env, s))
    survival_w = float(config.survival_shaping)
    v_vitals = jax.vmap(env.vitals) if survival_w > 0 else None

    def save_frontier(buf: FrontierBuffer, reach: jax.Array, obs: jax.Array, state: PyTree,
                      ep_len: jax.Array) -> FrontierBuffer:
        """Write the envs where ``reach`` into consecutive ring slots (others write nowhere)."""
        cap = buf.ep_len.shape[0]
        slot = jnp.where(reach, (buf.cursor + jnp.cumsum(reach.astype(jnp.int32)) - 1) % cap, cap)
        put = lambda b, x: b.at[slot].set(x, mode="drop")  # noqa: E731  (slot == cap: dropped)
        n = reach.sum().astype(jnp.int32)
        return FrontierBuffer(put(buf.obs, obs), jax.tree.map(put, buf.state, state), put(buf.ep_len, ep_len),
                              jnp.minimum(buf.size + n, cap), (buf.cursor + n) % cap)

    def save_retry(points: RetryPoints, entered: jax.Array, obs: jax.Array, state: PyTree, ep_len: jax.Array,
                   step: jax.Array) -> RetryPoints:
        """Envs where ``entered`` overwrite their own retry point with the step they just entered."""
        here = functools.partial(_where_env, entered)
        return RetryPoints(here(obs, points.obs), jax.tree.map(here, state, points.state),
                           here(ep_len, points.ep_len), here(step, points.step), points.valid | entered)

    def env_step(carry, _):
        params, env_state, obs, step, start_inv, ep_len, ep_ret, bank, from_frontier, frontier, rng = carry
        if frontier_on:
            rng, k_act, k_env, k_use, k_pick = jax.random.split(rng, 5)
        else:
            rng, k_act, k_env = jax.random.split(rng, 3)
        expert = plan.step_expert[step]
        logits, value = net.apply(params, obs, expert)
        action = jax.random.categorical(k_act, logits)
        log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], axis=1)[:, 0]
        prev_inv = v_inv(env_state)
        out = v_step(jax.random.split(k_env, n_env), env_state, action, env_params)
        inv = v_inv(out.state)
        step_done, reward = v_eval(step, prev_inv, inv, start_inv, v_ach(out.state), v_near(out.state))
        dead = v_died(out.state)
        if v_vitals is not None:
            reward = reward + survival_reward(v_vitals(env_state), v_vitals(out.state), dead, survival_w)
        last = step == n_plan - 1
        success = step_done & last
        ep_len = ep_len + 1
        ep_ret = ep_ret + reward
        env_end = out.done.astype(bool)
        out_of_budget = (ep_len >= budget) & ~success & ~env_end
        ep_end = success | env_end | out_of_budget
        next_step = jnp.where(step_done & ~last, step + 1, step)
        start_inv = jnp.where(step_done[:, None], inv, start_inv)
        use_frontier = jnp.zeros_like(ep_end)
        coin = jax.random.uniform(k_use, (n_env,)) < config.frontier_reset_prob if frontier_on else None
        if retry:
            # entered a new plan step and still running: where a failure in that step restarts
            entered = step_done & ~last & ~ep_end
            frontier = save_retry(frontier, entered, out.obs, out.state, ep_len, next_step)
            use_frontier = ep_end & ~success & frontier.valid & coin
        elif frontier_on:
            # entered the last step (all prerequisites done) and still running: a frontier state
            reach = step_done & (step == n_plan - 2) & ~ep_end
            frontier = save_frontier(frontier, reach, out.obs, out.state, ep_len)
            use_frontier = ep_end & (frontier.size > 0) & coin
        restart_step = jnp.zeros_like(next_step)
        restart_len = jnp.zeros_like(ep_len)
        if retry:  # each env restarts from its own point
            src_obs, src_state, src_step, src_len = frontier.obs, frontier.state, frontier.step, frontier.ep_len
        elif frontier_on:  # any saved state of the ring
            pick = jax.random.randint(k_pick, (n_env,), 0, jnp.maximum(frontier.size, 1))
            src_obs, src_state = frontier.obs[pick], jax.tree.map(lambda x: x[pick], frontier.state)
            src_step, src_len = jnp.full_like(next_step, n_plan - 1), frontier.ep_len[pick]
        if frontier_on:
            restart_step = jnp.where(use_frontier, src_step, 0)
            restart_len = jnp.where(use_frontier, src_len, 0)
        transition = Transition(obs, expert, action, log_prob, value, reward, step_done | ep_end, ep_end, success,
                                next_step, ep_len, ep_ret, out_of_budget, from_frontier,
                                jnp.where(use_frontier, restart_step, -1).astype(restart_dtype), dead & ep_end)
        obs2, state2, bank = reset_done(bank, ep_end & ~use_frontier, out.obs, out.state)
        if frontier_on:
            obs2 = _where_env(use_frontier, src_obs, obs2)
            state2 = jax.tree.map(functools.partial(_where_env, use_frontier), src_state, state2)
        if retry:  # a fresh world has no point to retry yet; a retried one keeps its point
            frontier = frontier._replace(valid=frontier.valid & ~(ep_end & ~use_frontier))
        start_inv = jnp.where(ep_end[:, None], v_inv(state2), start_inv)
        next_step = jnp.where(ep_end, restart_step, next_step)
        ep_len = jnp.where(ep_end, restart_len, ep_len)
        ep_ret = jnp.where(ep_end, 0.0, ep_ret)  # a frontier episode's return counts from its own start
        from_frontier = jnp.where(ep_end, use_frontier, from_frontier)
        return ((params, state2, obs2, next_step, start_inv, ep_len, ep_ret, bank, from_frontier, frontier, rng),
                transition)

    def update_fn(state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        rng, k_bank, k_roll, k_epochs = jax.random.split(state.rng, 4)
        bank = refresh_bank(env, k_bank, env_params, state.bank, bank_refresh) if bank_refresh else state.bank
        carry = (state.params, state.env_state, state.obs, state.plan_step, state.start_inv, state.ep_len,
                 state.ep_return, bank, state.from_frontier, state.frontier, k_roll)
        carry, traj = jax.lax.scan(env_step, carry, None, n_steps)
        _, env_state, obs, step, start_inv, ep_len, ep_ret, bank, from_frontier, frontier, _ = carry
        _, last_value = net.apply(state.params, obs, plan.step_expert[step])
        adv, targets = compute_gae(traj.value, traj.reward, traj.cut, last_value, config.gamma, config.gae_lambda)

        def minibatch_step(carry, mb):
            params, opt_state = carry
            batch, mb_adv, mb_targets = mb
            grads, aux = jax.grad(ppo_loss, has_aux=True)(params, net, batch, mb_adv, mb_targets, config, k)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), aux

        def epoch(carry, key):
            flat = jax.tree.map(lambda x: x.reshape((config.batch_size,) + x.shape[2:]), (traj, adv, targets))
            perm = jax.random.permutation(key, config.batch_size)
            mbs = jax.tree.map(lambda x: x[perm].reshape((config.num_minibatches, -1) + x.shape[1:]), flat)
            return jax.lax.scan(minibatch_step, carry, mbs)

        (params, opt_state), aux = jax.lax.scan(epoch, (state.params, state.opt_state),
                                                jax.random.split(k_epochs, config.update_epochs))
        aux = jax.tree.map(lambda x: x.sum((0, 1)) if x.ndim > 2 else x.mean(), aux)
        acted = jnp.bincount(traj.expert.reshape(-1), length=k).astype(jnp.int32)
        # Success, reach and length count whole-plan attempts from fresh worlds only; episodes
        # started from a frontier state are reported apart (they skipped the plan's first steps).
        ended = traj.ep_end & ~traj.frontier
        ended_frontier = traj.ep_end & traj.frontier
        reached_hist = jnp.sum(jax.nn.one_hot(traj.reached, n_plan, dtype=jnp.int32) * ended[..., None], axis=(0, 1))
        metrics = {
            "episodes": ended.sum(), "successes": (traj.success & ended).sum(),
            "out_of_budget": (traj.out_of_budget & ended).sum(), "deaths": (traj.died & ended).sum(),
            "frontier_episodes": ended_frontier.sum(), "frontier_successes": (traj.success & ended_frontier).sum(),
            "episode_starts": traj.ep_end.sum(), "frontier_starts": (traj.restart_at >= 0).sum(),
            "frontier_start_steps": jnp.sum(jax.nn.one_hot(traj.restart_at, n_plan, dtype=jnp.int32), axis=(0, 1)),
            "reached_ge": jnp.cumsum(reached_hist[::-1])[::-1],  # episodes that entered step j
            "ep_len_sum": jnp.sum(jnp.where(ended, traj.ep_len, 0)),
            "return_sum": jnp.sum(jnp.where(ended, traj.ep_return, 0.0)),  # of the episodes that ended here
            "acted": acted, "mean_reward": traj.reward.mean(),
            "policy_loss": aux["pg_sum"] / jnp.maximum(aux["count"], 1),
            "value_loss": aux["vl_sum"] / jnp.maximum(aux["count"], 1),
            "entropy": aux["ent_sum"] / jnp.maximum(aux["count"], 1),
            "loss_count": aux["count"], "approx_kl": aux["approx_kl"], "clip_frac": aux["clip_frac"],
        }
        new_state = TrainState(params, opt_state, env_state, obs, step, start_inv, ep_len, rng, state.update + 1,
                               state.frames.add(jnp.int32(config.batch_size)), state.expert_steps.add(acted), bank,
                               ep_ret, from_frontier, frontier)
        return new_state, metrics

    return update_fn


def make_chunk_fn(update_fn: Callable, n: int) -> Callable:
    """``n`` updates in one jitted call (metrics stacked on a leading axis)."""

    def chunk(state: TrainState):
        return jax.lax.scan(lambda s, _: update_fn(s), state, None, n)

    return jax.jit(chunk)


# --------------------------------------------------------------------------- setup and checkpoints


def _num_local_experts(expert_of_skill: Mapping[str, int], plan: Sequence[PlanStep]) -> int:
    indices = sorted(set(int(v) for v in expert_of_skill.values()))
    if not indices:
        raise ValueError("expert_of_skill is empty")
    if indices != list(range(len(indices))):
        raise ValueError(f"local expert indices must be 0..K-1 without gaps, got {indices}")
    return len(indices)


# Module-level jits keyed on the (static) env, so repeated train() calls in one process reuse them.
_make_bank = jax.jit(make_reset_bank, static_argnums=(0, 3))


@functools.partial(jax.jit, static_argnums=(0, 2))
def _take_from_bank(env: Env, bank: ResetBank, n: int) -> tuple[jax.Array, PyTree, jax.Array, ResetBank]:
    """Start states for ``n`` envs from the bank's first slots (repeating if the bank is smaller)."""
    idx = jnp.arange(n) % bank.obs.shape[0]
    state = jax.tree.map(lambda x: x[idx], bank.state)
    cursor = jnp.asarray(n % bank.obs.shape[0], jnp.int32)
    return bank.obs[idx], state, jax.vmap(env.inventory)(state), bank._replace(cursor=cursor)


def init_state(env: Env, env_params: PyTree, plan: CompiledPlan, net: MoEActorCritic,
               tx: optax.GradientTransformation, config: PPOConfig, k: int,
               init_params: Mapping[int, PyTree] | None = None) -> TrainState:
    key = jax.random.PRNGKey(config.seed)
    k_net, k_bank, rng = jax.random.split(key, 3)
    obs_size = int(np.prod(env.obs_shape))
    params = {"params": init_moe_params(k_net, k, obs_size, env.num_actions, config.width, config.depth)}
    for local, subtree in (init_params or {}).items():
        if not 0 <= int(local) < k:
            raise ValueError(f"init_params has expert {local}, but this MoE has local experts 0..{k - 1}")
        params = set_expert(params, int(local), subtree)
    bank_size = config.reset_bank_size or 2 * config.num_envs
    bank = _make_bank(env, k_bank, env_params, bank_size)
    # The first episodes start from the bank too: one compiled world generation instead of two.
    obs, env_state, start_inv, bank = _take_from_bank(env, bank, config.num_envs)
    zeros = jnp.zeros((config.num_envs,), jnp.int32)
    frontier = None
    if config.frontier_reset_prob > 0 and plan.num_steps > 1 and config.frontier_from == "failed_step":
        # placeholders (the first start states); never read while not valid
        frontier = RetryPoints(obs, env_state, zeros, zeros, jnp.zeros((config.num_envs,), bool))
    elif config.frontier_reset_prob > 0 and plan.num_steps > 1:
        cap = config.frontier_buffer_size or config.num_envs
        idx = jnp.arange(cap) % bank.obs.shape[0]  # placeholders; never read before written (size 0)
        frontier = FrontierBuffer(bank.obs[idx], jax.tree.map(lambda x: x[idx], bank.state),
                                  jnp.zeros((cap,), jnp.int32), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
    return TrainState(params, tx.init(params), env_state, obs, zeros, start_inv, zeros, rng,
                      jnp.zeros((), jnp.int32), Count.zeros(), Count.zeros((k,)), bank,
                      jnp.zeros((config.num_envs,), jnp.float32), jnp.zeros((config.num_envs,), bool), frontier)


def _leaves_dict(tree: PyTree) -> dict[str, np.ndarray]:
    return {str(i): np.asarray(x) for i, x in enumerate(jax.tree.leaves(tree))}


def _leaves_restore(template: PyTree, d: Mapping[str, Any], what: str) -> PyTree:
    leaves, treedef = jax.tree.flatten(template)
    if len(d) != len(leaves):
        raise ValueError(f"checkpoint {what} has {len(d)} arrays, this run expects {len(leaves)}")
    out = []
    for i, t in enumerate(leaves):
        a = np.asarray(d[str(i)])
        if a.shape != np.shape(t) or a.dtype != np.asarray(t).dtype:
            raise ValueError(f"checkpoint {what} array {i} is {a.dtype}{list(a.shape)}, "
                             f"this run expects {np.asarray(t).dtype}{list(np.shape(t))}")
        out.append(jnp.asarray(a))
    return jax.tree.unflatten(treedef, out)


def _meta(env: Env, plan: CompiledPlan, config: PPOConfig, k: int) -> dict[str, Any]:
    return {"env": env.name, "plan": list(plan.skills), "num_experts": k, "num_envs": config.num_envs,
            "num_steps": config.num_steps, "width": config.width, "depth": config.depth,
            "obs_shape": list(env.obs_shape), "num_actions": int(env.num_actions)}


def state_to_bytes(state: TrainState, meta: Mapping[str, Any]) -> bytes:
    """msgpack via flax.serialization (never pickle); env-side pytrees as flat leaf lists."""
    state = jax.device_get(state)
    payload = {
        "format": CHECKPOINT_FORMAT, "meta": dict(meta),
        "params": serialization.to_state_dict(state.params),
        "opt_state": serialization.to_state_dict(state.opt_state),
        # the frontier buffer adds leaves only when it exists, so runs without it keep the old layout
        "env": _leaves_dict((state.env_state, state.obs, state.bank, state.frontier)),
        "run": serialization.to_state_dict({
            "plan_step": state.plan_step, "start_inv": state.start_inv, "ep_len": state.ep_len, "rng": state.rng,
            "update": state.update, "frames": state.frames._asdict(), "expert_steps": state.expert_steps._asdict(),
            "ep_return": state.ep_return, "from_frontier": state.from_frontier}),
    }
    return serialization.msgpack_serialize(payload)


def state_from_bytes(data: bytes, template: TrainState, meta: Mapping[str, Any]) -> TrainState:
    """Restore against ``template``; a checkpoint from another configuration is an error, not a guess."""
    payload = serialization.msgpack_restore(data)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"not a {CHECKPOINT_FORMAT} checkpoint")
    saved = payload["meta"]
    diff = {key: (saved.get(key), value) for key, value in meta.items() if saved.get(key) != value}
    if diff:
        raise ValueError(f"checkpoint was written by a different run configuration (saved, now): {diff}")
    params = serialization.from_state_dict(template.params, payload["params"])
    opt_state = serialization.from_state_dict(template.opt_state, payload["opt_state"])
    env_state, obs, bank, frontier = _leaves_restore(
        (template.env_state, template.obs, template.bank, template.frontier), payload["env"], "env")
    run = payload["run"]
    as_j = lambda x: jnp.asarray(x)  # noqa: E731
    from_frontier = as_j(run["from_frontier"]) if "from_frontier" in run else template.from_frontier
    return TrainState(
        jax.tree.map(as_j, params), jax.tree.map(as_j, opt_state), env_state, obs, as_j(run["plan_step"]),
        as_j(run["start_inv"]), as_j(run["ep_len"]), as_j(run["rng"]), as_j(run["update"]),
        Count(as_j(run["frames"]["hi"]), as_j(run["frames"]["lo"])),
        Count(as_j(run["expert_steps"]["hi"]), as_j(run["expert_steps"]["lo"])), bank,
        # checkpoints from before episode returns were tracked restart the running sums at zero
        as_j(run["ep_return"]) if "ep_return" in run else jnp.zeros_like(template.ep_return),
        from_frontier, frontier)


# --------------------------------------------------------------------------- driver


def _metrics_rows(m: Mapping[str, np.ndarray], first_update: int, batch: int, k: int, n_plan: int,
                  steps_per_s: float) -> list[dict[str, Any]]:
    rows = []
    for i in range(len(m["episodes"])):
        episodes = int(m["episodes"][i])
        count = m["loss_count"][i]
        per_expert = lambda key: [float(m[key][i][e]) if count[e] > 0 else None for e in range(k)]  # noqa: E731
        update = first_update + i + 1
        rows.append({
            "update": update, "frames": update * batch, "episodes": episodes,
            "success_rate": float(m["successes"][i]) / episodes if episodes else None,
            "step_reached": [float(m["reached_ge"][i][j]) / episodes if episodes else None for j in range(n_plan)],
            "mean_episode_length": float(m["ep_len_sum"][i]) / episodes if episodes else None,
            "mean_return": float(m["return_sum"][i]) / episodes if episodes else None,
            "out_of_budget": float(m["out_of_budget"][i]) / episodes if episodes else None,
            "death_rate": float(m["deaths"][i]) / episodes if episodes else None,
            "frontier_episodes": int(m["frontier_episodes"][i]),
            "frontier_success_rate": (float(m["frontier_successes"][i]) / int(m["frontier_episodes"][i])
                                      if int(m["frontier_episodes"][i]) else None),
            "episode_starts": int(m["episode_starts"][i]), "frontier_starts": int(m["frontier_starts"][i]),
            "frontier_start_steps": [int(x) for x in m["frontier_start_steps"][i]],
            "expert_steps": [int(x) for x in m["acted"][i]],
            "policy_loss": per_expert("policy_loss"), "value_loss": per_expert("value_loss"),
            "entropy": per_expert("entropy"), "approx_kl": float(m["approx_kl"][i]),
            "clip_frac": float(m["clip_frac"][i]), "mean_reward": float(m["mean_reward"][i]),
            "steps_per_s": steps_per_s,
        })
    return rows


class TrainingParts(NamedTuple):
    """What a training builds before its first update (shared with the memory estimate, so the
    estimate compiles exactly the update the trainer will run)."""

    k: int
    plan: CompiledPlan
    net: MoEActorCritic
    tx: optax.GradientTransformation
    bank_refresh: int
    max_steps: int  # the per-attempt step budget (training.budget)


def build_training(env: Env, plan: Sequence[PlanStep], specs: Mapping[str, SkillSpec],
                   expert_of_skill: Mapping[str, int], config: PPOConfig) -> TrainingParts:
    k = _num_local_experts(expert_of_skill, plan)
    check_survival(env, config.survival_shaping)
    compiled = compile_for_env(env, plan, specs, expert_of_skill, shaping=config.shaping,
                               completion_reward=config.completion_reward, step_goal=config.step_goal)
    net = MoEActorCritic(num_experts=k, num_actions=env.num_actions, width=config.width, depth=config.depth,
                         block_size=config.block_size)
    bank_size = config.reset_bank_size or 2 * config.num_envs
    refresh = min(bank_size, config.bank_refresh if config.bank_refresh is not None else max(1, config.num_envs // 4))
    tx = make_optimizer(config, trainable_experts(plan, expert_of_skill, k, config))
    return TrainingParts(k, compiled, net, tx, refresh, step_budget(config.max_steps, env, plan))


def chunk_size(config: PPOConfig, done: int = 0) -> int:
    """Updates fused into the next jitted call after ``done`` updates (stops at checkpoints)."""
    n = min(config.updates_per_call, config.num_updates - done)
    if config.checkpoint_every:
        n = min(n, config.checkpoint_every - done % config.checkpoint_every)
    return n


def train(env: Env, env_params: PyTree, plan: Sequence[PlanStep], specs: Mapping[str, SkillSpec],
          expert_of_skill: Mapping[str, int], config: PPOConfig,
          init_params: Mapping[int, PyTree] | None = None, checkpoint_io: CheckpointIO | None = None,
          on_metrics: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train the plan's experts as one MoE; resume from ``checkpoint_io`` if it holds a checkpoint.

    ``expert_of_skill`` maps every plan skill to a local expert in 0..K-1 (K = distinct values);
    ``init_params`` seeds local experts with :func:`~flowrl_core.training.moe.get_expert` subtrees
    (ignored when resuming: the checkpoint has the trained ones).
    """
    k, compiled, net, tx, refresh, budget = build_training(env, plan, specs, expert_of_skill, config)
    num_updates = config.num_updates
    if num_updates < 1:
        raise ValueError(f"total_timesteps {config.total_timesteps} is less than one update "
                         f"({config.num_envs} envs x {config.num_steps} steps)")
    state = init_state(env, env_params, compiled, net, tx, config, k, init_params)
    meta = _meta(env, compiled, config, k)
    if checkpoint_io is not None:
        data = checkpoint_io.load_latest()
        if data is not None:
            state = state_from_bytes(data, state, meta)
    update_fn = make_update_fn(env, env_params, compiled, net, tx, config, k, refresh, budget)
    chunks: dict[int, Any] = {}
    done = int(state.update)
    last_saved = done
    last_row: dict[str, Any] | None = None
    early = False
    # Until every env has run a full episode, the episodes that ended are mostly the quick
    # successes (failures only end at the step budget), so the success rate reads high.  Early
    # stopping waits for one episode horizon of env steps -- the step budget, or the env's own
    # horizon where that is shorter -- and two good updates in a row.
    env_horizon = int(getattr(env_params, "max_steps", 0) or getattr(env_params, "max_timesteps", 0) or 0)
    horizon = min(budget, env_horizon) if env_horizon > 0 else budget
    streak = 0
    while done < num_updates and not early:
        n = chunk_size(config, done)
        if n not in chunks:
            t0 = time.perf_counter()
            chunks[n] = make_chunk_fn(update_fn, n).lower(state).compile()
            compile_s = time.perf_counter() - t0
        else:
            compile_s = None
        t0 = time.perf_counter()
        state, metrics = chunks[n](state)
        metrics = jax.device_get(metrics)
        elapsed = time.perf_counter() - t0
        rows = _metrics_rows(metrics, done, config.batch_size, k, compiled.num_steps,
                             n * config.batch_size / max(elapsed, 1e-9))
        done += n
        for row in rows:
            if compile_s is not None:
                row["compile_s"] = compile_s
                compile_s = None
            last_row = row
            if on_metrics is not None:
                on_metrics(row)
            good = (config.success_threshold is not None and row["success_rate"] is not None
                    and row["episodes"] >= config.early_stop_min_episodes
                    and row["success_rate"] >= config.success_threshold)
            streak = streak + 1 if good else 0
            if good and streak >= 2 and row["update"] * config.num_steps >= horizon:
                early = True
        if checkpoint_io is not None and config.checkpoint_every and done % config.checkpoint_every == 0:
            checkpoint_io.save(done, state_to_bytes(state, meta))
            last_saved = done
    if checkpoint_io is not None and last_saved != done:
        checkpoint_io.save(done, state_to_bytes(state, meta))
    frames = int(state.frames.value())
    assert frames == done * config.batch_size, (frames, done)
    return TrainResult(params=state.params, frames=frames, expert_steps=[int(x) for x in state.expert_steps.value()],
                       metrics=last_row, updates=done, early_stopped=early, max_steps=budget)


def extract_experts(params: PyTree) -> dict[int, PyTree]:
    """Local index -> K-independent expert subtree (see :func:`~flowrl_core.training.moe.get_expert`)."""
    return {i: jax.device_get(get_expert(params, i)) for i in range(num_experts(params))}
