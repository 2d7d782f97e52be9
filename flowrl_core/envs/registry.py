"""Environment names -> constructors, so configs and skill files can name an env as a string."""

from __future__ import annotations

import difflib
from typing import Any, Callable

from flowrl_core.envs.base import Env

ENV_NAMES: tuple[str, ...] = ("Gridworld-v0", "Craftax-Classic-Symbolic-v1", "Craftax-Symbolic-v1")
ALIASES: dict[str, str] = {"gridworld": "Gridworld-v0"}


def _gridworld(name: str, **kwargs: Any) -> Env:
    from flowrl_core.envs.gridworld import Gridworld

    return Gridworld(**kwargs)


def _craftax(name: str, **kwargs: Any) -> Env:
    # Imported here, not at module top, so that importing flowrl never requires craftax.
    from flowrl_core.envs.craftax_env import CraftaxEnv

    return CraftaxEnv(name, **kwargs)


_FACTORIES: dict[str, Callable[..., Env]] = {
    "Gridworld-v0": _gridworld,
    "Craftax-Classic-Symbolic-v1": _craftax,
    "Craftax-Symbolic-v1": _craftax,
}


def make_env(name: str, **kwargs: Any) -> Env:
    """Build an env by name; ``kwargs`` go to its constructor (e.g. ``size=11`` for the
    gridworld).  Craftax names need the optional ``craftax`` extra."""
    canonical = ALIASES.get(name, name)
    if canonical not in _FACTORIES:
        valid = list(ENV_NAMES) + list(ALIASES)
        by_lower = {v.lower(): v for v in valid}
        close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
        hint = f" Did you mean {by_lower[close[0]]!r}?" if close else ""
        raise ValueError(f"unknown env {name!r}; valid names: {', '.join(valid)}.{hint}")
    return _FACTORIES[canonical](canonical, **kwargs)
