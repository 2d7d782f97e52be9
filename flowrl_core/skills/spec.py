"""The declarative skill contract: what a skill needs, uses up and yields.

A skill is data, never code: ``requires`` must hold before it runs, ``consumes`` is taken from
the inventory when it runs, ``gains`` is what one run yields.  Keys are inventory items
(``wood``), achievements (``achievement:place_table``) or where the agent stands
(``near:crafting_table``: that block is in crafting range; ``view:diamond``: that block is in
the agent's view), named as in Craftax-Classic so a skill file moves between environments.
Values are positive integers per run (1 for ``near:`` and ``view:``).

``near:`` keys exist because Craftax crafts only beside its stations, and an achievement is no
substitute: ``achievement:place_table`` stays true after the agent has walked away from the
table, and an iron pickaxe needs a table *and* a furnace next to the agent at once.  A ``near:``
key is positional, so the planner treats it as fleeting (see :mod:`flowrl_core.skills.plan`).

``view:`` keys exist for search: a block that is rare and far away (Craftax's diamonds lie a
median of 23 cells from where the iron pickaxe is made, docs/benchmarks.md) gives a skill that
must reach it no reward to learn from.  A skill that gains ``view:diamond`` is rewarded as soon as
one comes into sight, and the skill that collects it starts with the diamond in view.  Like
``near:``, it is positional and fleeting.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

ACHIEVEMENT_PREFIX = "achievement:"
NEAR_PREFIX = "near:"
VIEW_PREFIX = "view:"


def skill_key(name: str) -> str:
    """The form names are compared in: NFKC-normalised and case-folded, so "Ｃollect_Wood"
    (full-width), an NFD-decomposed "Café" and "collect_wood" all collide with "Collect_Wood"."""
    return unicodedata.normalize("NFKC", name).casefold()


def is_achievement(key: str) -> bool:
    return key.startswith(ACHIEVEMENT_PREFIX)


def achievement_name(key: str) -> str:
    return key[len(ACHIEVEMENT_PREFIX):]


def is_near(key: str) -> bool:
    return key.startswith(NEAR_PREFIX)


def is_view(key: str) -> bool:
    return key.startswith(VIEW_PREFIX)


def is_positional(key: str) -> bool:
    """Where the agent is now (``near:`` or ``view:``): true only while it stays there."""
    return is_near(key) or is_view(key)


def near_block(key: str) -> str:
    """The block a positional key names (``near:furnace`` and ``view:furnace`` -> ``furnace``)."""
    return key.split(":", 1)[1]


def is_item(key: str) -> bool:
    """An inventory count (not an achievement flag, not a position)."""
    return not is_achievement(key) and not is_positional(key)


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(sorted((mapping or {}).items())))


@dataclass(frozen=True)
class SkillSpec:
    """One validated skill (build it through :func:`flowrl_core.skills.parsing.load_skill_file` or
    :func:`flowrl_core.skills.parsing.parse_skills`, which check names, keys and counts)."""

    name: str
    requires: Mapping[str, int] = field(default_factory=dict)
    consumes: Mapping[str, int] = field(default_factory=dict)
    gains: Mapping[str, int] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    train: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    predicate: str | None = None  # optional import path "pkg.module:function" (see trainer)

    def __post_init__(self) -> None:
        object.__setattr__(self, "requires", _frozen(self.requires))
        object.__setattr__(self, "consumes", _frozen(self.consumes))
        object.__setattr__(self, "gains", _frozen(self.gains))
        object.__setattr__(self, "train", _frozen(self.train))
        object.__setattr__(self, "depends_on", tuple(self.depends_on))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; round-trips through ``parse_skills``."""
        out: dict[str, Any] = {"name": self.name}
        for key in ("requires", "consumes", "gains", "train"):
            value = getattr(self, key)
            if value:
                out[key] = dict(value)
        if self.depends_on:
            out["depends_on"] = list(self.depends_on)
        if self.description:
            out["description"] = self.description
        if self.predicate:
            out["predicate"] = self.predicate
        return out


@dataclass(frozen=True)
class PlanStep:
    """Run ``skill`` ``count`` times in a row (one entry of an execution plan)."""

    skill: str
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {"skill": self.skill, "count": self.count}
