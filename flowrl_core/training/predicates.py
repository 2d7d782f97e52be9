"""Plan steps compiled into arrays: when a step is done, and the reward for getting there.

No skill is ever turned into code by ``exec``/``eval``: a plan becomes a handful of arrays indexed
by each env's current step, so every env evaluates its own step's predicate in one vectorised,
jittable expression.  Only a skill that names a user predicate (``SkillSpec.predicate =
"pkg.module:function"``) runs user code, resolved with :mod:`importlib` and dispatched with
``lax.switch``.

Semantics of plan step ``k`` = ``PlanStep(skill S, count n)``, with ``start`` the inventory when
the env entered step ``k``:

* done when, for every ``gains`` key of ``S``:
  - item ``i``: ``inventory[i] - start[i] >= gains[i] * n`` (count-aware and relative, so a
    step is not satisfied by what the agent already owned, and what it consumed meanwhile counts
    against it).  With ``step_goal = "held"``, ``start`` is instead the inventory the *plan*
    expects on entering step ``k`` (:func:`~flowrl_core.skills.plan.holdings_at_steps`), so the
    step is done once the agent holds what the rest of the plan needs from it: coal picked up on
    the way to the iron completes the coal step at once, and stone placed as a block must be
    mined again before the craft that needs it;
  - ``achievement:a``: ``a`` is unlocked in the current state (achievements are per-episode
    flags, so ``n`` is ignored for them and an achievement unlocked earlier in the episode
    completes the step at once);
  - ``near:b``: a block ``b`` is in crafting range in the current state (the env's
    ``nearby_blocks``), so a second ``Place_Table`` step is done once a table -- new, or the
    old one walked back to -- stands beside the agent, not at once as its achievement would be;
  - ``view:b``: a block ``b`` is in the agent's view in the current state (the env's
    ``visible_blocks``), so a search is rewarded when its target comes into sight.
* reward for an env step taken in step ``k`` (from inventory ``prev`` to ``inv``):
  ``completion_reward * done + shaping * (progress(inv) - progress(prev))`` where
  ``progress(v) = sum_i clip(v[i] - start[i], 0, gains[i] * n)`` over the gained items.  So each
  useful item is worth ``shaping`` (0.1) until the target is reached, losing one costs the same,
  and the shaping of a whole step adds up to at most ``shaping * sum(targets)``.
* a user predicate replaces both the check and the shaping: ``fn(prev_inventory, inventory,
  start_inventory, achievements, count) -> (done, reward)`` on one env's arrays (int32[I],
  int32[I], int32[I], bool[A], int32 scalar), pure JAX; ``completion_reward`` is still added
  when it reports done, so every expert's critic sees the same scale of sub-task return.
* a step with no gains and no predicate is rejected (it would complete for free).

The trainer advances at most one plan step per env step; a following step that already holds
(an achievement unlocked earlier) completes on the next env step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from flowrl_core.errors import FlowRLError
from flowrl_core.plugins import ImportPathError, resolve_callable
from flowrl_core.skills.plan import DEFAULT_STEP_GOAL, STEP_GOALS, holdings_at_steps
from flowrl_core.skills.spec import (
    PlanStep,
    SkillSpec,
    achievement_name,
    is_achievement,
    is_positional,
    is_view,
    near_block,
)

UserPredicate = Callable[..., tuple[jax.Array, jax.Array]]


class PredicateError(FlowRLError, ValueError):
    """A plan that can not be compiled against an env (unknown key, bad predicate path, ...)."""


def resolve_predicate(path: str, *, skill: str = "?") -> UserPredicate:
    """The callable at ``"pkg.module:function"``, with errors that say which skill asked for it."""
    try:
        return resolve_callable(path, "function")
    except ImportPathError as exc:
        raise PredicateError(f"skill {skill!r}: predicate {exc}") from None


def _check_user_predicate(fn: UserPredicate, path: str, skill: str, n_items: int, n_ach: int) -> None:
    """Trace once on abstract inputs, so a wrong signature fails at compile time, not mid-run."""
    inv = jax.ShapeDtypeStruct((n_items,), jnp.int32)
    args = (inv, inv, inv, jax.ShapeDtypeStruct((n_ach,), jnp.bool_), jax.ShapeDtypeStruct((), jnp.int32))
    try:
        out = jax.eval_shape(fn, *args)
    except Exception as exc:  # user code: any error is a bad predicate
        raise PredicateError(f"skill {skill!r}: predicate {path!r} failed on abstract inputs "
                             f"(prev_inventory, inventory, start_inventory, achievements, count): "
                             f"{type(exc).__name__}: {exc}") from None
    if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(o.shape == () for o in out)):
        raise PredicateError(f"skill {skill!r}: predicate {path!r} must return (done, reward) scalars, got {out}")


def _as_branch(fn: UserPredicate) -> Callable[[tuple], tuple[jax.Array, jax.Array]]:
    def branch(args: tuple) -> tuple[jax.Array, jax.Array]:
        done, reward = fn(*args)
        return jnp.asarray(done).astype(jnp.bool_), jnp.asarray(reward).astype(jnp.float32)

    return branch


@dataclass(frozen=True, eq=False)
class CompiledPlan:
    """A plan as arrays over its steps (``S`` steps, ``I`` items, ``A`` achievements)."""

    skills: tuple[str, ...]
    step_expert: jax.Array  # int32[S]: local expert acting in step k
    step_count: jax.Array  # int32[S]
    item_target: jax.Array  # int32[S, I]: gains[item] * count (0 where unchecked)
    item_checked: jax.Array  # bool[S, I]
    ach_required: jax.Array  # bool[S, A]
    near_required: jax.Array  # bool[S, P]: position flags that must hold (P: :func:`position_names`)
    user_index: jax.Array  # int32[S]: index into user_fns, -1 for the built-in check
    user_fns: tuple[UserPredicate, ...]
    shaping: float
    completion_reward: float
    item_base: jax.Array | None = None  # int32[S, I]: step_goal "held" -- the plan's holdings on entering step k

    @property
    def num_steps(self) -> int:
        return len(self.skills)

    def evaluate(self, step: jax.Array, prev_inv: jax.Array, inv: jax.Array, start_inv: jax.Array,
                 achievements: jax.Array, near: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(done bool, reward float32) for one env in plan step ``step``; vmap it over envs.
        ``near`` is :func:`nearby`'s position flags (bool[P]: empty for an env without blocks,
        whose plans have no ``near:`` or ``view:`` keys)."""
        target = self.item_target[step]
        checked = self.item_checked[step]
        base = start_inv if self.item_base is None else self.item_base[step]
        gained = inv - base
        items_ok = jnp.all(jnp.where(checked, gained >= target, True))
        ach_ok = jnp.all(jnp.where(self.ach_required[step], achievements, True))
        done = items_ok & ach_ok
        if self.near_required.shape[1]:
            done = done & jnp.all(jnp.where(self.near_required[step], near, True))

        def progress(v: jax.Array) -> jax.Array:
            return jnp.sum(jnp.where(checked, jnp.clip(v - base, 0, target), 0)).astype(jnp.float32)

        reward = self.shaping * (progress(inv) - progress(prev_inv))
        if self.user_fns:
            user = self.user_index[step]
            branches = [_as_branch(f) for f in self.user_fns]
            u_done, u_reward = jax.lax.switch(jnp.maximum(user, 0), branches,
                                              (prev_inv, inv, start_inv, achievements, self.step_count[step]))
            done = jnp.where(user >= 0, u_done, done)
            reward = jnp.where(user >= 0, u_reward, reward)
        return done, (reward + self.completion_reward * done).astype(jnp.float32)


