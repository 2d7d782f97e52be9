"""Policies an evaluation can roll out: a skill's composed MoE policy, a uniform random one, any network.

A policy is its parameters plus a pure ``logits(params, obs [E, ...], plan_step int32[E])``
function, so every policy runs through the same jitted rollout and is judged by the same code.
The plan step is the composed policy's router (the step picks the expert, exactly as in
training); policies that do not follow a plan ignore it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flowrl_core.skills.spec import PlanStep
from flowrl_core.training.moe import _dense_mlp

PyTree = Any
LogitsFn = Callable[[PyTree, jax.Array, jax.Array], jax.Array]


@dataclass(frozen=True, eq=False)
class Policy:
    """``logits(params, obs, plan_step) -> float[E, num_actions]``; ``params`` is traced, not baked in."""

    name: str
    params: PyTree
    logits: LogitsFn


def expert_logits(actors: PyTree, obs: jax.Array, expert: jax.Array) -> jax.Array:
    """Every stacked actor on every observation, then each env's ``expert`` [E]: K small dense MLPs
    compile far faster than the grouped MoE dispatch, and evaluation needs neither critics nor gradients."""
    x = obs.reshape(obs.shape[0], -1).astype(jnp.float32)
    all_logits = jax.vmap(lambda actor: _dense_mlp(actor, x, None))(actors)  # [K, E, A]
    return jnp.take_along_axis(all_logits, expert[None, :, None], axis=0)[0]


def _composed_logits(params: PyTree, obs: jax.Array, plan_step: jax.Array) -> jax.Array:
    return expert_logits(params["actor"], obs, params["step_expert"][plan_step])


def composed_policy(plan: Sequence[PlanStep], experts: Mapping[str, PyTree], name: str = "trained") -> Policy:
    """The plan-routed policy of a skill: plan step ``j`` acts with the expert of ``plan[j].skill``.

    ``experts`` maps every plan skill to its expert subtree (the K-independent form
    :func:`~flowrl_core.training.moe.get_expert` returns and the store holds).
    """
    skills = list(dict.fromkeys(step.skill for step in plan))
    missing = [s for s in skills if s not in experts]
    if missing:
        raise ValueError(f"no expert parameters for plan skill(s) {missing}")
    local = {s: i for i, s in enumerate(skills)}
    trees = [experts[s] for s in skills]
    shapes = [jax.tree.map(np.shape, t) for t in trees]
    if any(s != shapes[0] for s in shapes[1:]):
        raise ValueError(f"the experts of {skills} have different network shapes and cannot form one policy")
    actors = [t["actor"] for t in trees]
    stacked = jax.tree.map(lambda *leaves: jnp.stack([jnp.asarray(x, jnp.float32) for x in leaves]), *actors)
    step_expert = jnp.asarray([local[step.skill] for step in plan], jnp.int32)
    return Policy(name, {"actor": stacked, "step_expert": step_expert}, _composed_logits)


def _uniform_logits(params: PyTree, obs: jax.Array, plan_step: jax.Array) -> jax.Array:
    return jnp.zeros((obs.shape[0], params["num_actions"].shape[0]), jnp.float32)


def random_policy(num_actions: int) -> Policy:
    """Uniform over the env's actions (equal logits); the baseline every success rate is shown beside."""
    return Policy("random", {"num_actions": jnp.zeros((int(num_actions),), jnp.float32)}, _uniform_logits)


def network_policy(name: str, params: PyTree, apply: Callable[[PyTree, jax.Array], tuple[jax.Array, Any]]) -> Policy:
    """Any actor-critic network ``apply(params, obs) -> (logits, value)`` that ignores the plan (e.g. a flat PPO)."""

    def logits(p: PyTree, obs: jax.Array, plan_step: jax.Array) -> jax.Array:
        return apply(p, obs)[0]

    return Policy(name, params, logits)
