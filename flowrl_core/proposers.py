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

"Merely queued" is never "done": the reference system stopped once every skill was submitted,
so its target never trained.  Here Done for a target means the target is *learned*; while it
trains the answer is NothingNow.

Dependencies are matched by key, as in :mod:`flowrl_core.graph`: a skill needing 4 wood is
served by any skill gaining wood.  The reference compared predicates for equality, so "needs 4
wood" never matched "gives wood".

Model output is data: it is decoded with :func:`json.loads` and validated with
:func:`~flowrl_core.graph.parse_skill`, never evaluated; the ``predicate`` and ``train`` keys (an
import path the trainer would import, and resource knobs) are refused in proposals.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import networkx as nx

from flowrl_core import vocab
from flowrl_core.errors import FlowRLError, SkillFileError
from flowrl_core.graph import (
    build_graph, decode_skill_text, load_skill_file, needs, no_duplicate_keys, parse_skill, parse_skills,
    provider_for, providers, training_order,
)
from flowrl_core.imports import ImportPathError, resolve_callable
from flowrl_core.spec import ACHIEVEMENT_PREFIX, SkillSpec, achievement_name, is_achievement

KNOWLEDGE_BASES = ("gridworld", "craftax_classic")
DEFAULT_LLM_BASE_URL = "https://api.openai.com/v1"


class ProposerError(FlowRLError, ValueError):
    """A proposer cannot be built from its configuration (bad KB, target, path or env)."""


# --------------------------------------------------------------------------------------------
# The view of the library and the answers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LibraryView:
    """What a proposer may look at: a snapshot the flow builds before each ``propose`` call."""

    learned: dict[str, SkillSpec] = field(default_factory=dict)  # trained and merged
    in_flight: dict[str, SkillSpec] = field(default_factory=dict)  # submitted, not finished
    failed: dict[str, str] = field(default_factory=dict)  # name -> reason
    results: dict[str, dict] = field(default_factory=dict)  # name -> {"success_rate", "frames"}

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
class NothingNow:
    reason: str


@dataclass(frozen=True)
class Done:
    reason: str


Proposal = Propose | NothingNow | Done


@runtime_checkable
class Proposer(Protocol):
    def propose(self, view: LibraryView) -> Proposal: ...


# --------------------------------------------------------------------------------------------
# Validation and the frontier
# --------------------------------------------------------------------------------------------


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


def _unprovided(spec: SkillSpec, view: LibraryView) -> list[str]:
    """Keys and ``depends_on`` entries of ``spec`` that no library skill provides."""
    library = view.library()
    by_key = providers(library)
    names = {s.name for s in library}
    missing = [k for k in needs(spec) if provider_for(spec, k, by_key) is None]
    return missing + [d for d in spec.depends_on if d not in names]


# --------------------------------------------------------------------------------------------
# FileProposer
# --------------------------------------------------------------------------------------------