def nearby(env: object, state: object) -> jax.Array:
    """The position flags of one state, named by :func:`position_names`: the env's
    ``nearby_blocks(state)``, then its ``visible_blocks(state)`` where it has a view; bool[0] for
    an env that has no blocks."""
    fn = getattr(env, "nearby_blocks", None)
    if fn is None or not hasattr(env, "block_names"):
        return jnp.zeros((0,), jnp.bool_)
    if has_view(env):
        return jnp.concatenate([fn(state), env.visible_blocks(state)])  # type: ignore[attr-defined]
    return fn(state)


def block_names(env: object) -> tuple[str, ...]:
    return tuple(getattr(env, "block_names", ())) if hasattr(env, "nearby_blocks") else ()


def has_view(env: object) -> bool:
    """Whether the env says which blocks the agent sees (``visible_blocks``), so ``view:`` keys can be checked."""
    return bool(block_names(env)) and hasattr(env, "visible_blocks")


def position_names(env: object) -> tuple[str, ...]:
    """Names of :func:`nearby`'s flags: a block name for each crafting-range flag, then
    ``view:<block>`` for each view flag (so a trace's ``nearby_end`` tells the two apart)."""
    blocks = block_names(env)
    return blocks + (tuple(f"view:{b}" for b in blocks) if has_view(env) else ())


