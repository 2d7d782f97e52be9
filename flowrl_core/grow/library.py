"""Proposers: where the generation flow gets its next skill while the library trains.

The flow loops: ``propose(view)`` → validate → submit (the skill enters ``in_flight``) → when
training ends the skill moves to ``learned`` or ``failed``.  A proposer answers one of:

* :class:`Propose` — train this skill next.  Its providers may still be training (the
  *frontier*, see :func:`frontier`); the flow waits for them before it generates again.
* :class:`NothingNow` — nothing to propose until something in flight finishes.  The
  built-in curriculum and file proposers return it only while ``view.in_flight`` is non-empty,
  so a flow that waits for the next training result can never deadlock on them.  The LLM
  proposer also returns it after the model or the server failed ``max_retries`` times, whatever
  is in flight; a flow should bound how often it asks again with nothing in flight.
* :class:`Done` — never anything more (target learned, file exhausted, or target unreachable).
* :class:`Revise` — replace a *learned* skill's spec (same name), typically because its
  analysis (``view.analyses``, :mod:`flowrl_core.analysis`) contradicted it consistently.  The
  flow validates it like a proposal, stores it as a new spec version (history kept) and retrains
  every learned skill whose plan it changes, as new versions; each skill is revised at most once
  per flow run (``view.revised``).

"Merely queued" is never "done": the reference system stopped once every skill was submitted,
so its target never trained.  Here Done for a target means the target is *learned*; while it
trains the answer is NothingNow.

Dependencies are matched by key, as in :mod:`flowrl_core.skills.graph`: a skill needing 4 wood is
served by any skill gaining wood.  The reference compared predicates for equality, so "needs 4
wood" never matched "gives wood".

Model output is data: it is decoded with :func:`json.loads` and validated with
:func:`~flowrl_core.skills.parsing.parse_skill`, never evaluated; the ``predicate`` and ``train`` keys (an
import path the trainer would import, and resource knobs) are refused in proposals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import networkx as nx

from flowrl_core.analysis.records import AnalysisRecord
from flowrl_core.errors import FlowRLError, SkillFileError
from flowrl_core.skills.graph import build_graph, needs, provider_for, providers
from flowrl_core.skills.spec import SkillSpec


class ProposerError(FlowRLError, ValueError):
    """A proposer cannot be built from its configuration (bad KB, target, path or env)."""


@dataclass(frozen=True)
class LibraryView:
    """What a proposer may look at: a snapshot the flow builds before each ``propose`` call."""

    learned: dict[str, SkillSpec] = field(default_factory=dict)  # trained and merged
    in_flight: dict[str, SkillSpec] = field(default_factory=dict)  # submitted, not finished
    failed: dict[str, str] = field(default_factory=dict)  # name -> reason
    results: dict[str, dict] = field(default_factory=dict)  # name -> {"success_rate", "frames"}
    analyses: dict[str, AnalysisRecord] = field(default_factory=dict)  # learned name -> its latest run's analysis
    revised: tuple[str, ...] = ()  # skills whose spec this flow run already revised

    def library(self) -> list[SkillSpec]:
        """Learned then in-flight specs (a skill in both counts once, as learned).

        The order matters: :func:`provider_for` picks the first provider of a key, so a learned
        provider wins over one still training.
        """
        rest = [s for name, s in self.in_flight.items() if name not in self.learned]
        return list(self.learned.values()) + rest


@dataclass(frozen=True)
class Propose:
    spec: SkillSpec


@dataclass(frozen=True)
class Revise:
    spec: SkillSpec  # the learned skill's new spec (same name)
    reason: str


@dataclass(frozen=True)
class NothingNow:
    reason: str


@dataclass(frozen=True)
class Done:
    reason: str


Proposal = Propose | Revise | NothingNow | Done


@runtime_checkable
class Proposer(Protocol):
    def propose(self, view: LibraryView) -> Proposal: ...


def validate_against_library(spec: SkillSpec, view: LibraryView) -> None:
    """Raise :class:`SkillFileError` unless ``spec`` can join the library as it stands.

    A name may not reuse a failed skill's either: the store keeps the failed run under that
    name, and a retry should be a deliberate, differently named skill.
    """
    folded = spec.name.casefold()
    for name in view.failed:
        if name.casefold() == folded:
            raise SkillFileError(f"name clashes with failed skill {name!r} ({view.failed[name]}); "
                                 "choose another name", skill=spec.name)
    for other in view.library():
        if other.name.casefold() == folded:
            state = "learned" if other.name in view.learned else "in flight"
            raise SkillFileError(f"name clashes with {state} skill {other.name!r}; choose another name",
                                 skill=spec.name)
    for dep in spec.depends_on:
        if dep in view.failed:
            raise SkillFileError(f"'depends_on' names failed skill {dep!r} ({view.failed[dep]})",
                                 skill=spec.name)
    build_graph(view.library() + [spec])


def frontier(spec: SkillSpec, view: LibraryView) -> set[str]:
    """In-flight skills ``spec`` must wait for before its plan can be built.

    Every in-flight ancestor in the library graph, not only the direct providers: a plan runs
    the whole chain, and a plan built while any link trained would leave it out (the reference
    system's bug).  Waiting on the direct providers alone would usually be enough, since they
    finish after their own providers, but the superset costs nothing and survives flows that
    train out of order.  Providers are chosen by key, so an in-flight wood gatherer is on the
    frontier of a skill needing 4 wood.  Raises :class:`SkillFileError` if ``spec`` does not
    fit the library (validate first).
    """
    library = [s for s in view.library() if s.name != spec.name]
    graph = build_graph(library + [spec])
    waiting = set(view.in_flight) - set(view.learned)
    return {name for name in nx.ancestors(graph, spec.name) if name in waiting}


def unprovided(spec: SkillSpec, view: LibraryView) -> list[str]:
    """Keys and ``depends_on`` entries of ``spec`` that no library skill provides."""
    library = view.library()
    by_key = providers(library)
    names = {s.name for s in library}
    missing = [k for k in needs(spec) if provider_for(spec, k, by_key) is None]
    return missing + [d for d in spec.depends_on if d not in names]


def invalid_reason(spec: SkillSpec, view: LibraryView) -> str | None:
    """Why ``spec`` cannot join the library, or None when it can."""
    try:
        validate_against_library(spec, view)
    except SkillFileError as exc:
        return str(exc)
    return None


def validate_revision(spec: SkillSpec, view: LibraryView) -> SkillSpec:
    """The learned spec ``spec`` replaces; raises :class:`SkillFileError` unless the revision can stand."""
    old = view.learned.get(spec.name)
    if old is None:
        raise SkillFileError(f"only a learned skill can be revised; learned: {', '.join(sorted(view.learned)) or 'none'}",
                             skill=spec.name)
    if spec.name in view.revised:
        raise SkillFileError("already revised once in this run; propose a new, differently named skill instead",
                             skill=spec.name)
    if spec == old:
        raise SkillFileError("the revision equals the current spec", skill=spec.name)
    build_graph([spec if s.name == spec.name else s for s in view.library()])
    return old


def analysis_revision(view: LibraryView) -> Revise | None:
    """A consistent correction an analysis proposes for a learned, not yet revised skill (None: none).

    What the built-in proposers do with ``view.analyses`` before proposing anything new: a
    library built on a contradicted prior trains every dependant to the wrong plan.
    """
    from flowrl_core.analysis.apply import corrected, proposed_corrections

    candidates = [s for name, s in view.learned.items() if name not in view.revised]
    for correction in proposed_corrections(candidates, list(view.analyses.values())):
        spec = corrected(view.learned[correction.skill], correction)
        if invalid_revision(spec, view) is None:
            return Revise(spec, f"the analysis of run {correction.run_id} contradicts it consistently "
                                f"({correction.completions} completions)")
    return None


def invalid_revision(spec: SkillSpec, view: LibraryView) -> str | None:
    try:
        validate_revision(spec, view)
    except SkillFileError as exc:
        return str(exc)
    return None
