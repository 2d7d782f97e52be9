"""The ``curriculum`` proposer: walks a knowledge base (a skill file) toward a target skill."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import networkx as nx

from flowrl_core.grow.library import (
    Done,
    LibraryView,
    NothingNow,
    Proposal,
    Propose,
    analysis_revision,
    ProposerError,
    frontier,
    invalid_reason,
    unprovided,
)
from flowrl_core.skills.graph import build_graph, needs, provider_for, providers
from flowrl_core.skills.parsing import decode_skill_text, load_skill_file, parse_skills
from flowrl_core.skills.spec import ACHIEVEMENT_PREFIX, SkillSpec

KNOWLEDGE_BASES = ("gridworld", "craftax_classic")


def load_knowledge_base(kb: str | Path) -> list[SkillSpec]:
    """A shipped KB by name (``gridworld``, ``craftax_classic``) or any skill file by path."""
    if isinstance(kb, str) and kb in KNOWLEDGE_BASES:
        name = f"{kb}.yaml"
        text = resources.files("flowrl_core.grow.knowledge").joinpath(name).read_text(encoding="utf-8")
        source = f"flowrl_core/grow/knowledge/{name}"
        return parse_skills(decode_skill_text(text, source=source, fmt="yaml"), source=source)
    path = Path(kb)
    if not path.suffix:
        close = _close(str(kb), KNOWLEDGE_BASES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ProposerError(f"unknown knowledge base {str(kb)!r}{hint}; use one of {', '.join(KNOWLEDGE_BASES)} "
                            "or the path of a skill file")
    return load_skill_file(path)


def _close(word: str, options: Iterable[str], n: int = 5) -> list[str]:
    options = list(options)
    by_fold = {o.casefold(): o for o in options}
    return [by_fold[m] for m in difflib.get_close_matches(word.casefold(), list(by_fold), n=n, cutoff=0.5)]


def resolve_target(specs: list[SkillSpec], target: str) -> tuple[str, str | None]:
    """``target`` → (KB skill name, the key it was given as, or None for a skill name).

    Accepts a skill name (any case), a key (``stone_pickaxe``, ``achievement:collect_stone``)
    or a bare achievement name (``collect_stone``); a key resolves to its first KB provider.
    """
    by_fold = {s.name.casefold(): s.name for s in specs}
    if target.casefold() in by_fold:
        return by_fold[target.casefold()], None
    by_key = providers(specs)
    for key in (target, ACHIEVEMENT_PREFIX + target):
        if key in by_key:
            return by_key[key][0], key
    options = sorted(by_fold.values()) + sorted(by_key)
    close = _close(target, options)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ProposerError(f"unknown target {target!r}: no knowledge-base skill has that name or gains "
                        f"that key{hint} (skills: {', '.join(sorted(by_fold.values()))})")


@dataclass
class _Walk:
    """What the target still needs, found by walking back from it over unprovided keys."""

    needed: list[str] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)


class CurriculumProposer:
    """Proposes, from a knowledge base, the next prerequisite of ``target``.

    Demand-driven, by key: starting at the target, every need that no library skill (learned or
    in flight) already gains is traced to its KB provider, recursively.  The skills reached and
    not yet in the library are what remains; those whose needs are all provided now are the
    candidates.  So only the target's ancestors are ever proposed, and a key the library
    already has (under any skill name) is not trained again.

    Choice among candidates: an empty :func:`frontier` first (every provider, direct or not, is
    learned, so training starts at once and the flow does not block), then the shallowest in
    the KB graph, then by name.

    Answers, in this order:

    * Done once the target is learned (by name, or — for a key target — any learned skill
      gaining the key);
    * NothingNow while the target is in flight: everything it needs is there, only its
      training is left (stopping here was the reference system's bug);
    * Done if a prerequisite failed (or was proposed and rejected) and no library skill gains
      its key: the target is unreachable, and waiting cannot change that, because the
      curriculum proposes only KB skills and a failed name is never reused;
    * Propose the best candidate (see above);
    * otherwise NothingNow if something is in flight, else Done — so NothingNow always means
      "a training result is pending", and a flow that waits for one cannot deadlock.
    """

    def __init__(self, kb: str | Path = "gridworld", target: str = ""):
        if not target:
            raise ProposerError("the curriculum needs a target: a skill name or a key such as "
                                "'achievement:collect_stone'")
        self.kb = str(kb)
        specs = load_knowledge_base(kb)
        self.specs = {s.name: s for s in specs}
        self.by_key = providers(specs)
        self.depth = _depths(build_graph(specs))
        self.target, self.target_key = resolve_target(specs, target)
        self.proposed: list[str] = []

    def _target_state(self, view: LibraryView) -> str | None:
        def has(skills: Iterable[SkillSpec]) -> bool:
            return any(s.name.casefold() == self.target.casefold()
                       or (self.target_key is not None and self.target_key in s.gains) for s in skills)

        if has(view.learned.values()):
            return "learned"
        if has(view.library()):
            return "in flight"
        return None

    def _walk(self, view: LibraryView) -> _Walk:
        present = {s.name.casefold() for s in view.library()}
        failed = {n.casefold(): r for n, r in view.failed.items()}
        gained = providers(view.library())
        walk, seen, stack = _Walk(), set(), [self.target]
        while stack:
            name = stack.pop()
            if name in seen or name.casefold() in present:
                continue
            seen.add(name)
            if name.casefold() in failed:
                walk.blocked[name] = f"failed ({failed[name.casefold()]})"
                continue
            if name in self.proposed:
                walk.blocked[name] = "proposed, but it never entered the library (rejected by the flow?)"
                continue
            walk.needed.append(name)
            spec = self.specs[name]
            for key in needs(spec):
                if key not in gained:
                    stack.append(provider_for(spec, key, self.by_key))  # KB is valid: never None
            stack.extend(d for d in spec.depends_on if d.casefold() not in present)
        return walk

    def propose(self, view: LibraryView) -> Proposal:
        revision = analysis_revision(view)  # a learned skill whose analysis contradicts its spec comes first
        if revision is not None:
            return revision
        state = self._target_state(view)
        if state == "learned":
            return Done(f"target {self.target!r} is learned")
        training = sorted(set(view.in_flight) - set(view.learned))
        if state == "in flight":
            return NothingNow(f"target {self.target!r} is training; in flight: {', '.join(training)}")
        walk = self._walk(view)
        if walk.blocked:
            why = "; ".join(f"{n} {r}" for n, r in sorted(walk.blocked.items()))
            return Done(f"target {self.target!r} is unreachable from {self.kb}: {why}")
        ready = self._ranked_candidates(walk.needed, view)
        if ready:
            name = ready[0]
            reason = invalid_reason(self.specs[name], view)
            if reason is not None:  # every needed skill is on the only path to the target
                return Done(f"target {self.target!r} is unreachable: {name!r} does not fit the library: {reason}")
            self.proposed.append(name)
            return Propose(self.specs[name])
        if training:
            return NothingNow(f"waiting for {', '.join(training)} before {', '.join(walk.needed)}")
        return Done(f"target {self.target!r} is stuck: {', '.join(walk.needed)} need keys that no library "
                    "skill gains, though their KB providers are in the library under the same names")

    def _ranked_candidates(self, needed: list[str], view: LibraryView) -> list[str]:
        """Needed skills whose needs the library provides now: an empty frontier first (the
        flow can start training at once), then the shallowest, then by name."""
        ranked = []
        for name in needed:
            spec = self.specs[name]
            if not unprovided(spec, view):
                ranked.append((bool(frontier(spec, view)), self.depth[name], name))
        return [name for _, _, name in sorted(ranked)]


def _depths(graph: nx.DiGraph) -> dict[str, int]:
    """Longest path from a root to each skill (roots are 0)."""
    depth: dict[str, int] = {}
    for node in nx.topological_sort(graph):
        depth[node] = 1 + max((depth[p] for p in graph.predecessors(node)), default=-1)
    return depth
