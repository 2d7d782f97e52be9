"""Proposer plugins for test_grow.py, loaded by import path like a user's plugin would be."""

from __future__ import annotations

from flowrl_core.grow.library import Done, LibraryView, NothingNow, Propose
from flowrl_core.skills.parsing import parse_skill

CALLS: list[dict] = []

SCRIPT = [
    {"name": "Collect_Wood", "gains": {"wood": 1}},
    {"name": "Place_Table", "requires": {"wood": 2}, "consumes": {"wood": 2}, "gains": {"achievement:place_table": 1}},
    {"name": "Make_Wood_Sword", "requires": {"wood": 1, "achievement:place_table": 1}, "consumes": {"wood": 1},
     "gains": {"wood_sword": 1}},
]


class Scripted:
    """Proposes SCRIPT in order and records what it saw each time it was asked."""

    def __init__(self) -> None:
        self.next = 0

    def propose(self, view: LibraryView):
        CALLS.append({"learned": sorted(view.learned), "in_flight": sorted(view.in_flight)})
        if self.next >= len(SCRIPT):
            return NothingNow("waiting for the last skill") if view.in_flight else Done("script finished")
        spec = parse_skill(SCRIPT[self.next])
        self.next += 1
        return Propose(spec)


def scripted() -> Scripted:
    CALLS.clear()
    return Scripted()
