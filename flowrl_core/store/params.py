"""Safe (de)serialisation of parameter trees: flax msgpack, never pickle.

Decoding failures are turned into :class:`StoreCorruptError` naming the object's path, so a
truncated file reads as "corrupt object runs/x/ckpt: ..." instead of a msgpack traceback.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from flax import serialization

from flowrl_core.errors import StoreCorruptError


def tree_to_numpy(tree: Any) -> Any:
    import jax

    return jax.tree.map(np.asarray, tree)


def params_to_bytes(tree: Any) -> bytes:
    return serialization.msgpack_serialize(tree_to_numpy(tree))


def params_from_bytes(data: bytes, path: str) -> Any:
    try:
        tree = serialization.msgpack_restore(data)
    except Exception as exc:  # msgpack raises a zoo of types on bad input
        raise StoreCorruptError(path, f"not a flax msgpack object ({type(exc).__name__}: {exc})") from None
    if not isinstance(tree, dict):
        raise StoreCorruptError(path, f"expected a parameter tree (map), got {type(tree).__name__}")
    return tree


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
