"""Mixture-of-experts actor-critic with hard, given routing and exact grouped dispatch.

Each expert is an independent actor MLP and critic MLP (tanh, orthogonal init as in purejaxrl).
Routing is *given*: every sample carries the local index of the expert that must act on it (the
plan step it is in), there is no learned router.  The parameters of all K experts are stacked
on a leading K axis, so an expert can be cut out (:func:`get_expert`) and put into another MoE
of any size (:func:`set_expert`).

Dispatch, and why it looks like this (see perf_anchors.md §4 and ``benchmarks/trainer.py``):

* Evaluating every expert on every sample costs >= K x, so it is not an option.
* Classic capacity dispatch (``[K, C]`` buckets, ``C = 1.25 B / K``) is fast but *drops* the
  samples of an overloaded expert, and in plan-routed PPO the routing is extremely skewed
  (early on nearly every env is in plan step 0), so a PPO loss would silently lose most of its
  data.  Making it safe needs ``C = B``, i.e. K x the work again.
* What we do instead: samples are sorted by expert and each expert's run is padded up to a
  multiple of a small block size ``b`` (the per-expert "capacity" is its exact count rounded up
  to ``b``).  The padded buffer has the static size ``P = (ceil(B / b) + K - 1) * b``, which
  provably holds every sample for *any* routing, so nothing is ever dropped.  A grouped linear
  layer then loops over the experts that have samples and, inside, over that expert's blocks
  (dynamic trip counts): first ``count // big`` GEMMs of ``big`` rows, then as few ``b``-row
  GEMMs as cover the rest.  Blocks past the used count are never computed, so the work is ``B``
  rows plus fewer than ``b`` padding rows per expert with samples, whatever the skew, and a
  skewed batch (the common case) runs as a few large GEMMs.  Actor and critic layers share one
  loop.  Reverse mode goes through a hand-written VJP (JAX can not differentiate loops with
  dynamic trip counts); it accumulates each expert's weight gradient in a small carry and
  writes it once per expert, so the backward pass does not grow with K either.

  The trade-off is GEMM size and loop overhead: block GEMMs are less efficient on XLA:CPU than
  one big GEMM, every loop iteration has a fixed cost that dominates small networks, and a
  larger ``b`` wastes more padding.  :func:`default_block_size` picks ``b ~ B / (4K)`` in
  [8, 256] (<= ~12 % padding at uniform routing) and :func:`default_big_block` ``~ B / 2``
  (<= 256).  Measured (``benchmarks/trainer.py``, shared 2-core CPU, noisy): at Craftax size
  (1345 inputs, 3 x 512, minibatch 2048, uniform routing) a K = 8 train step costs 1.6-2.0x one
  network per sample, 1.3-1.5x when skewed.  The cost grows as the per-expert batch shrinks:
  every active expert's weights are read once per block, so with ~64 samples per expert
  (minibatch 512 at K = 8) it is ~2.8x, and a 64-env rollout forward at K = 8 ~7x (weight
  reads, as for any MoE).  K = 1 skips all of this and runs a plain MLP.

Routing indices must lie in ``[0, K)``; out-of-range values are clipped (an index can not be
checked inside ``jit``).  The grouped loops are written for a batch axis that is *not* vmapped;
vmapping the apply function over an extra axis works but turns the loops into selects.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

PyTree = Any

MAX_BLOCK = 256
MIN_BLOCK = 8


# --------------------------------------------------------------------------- parameters


@functools.partial(jax.jit, static_argnames=("shape", "scale"))
def _orthogonal(key: jax.Array, shape: tuple[int, int], scale: float) -> jax.Array:
    """One orthogonal matrix (purejaxrl's init); jitted per shape because QR compiles slowly."""
    return nn.initializers.orthogonal(scale)(key, shape, jnp.float32)


def init_stacked_mlp(key: jax.Array, num_experts: int, in_features: int, width: int, depth: int,
                     out_features: int, head_scale: float) -> dict[str, dict[str, jax.Array]]:
    """``{"layer_i": {kernel [K,in,out], bias [K,out]}, "head": ...}``: sqrt(2) hidden, ``head_scale`` head.

    Experts are drawn one by one (not vmapped) so every K reuses the same compiled QR.
    """
    dims = [in_features] + [width] * depth
    layers = [(f"layer_{i}", dims[i], dims[i + 1], float(np.sqrt(2.0))) for i in range(depth)]
    layers.append(("head", width, out_features, float(head_scale)))
    tree: dict[str, dict[str, jax.Array]] = {}
    for layer_key, (name, fan_in, fan_out, scale) in zip(jax.random.split(key, len(layers)), layers):
        kernels = [_orthogonal(k, (fan_in, fan_out), scale) for k in jax.random.split(layer_key, num_experts)]
        tree[name] = {"kernel": jnp.stack(kernels), "bias": jnp.zeros((num_experts, fan_out), jnp.float32)}
    return tree


def init_moe_params(key: jax.Array, num_experts: int, obs_size: int, num_actions: int, width: int = 512,
                    depth: int = 3) -> dict[str, Any]:
    """The ``{"actor", "critic"}`` tree of :class:`MoEActorCritic` without tracing its forward pass."""
    k_actor, k_critic = jax.random.split(key)
    return {"actor": init_stacked_mlp(k_actor, num_experts, obs_size, width, depth, num_actions, 0.01),
            "critic": init_stacked_mlp(k_critic, num_experts, obs_size, width, depth, 1, 1.0)}


def _layer_names(tree: Mapping[str, Any]) -> list[str]:
    depth = sum(1 for k in tree if k.startswith("layer_"))
    return [f"layer_{i}" for i in range(depth)] + ["head"]


# --------------------------------------------------------------------------- dispatch


class DispatchLayout(NamedTuple):
    """Where every sample sits in the padded, expert-sorted buffer (see module docstring)."""

    pos: jax.Array  # int32[B]: padded row of sample i
    src: jax.Array  # int32[P]: sample feeding padded row r (padding rows: any valid sample)
    row_start: jax.Array  # int32[K]: first padded row of expert k
    num_big: jax.Array  # int32[K]: full big blocks of expert k (count_k // big)
    num_small: jax.Array  # int32[K]: small blocks covering the rest (rounded up)
    active: jax.Array  # int32[K]: experts with samples first (the rest is padding)
    num_active: jax.Array  # int32: experts with samples
    sizes: tuple[int, int]  # (small, big) rows per block, static; big is a multiple of small

    @property
    def loops(self) -> tuple[jax.Array, ...]:
        return (self.row_start, self.num_big, self.num_small, self.active, self.num_active)


def default_block_size(batch: int, num_experts: int) -> int:
    """Small block ``b ~ B / (4K)``, a power of two in [8, 256]: <= ~12 % padding when uniform.

    Measured: smaller blocks than this add loop overhead, larger ones padding (B / 2K was ~15 %
    slower for 3 x 128 networks and no faster at Craftax size).
    """
    target = max(1, batch // (4 * max(1, num_experts)))
    b = 1 << (target.bit_length() - 1)
    return int(min(MAX_BLOCK, max(MIN_BLOCK, b)))


def default_big_block(batch: int, small: int) -> int:
    """Big block ``~ B / 2`` (power of two, <= 256): skewed routing runs few, large GEMMs."""
    target = max(1, batch // 2)
    return int(max(small, min(MAX_BLOCK, 1 << (target.bit_length() - 1))))


def padded_rows(batch: int, num_experts: int, block: int) -> int:
    """Static buffer size that fits any routing: sum_k ceil(n_k/b) <= ceil(B/b) + K - 1."""
    return (-(-batch // block) + num_experts - 1) * block


def dispatch_layout(expert_idx: jax.Array, num_experts: int, block: int, big_block: int | None = None
                    ) -> DispatchLayout:
    """Sort samples by expert into runs padded to a multiple of ``block`` (never drops one).

    Each run is processed as ``count // big_block`` big blocks and then as few small blocks as
    cover the rest, so padding waste stays below one small block per expert.
    """
    big = block if big_block is None else big_block
    if big % block:
        raise ValueError(f"big block {big} must be a multiple of the block size {block}")
    batch = expert_idx.shape[0]
    e = jnp.clip(expert_idx.astype(jnp.int32), 0, num_experts - 1)
    counts = jnp.bincount(e, length=num_experts).astype(jnp.int32)
    num_blocks = (counts + block - 1) // block
    row_start = (jnp.cumsum(num_blocks) - num_blocks) * block
    order = jnp.argsort(e, stable=True).astype(jnp.int32)
    sorted_e = e[order]
    run_start = jnp.cumsum(counts) - counts
    pos_sorted = row_start[sorted_e] + jnp.arange(batch, dtype=jnp.int32) - run_start[sorted_e]
    pos = jnp.zeros((batch,), jnp.int32).at[order].set(pos_sorted)
    total = padded_rows(batch, num_experts, block)
    src = jnp.zeros((total,), jnp.int32).at[pos].set(jnp.arange(batch, dtype=jnp.int32))
    num_big = counts // big if big != block else jnp.zeros_like(counts)  # big == small: one loop
    num_small = (counts - num_big * big + block - 1) // block
    return DispatchLayout(pos, src, row_start.astype(jnp.int32), num_big.astype(jnp.int32),
                          num_small.astype(jnp.int32), jnp.argsort(counts == 0, stable=True).astype(jnp.int32),
                          jnp.sum(counts > 0).astype(jnp.int32), (int(block), int(big)))


def _over_blocks(k, row_start, num_big, num_small, sizes, body, carry):
    """``body(row, size, carry)`` over expert k's big blocks, then its small blocks."""
    small, big = sizes
    base = row_start[k]
    if big != small:
        carry = lax.fori_loop(0, num_big[k], lambda j, c: body(base + j * big, big, c), carry)
        base = base + num_big[k] * big
    return lax.fori_loop(0, num_small[k], lambda j, c: body(base + j * small, small, c), carry)


def _over_active(active, num_active, per_expert, carry):
    """Experts without samples cost nothing (not even a weight slice): loop over the active ones."""
    return lax.fori_loop(0, num_active, lambda i, c: per_expert(active[i], c), carry)


def _grouped_forward(xs, kernels, biases, row_start, num_big, num_small, active, num_active, sizes):
    outs = tuple(jnp.zeros((x.shape[0], w.shape[-1]), x.dtype) for x, w in zip(xs, kernels))

    def per_expert(k, outs):
        ws = [(w[k], b[k]) for w, b in zip(kernels, biases)]

        def per_block(r, size, outs):
            return tuple(lax.dynamic_update_slice_in_dim(out, lax.dynamic_slice_in_dim(x, r, size, 0) @ w + b, r, 0)
                         for out, x, (w, b) in zip(outs, xs, ws))

        return _over_blocks(k, row_start, num_big, num_small, sizes, per_block, outs)

    return _over_active(active, num_active, per_expert, outs)


@functools.partial(jax.custom_vjp, nondiff_argnums=(8, 9))
def grouped_linear(xs, kernels, biases, row_start, num_big, num_small, active, num_active, sizes: tuple[int, int],
                   input_is_data: bool):
    """Per stream s: ``y_s[r] = x_s[r] @ kernel_s[e(r)] + bias_s[e(r)]`` over the used blocks.

    Streams (tuples; here actor and critic) share one loop, which halves the loop overhead that
    dominates small networks.  ``input_is_data`` skips the input gradients (observations are
    never differentiated).
    """
    return _grouped_forward(xs, kernels, biases, row_start, num_big, num_small, active, num_active, sizes)


def _grouped_fwd(xs, kernels, biases, row_start, num_big, num_small, active, num_active, sizes, input_is_data):
    out = _grouped_forward(xs, kernels, biases, row_start, num_big, num_small, active, num_active, sizes)
    return out, (xs, kernels, row_start, num_big, num_small, active, num_active)


def _grouped_bwd(sizes, input_is_data, res, dys):
    xs, kernels, row_start, num_big, num_small, active, num_active = res
    n_exp = kernels[0].shape[0]

    def per_expert(k, carry):
        dxs, dws, dbs = carry
        ws = [w[k] for w in kernels]

        def per_block(r, size, c):
            dxs, gws, gbs = c
            new_dxs, new_gws, new_gbs = [], [], []
            for x, dy, w, dx, gw, gb in zip(xs, dys, ws, dxs, gws, gbs):
                xb = lax.dynamic_slice_in_dim(x, r, size, 0)
                dyb = lax.dynamic_slice_in_dim(dy, r, size, 0)
                if not input_is_data:
                    dx = lax.dynamic_update_slice_in_dim(dx, dyb @ w.T, r, 0)
                new_dxs.append(dx)
                new_gws.append(gw + xb.T @ dyb)
                new_gbs.append(gb + dyb.sum(0))
            return tuple(new_dxs), tuple(new_gws), tuple(new_gbs)

        zero_w = tuple(jnp.zeros(w.shape[1:], w.dtype) for w in kernels)
        zero_b = tuple(jnp.zeros(w.shape[2:], w.dtype) for w in kernels)
        dxs, gws, gbs = _over_blocks(k, row_start, num_big, num_small, sizes, per_block, (dxs, zero_w, zero_b))
        return (dxs, tuple(dw.at[k].set(g) for dw, g in zip(dws, gws)),
                tuple(db.at[k].set(g) for db, g in zip(dbs, gbs)))

    init = (tuple(jnp.zeros_like(x) for x in xs), tuple(jnp.zeros_like(w) for w in kernels),
            tuple(jnp.zeros((n_exp, w.shape[-1]), w.dtype) for w in kernels))
    dxs, dws, dbs = _over_active(active, num_active, per_expert, init)
    return dxs, dws, dbs, None, None, None, None, None


grouped_linear.defvjp(_grouped_fwd, _grouped_bwd)


def _dense_mlp(tree: Mapping[str, Any], x: jax.Array, index: int | None) -> jax.Array:
    """One expert (``index``) or an unstacked subtree (``index=None``) as a plain MLP."""
    names = _layer_names(tree)
    h = x
    for name in names:
        w, b = tree[name]["kernel"], tree[name]["bias"]
        if index is not None:
            w, b = w[index], b[index]
        h = h @ w + b
        if name != "head":
            h = jnp.tanh(h)
    return h


def _grouped_mlps(trees: Sequence[Mapping[str, Any]], xs: jax.Array, layout: DispatchLayout) -> tuple:
    """Several same-depth MLPs (actor, critic) on one dispatched input, layer by layer together."""
    hs = tuple(xs for _ in trees)
    names = _layer_names(trees[0])
    for i, name in enumerate(names):
        hs = grouped_linear(hs, tuple(t[name]["kernel"] for t in trees), tuple(t[name]["bias"] for t in trees),
                            *layout.loops, layout.sizes, i == 0)
        if name != "head":
            hs = tuple(jnp.tanh(h) for h in hs)
    return hs


def moe_forward(actor: Mapping[str, Any], critic: Mapping[str, Any], x: jax.Array, expert_idx: jax.Array,
                block_size: int | None = None, big_block: int | None = None) -> tuple[jax.Array, jax.Array]:
    """(logits [B, A], value [B]) with sample i run through expert ``expert_idx[i]`` only."""
    num_experts = actor["head"]["kernel"].shape[0]
    if num_experts == 1:
        return _dense_mlp(actor, x, 0), _dense_mlp(critic, x, 0)[:, 0]
    block = block_size or default_block_size(x.shape[0], num_experts)
    big = big_block or default_big_block(x.shape[0], block)
    layout = dispatch_layout(expert_idx, num_experts, block, big)
    logits, value = _grouped_mlps((actor, critic), x[layout.src], layout)
    return logits[layout.pos], value[layout.pos, 0]


class MoEActorCritic(nn.Module):
    """K independent actor-critic experts; ``__call__(obs [B, ...], expert_idx int[B])``.

    Parameters: ``{"actor": T, "critic": T}`` with ``T = {"layer_0".."layer_{depth-1}", "head"}``
    and every leaf stacked on a leading K axis.
    """

    num_experts: int
    num_actions: int
    width: int = 512
    depth: int = 3
    block_size: int | None = None  # None: default_block_size(batch, K)
    big_block: int | None = None  # None: default_big_block(batch, block)

    @nn.compact
    def __call__(self, obs: jax.Array, expert_idx: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = obs.reshape(obs.shape[0], -1).astype(jnp.float32)
        d = x.shape[-1]
        actor = self.param("actor", lambda k: init_stacked_mlp(k, self.num_experts, d, self.width, self.depth,
                                                               self.num_actions, 0.01))
        critic = self.param("critic", lambda k: init_stacked_mlp(k, self.num_experts, d, self.width, self.depth,
                                                                 1, 1.0))
        if self.is_initializing():  # shapes only: do not trace the grouped loops just to init
            return jnp.zeros((x.shape[0], self.num_actions)), jnp.zeros((x.shape[0],))
        return moe_forward(actor, critic, x, expert_idx, self.block_size, self.big_block)


def apply_single_expert(subtree: Mapping[str, Any], obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Run one extracted expert (a :func:`get_expert` subtree) as a plain network."""
    x = obs.reshape(obs.shape[0], -1).astype(jnp.float32)
    return _dense_mlp(subtree["actor"], x, None), _dense_mlp(subtree["critic"], x, None)[:, 0]


# --------------------------------------------------------------------------- expert surgery


def _unwrap(params: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    if "params" in params and "actor" not in params:
        return params["params"], True
    return params, False


def num_experts(params: Mapping[str, Any]) -> int:
    inner, _ = _unwrap(params)
    return int(inner["actor"]["head"]["kernel"].shape[0])


def get_expert(params: Mapping[str, Any], i: int) -> dict[str, Any]:
    """Expert ``i``'s subtree ``{"actor": ..., "critic": ...}`` without the K axis.

    The format depends only on (obs size, width, depth, actions), never on K, so it can be
    stored and inserted into an MoE of another size.  Accepts params with or without the
    ``{"params": ...}`` wrapper.
    """
    inner, _ = _unwrap(params)
    k = num_experts(params)
    if isinstance(i, (int, np.integer)) and not 0 <= i < k:
        raise IndexError(f"expert index {i} out of range for an MoE with {k} experts")
    return jax.tree.map(lambda a: a[i], dict(inner))


def set_expert(params: Mapping[str, Any], j: int, subtree: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` whose expert ``j`` is ``subtree`` (any array type, e.g. numpy)."""
    inner, wrapped = _unwrap(params)
    k = num_experts(params)
    if not 0 <= j < k:
        raise IndexError(f"expert index {j} out of range for an MoE with {k} experts")
    target = jax.tree.map(lambda a: a[0], dict(inner))
    t_paths = {jax.tree_util.keystr(p): a.shape for p, a in jax.tree_util.tree_leaves_with_path(target)}
    s_paths = {jax.tree_util.keystr(p): np.shape(a) for p, a in jax.tree_util.tree_leaves_with_path(dict(subtree))}
    if t_paths != s_paths:
        diff = sorted(set(t_paths.items()) ^ set(s_paths.items()))
        raise ValueError(f"expert subtree does not fit this MoE (leaf path/shape mismatch: {diff[:6]})")
    new = jax.tree.map(lambda a, s: a.at[j].set(jnp.asarray(s, a.dtype)), dict(inner), dict(subtree))
    return {"params": new} if wrapped else new