def check_specs_for_env(specs: Sequence[SkillSpec], item_names: Sequence[str], achievement_names: Sequence[str],
                        *, env_name: str = "env", blocks: Sequence[str] = (), view: bool = False) -> None:
    """What :func:`compile_plan` would refuse, checked once per skill (linear in the library):
    every ``gains`` key exists in the env, every predicate imports and traces with the right
    signature.  Run before anything is written, so a typo is not found an hour into training."""
    items, achs = set(item_names), set(achievement_names)
    checked: set[str] = set()
    for spec in specs:
        for key in list(spec.gains) + list(spec.requires):
            if is_positional(key):
                _check_block(key, spec.name, blocks, env_name, view)
        for key in spec.gains:
            if is_positional(key):
                continue
            known = achs if is_achievement(key) else items
            name = achievement_name(key) if is_achievement(key) else key
            if name not in known:
                kind = "an achievement" if is_achievement(key) else "an item"
                raise PredicateError(f"skill {spec.name!r}: gains key {key!r} is not {kind} of env {env_name!r} "
                                     f"(known: {', '.join(sorted(known))})")
        if spec.predicate and spec.predicate not in checked:
            fn = resolve_predicate(spec.predicate, skill=spec.name)
            _check_user_predicate(fn, spec.predicate, spec.name, len(item_names), len(achievement_names))
            checked.add(spec.predicate)


def _check_block(key: str, skill: str, blocks: Sequence[str], env_name: str, view: bool) -> None:
    if near_block(key) not in blocks:
        known = f"known: {', '.join(blocks)}" if blocks else "it exposes no nearby blocks"
        raise PredicateError(f"skill {skill!r}: key {key!r} names no block type of env {env_name!r} ({known})")
    if is_view(key) and not view:
        raise PredicateError(f"skill {skill!r}: key {key!r} needs to know what the agent sees, and env "
                             f"{env_name!r} does not say (it has no visible_blocks); use a near: key instead")


