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


def make_env_and_params(name: str, options: dict[str, Any] | None = None) -> tuple[Env, Any]:
    """An env and its params from one options map: keys that are fields of the env's params
    (e.g. the gridworld's ``max_steps``) override them, the rest go to the constructor (e.g.
    ``size``).  Unknown keys raise, naming what is accepted."""
    options = dict(options or {})
    probe = make_env(name)
    defaults = probe.default_params
    param_fields = set(getattr(defaults, "_fields", ()) or getattr(defaults, "__dataclass_fields__", {}))
    param_kw = {k: v for k, v in options.items() if k in param_fields}
    ctor_kw = {k: v for k, v in options.items() if k not in param_fields}
    try:
        env = make_env(name, **ctor_kw) if ctor_kw else probe
    except TypeError as exc:
        raise ValueError(f"env {name!r}: unknown option(s) {sorted(ctor_kw)} ({exc}); params accept "
                         f"{sorted(param_fields)}") from None
    params = env.default_params
    if param_kw:
        params = params._replace(**param_kw) if hasattr(params, "_replace") else params.replace(**param_kw)
    return env, params
