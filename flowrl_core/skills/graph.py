"""The dependency graph of a skill library, and the orders a scheduler reads from it.

Dependencies are inferred from requirements: a skill that requires (or consumes) ``wood``
depends on the skill that gains ``wood``.  Matching is on the key, never on the amount — a
skill needing 3 wood is served by a provider yielding 1 wood per run (the execution plan runs
it three times); the reference system compared predicates for equality and so blocked every
count-based requirement.  Explicit ``depends_on`` adds edges on top.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import networkx as nx

from flowrl_core.errors import SkillFileError, did_you_mean
from flowrl_core.skills.spec import SkillSpec, skill_key


def needs(spec: SkillSpec) -> dict[str, int]:
    """What must be in hand before one run: requirements, raised to cover what it consumes."""
    out = dict(spec.requires)
    for key, amount in spec.consumes.items():
        out[key] = max(out.get(key, 0), amount)
    return out


def providers(specs: Iterable[SkillSpec]) -> dict[str, list[str]]:
    """key → skills gaining it, in file order (the first is the default provider)."""
    out: dict[str, list[str]] = {}
    for spec in specs:
        for key in spec.gains:
            out.setdefault(key, []).append(spec.name)
    return out


def provider_for(spec: SkillSpec, key: str, by_key: Mapping[str, list[str]]) -> str | None:
    """The skill that supplies ``key`` to ``spec``: an explicit dependency if one provides it,
    else the first provider in file order; never ``spec`` itself."""
    candidates = [p for p in by_key.get(key, []) if p != spec.name]
    for dep in spec.depends_on:
        if dep in candidates:
            return dep
    return candidates[0] if candidates else None


def build_graph(specs: list[SkillSpec], *, source: str | None = None) -> nx.DiGraph:
    """Edges point from a dependency to its dependant (topological order = training order)."""
    seen: dict[str, str] = {}
    for spec in specs:
        folded = skill_key(spec.name)
        if folded in seen:
            same = "" if seen[folded] == spec.name else f" (it reads the same as {seen[folded]!r}: names are compared " \
                "case-insensitively after Unicode NFKC normalisation)"
            raise SkillFileError(f"duplicate skill name{same}; rename one of them", source=source, skill=spec.name)
        seen[folded] = spec.name
    by_name = {s.name: s for s in specs}
    by_key = providers(specs)
    graph = nx.DiGraph()
    for spec in specs:
        graph.add_node(spec.name, spec=spec)
    for spec in specs:
        for dep in spec.depends_on:
            if dep == spec.name:
                raise SkillFileError("'depends_on' names the skill itself", source=source, skill=spec.name)
            if dep not in by_name:
                raise SkillFileError(
                    f"'depends_on' names unknown skill {dep!r}{did_you_mean(dep, by_name)}; define it in the file",
                    source=source, skill=spec.name)
            graph.add_edge(dep, spec.name, reason="depends_on")
        for key in needs(spec):
            provider = provider_for(spec, key, by_key)
            if provider is None:
                raise SkillFileError(
                    f"requires {key!r} but no skill gains it; add a skill with gains: {{{key}: 1}} "
                    "or remove the requirement", source=source, skill=spec.name)
            graph.add_edge(provider, spec.name, reason=key)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return graph
    path = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
    raise SkillFileError(f"dependency cycle {path}; break it by removing one requirement or depends_on",
                         source=source, skill=cycle[0][0])


def training_order(graph: nx.DiGraph) -> list[str]:
    """A deterministic topological order (ties broken by name)."""
    return list(nx.lexicographical_topological_sort(graph))


def critical_path_lengths(graph: nx.DiGraph, weight: Mapping[str, float] | None = None) -> dict[str, float]:
    """For each skill, the longest weighted path from it to a sink, itself included.

    A scheduler that starts the ready skill with the largest value first follows critical-path
    order, which is what keeps the makespan near its lower bound.
    """
    w = weight or {}
    out: dict[str, float] = {}
    for node in reversed(list(nx.topological_sort(graph))):
        tail = max((out[s] for s in graph.successors(node)), default=0.0)
        out[node] = float(w.get(node, 1.0)) + tail
    return out


def critical_path(graph: nx.DiGraph, weight: Mapping[str, float] | None = None) -> list[str]:
    lengths = critical_path_lengths(graph, weight)
    if not lengths:
        return []
    node = max(sorted(lengths), key=lambda n: lengths[n] if graph.in_degree(n) == 0 else -1)
    path = [node]
    while True:
        succ = sorted(graph.successors(node))
        if not succ:
            return path
        node = max(succ, key=lambda n: lengths[n])
        path.append(node)
