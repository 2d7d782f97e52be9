"""MoE actor-critic: exact routing, no dropped samples, gradients, expert surgery across K."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowrl_core.training.moe import (
    MoEActorCritic,
    apply_single_expert,
    default_big_block,
    default_block_size,
    dispatch_layout,
    get_expert,
    num_experts,
    padded_rows,
    set_expert,
)

OBS, ACTIONS, WIDTH, DEPTH = 11, 5, 16, 3


def make(k: int, seed: int = 0, block: int | None = None, big: int | None = None):
    net = MoEActorCritic(num_experts=k, num_actions=ACTIONS, width=WIDTH, depth=DEPTH, block_size=block,
                         big_block=big)
    params = net.init(jax.random.PRNGKey(seed), jnp.zeros((1, OBS)), jnp.zeros((1,), jnp.int32))
    return net, params


@functools.lru_cache(maxsize=None)
def jitted_apply(k: int, block: int | None = None, big: int | None = None):
    """One compiled apply per network shape, shared by the tests (compiles dominate their time)."""
    return jax.jit(make(k, block=block, big=big)[0].apply)


@jax.jit
def per_sample_reference(params, obs, idx):
    """Run every sample through its own expert, extracted as a separate plain network."""
    lo, v = jax.vmap(lambda o, e: apply_single_expert(get_expert(params, e), o[None]))(obs, idx)
    return lo[:, 0], v[:, 0]


@pytest.mark.parametrize("k,block,big", [(1, None, None), (3, None, None), (4, 8, 8), (8, 8, 16)])
def test_routing_matches_separate_experts(k, block, big):
    _, params = make(k, block=block, big=big)
    obs = jax.random.normal(jax.random.PRNGKey(1), (37, OBS))
    idx = jax.random.randint(jax.random.PRNGKey(2), (37,), 0, k)
    logits, value = jitted_apply(k, block, big)(params, obs, idx)
    ref_logits, ref_value = per_sample_reference(params, obs, idx)
    np.testing.assert_allclose(logits, ref_logits, atol=1e-5)
    np.testing.assert_allclose(value, ref_value, atol=1e-5)


@pytest.mark.parametrize("skew", ["all_last", "all_first", "one_each_rest_first"])
def test_no_sample_dropped_under_skewed_routing(skew):
    k, batch = 8, 64
    _, params = make(k, block=8, big=32)
    obs = jax.random.normal(jax.random.PRNGKey(3), (batch, OBS))
    if skew == "all_last":
        idx = jnp.full((batch,), k - 1, jnp.int32)
    elif skew == "all_first":
        idx = jnp.zeros((batch,), jnp.int32)
    else:
        idx = jnp.zeros((batch,), jnp.int32).at[jnp.arange(k)].set(jnp.arange(k))
    logits, value = jitted_apply(k, 8, 32)(params, obs, idx)
    ref_logits, ref_value = per_sample_reference(params, obs, idx)
    np.testing.assert_allclose(logits, ref_logits, atol=1e-5)
    np.testing.assert_allclose(value, ref_value, atol=1e-5)
    layout = dispatch_layout(idx, k, 16)
    assert len(set(np.asarray(layout.pos).tolist())) == batch  # every sample has its own row
    assert int(np.max(layout.pos)) < padded_rows(batch, k, 16)


def test_gradients_match_separate_experts():
    """The hand-written VJP of the grouped layers equals autodiff of per-expert networks."""
    k = 4
    net, params = make(k, block=4, big=8)
    obs = jax.random.normal(jax.random.PRNGKey(4), (29, OBS))
    idx = jnp.asarray(np.r_[np.zeros(20), np.arange(9) % 3].astype(np.int32))  # expert 3 unused

    def loss_moe(p):
        lo, v = net.apply(p, obs, idx)
        return jnp.sum(jax.nn.log_softmax(lo)[:, 1] * jnp.arange(29)) + jnp.sum(v ** 2)

    def loss_ref(p):
        lo, v = jax.vmap(lambda o, e: apply_single_expert(get_expert(p, e), o[None]))(obs, idx)
        lo, v = lo[:, 0], v[:, 0]
        return jnp.sum(jax.nn.log_softmax(lo)[:, 1] * jnp.arange(29)) + jnp.sum(v ** 2)

    g = jax.jit(jax.grad(loss_moe))(params)
    g_ref = jax.jit(jax.grad(loss_ref))(params)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    unused = get_expert(g, 3)
    assert all(float(jnp.abs(a).max()) == 0.0 for a in jax.tree.leaves(unused))


def test_get_set_round_trip_across_sizes():
    _, p8 = make(8, seed=1)
    _, p2 = make(2, seed=2)
    moved = get_expert(p8, 5)
    p2b = set_expert(p2, 1, moved)
    assert num_experts(p2b) == 2
    for a, b in zip(jax.tree.leaves(get_expert(p2b, 1)), jax.tree.leaves(moved)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(get_expert(p2b, 0)), jax.tree.leaves(get_expert(p2, 0))):
        np.testing.assert_array_equal(a, b)
    # The moved expert computes the same function in its new home.
    obs = jax.random.normal(jax.random.PRNGKey(5), (6, OBS))
    lo8, v8 = jitted_apply(8)(p8, obs, jnp.full((6,), 5, jnp.int32))
    lo2, v2 = jitted_apply(2)(p2b, obs, jnp.ones((6,), jnp.int32))
    np.testing.assert_allclose(lo8, lo2, atol=1e-6)
    np.testing.assert_allclose(v8, v2, atol=1e-6)
    # Format is independent of K and accepts numpy leaves (as restored from msgpack).
    assert jax.tree.structure(get_expert(p8, 0)) == jax.tree.structure(get_expert(p2, 0))
    p1 = set_expert(make(1)[1]["params"], 0, jax.tree.map(np.asarray, moved))
    assert num_experts(p1) == 1 and "actor" in p1


def test_set_expert_rejects_wrong_shape():
    _, p2 = make(2)
    bad = MoEActorCritic(num_experts=1, num_actions=ACTIONS, width=WIDTH * 2, depth=DEPTH)
    pb = bad.init(jax.random.PRNGKey(0), jnp.zeros((1, OBS)), jnp.zeros((1,), jnp.int32))
    with pytest.raises(ValueError, match="does not fit"):
        set_expert(p2, 0, get_expert(pb, 0))
    with pytest.raises(IndexError):
        get_expert(p2, 2)


def test_block_size_and_capacity_bound():
    assert default_big_block(2048, 128) == 256 and default_big_block(64, 8) == 32
    assert default_block_size(2048, 8) == 64
    assert default_block_size(64, 8) == 8
    assert default_block_size(100000, 2) == 256
    # Every routing of B samples fits the static padded buffer.
    rng = np.random.default_rng(0)
    for _ in range(50):
        k, b, batch = rng.integers(2, 9), int(rng.choice([8, 16, 32])), int(rng.integers(1, 300))
        counts = rng.multinomial(batch, rng.dirichlet(np.ones(k) * 0.3))
        assert int(np.sum(-(-counts // b)) * b) <= padded_rows(batch, k, b)
