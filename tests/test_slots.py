"""Priority slots: never more holders than slots, highest priority first, slot ids reused."""

from __future__ import annotations

import threading
import time

import pytest

from flowrl_core.slots import PrioritySlots


def test_cap_and_priority_order():
    slots = PrioritySlots.cpu(1)
    order: list[str] = []
    gate = threading.Event()

    def holder():
        with slots.hold("first", 0):
            gate.wait(5)

    def waiter(label, priority):
        with slots.hold(label, priority):
            order.append(label)
            time.sleep(0.01)

    t0 = threading.Thread(target=holder)
    t0.start()
    time.sleep(0.05)
    threads = [threading.Thread(target=waiter, args=(f"p{p}", p)) for p in (1, 5, 3)]
    for t in threads:
        t.start()
    time.sleep(0.1)  # all three are waiting now
    gate.set()
    for t in [t0, *threads]:
        t.join(5)
    assert order == ["p5", "p3", "p1"]
    assert slots.peak_concurrency() == 1


def test_many_threads_never_exceed_slots_and_get_distinct_devices():
    slots = PrioritySlots(["0", "1", "2"])
    live: set[int] = set()
    seen_overlap = []
    lock = threading.Lock()

    def work(i):
        with slots.hold(f"t{i}", i % 4) as (slot, device):
            with lock:
                assert slot not in live
                live.add(slot)
                seen_overlap.append(len(live))
            assert device == str(slot)
            time.sleep(0.01)
            with lock:
                live.remove(slot)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert max(seen_overlap) <= 3 and slots.peak_concurrency() <= 3
    assert len(slots.events) == 20


def test_needs_a_slot():
    with pytest.raises(ValueError):
        PrioritySlots.cpu(0)
