"""Device slots handed out by priority, without polling.

Prefect's global concurrency limits only count, hand slots over with 0.8–2.8 s polling gaps and
ignore priority (see shared/research/prefect.md).  Inside one orchestrating process we can do
better: waiters block on a condition variable, a released slot goes at once to the waiter with
the highest priority (the longest remaining path to a sink — critical-path order), and the
waiter learns *which* slot it holds, so the trainer can be pinned to that GPU.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class SlotEvent:
    label: str
    slot: int
    requested_at: float
    acquired_at: float
    released_at: float | None = None


@dataclass
class PrioritySlots:
    """``devices[i]`` is what slot ``i`` pins (a CUDA index as a string, or "" for CPU)."""

    devices: Sequence[str]
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _free: list[int] = field(default_factory=list, repr=False)
    _waiting: list[tuple[float, int, str]] = field(default_factory=list, repr=False)
    _seq: Iterator[int] = field(default_factory=itertools.count, repr=False)
    events: list[SlotEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.devices:
            raise ValueError("PrioritySlots needs at least one slot")
        self._free = list(range(len(self.devices)))

    @classmethod
    def cpu(cls, count: int) -> "PrioritySlots":
        if count < 1:
            raise ValueError(f"slots must be >= 1, got {count}")
        return cls([""] * count)

    @contextmanager
    def hold(self, label: str, priority: float = 0.0) -> Iterator[tuple[int, str]]:
        """Block until this caller is the best waiter and a slot is free; yields (slot, device)."""
        requested = time.monotonic()
        entry = (-priority, next(self._seq), label)
        with self._cond:
            heapq.heappush(self._waiting, entry)
            while not (self._free and self._waiting[0] == entry):
                self._cond.wait()
            heapq.heappop(self._waiting)
            slot = min(self._free)
            self._free.remove(slot)
            event = SlotEvent(label, slot, requested, time.monotonic())
            self.events.append(event)
            self._cond.notify_all()
        try:
            yield slot, self.devices[slot]
        finally:
            with self._cond:
                event.released_at = time.monotonic()
                self._free.append(slot)
                self._cond.notify_all()

    def peak_concurrency(self) -> int:
        points = []
        for e in self.events:
            points.append((e.acquired_at, 1))
            points.append((e.released_at if e.released_at is not None else float("inf"), -1))
        level = peak = 0
        for _, delta in sorted(points, key=lambda p: (p[0], p[1])):
            level += delta
            peak = max(peak, level)
        return peak