def compile_plan(item_names: Sequence[str], achievement_names: Sequence[str], plan: Sequence[PlanStep],
                 specs: Mapping[str, SkillSpec], expert_of_skill: Mapping[str, int], *, env_name: str = "env",
                 blocks: Sequence[str] = (), view: bool = False, shaping: float = 0.1,
                 completion_reward: float = 1.0, step_goal: str = DEFAULT_STEP_GOAL) -> CompiledPlan:
    """Check the plan against the env's names and lay it out as arrays (see module docstring)."""
    if not plan:
        raise PredicateError("the plan is empty: nothing to train")
    if step_goal not in STEP_GOALS:
        raise PredicateError(f"step_goal must be one of {', '.join(STEP_GOALS)}, got {step_goal!r}")
    items = {n: i for i, n in enumerate(item_names)}
    achs = {n: i for i, n in enumerate(achievement_names)}
    s, n_items, n_ach = len(plan), len(item_names), len(achievement_names)
    target = np.zeros((s, n_items), np.int32)
    checked = np.zeros((s, n_items), bool)
    required = np.zeros((s, n_ach), bool)
    block_index = {n: i for i, n in enumerate(blocks)}
    near_required = np.zeros((s, len(blocks) * (2 if view else 1)), bool)
    user_index = np.full((s,), -1, np.int32)
    experts = np.zeros((s,), np.int32)
    counts = np.zeros((s,), np.int32)
    user_fns: list[UserPredicate] = []
    fn_slot: dict[str, int] = {}
    for k, step in enumerate(plan):
        spec = specs.get(step.skill)
        if spec is None:
            raise PredicateError(f"plan step {k}: skill {step.skill!r} has no spec")
        if step.skill not in expert_of_skill:
            raise PredicateError(f"plan step {k}: skill {step.skill!r} has no local expert index")
        if int(step.count) < 1:
            raise PredicateError(f"plan step {k}: skill {step.skill!r} has count {step.count}; must be >= 1")
        experts[k], counts[k] = int(expert_of_skill[step.skill]), int(step.count)
        for key, amount in spec.gains.items():
            if is_positional(key):
                _check_block(key, step.skill, blocks, env_name, view)
                near_required[k, block_index[near_block(key)] + (len(blocks) if is_view(key) else 0)] = True
            elif is_achievement(key):
                name = achievement_name(key)
                if name not in achs:
                    raise PredicateError(f"skill {step.skill!r}: gains key {key!r} is not an achievement of env "
                                         f"{env_name!r} (known: {', '.join(achievement_names)})")
                required[k, achs[name]] = True
            else:
                if key not in items:
                    raise PredicateError(f"skill {step.skill!r}: gains key {key!r} is not an item of env "
                                         f"{env_name!r} (known: {', '.join(item_names)})")
                checked[k, items[key]] = True
                target[k, items[key]] = int(amount) * int(step.count)
        if spec.predicate:
            if spec.predicate not in fn_slot:
                fn = resolve_predicate(spec.predicate, skill=step.skill)
                _check_user_predicate(fn, spec.predicate, step.skill, n_items, n_ach)
                fn_slot[spec.predicate] = len(user_fns)
                user_fns.append(fn)
            user_index[k] = fn_slot[spec.predicate]
        elif not spec.gains:
            raise PredicateError(f"skill {step.skill!r} has no gains and no predicate: its step could never be checked")
    base = None
    if step_goal == "held":
        base = np.zeros((s, n_items), np.int32)
        for k, held in enumerate(holdings_at_steps(plan, specs)):
            for key, amount in held.items():
                if key in items:
                    base[k, items[key]] = amount
    return CompiledPlan(
        skills=tuple(p.skill for p in plan), step_expert=jnp.asarray(experts), step_count=jnp.asarray(counts),
        item_target=jnp.asarray(target), item_checked=jnp.asarray(checked), ach_required=jnp.asarray(required),
        near_required=jnp.asarray(near_required),
        user_index=jnp.asarray(user_index), user_fns=tuple(user_fns), shaping=float(shaping),
        completion_reward=float(completion_reward), item_base=None if base is None else jnp.asarray(base))


def compile_for_env(env: object, plan: Sequence[PlanStep], specs: Mapping[str, SkillSpec],
                    expert_of_skill: Mapping[str, int], **options: Any) -> CompiledPlan:
    """:func:`compile_plan` against an env's own items, achievements and block types."""
    return compile_plan(env.item_names, env.achievement_names, plan, specs, expert_of_skill,  # type: ignore[attr-defined]
                        env_name=env.name, blocks=block_names(env), view=has_view(env), **options)  # type: ignore[attr-defined]
