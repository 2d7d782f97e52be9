"""Plugins by import path (``"package.module:attribute"``) — predicates, proposers, trainers.

One resolver so every plugin kind fails the same clear way; callers prefix the message with
what asked for the plugin (a skill, a proposer setting).
"""

from __future__ import annotations

import importlib
from typing import Any


class ImportPathError(ValueError):
    pass


def resolve_callable(path: str, kind: str = "function") -> Any:
    """The callable at ``path``; :class:`ImportPathError` says what is wrong with it."""
    module_name, sep, attr = str(path).partition(":")
    if not sep or not module_name or not attr or ":" in attr:
        raise ImportPathError(f"{path!r} is not of the form 'package.module:{kind}'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportPathError(f"module {module_name!r} cannot be imported ({exc})") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ImportPathError(f"module {module_name!r} has no {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ImportPathError(f"{path!r} is a {type(target).__name__}, not a {kind}")
    return target
