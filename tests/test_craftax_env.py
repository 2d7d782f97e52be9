"""CraftaxEnv adapter.  Craftax-Classic compiles reset + a step scan in ~10-15 s here, so its
checks share one module-scoped compile; full Craftax (~25-30 s) is marked slow."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("craftax")

from flowrl_core.envs import make_env  # noqa: E402
from flowrl_core.envs.base import Env  # noqa: E402
from flowrl_core.envs.gridworld import ACHIEVEMENT_NAMES, ITEM_NAMES  # noqa: E402

STEPS = 4


def _signature(tree):
    return [(x.shape, x.dtype, getattr(x, "weak_type", False)) for x in jax.tree.leaves(tree)]


def _rollout(env, params):
    """reset, then STEPS random actions under one jit (one compile for the whole module)."""

    def run(key):
        k_reset, k_act, k_step = jax.random.split(key, 3)
        obs, state = env.reset(k_reset, params)
        actions = jax.random.randint(k_act, (STEPS,), 0, env.num_actions)

        def body(state, xs):
            key, action = xs
            out = env.step(key, state, action, params)
            return out.state, (out.obs, out.reward, out.done, out.info["discount"],
                               env.inventory(out.state), env.achievements(out.state))  # fmt: skip

        last, traj = jax.lax.scan(body, state, (jax.random.split(k_step, STEPS), actions))
        return obs, state, env.inventory(state), env.achievements(state), last, traj

    return jax.jit(run)(jax.random.key(0))


@pytest.fixture(scope="module")
def classic():
    env = make_env("Craftax-Classic-Symbolic-v1")
    return env, _rollout(env, env.default_params)


def test_classic_names_match_gridworld(classic):
    env, _ = classic
    assert isinstance(env, Env)
    assert env.item_names == ITEM_NAMES
    assert env.achievement_names == ACHIEVEMENT_NAMES  # same names in the same order
    assert "wood" in env.item_names and "place_table" in env.achievement_names
    assert env.num_actions == 17 and env.obs_shape == (1345,)


def test_classic_reset_and_steps(classic):
    env, (obs, state, inv0, ach0, last, traj) = classic
    assert obs.shape == env.obs_shape and obs.dtype == jnp.float32
    assert inv0.shape == (len(env.item_names),) and inv0.dtype == jnp.int32
    assert not np.asarray(inv0).any()
    assert ach0.shape == (22,) and ach0.dtype == jnp.bool_ and not np.asarray(ach0).any()
    step_obs, reward, done, discount, inv, ach = traj
    assert step_obs.shape == (STEPS, *env.obs_shape) and step_obs.dtype == jnp.float32
    assert reward.dtype == jnp.float32 and done.dtype == jnp.bool_ and not np.asarray(done).any()
    assert np.asarray(discount).tolist() == [1.0] * STEPS
    assert inv.shape == (STEPS, 12) and ach.shape == (STEPS, 22)
    # reset and step hand back identically typed states (no weak types), so a jitted rollout
    # fed a reset state and then its own output does not recompile
    assert _signature(state) == _signature(last)
    assert not any(w for _, _, w in _signature(state))


def test_missing_craftax_module_error(monkeypatch):
    import sys

    from flowrl_core.envs.craftax_env import CraftaxEnv

    monkeypatch.setitem(sys.modules, "craftax.craftax_classic.envs.craftax_symbolic_env", None)
    with pytest.raises(ImportError, match=r"install flowrl\[craftax\]"):
        CraftaxEnv("Craftax-Classic-Symbolic-v1")


@pytest.mark.slow
def test_full_craftax_reset_and_steps():
    env = make_env("Craftax-Symbolic-v1")
    assert "wood" in env.item_names and "place_table" in env.achievement_names
    assert env.item_names[:12] == ITEM_NAMES and env.achievement_names[:22] == ACHIEVEMENT_NAMES
    assert len(env.achievement_names) == 67 and env.num_actions == 43
    obs, state, inv0, ach0, last, traj = _rollout(env, env.default_params)
    assert obs.shape == env.obs_shape
    assert inv0.shape == (len(env.item_names),) and not np.asarray(inv0).any()
    assert ach0.shape == (67,) and not np.asarray(ach0).any()
    assert _signature(state) == _signature(last)
    # death causes read the current floor's mobs (full Craftax keeps them per level)
    assert env.death_causes == ("lava", "melee_mob", "ranged_mob", "thirst", "hunger", "fatigue", "other")
    thirsty = state.replace(player_drink=jnp.zeros_like(state.player_drink),
                            melee_mobs=state.melee_mobs.replace(mask=jnp.zeros_like(state.melee_mobs.mask)),
                            ranged_mobs=state.ranged_mobs.replace(mask=jnp.zeros_like(state.ranged_mobs.mask)))
    assert env.death_causes[int(jax.jit(env.death_cause)(thirsty))] == "thirst"


def test_classic_evaluation_hooks(classic):
    """Names, nearby blocks and death, as evaluation traces read them, on the reset state."""
    env, (_, state, *_rest) = classic
    assert env.action_names[:6] == ("noop", "left", "right", "up", "down", "do")
    assert len(env.action_names) == env.num_actions and "crafting_table" in env.block_names
    near = np.asarray(jax.jit(env.nearby_blocks)(state))
    assert near.shape == (len(env.block_names),) and near.any()
    assert not bool(jax.jit(env.is_dead)(state))  # a fresh world: alive
    dead = state.replace(player_health=jnp.zeros_like(state.player_health))
    assert bool(jax.jit(env.is_dead)(dead))
    assert env.step_allowance == 50


def test_classic_death_cause_reads_lava_needs_and_attackers(classic):
    """What evaluation reports a death as: lava first, then an attacker in reach, then a need at 0."""
    env, (_, state, *_rest) = classic
    assert env.death_causes == ("lava", "zombie", "skeleton", "thirst", "hunger", "fatigue", "other")
    cause = jax.jit(env.death_cause)
    no_mobs = lambda mobs: mobs.replace(mask=jnp.zeros_like(mobs.mask))  # noqa: E731
    calm = state.replace(zombies=no_mobs(state.zombies), skeletons=no_mobs(state.skeletons))
    name = lambda s: env.death_causes[int(cause(s))]  # noqa: E731
    assert name(calm) == "other"
    x, y = (int(v) for v in state.player_position)
    assert name(calm.replace(map=calm.map.at[x, y].set(env._lava), player_drink=jnp.zeros_like(state.player_drink))) == "lava"
    assert name(calm.replace(player_drink=jnp.zeros_like(state.player_drink))) == "thirst"
    assert name(calm.replace(player_food=jnp.zeros_like(state.player_food))) == "hunger"

    def with_mob(group: str, offset: tuple[int, int]):
        mobs = getattr(calm, group)
        pos = mobs.position.at[0].set(state.player_position + jnp.asarray(offset, mobs.position.dtype))
        return calm.replace(**{group: mobs.replace(position=pos, mask=mobs.mask.at[0].set(True))})

    assert name(with_mob("zombies", (1, 0))) == "zombie"
    thirsty = with_mob("zombies", (0, -1)).replace(player_drink=jnp.zeros_like(state.player_drink))
    assert name(thirsty) == "zombie"  # the last blow, not the thirst that stopped the healing
    assert name(with_mob("zombies", (1, 1))) == "other"  # diagonal: a zombie cannot strike from there
    assert name(with_mob("skeletons", (4, 1))) == "skeleton"
    assert name(with_mob("skeletons", (6, 3))) == "other"


def test_classic_vitals_read_health_food_and_drink_not_energy(classic):
    """What survival_shaping weighs: health first, then food and drink, as floats (not energy:
    paying for it paid for sleeping among zombies)."""
    from flowrl_core.training.survival import survival_reward

    env, (_, state, *_rest) = classic
    vitals = np.asarray(jax.jit(env.vitals)(state))
    assert vitals.dtype == np.float32 and vitals.tolist() == [9.0, 9.0, 9.0]  # a fresh world
    hurt = state.replace(player_health=jnp.asarray(4, state.player_health.dtype),
                         player_drink=jnp.asarray(2, state.player_drink.dtype))
    assert np.asarray(env.vitals(hurt)).tolist() == [4.0, 9.0, 2.0]
    assert float(survival_reward(env.vitals(state), env.vitals(hurt), env.is_dead(hurt), 0.1)) == pytest.approx(-1.2)
    asleep = state.replace(player_energy=jnp.asarray(3, state.player_energy.dtype))
    assert float(survival_reward(env.vitals(asleep), env.vitals(state), env.is_dead(state), 0.1)) == 0.0


def test_classic_visible_blocks_are_the_block_types_of_the_observations_view(classic):
    """``view:`` keys read ``visible_blocks``: it must say exactly which block types the symbolic
    observation's 7 x 9 one-hot view shows, and a diamond placed just outside that view is not in it."""
    env, (obs, state, *_rest) = classic
    n = len(env.block_names)
    shown = np.asarray(obs).reshape(-1)[:7 * 9 * (n + 4)].reshape(7, 9, n + 4)[..., :n].reshape(-1, n).max(0) > 0
    visible = np.asarray(jax.jit(env.visible_blocks)(state))
    assert visible.shape == (n,) and (visible == shown).all()
    diamond = env.block_names.index("diamond")
    assert not visible[diamond]  # the spawn area has no diamond in view (the noise is lowered around it)
    r, c = (int(x) for x in state.player_position)
    inside = state.replace(map=state.map.at[r - 3, c + 4].set(diamond))
    outside = state.replace(map=state.map.at[r - 4, c].set(diamond))
    assert bool(jax.jit(env.visible_blocks)(inside)[diamond])
    assert not bool(jax.jit(env.visible_blocks)(outside)[diamond])
