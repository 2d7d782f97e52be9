"""Error types that carry what a user needs to act: the skill, the path, the fix.

Every message is one line, so the CLI can print it as-is and exit non-zero.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def short(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: error messages never quote a whole value
    (a YAML alias bomb expands to megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """`` (did you mean 'wood'?)`` for the closest option, or ``""`` when nothing is close."""
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


class FlowRLError(Exception):
    """Base class: anything the user can fix from the message alone."""


class SkillFileError(FlowRLError, ValueError):
    """A skill file (or spec dict) is malformed or the graph it describes is invalid."""

    def __init__(self, message: str, *, source: str | None = None, skill: str | None = None):
        self.source = source
        self.skill = skill
        where = []
        if source:
            where.append(source)
        if skill:
            where.append(f"skill {skill!r}")
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class RemapError(FlowRLError, ValueError):
    """A skill's execution plan names an expert that has no global index yet."""


class StoreError(FlowRLError):
    """The expert store cannot do what was asked (bad URL, unsafe path, unsupported backend)."""


class StoreCorruptError(StoreError):
    """An object in the store cannot be decoded; the message names its path."""

    def __init__(self, path: str, reason: str):
        self.path = path
        super().__init__(
            f"corrupt object {path}: {reason}; delete or restore it (the store keeps every "
            "version immutable, so an older version is still readable)"
        )


class StoreNotFoundError(StoreError, FileNotFoundError):
    """An object the caller relies on is absent; the message names its path."""


class UnreachableError(FlowRLError):
    """Infrastructure the command needs (a Prefect API, an object store) cannot be reached."""
