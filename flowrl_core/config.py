"""Training configuration: profile → flow overrides → the skill file's ``train:`` map.

Resolved for every skill before anything trains, so a typo in an override fails the flow
up front instead of one skill an hour in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from flowrl_core.errors import FlowRLError

PROFILES = ("cpu", "tiny", "default")


class ConfigError(FlowRLError, ValueError):
    pass


def base_config(profile: str) -> Any:
    from flowrl_core.trainer.ppo import PPOConfig

    if profile == "cpu":
        return PPOConfig.cpu_profile()
    if profile == "tiny":
        return PPOConfig.tiny_profile()
    if profile == "default":
        return PPOConfig()
    raise ConfigError(f"unknown training profile {profile!r}; choose one of {', '.join(PROFILES)}")


def resolve_config(profile: str, overrides: Mapping[str, Any] | None = None,
                   skill_train: Mapping[str, Any] | None = None, *, skill: str = "") -> dict[str, Any]:
    """JSON-ready config dict for one skill (later layers win)."""
    config = base_config(profile)
    fields = {f.name for f in dataclasses.fields(config)}
    merged: dict[str, Any] = {}
    for layer_name, layer in (("overrides", overrides or {}), ("train", skill_train or {})):
        for key, value in layer.items():
            if key not in fields:
                import difflib

                close = difflib.get_close_matches(key, sorted(fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{_who(skill)}unknown training setting {key!r} in {layer_name}{hint}")
            merged[key] = value
    types = {f.name: str(f.type) for f in dataclasses.fields(config)}
    for key, value in merged.items():
        _check_type(key, value, types[key], skill)
    try:
        config = dataclasses.replace(config, **merged)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{_who(skill)}invalid training settings {merged}: {exc}") from None
    out = dataclasses.asdict(config)
    if int(out["total_timesteps"]) <= 0:
        raise ConfigError(f"{_who(skill)}total_timesteps must be positive")
    return out


def _who(skill: str) -> str:
    return f"skill {skill!r}: " if skill else ""


def _check_type(key: str, value: Any, annotation: str, skill: str) -> None:
    """Catch ``lr: fast`` now rather than as a TypeError inside a jitted update an hour later."""
    optional = "None" in annotation
    if value is None:
        if optional:
            return
        raise ConfigError(f"{_who(skill)}training setting {key!r} cannot be null")
    if annotation.startswith("bool"):
        ok = isinstance(value, bool)
    elif annotation.startswith("int"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif annotation.startswith("float"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = True
    if not ok:
        raise ConfigError(f"{_who(skill)}training setting {key!r} must be {annotation}, got {value!r}")
