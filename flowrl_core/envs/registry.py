"""Environment names -> constructors, so configs and skill files can name an env as a string."""

from __future__ import annotations

import difflib
from typing import Any, Callable

from flowrl_core.envs.base import Env
from flowrl_core.errors import FlowRLError, short


class EnvError(FlowRLError, ValueError):
    """An unknown environment, or options it does not accept."""

ALIASES: dict[str, str] = {"gridworld": "Gridworld-v0"}


def _gridworld(name: str, **kwargs: Any) -> Env:
    from flowrl_core.envs.gridworld import Gridworld

    return Gridworld(**kwargs)


def _craftax(name: str, **kwargs: Any) -> Env:
    # Imported here, not at module top, so that importing flowrl never requires craftax.
    from flowrl_core.envs.craftax_env import CraftaxEnv

    return CraftaxEnv(name, **kwargs)


# A new environment is one module and one line here (or a register_env call in a plugin module
# named by FLOWRL_PLUGINS, so that trainer processes register it too).
_FACTORIES: dict[str, Callable[..., Env]] = {
    "Gridworld-v0": _gridworld,
    "Craftax-Classic-Symbolic-v1": _craftax,
    "Craftax-Symbolic-v1": _craftax,
}
ENV_NAMES: tuple[str, ...] = tuple(_FACTORIES)  # the built-in ones


def register_env(name: str, factory: Callable[..., Env]) -> None:
    """Make ``name`` buildable by :func:`make_env` (``factory(name, **options)`` returns the env)."""
    _FACTORIES[name] = factory


def make_env(name: str, **kwargs: Any) -> Env:
    """Build an env by name; ``kwargs`` go to its constructor (e.g. ``size=11`` for the
    gridworld).  Craftax names need the optional ``craftax`` extra."""
    canonical = ALIASES.get(name, name)
    if canonical not in _FACTORIES:
        valid = list(_FACTORIES) + list(ALIASES)
        by_lower = {v.lower(): v for v in valid}
        close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
        hint = f" Did you mean {by_lower[close[0]]!r}?" if close else ""
        raise EnvError(f"unknown env {short(name)}; valid names: {', '.join(valid)}.{hint}")
    return _FACTORIES[canonical](canonical, **kwargs)


def _check_option_value(env: str, key: str, value: Any, default: Any) -> Any:
    """An option must have its default's type (an int where an int is expected, finite numbers)."""
    import math

    import numpy as np

    kind = type(np.asarray(default).item()) if default is not None else None
    ok = True
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())
        value = int(value) if ok else value
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
    if not ok:
        raise EnvError(f"env {env!r}: option {key}={short(value)} must be a {kind.__name__ if kind else 'value'} "
                       f"like its default {default!r}")
    return value


def make_env_and_params(name: str, options: dict[str, Any] | None = None) -> tuple[Env, Any]:
    """An env and its params from one options map: keys that are fields of the env's params
    (e.g. the gridworld's ``max_steps``) override them, the rest go to the constructor (e.g.
    ``size``).  Unknown keys and values of the wrong type raise :class:`EnvError`, naming what is
    accepted — before anything trains, not as a shape error inside a jitted step."""
    if not isinstance(name, str):
        raise EnvError(f"env name must be a string, got {short(name)}")
    options = dict(options or {})
    probe = make_env(name)
    defaults = probe.default_params
    param_fields = list(getattr(defaults, "_fields", ()) or getattr(defaults, "__dataclass_fields__", {}))
    param_kw = {k: _check_option_value(name, k, v, getattr(defaults, k)) for k, v in options.items() if k in param_fields}
    ctor_kw = {k: v for k, v in options.items() if k not in param_fields}
    try:
        env = make_env(name, **ctor_kw) if ctor_kw else probe
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise EnvError(f"env {name!r}: unknown option(s) {sorted(ctor_kw)} ({str(exc)[:120]}); its params accept "
                           f"{', '.join(sorted(param_fields))}") from None
        raise EnvError(f"env {name!r}: bad option value(s) {short(ctor_kw)}: {str(exc)[:200]}") from None
    except (ValueError, AssertionError) as exc:
        raise EnvError(f"env {name!r}: bad option(s) {short(ctor_kw)}: {str(exc)[:200]}") from None
    params = env.default_params
    if param_kw:
        params = params._replace(**param_kw) if hasattr(params, "_replace") else params.replace(**param_kw)
    return env, params
