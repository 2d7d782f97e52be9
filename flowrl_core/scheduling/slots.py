"""Device slots handed out by priority, without polling.

Prefect's global concurrency limits only count, hand slots over with 0.8–2.8 s polling gaps and
ignore priority (see shared/research/prefect.md).  Inside one orchestrating process we can do
better: waiters block on a condition variable, a released slot goes at once to the waiter with
the highest priority (the longest remaining path to a sink — critical-path order), and the
waiter learns *which* slot it holds, so the trainer can be pinned to that GPU.

**Packing** (``PrioritySlots.packed({"0": 80 GiB, "1": 80 GiB})``): instead of one training per
slot, several share a device while the bytes they declared (``hold(..., need_bytes=...)``, from
:mod:`flowrl_core.training.memory`) fit under its budget, ``capacity * (1 - margin)``.  The
order stays the critical-path order, with one bounded exception (backfilling):

* waiters are considered best first; each takes a device it fits on now (the one with the
  fewest holders, then the most free bytes: small MoEs are compute-bound, so spreading them
  over GPUs is faster than stacking them);
* the best waiter that does not fit **claims** one device (the one with the most free bytes
  among those that could ever hold it; the claim sticks until it starts).  Nobody else may
  start on a claimed device, so it only drains, and the claimant starts at the latest when the
  holders that were there at claim time have finished: it cannot be overtaken forever;
* waiters below it may still start on *other* devices where they fit (backfill), so a big
  waiter does not idle the whole fleet; on a single device this is strict priority order;
* a caller expected soon (``prime``, or a dependant a release unblocks via ``reserve_for``)
  counts as waiting with an unknown need for ``handoff_grace_s``: nobody below it starts.

A holder that declares no figure, asks ``exclusive=True`` (the retry after an out-of-memory),
or needs more than any device's budget runs **alone** on a device (for an oversized need, one
of the largest): it waits until one is empty and keeps it to itself.  Oversized needs are not
refused — the estimate may be pessimistic and a GPU of its own is the best that can be
offered; if it still runs out of memory, the OOM is an ordinary failure.  Each holder learns its device and its :class:`MemoryShare` (the allocator
limit to give its process: see :mod:`flowrl_core.scheduling.process_memory`).

Without capacities nothing changes: one training per slot, ``need_bytes`` only recorded.
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
    device: str = ""
    need_bytes: int | None = None
    exclusive: bool = False  # ran alone on its device


@dataclass(frozen=True)
class MemoryShare:
    """What a packed holder may use: its device's capacity, what it declared, the allocator cap
    its process gets (``need * (1 + margin)``, at most the budget; the budget when alone)."""

    device: str
    capacity_bytes: int
    budget_bytes: int  # capacity * (1 - margin): what packing fills at most
    need_bytes: int | None
    cap_bytes: int
    exclusive: bool

    @property
    def fraction(self) -> float:
        return self.cap_bytes / self.capacity_bytes


class Grant(tuple):
    """``(slot, device)`` — unpacks as before — plus ``memory``: the share when packing, else None."""

    memory: MemoryShare | None

    def __new__(cls, slot: int, device: str, memory: MemoryShare | None = None) -> "Grant":
        grant = super().__new__(cls, (slot, device))
        grant.memory = memory
        return grant

    @property
    def slot(self) -> int:
        return self[0]

    @property
    def device(self) -> str:
        return self[1]


@dataclass
class _Want:
    priority: float
    seq: int
    label: str
    need: int | None
    exclusive: bool


@dataclass
class _Held:
    label: str
    device: str
    need: int | None
    alone: bool


@dataclass
class PrioritySlots:
    """``devices[i]`` is what slot ``i`` pins (a CUDA index as a string, or "" for CPU).

    With ``capacities`` (device -> bytes; build it with :meth:`packed`) the devices are packed by
    memory instead (see the module docstring); ``max_per_device`` optionally caps holders per device.
    """

    devices: Sequence[str]
    handoff_grace_s: float = 2.0
    capacities: Mapping[str, int] | None = None
    margin: float = 0.10
    max_per_device: int | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _free: list[int] = field(default_factory=list, repr=False)
    _waiting: list[tuple[float, int, str]] = field(default_factory=list, repr=False)
    _reserved: dict[int, tuple[str, float, float]] = field(default_factory=dict, repr=False)  # slot -> (label, until, priority)
    _seq: Iterator[int] = field(default_factory=itertools.count, repr=False)
    events: list[SlotEvent] = field(default_factory=list)
    _exclusive: dict[int, bool] = field(default_factory=dict, repr=False)  # seq -> wants a device alone
    _held_alone: set[str] = field(default_factory=set, repr=False)  # devices an exclusive holder has
    _wants: list[_Want] = field(default_factory=list, repr=False)  # packing: waiters
    _held: dict[int, _Held] = field(default_factory=dict, repr=False)  # packing: slot id -> holder
    _expect: dict[str, tuple[float, float, int]] = field(default_factory=dict, repr=False)  # label -> (priority, until, seq)
    _claims: dict[str, str] = field(default_factory=dict, repr=False)  # label -> device it waits to drain

    def __post_init__(self) -> None:
        if not self.devices:
            raise ValueError("PrioritySlots needs at least one slot")
        self._free = list(range(len(self.devices)))
        if self.capacities is not None:
            self.devices = [str(d) for d in self.devices]
            if len(set(self.devices)) != len(self.devices) or set(self.devices) != {str(d) for d in self.capacities}:
                raise ValueError(f"packed devices {list(self.devices)} must be the capacities' keys, each once")
            self.capacities = {str(d): int(c) for d, c in self.capacities.items()}
            bad = {d: c for d, c in self.capacities.items() if c <= 0}
            if bad:
                raise ValueError(f"device capacities must be positive byte counts, got {bad}")
            if not 0.0 <= self.margin < 1.0:
                raise ValueError(f"margin must be in [0, 1), got {self.margin}")
            if self.max_per_device is not None and self.max_per_device < 1:
                raise ValueError(f"max_per_device must be >= 1, got {self.max_per_device}")

    @classmethod
    def packed(cls, capacities: Mapping[str, int], *, margin: float = 0.10, max_per_device: int | None = None,
               handoff_grace_s: float = 2.0) -> "PrioritySlots":
        """Devices shared by memory: ``capacities`` maps a device (CUDA index) to its bytes."""
        if not capacities:
            raise ValueError("PrioritySlots.packed needs at least one device")
        return cls(list(capacities), handoff_grace_s=handoff_grace_s, capacities=dict(capacities), margin=margin,
                   max_per_device=max_per_device)

    @property
    def packing(self) -> bool:
        return self.capacities is not None

    def budget(self, device: str) -> int:
        """Bytes packing fills on ``device`` at most (capacity less the safety margin)."""
        if self.capacities is None:
            raise ValueError("budget() needs a packed PrioritySlots (capacities)")
        return int(self.capacities[device] * (1.0 - self.margin))

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
        usable = [s for s in usable if self.devices[s] not in self._held_alone]
        if self._exclusive.get(entry[1]):  # alone on its device: every slot of that device is free
            busy = {self.devices[i] for i in range(len(self.devices)) if i not in self._free}
            usable = [s for s in usable if self.devices[s] not in busy]
        return min(usable) if usable else None

    @contextmanager
    def hold(self, label: str, priority: float = 0.0,
             reserve_for: Callable[[], Mapping[str, float]] | None = None, *, need_bytes: int | None = None,
             exclusive: bool = False) -> Iterator[Grant]:
        """Block until this caller may take a slot; yields a :class:`Grant` ``(slot, device)``.

        ``reserve_for`` is asked at release for the callers this release unblocks (label ->
        priority) — e.g. the dependants of a skill that just merged.  If the best of them outranks
        everyone already waiting, the slot is kept for it for ``handoff_grace_s`` so it is not
        grabbed by a lower-priority waiter in the instant before the dependant asks.

        ``need_bytes``: the training's memory estimate (packing; recorded otherwise).
        ``exclusive``: run alone on a device (every slot of it when slots share a device).
        """
        if need_bytes is not None and (isinstance(need_bytes, bool) or int(need_bytes) < 0):
            raise ValueError(f"{label}: need_bytes must be a non-negative byte count, got {need_bytes!r}")
        if self.capacities is not None:
            with self._hold_packed(label, priority, reserve_for, need_bytes, exclusive) as grant:
                yield grant
            return
        requested = time.monotonic()
        entry = (-priority, next(self._seq), label)
        with self._cond:
            if exclusive:
                self._exclusive[entry[1]] = True
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
            self._exclusive.pop(entry[1], None)
            if exclusive:
                self._held_alone.add(self.devices[slot])
            event = SlotEvent(label, slot, requested, time.monotonic(), device=self.devices[slot],
                              need_bytes=None if need_bytes is None else int(need_bytes), exclusive=exclusive)
            self.events.append(event)
            self._cond.notify_all()
        try:
            yield Grant(slot, self.devices[slot])
        finally:
            candidates = dict(reserve_for()) if reserve_for is not None else {}
            with self._cond:
                event.released_at = time.monotonic()
                self._free.append(slot)
                if exclusive:
                    self._held_alone.discard(self.devices[slot])
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
        if self.capacities is not None:
            with self._cond:
                self._expect_callers(expected, time.monotonic())
                self._cond.notify_all()
            return
        with self._cond:
            now = time.monotonic()
            free = [s for s in sorted(self._free) if s not in self._reserved]
            best = sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))[: len(free)]
            for slot, (label, priority) in zip(free, best):
                self._reserved[slot] = (label, now + self.handoff_grace_s, priority)
            self._cond.notify_all()

    # ------------------------------------------------------------------------------ packing

    def _expect_callers(self, expected: Mapping[str, float], now: float) -> None:
        """Callers about to ask count as waiting (need unknown) until they ask or the grace ends."""
        busy = {w.label for w in self._wants} | {h.label for h in self._held.values()}
        for label, priority in expected.items():
            if label not in busy:
                self._expect[label] = (float(priority), now + self.handoff_grace_s, next(self._seq))

    def _alone(self, want: _Want, device: str) -> bool:
        return want.exclusive or want.need is None or want.need > self.budget(device)

    def _eligible(self, want: _Want) -> list[str]:
        """Devices that could ever hold ``want``: those whose budget fits its need; if none does,
        the largest devices (alone there: the closest to fitting); with no figure or asked to be
        alone, any device."""
        if want.exclusive or want.need is None:
            return list(self.devices)
        fitting = [d for d in self.devices if want.need <= self.budget(d)]
        largest = max(self.budget(d) for d in self.devices)
        return fitting or [d for d in self.devices if self.budget(d) == largest]

    def _fits(self, want: _Want, device: str, used: Mapping[str, int], count: Mapping[str, int],
              alone: set[str]) -> bool:
        if device in alone:
            return False
        if self.max_per_device is not None and count[device] >= self.max_per_device:
            return False
        if self._alone(want, device):
            return count[device] == 0
        return used[device] + int(want.need or 0) <= self.budget(device)

    def _plan(self, now: float) -> dict[int, str]:
        """Which waiters may start now (seq -> device), by the rule in the module docstring."""
        for label, (_, until, _) in list(self._expect.items()):
            if until <= now:
                del self._expect[label]
        used = {d: 0 for d in self.devices}
        count = {d: 0 for d in self.devices}
        alone: set[str] = set()
        for h in self._held.values():
            used[h.device] += h.need or 0
            count[h.device] += 1
            if h.alone:
                alone.add(h.device)
        entries: list[tuple[float, int, _Want | None]] = [(-w.priority, w.seq, w) for w in self._wants]
        entries += [(-p, seq, None) for p, _, seq in self._expect.values()]
        grants: dict[int, str] = {}
        claimed: str | None = None
        for _, _, want in sorted(entries, key=lambda e: (e[0], e[1])):
            if want is None:
                break  # an expected caller outranks everyone below: they wait for it
            eligible = self._eligible(want)
            ready = [d for d in eligible if d != claimed and self._fits(want, d, used, count, alone)]
            if ready:
                order = {d: i for i, d in enumerate(self.devices)}
                device = min(ready, key=lambda d: (count[d], -(self.budget(d) - used[d]), order[d]))
                grants[want.seq] = device
                count[device] += 1
                if self._alone(want, device):
                    alone.add(device)
                else:
                    used[device] += int(want.need or 0)
            elif claimed is None:
                device = self._claims.get(want.label)
                if device not in eligible:
                    order = {d: i for i, d in enumerate(self.devices)}
                    device = min(eligible, key=lambda d: (-(self.budget(d) - used[d]), order[d]))
                    self._claims[want.label] = device
                claimed = device
        return grants

    def _share(self, want: _Want, device: str) -> MemoryShare:
        assert self.capacities is not None
        budget = self.budget(device)
        if self._alone(want, device):
            return MemoryShare(device, self.capacities[device], budget, want.need, budget, True)
        cap = min(budget, int(int(want.need or 0) * (1.0 + self.margin)))
        return MemoryShare(device, self.capacities[device], budget, want.need, cap, False)

    @contextmanager
    def _hold_packed(self, label: str, priority: float, reserve_for: Callable[[], Mapping[str, float]] | None,
                     need_bytes: int | None, exclusive: bool) -> Iterator[Grant]:
        requested = time.monotonic()
        want = _Want(float(priority), next(self._seq), label, None if need_bytes is None else int(need_bytes),
                     bool(exclusive))
        with self._cond:
            self._expect.pop(label, None)
            self._wants.append(want)
            try:
                while True:
                    now = time.monotonic()
                    device = self._plan(now).get(want.seq)
                    if device is not None:
                        break
                    expiry = min((until for _, until, _ in self._expect.values()), default=None)
                    self._cond.wait(None if expiry is None else max(0.01, expiry - now))
            except BaseException:
                self._wants.remove(want)
                self._claims.pop(label, None)
                self._cond.notify_all()
                raise
            self._wants.remove(want)
            self._claims.pop(label, None)
            slot = min(set(range(len(self._held) + 1)) - set(self._held))
            share = self._share(want, device)
            self._held[slot] = _Held(label, device, want.need, share.exclusive)
            event = SlotEvent(label, slot, requested, time.monotonic(), device=device, need_bytes=want.need,
                              exclusive=share.exclusive)
            self.events.append(event)
            self._cond.notify_all()
        try:
            yield Grant(slot, device, share)
        finally:
            candidates = dict(reserve_for()) if reserve_for is not None else {}
            with self._cond:
                event.released_at = time.monotonic()
                del self._held[slot]
                self._expect_callers(candidates, event.released_at)
                self._cond.notify_all()

    def peak_bytes(self) -> dict[str, int]:
        """Per device, the most bytes its concurrent holders declared (alone holders: their need,
        or the budget when they gave none) — from :attr:`events`."""
        points: dict[str, list[tuple[float, int]]] = {}
        for e in self.events:
            size = e.need_bytes if e.need_bytes is not None else (
                self.budget(e.device) if self.capacities is not None else 0)
            points.setdefault(e.device, []).append((e.acquired_at, size))
            points[e.device].append((e.released_at if e.released_at is not None else float("inf"), -size))
        peaks: dict[str, int] = {}
        for device, pts in points.items():
            level = peak = 0
            for _, delta in sorted(pts, key=lambda p: (p[0], p[1])):
                level += delta
                peak = max(peak, level)
            peaks[device] = peak
        return peaks

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
