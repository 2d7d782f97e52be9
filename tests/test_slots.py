"""Priority slots: never more holders than slots, highest priority first, slot ids reused."""

from __future__ import annotations

import threading
import time

import pytest

from flowrl_core.scheduling.slots import PrioritySlots


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


def test_released_slot_is_kept_briefly_for_the_dependant_it_unblocks():
    """A waits; B (low priority) is already waiting; C (high) is unblocked by A's release and
    asks a moment later: C must get the slot, not B."""
    slots = PrioritySlots.cpu(1)
    slots.handoff_grace_s = 2.0
    order: list[str] = []
    a_running = threading.Event()

    def a():
        with slots.hold("A", 5, reserve_for=lambda: {"C": 9}):
            a_running.set()
            time.sleep(0.2)

    def b():
        with slots.hold("B", 1):
            order.append("B")

    def c():
        time.sleep(0.3)  # starts only after A finished, like a dependant
        with slots.hold("C", 9):
            order.append("C")

    ta = threading.Thread(target=a)
    ta.start()
    a_running.wait(5)
    tb, tc = threading.Thread(target=b), threading.Thread(target=c)
    tb.start()
    tc.start()
    for t in (ta, tb, tc):
        t.join(10)
    assert order == ["C", "B"]


def test_reservation_expires_when_the_dependant_never_comes():
    slots = PrioritySlots.cpu(1)
    slots.handoff_grace_s = 0.2
    got: list[str] = []

    def a():
        with slots.hold("A", 5, reserve_for=lambda: {"Ghost": 9}):
            time.sleep(0.05)

    ta = threading.Thread(target=a)
    ta.start()
    time.sleep(0.01)
    tb = threading.Thread(target=lambda: got.append(slots.hold("B", 1).__enter__()[1] or "B"))
    tb.start()
    ta.join(5)
    tb.join(5)
    assert got == ["B"]


def test_primed_slots_go_to_the_best_expected_callers_whatever_order_they_ask():
    slots = PrioritySlots.cpu(1)
    slots.prime({"low": 1, "high": 9})
    order: list[str] = []

    def ask(label, priority, delay):
        time.sleep(delay)
        with slots.hold(label, priority):
            order.append(label)
            time.sleep(0.05)

    threads = [threading.Thread(target=ask, args=("low", 1, 0.0)), threading.Thread(target=ask, args=("high", 9, 0.1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert order == ["high", "low"]
