"""Runs in the store: one run's folder (checkpoints, metrics, documents) and each skill's run records.

``runs/<run_id>/`` holds what one training run produces; ``skills/<name>/runs/<run_id>.json``
records that a skill's run started and, after its merge, that it completed (with its frames).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from flowrl_core.errors import StoreCorruptError, StoreError
from flowrl_core.store.objects import Store


@dataclass
class RunStore:
    """One training run's folder: checkpoints (resume), metrics, remap and result."""

    store: Store
    run_id: str
    keep_checkpoints: int = 2

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
        names = self.checkpoints()
        return self.store.read_bytes(self.parts("checkpoints", names[-1])) if names else None

    def latest_checkpoint_path(self) -> str | None:
        names = self.checkpoints()
        return self.store.path(*self.parts("checkpoints", names[-1])) if names else None

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


def skill_runs(store: Store, skill: str) -> dict[str, dict[str, Any]]:
    """run id → its record under ``skills/<name>/runs/`` (status started|completed)."""
    out = {}
    for name in store.list(("skills", skill, "runs")):
        if name.endswith(".json"):
            out[name[:-5]] = store.read_json(("skills", skill, "runs", name))
    return out


def trained_frames(store: Store, skill: str) -> int:
    """Frames trained by this skill's own completed runs (what the budget is measured against)."""
    return sum(int(r.get("frames", 0)) for r in skill_runs(store, skill).values() if r.get("status") == "completed")
