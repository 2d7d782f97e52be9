"""Environments behind one protocol (:mod:`flowrl_core.envs.base`); build them by name with
:func:`make_env`.  Craftax envs are imported lazily (optional ``craftax`` extra)."""

from flowrl_core.envs.registry import ENV_NAMES, make_env, make_env_and_params

__all__ = ["ENV_NAMES", "make_env", "make_env_and_params"]
