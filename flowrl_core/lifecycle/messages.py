"""What the trainer process tells the task that launched it: a versioned protocol, one module for both sides.

The trainer writes one JSON object per line to a dedicated pipe (``--messages-fd``), never to
stdout, so nothing a library prints can be mistaken for a message and nothing needs a magic
prefix.  Every line carries ``protocol`` and ``version``; a reader refuses a version it does not
know instead of guessing.  Stdout and stderr stay plain logs.

The inputs go the other way on the trainer's stdin (:class:`TrainerInput`): the store URL and
its storage options may hold credentials, and a command line is visible to every user in ``ps``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Union

from flowrl_core.errors import FlowRLError

PROTOCOL = "flowrl-trainer"
VERSION = 1


class ProtocolError(FlowRLError):
    """A line on the message pipe that this flowrl cannot read."""


@dataclass(frozen=True)
class TrainerInput:
    """Sent once on the trainer's stdin, then stdin is closed."""

    store: str
    run_id: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "TrainerInput":
        try:
            d = json.loads(text)
            return cls(store=str(d["store"]), run_id=str(d["run_id"]), storage_options=dict(d.get("storage_options") or {}))
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(f"trainer input on stdin is not a TrainerInput document ({exc})") from None


@dataclass(frozen=True)
class EvaluationInput:
    """Sent once on an evaluation child's stdin (``python -m flowrl_core.evaluation``): which skill,
    how many fresh episodes, and the store -- kept off the command line like the trainer's."""

    store: str
    skill: str
    episodes: int
    seed: int = 0
    storage_options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "EvaluationInput":
        try:
            d = json.loads(text)
            return cls(store=str(d["store"]), skill=str(d["skill"]), episodes=int(d["episodes"]),
                       seed=int(d.get("seed", 0)), storage_options=dict(d.get("storage_options") or {}))
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(f"evaluation input on stdin is not an EvaluationInput document ({exc})") from None


@dataclass(frozen=True)
class Started:
    run_id: str
    resumed_from_update: int
    pid: int


@dataclass(frozen=True)
class Progress:
    """One PPO update's metrics row (the same row ``metrics.jsonl`` stores)."""

    run_id: str
    row: Mapping[str, Any]


@dataclass(frozen=True)
class Finished:
    run_id: str
    frames: int
    early_stopped: bool


@dataclass(frozen=True)
class Failed:
    run_id: str
    error: str  # one line: what went wrong and what to do


Message = Union[Started, Progress, Finished, Failed]
_KINDS: dict[str, type] = {"started": Started, "progress": Progress, "finished": Finished, "failed": Failed}
_NAMES = {cls: kind for kind, cls in _KINDS.items()}


def encode(message: Message) -> str:
    body = asdict(message)
    return json.dumps({"protocol": PROTOCOL, "version": VERSION, "kind": _NAMES[type(message)], **body},
                      default=float, allow_nan=True) + "\n"


def decode(line: str) -> Message:
    try:
        d = json.loads(line)
    except ValueError:
        raise ProtocolError(f"not a JSON message: {line[:80]!r}") from None
    if not isinstance(d, dict) or d.get("protocol") != PROTOCOL:
        raise ProtocolError(f"not a {PROTOCOL} message: {line[:80]!r}")
    if d.get("version") != VERSION:
        raise ProtocolError(f"{PROTOCOL} message version {d.get('version')!r}; this flowrl reads version {VERSION} "
                            "(the trainer and the orchestrator run different flowrl versions: install one everywhere)")
    cls = _KINDS.get(d.get("kind", ""))
    if cls is None:
        raise ProtocolError(f"unknown {PROTOCOL} message kind {d.get('kind')!r}")
    fields = {k: v for k, v in d.items() if k not in ("protocol", "version", "kind")}
    try:
        return cls(**fields)
    except TypeError as exc:
        raise ProtocolError(f"malformed {d.get('kind')} message ({exc})") from None
