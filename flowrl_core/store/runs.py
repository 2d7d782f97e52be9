"""Runs in the store: one run's folder (checkpoints, metrics, documents) and each skill's run records.

``runs/<run_id>/`` holds what one training run produces; ``skills/<name>/runs/<run_id>.json`` is
the run's :class:`RunRecord` — started, then completed (after its merge), failed (with the reason)
or abandoned (a newer job for the skill replaced it).  A record is rewritten by the one process
holding the run's lease (:mod:`flowrl_core.store.leases`), so it needs no other lock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import Any

from flowrl_core.errors import StoreCorruptError, StoreError
from flowrl_core.store.experts import Decision
from flowrl_core.store.objects import Store


@dataclass
class RunStore:
    """One training run's folder: checkpoints (resume), metrics, remap and result."""

    store: Store
    run_id: str
    keep_checkpoints: int = 2
    resumed_from: int = 0  # the update of the checkpoint load_latest returned (0: none)

    def parts(self, *rest: str) -> tuple[str, ...]:
        return ("runs", self.run_id, *rest)

    # CheckpointIO protocol used by the trainer -------------------------------------------
    def save(self, update: int, data: bytes) -> None:
        if isinstance(update, bool) or not isinstance(update, int) or update < 0:
            raise StoreError(f"run {self.run_id}: checkpoint update must be a non-negative int, got {update!r}")
        self.store.write_bytes(self.parts("checkpoints", f"{update:09d}.msgpack"), data)
        for old in self.checkpoints()[:-self.keep_checkpoints]:
            self.store.delete(self.parts("checkpoints", old))

    def checkpoints(self) -> list[str]:
        return [n for n in self.store.list(self.parts("checkpoints")) if re.match(r"^\d{9}\.msgpack$", n)]

    def load_latest(self) -> bytes | None:
        """The newest checkpoint that decodes; a corrupt one is skipped with a warning naming it.

        Two are kept (``keep_checkpoints``) precisely so that a checkpoint truncated by a crash
        mid-write on a store without atomic writes still leaves the previous one to resume from.
        """
        for path, data in self.checkpoints_newest_first():
            if data is not None:
                self.resumed_from = int(path.rsplit("/", 1)[-1][:9])
                return data
        return None

    def checkpoints_newest_first(self) -> Iterator[tuple[str, bytes | None]]:
        """(path, bytes) newest first; bytes is None (and a warning is logged) for a corrupt one."""
        import logging

        from flax import serialization

        for name in reversed(self.checkpoints()):
            path = self.store.path(*self.parts("checkpoints", name))
            data = self.store.read_bytes(self.parts("checkpoints", name))
            try:
                serialization.msgpack_restore(data)
            except Exception as exc:  # noqa: BLE001 - msgpack raises a zoo of types on bad input
                logging.getLogger("flowrl").warning(
                    "corrupt checkpoint %s (%s: %s); falling back to the previous one", path, type(exc).__name__,
                    str(exc)[:100])
                yield path, None
                continue
            yield path, data

    # metrics, documents ---------------------------------------------------------------------
    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite the whole JSON-lines file: appends do not exist on object stores."""
        body = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
        self.store.write_bytes(self.parts("metrics.jsonl"), body.encode())

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.store.exists(self.parts("metrics.jsonl")):
            return []
        raw = self.store.read_bytes(self.parts("metrics.jsonl")).decode("utf-8", errors="replace")
        rows = []
        for i, line in enumerate(raw.splitlines()):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise StoreCorruptError(self.store.path(*self.parts("metrics.jsonl")), f"line {i + 1} is not JSON") from None
        return rows

    def write_doc(self, name: str, value: Any) -> str:
        return self.store.write_json(self.parts(name), value)

    def read_doc(self, name: str) -> Any:
        return self.store.read_json(self.parts(name))

    def has_doc(self, name: str) -> bool:
        return self.store.exists(self.parts(name))

    def write_artifact(self, name: str, data: bytes) -> str:
        return self.store.write_bytes(self.parts("artifacts", name), data)


class RunState(str, Enum):
    """Where a run stands; only the lease holder moves it on."""

    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    ABANDONED = "abandoned"  # its job no longer matches the skill's (file, config or env changed)


@dataclass(frozen=True)
class RunRecord:
    """``skills/<name>/runs/<run_id>.json``: one run of one skill, as the skill's history shows it."""

    run_id: str
    skill: str
    state: RunState
    started_at: str
    job_hash: str = ""
    continuation: bool = False
    ended_at: str = ""
    frames: int = 0  # frames this run trained (set when it completed)
    early_stopped: bool = False
    success_rate: float | None = None
    decisions: tuple[Decision, ...] = ()  # the frame-count rule's, when the run merged
    reason: str = ""  # why it failed or was abandoned

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["state"] = self.state.value
        d["decisions"] = [x.to_dict() for x in self.decisions]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, skill: str, path: str) -> "RunRecord":
        try:
            state = RunState(d.get("state", d.get("status")))  # "status": records written by flowrl 0.1
            return cls(
                run_id=str(d["run_id"]), skill=str(d.get("skill", skill)), state=state,
                started_at=str(d.get("started_at", "")), job_hash=str(d.get("job_hash", "")),
                continuation=bool(d.get("continuation", False)),
                ended_at=str(d.get("ended_at", d.get("completed_at", ""))), frames=int(d.get("frames", 0)),
                early_stopped=bool(d.get("early_stopped", False)),
                success_rate=None if d.get("success_rate") is None else float(d["success_rate"]),
                decisions=tuple(Decision.from_dict(x) for x in d.get("decisions", ())), reason=str(d.get("reason", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreCorruptError(path, f"not a run record ({type(exc).__name__}: {exc})") from None

    def ended(self, state: RunState, *, at: str, **changes: Any) -> "RunRecord":
        return replace(self, state=state, ended_at=at, **changes)


def _record_parts(skill: str, run_id: str) -> tuple[str, ...]:
    return ("skills", skill, "runs", f"{run_id}.json")


def write_run_record(store: Store, record: RunRecord) -> None:
    store.write_json(_record_parts(record.skill, record.run_id), record.to_dict())


def skill_runs(store: Store, skill: str) -> dict[str, RunRecord]:
    """run id → its record, for every run of ``skill``."""
    out = {}
    for name in store.list(("skills", skill, "runs")):
        if name.endswith(".json"):
            parts = ("skills", skill, "runs", name)
            out[name[:-5]] = RunRecord.from_dict(store.read_json(parts), skill=skill, path=store.path(*parts))
    return out


def completed_runs(store: Store, skill: str) -> list[RunRecord]:
    return [r for r in skill_runs(store, skill).values() if r.state is RunState.COMPLETED]


def trained_frames(store: Store, skill: str) -> int:
    """Frames trained by this skill's own completed runs (what its budget is measured against)."""
    return sum(r.frames for r in completed_runs(store, skill))
