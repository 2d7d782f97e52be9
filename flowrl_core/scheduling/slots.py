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
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    handoff_grace_s: float = 2.0
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _free: list[int] = field(default_factory=list, repr=False)
    _waiting: list[tuple[float, int, str]] = field(default_factory=list, repr=False)
    _reserved: dict[int, tuple[str, float, float]] = field(default_factory=dict, repr=False)  # slot -> (label, until, priority)
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

    def _slot_for(self, entry: tuple[float, int, str], now: float) -> int | None:
        """A free slot ``entry`` may take now: its own reservation, else — if it is the best waiter
        without a reservation — an unreserved slot or one reserved for someone it outranks."""
        for slot, (_, until, _) in list(self._reserved.items()):
            if until <= now or slot not in self._free:
                del self._reserved[slot]
        label, priority = entry[2], -entry[0]
        for slot, (owner, _, _) in self._reserved.items():
            if owner == label:
                return slot
        owners = {owner for owner, _, _ in self._reserved.values()}
        best = min((w for w in self._waiting if w[2] not in owners), default=None)
        if best != entry:
            return None
        usable = [s for s in self._free if s not in self._reserved or self._reserved[s][2] < priority]
        return min(usable) if usable else None

    @contextmanager
    def hold(self, label: str, priority: float = 0.0,
             reserve_for: Callable[[], Mapping[str, float]] | None = None) -> Iterator[tuple[int, str]]:
        """Block until this caller may take a slot; yields (slot, device).

        ``reserve_for`` is asked at release for the callers this release unblocks (label ->
        priority) — e.g. the dependants of a skill that just merged.  If the best of them outranks
        everyone already waiting, the slot is kept for it for ``handoff_grace_s`` so it is not
        grabbed by a lower-priority waiter in the instant before the dependant asks.
        """
        requested = time.monotonic()
        entry = (-priority, next(self._seq), label)
        with self._cond:
            heapq.heappush(self._waiting, entry)
            while True:
                now = time.monotonic()
                slot = self._slot_for(entry, now)
                if slot is not None:
                    break
                expiry = min((until for _, until, _ in self._reserved.values()), default=None)
                self._cond.wait(None if expiry is None else max(0.01, expiry - now))
            self._waiting.remove(entry)
            heapq.heapify(self._waiting)
            self._reserved.pop(slot, None)
            self._free.remove(slot)
            event = SlotEvent(label, slot, requested, time.monotonic())
            self.events.append(event)
            self._cond.notify_all()
        try:
            yield slot, self.devices[slot]
        finally:
            candidates = dict(reserve_for()) if reserve_for is not None else {}
            with self._cond:
                event.released_at = time.monotonic()
                self._free.append(slot)
                best_waiting = -self._waiting[0][0] if self._waiting else float("-inf")
                taken = {owner for owner, _, _ in self._reserved.values()}
                waiting_labels = {w[2] for w in self._waiting}
                options = [(p, l) for l, p in candidates.items() if l not in taken and l not in waiting_labels]
                if options:
                    p, l = max(options)
                    if p > best_waiting:
                        self._reserved[slot] = (l, event.released_at + self.handoff_grace_s, p)
                self._cond.notify_all()

    def prime(self, expected: Mapping[str, float]) -> None:
        """Keep free slots briefly for the best callers about to ask (label -> priority).

        At the start of a run every root skill asks at once, in whatever order their threads
        happen to start; without this the critical-path head can lose a slot by 0.1 s and wait
        a whole skill for the next one.
        """
        with self._cond:
            now = time.monotonic()
            free = [s for s in sorted(self._free) if s not in self._reserved]
            best = sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))[: len(free)]
            for slot, (label, priority) in zip(free, best):
                self._reserved[slot] = (label, now + self.handoff_grace_s, priority)
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
