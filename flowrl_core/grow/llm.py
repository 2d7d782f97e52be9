"""The ``llm`` proposer: asks any OpenAI-compatible chat endpoint for the next skill.

Model output is data: it is decoded with :func:`json.loads` and validated with
:func:`~flowrl_core.skills.parsing.parse_skill`, never evaluated; the ``predicate`` and ``train``
keys (an import path the trainer would import, and resource knobs) are refused in proposals.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

from flowrl_core.analysis.records import AnalysisRecord
from flowrl_core.errors import SkillFileError
from flowrl_core.grow.library import (
    Done,
    LibraryView,
    NothingNow,
    Proposal,
    Propose,
    ProposerError,
    Revise,
    validate_against_library,
    validate_revision,
)
from flowrl_core.skills import vocab
from flowrl_core.skills.parsing import no_duplicate_keys, parse_skill
from flowrl_core.skills.spec import ACHIEVEMENT_PREFIX, achievement_name, is_achievement

DEFAULT_LLM_BASE_URL = "https://api.openai.com/v1"
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
Keys are inventory items ({items}), achievements written achievement:<name> \
({achievements}), or near:<block> for a block that must stand beside the agent \
(near:crafting_table, near:furnace): a placing skill gains it, a crafting skill requires it, and \
it is lost whenever the agent walks off, or view:<block> for a block in the agent's view \
(view:diamond): a searching skill gains it, so a far, rare block is rewarded when it comes into \
sight, and the skill that collects it requires it. Values are positive integers per run (use 1 \
for achievements, near: and view: keys; they are never consumed).
Every key in requires/consumes must be gained by a skill already in the library (learned or \
training); the library is the only source of prerequisites, so build up to the goal one step \
at a time. Recipes: a table costs 2 wood; a furnace 1 stone; wood tools 1 wood at a table; \
stone tools 1 wood + 1 stone at a table; iron tools 1 wood, 1 stone, 1 coal, 1 iron at a table \
and a furnace; stone and coal need a wood pickaxe, iron a stone pickaxe, diamond an iron pickaxe.

A learned skill may carry an "analysis" of its trained policy: claims of its spec that the \
policy's completions contradicted (e.g. consumes wood 1 while every completion spent 2) and, \
when they agreed, a "proposed_spec". To revise a learned skill's spec instead of proposing a \
new skill, reply {{"revise": <the whole skill object, same name>}}; each skill can be revised once.

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
        analysis = view.analyses.get(spec.name) if spec.name in view.learned else None
        if analysis is not None:
            entry["analysis"] = analysis_summary(analysis, spec.name, revised=spec.name in view.revised)
        lines.append(json.dumps(entry, sort_keys=True))
    failed = [json.dumps({"name": n, "status": "failed", "reason": r}) for n, r in view.failed.items()]
    library = "\n".join(lines) if lines else "(empty: start from skills that need nothing)"
    text = f"Goal: {target}\n\nLibrary:\n{library}\n"
    if failed:
        text += "\nFailed (do not reuse these names; try a different approach):\n" + "\n".join(failed) + "\n"
    return text + "\nPropose the next skill as one JSON object, or reply DONE."


def analysis_summary(record: AnalysisRecord, skill: str, *, revised: bool = False) -> dict[str, Any]:
    """What the model sees of a skill's analysis: the headline, contradicted claims, the proposed spec."""
    out: dict[str, Any] = {"summary": record.headline()}
    bad = [f"{c.skill} {c.kind.value} {c.key}: spec {c.spec_value}, observed {c.observed} in {c.agreement:.0%} of "
           f"{c.completions} completions" for c in record.contradictions()]
    if bad:
        out["contradicted"] = bad
    proposed = record.corrections().get(skill)
    if proposed is not None:
        out["proposed_spec"] = proposed
    if revised:
        out["revised"] = True
    return out


def _extract_json_text(content: str) -> str:
    fenced = _FENCE.search(content)
    if fenced:
        return fenced.group(1).strip()
    start, end = content.find("{"), content.rfind("}")
    return content[start:end + 1] if 0 <= start < end else content


def parse_reply(content: str, view: LibraryView, target_key: str | None) -> Propose | Revise | Done:
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
    revise = set(raw) == {"revise"}
    if revise:
        raw = raw["revise"]
        if not isinstance(raw, dict):
            raise _Rejected("'revise' must hold one skill object", feedback=True)
    for key, why in _FORBIDDEN_KEYS.items():
        if key in raw:
            raise _Rejected(why, feedback=True)
    if revise:
        try:
            spec = parse_skill(raw, source="model reply (revise)")
            validate_revision(spec, view)
        except SkillFileError as exc:
            raise _Rejected(f"invalid revision: {exc}", feedback=True) from None
        return Revise(spec, "the model revised it")
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