class FileProposer:
    """The skills of one skill file, one per call, in training order.

    Providers always precede their dependants in that order, so the next skill's providers were
    proposed earlier and are learned, in flight or failed by now: this proposer never needs to
    wait.  A skill whose provider failed (or was skipped, or was proposed and never reached the
    library — the flow rejected it) is skipped with a reason, and so are its descendants; other
    branches go on.  Skills already in the library under the same name (a resumed run) are
    not proposed again.
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        self.specs = {s.name: s for s in load_skill_file(path)}
        self.graph = build_graph(list(self.specs.values()), source=self.path)
        self.order = training_order(self.graph)
        self.proposed: list[str] = []
        self.skipped: dict[str, str] = {}

    def _blocked_by(self, name: str, view: LibraryView, failed: Mapping[str, str]) -> str | None:
        for pred in sorted(self.graph.predecessors(name)):
            if pred in self.skipped:
                return f"provider {pred!r} was skipped ({self.skipped[pred]})"
            if pred.casefold() in failed:
                return f"provider {pred!r} failed ({failed[pred.casefold()]})"
        return None

    def propose(self, view: LibraryView) -> Proposal:
        present = {s.name.casefold() for s in view.library()}
        failed = {name.casefold(): reason for name, reason in view.failed.items()}
        for name in self.order:
            folded = name.casefold()
            if name in self.skipped or folded in present or folded in failed:
                continue
            if name in self.proposed:
                self.skipped[name] = "proposed, but it never entered the library (rejected by the flow?)"
                continue
            reason = self._blocked_by(name, view, failed)
            if reason is None:
                reason = _invalid_reason(self.specs[name], view)
            if reason is not None:
                self.skipped[name] = reason
                continue
            self.proposed.append(name)
            return Propose(self.specs[name])
        return Done(self._summary())

    def _summary(self) -> str:
        text = f"{self.path}: all {len(self.order)} skills handled ({len(self.proposed)} proposed"
        if self.skipped:
            text += f", {len(self.skipped)} skipped: " + "; ".join(f"{n}: {r}" for n, r in self.skipped.items())
        return text + ")"


def _invalid_reason(spec: SkillSpec, view: LibraryView) -> str | None:
    try:
        validate_against_library(spec, view)
    except SkillFileError as exc:
        return str(exc)
    return None


# --------------------------------------------------------------------------------------------
# CurriculumProposer
# --------------------------------------------------------------------------------------------


def load_knowledge_base(kb: str | Path) -> list[SkillSpec]:
    """A shipped KB by name (``gridworld``, ``craftax_classic``) or any skill file by path."""
    if isinstance(kb, str) and kb in KNOWLEDGE_BASES:
        name = f"kb_{kb}.yaml"
        text = resources.files("flowrl_core.data").joinpath(name).read_text(encoding="utf-8")
        source = f"flowrl_core/data/{name}"
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
            reason = _invalid_reason(self.specs[name], view)
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
            if not _unprovided(spec, view):
                ranked.append((bool(frontier(spec, view)), self.depth[name], name))
        return [name for _, _, name in sorted(ranked)]


def _depths(graph: nx.DiGraph) -> dict[str, int]:
    """Longest path from a root to each skill (roots are 0)."""
    depth: dict[str, int] = {}
    for node in nx.topological_sort(graph):
        depth[node] = 1 + max((depth[p] for p in graph.predecessors(node)), default=-1)
    return depth


# --------------------------------------------------------------------------------------------
# LLMProposer
# --------------------------------------------------------------------------------------------

_FENCE = re.compile(r"```[A-Za-z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
_FORBIDDEN_KEYS = {
    "predicate": "'predicate' is not allowed in a proposal (it names code to import); "
                 "describe completion with 'gains' only",
    "train": "'train' overrides are not allowed in a proposal; leave training settings to the flow",
}


class _Rejected(Exception):
    """A reply that is not a usable skill; ``feedback`` says whether the model should hear why."""

    def __init__(self, reason: str, *, feedback: bool):
        super().__init__(reason)
        self.reason = reason
        self.feedback = feedback


def _target_key(target: str) -> str | None:
    if target in vocab.ITEMS:
        return target
    if is_achievement(target) and achievement_name(target) in vocab.ACHIEVEMENTS:
        return target
    return None


def system_prompt() -> str:
    """The skill format, stated once; the library and goal go in the user message."""
    items = ", ".join(vocab.CLASSIC_ITEMS)
    achievements = ", ".join(ACHIEVEMENT_PREFIX + a for a in vocab.CLASSIC_ACHIEVEMENTS)
    return f"""You design the skill library of a reinforcement-learning agent in Craftax-Classic, \
a 2-D Minecraft-like survival game. Each skill is one short sub-task that a policy is trained to \
do; skills are chained by what they need and yield.

A skill is ONE JSON object:
{{"name": "Make_Wood_Pickaxe", "requires": {{"wood": 1, "achievement:place_table": 1}}, \
"consumes": {{"wood": 1}}, "gains": {{"wood_pickaxe": 1}}, "description": "craft a wood pickaxe at a table"}}

Fields:
- name: unique (case-insensitive) among the library and failed skills; letters, digits, '_' or '-'.
- requires: what must be held or unlocked before the skill starts (optional).
- consumes: what one run uses up (optional).
- gains: what one run yields; required and non-empty; the skill is done when it has gained these.
- depends_on: optional list of library skill names to run first.
- description: optional, one sentence.
Keys are inventory items ({items}) or achievements written achievement:<name> \
({achievements}). Values are positive integers per run (use 1 for achievements).
Every key in requires/consumes must be gained by a skill already in the library (learned or \
training); the library is the only source of prerequisites, so build up to the goal one step \
at a time. Recipes: a table costs 2 wood; a furnace 1 stone; wood tools 1 wood at a table; \
stone tools 1 wood + 1 stone at a table; iron tools 1 wood, 1 stone, 1 coal, 1 iron at a table \
and a furnace; stone and coal need a wood pickaxe, iron a stone pickaxe, diamond an iron pickaxe.

