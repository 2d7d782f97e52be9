"""Plugins: code flowrl imports by name — predicates, proposers, trainers, and plugin modules.

One resolver (``"package.module:attribute"``) so every plugin kind fails the same clear way;
callers prefix the message with what asked for the plugin (a skill, a proposer setting).

Plugin *modules* (``FLOWRL_PLUGINS=pkg.a,pkg.b``) are imported by every entry point — the CLI,
each flow and the trainer process — before anything else runs, so that what they register (an
environment, an fsspec storage backend) exists in every process of a run, child processes
included: they inherit the variable.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from flowrl_core.errors import FlowRLError

PLUGINS_ENV = "FLOWRL_PLUGINS"


class ImportPathError(FlowRLError, ValueError):
    """An import path that names nothing importable and callable."""


def resolve_callable(path: str, kind: str = "function") -> Any:
    """The callable at ``path``; :class:`ImportPathError` says what is wrong with it."""
    module_name, sep, attr = str(path).partition(":")
    if not sep or not module_name or not attr or ":" in attr:
        raise ImportPathError(f"{path!r} is not of the form 'package.module:{kind}'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportPathError(f"module {module_name!r} cannot be imported ({str(exc)[:200]})") from None
    except Exception as exc:  # noqa: BLE001 - user code: whatever it raises on import is its error
        raise ImportPathError(f"module {module_name!r} raised {type(exc).__name__} when imported: "
                              f"{str(exc)[:200]}") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ImportPathError(f"module {module_name!r} has no {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ImportPathError(f"{path!r} is a {type(target).__name__}, not a {kind}")
    return target


def load_plugins(value: str | None = None) -> list[str]:
    """Import every module named in ``FLOWRL_PLUGINS`` (comma-separated); returns their names."""
    raw = os.environ.get(PLUGINS_ENV, "") if value is None else value
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - user code
            raise ImportPathError(f"{PLUGINS_ENV}: module {name!r} cannot be imported "
                                  f"({type(exc).__name__}: {str(exc)[:200]})") from None
    return names