Reply with the JSON object only, no prose. If the goal is already achieved by a learned skill, \
reply with the single word DONE."""


def library_message(view: LibraryView, target: str) -> str:
    """The state the model plans from: every skill with its status and success rate."""
    lines = []
    for spec in view.library():
        entry = spec.to_dict()
        entry.pop("train", None)
        entry.pop("predicate", None)
        entry["status"] = "learned" if spec.name in view.learned else "training"
        result = view.results.get(spec.name) or {}
        if result.get("success_rate") is not None:
            entry["success_rate"] = round(float(result["success_rate"]), 3)
        lines.append(json.dumps(entry, sort_keys=True))
    failed = [json.dumps({"name": n, "status": "failed", "reason": r}) for n, r in view.failed.items()]
    library = "\n".join(lines) if lines else "(empty: start from skills that need nothing)"
    text = f"Goal: {target}\n\nLibrary:\n{library}\n"
    if failed:
        text += "\nFailed (do not reuse these names; try a different approach):\n" + "\n".join(failed) + "\n"
    return text + "\nPropose the next skill as one JSON object, or reply DONE."


def _extract_json_text(content: str) -> str:
    fenced = _FENCE.search(content)
    if fenced:
        return fenced.group(1).strip()
    start, end = content.find("{"), content.rfind("}")
    return content[start:end + 1] if 0 <= start < end else content


def parse_reply(content: str, view: LibraryView, target_key: str | None) -> Propose | Done:
    """One model reply → a validated skill or Done; raises :class:`_Rejected` with the reason."""
    text = content.strip()
    if re.fullmatch(r"[`*\"' ]*DONE[.!`*\"' ]*", text, flags=re.IGNORECASE):
        if target_key is not None and not any(target_key in s.gains for s in view.learned.values()):
            raise _Rejected(f"DONE is wrong: no learned skill gains {target_key!r} yet", feedback=True)
        return Done("the model says the target is learned")
    try:
        raw = json.loads(_extract_json_text(text), object_pairs_hook=no_duplicate_keys)
    except ValueError as exc:
        raise _Rejected(f"the reply is not a JSON object ({exc}); reply with one JSON object only",
                        feedback=True) from None
    if isinstance(raw, dict) and isinstance(raw.get("skills"), list) and len(raw["skills"]) == 1:
        raw = raw["skills"][0]
    if not isinstance(raw, dict):
        raise _Rejected(f"the reply is a JSON {type(raw).__name__}, not one skill object", feedback=True)
    for key, why in _FORBIDDEN_KEYS.items():
        if key in raw:
            raise _Rejected(why, feedback=True)
    try:
        spec = parse_skill(raw, source="model reply")
        validate_against_library(spec, view)
    except SkillFileError as exc:
        raise _Rejected(f"invalid skill: {exc}", feedback=True) from None
    return Propose(spec)


class LLMProposer:
    """Asks an OpenAI-compatible chat-completions endpoint for the next skill.

    Each ``propose`` is one short conversation: system prompt (the format), user message (goal
    and library).  A reply that does not make a valid skill is answered with the reason and the
    model tries again; a transport failure (timeout, HTTP error status, a body that is not the
    API's JSON) is retried with the same messages, since the model did not cause it.  Either
    kind counts toward ``max_retries`` (so ``1 + max_retries`` requests at most); then the
    answer is NothingNow with the last reason.  Nothing raises for bad output or bad servers.

    A target that is a key (``diamond``, ``achievement:collect_diamond``) is checked here: Done
    without a request once a learned skill gains it, NothingNow without a request while only an
    in-flight skill does, and a premature DONE from the model is rejected.  Any other target
    text is passed to the model as is, and its DONE is taken at its word.
    """

    def __init__(self, base_url: str, model: str, api_key: str, target: str, max_retries: int = 3,
                 timeout_s: float = 60, client: Any = None, retry_wait_s: float = 1.0):
        import httpx  # the only proposer that needs it; keeps the others importable without it

        if not model:
            raise ProposerError("the LLM proposer needs a model name (FLOWRL_LLM_MODEL)")
        if not target:
            raise ProposerError("the LLM proposer needs a target (a key such as "
                                "'achievement:collect_diamond', or a goal in words)")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key
        self.target = target
        self.target_key = _target_key(target)
        self.max_retries = max(0, int(max_retries))
        self.timeout_s = float(timeout_s)
        self.retry_wait_s = float(retry_wait_s)
        self._httpx = httpx
        self.client = client if client is not None else httpx.Client(timeout=self.timeout_s)
        self.rejections: list[str] = []  # every rejection reason, for the flow's logs

    @classmethod
    def from_env(cls, target: str = "", **kwargs: Any) -> "LLMProposer":
        """Endpoint from FLOWRL_LLM_BASE_URL (default OpenAI's /v1), FLOWRL_LLM_MODEL and
        FLOWRL_LLM_API_KEY (may be empty for local servers); keyword arguments win."""
        kwargs.setdefault("base_url", os.environ.get("FLOWRL_LLM_BASE_URL") or DEFAULT_LLM_BASE_URL)
        kwargs.setdefault("model", os.environ.get("FLOWRL_LLM_MODEL", ""))
        kwargs.setdefault("api_key", os.environ.get("FLOWRL_LLM_API_KEY", ""))
        if not kwargs["model"]:
            raise ProposerError("set FLOWRL_LLM_MODEL to the chat model to use (and FLOWRL_LLM_BASE_URL, "
                                "FLOWRL_LLM_API_KEY for a non-default endpoint)")
        return cls(target=target, **kwargs)

    def _short_circuit(self, view: LibraryView) -> Proposal | None:
        if self.target_key is None:
            return None
        if any(self.target_key in s.gains for s in view.learned.values()):
            return Done(f"a learned skill gains the target {self.target_key!r}")
        training = sorted(s.name for s in view.library() if self.target_key in s.gains)
        if training:
            return NothingNow(f"the target {self.target_key!r} is training ({', '.join(training)})")
        return None

    def propose(self, view: LibraryView) -> Proposal:
        early = self._short_circuit(view)
        if early is not None:
            return early
        messages = [{"role": "system", "content": system_prompt()},
                    {"role": "user", "content": library_message(view, self.target)}]
        reason = "no request made"
        for attempt in range(1 + self.max_retries):
            try:
                content = self._complete(messages)
                return parse_reply(content, view, self.target_key)
            except _Rejected as exc:
                reason = exc.reason
                self.rejections.append(reason)
                if exc.feedback:
                    messages = messages + [
                        {"role": "assistant", "content": content},
                        {"role": "user", "content": f"Rejected: {reason}\nReply with one corrected JSON "
                                                    "skill object, or DONE."}]
                elif attempt < self.max_retries and self.retry_wait_s > 0:
                    time.sleep(self.retry_wait_s)
        return NothingNow(f"no valid skill after {1 + self.max_retries} attempts; last: {reason}")

    def _complete(self, messages: list[dict[str, str]]) -> str:
        """One request → the reply text; transport problems become non-feedback rejections."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {"model": self.model, "messages": messages}
        try:
            response = self.client.post(self.url, json=body, headers=headers, timeout=self.timeout_s)
        except self._httpx.HTTPError as exc:
            raise _Rejected(f"request to {self.url} failed: {type(exc).__name__}: {exc}", feedback=False) from None
        if response.status_code >= 400:
            raise _Rejected(f"HTTP {response.status_code} from {self.url}: {response.text[:200]}",
                            feedback=False)
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise _Rejected(f"response body is not a chat completion ({type(exc).__name__}: "
                            f"{response.text[:200]!r})", feedback=False) from None
        if not isinstance(content, str):
            raise _Rejected(f"message content is {type(content).__name__}, not text", feedback=False)
        return content

    def close(self) -> None:
        self.client.close()


# --------------------------------------------------------------------------------------------
# Loading by name
# --------------------------------------------------------------------------------------------

BUILTIN = ("file", "curriculum", "llm")


def load_proposer(spec: str, **kwargs: Any) -> Proposer:
    """``file`` / ``curriculum`` / ``llm`` or ``pkg.module:factory`` (called with ``kwargs``)."""
    if spec == "file":
        return FileProposer(**kwargs)
    if spec == "curriculum":
        return CurriculumProposer(**kwargs)
    if spec == "llm":
        return LLMProposer.from_env(**kwargs)
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ProposerError(f"unknown proposer {spec!r}; use one of {', '.join(BUILTIN)} or an import "
                            "path 'package.module:factory'")
    try:
        factory = resolve_callable(spec, "factory")
    except ImportPathError as exc:
        raise ProposerError(f"proposer {spec!r}: {exc}") from None
    proposer = factory(**kwargs)
    if not callable(getattr(proposer, "propose", None)):
        raise ProposerError(f"proposer {spec!r} returned a {type(proposer).__name__} without a "
                            "propose(view) method")
    return proposer
