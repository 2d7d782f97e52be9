"""Typed records of a run's trajectory analysis (``runs/<run_id>/analysis.json``, schema ``flowrl.analysis/1``).

Why a record of its own and not more fields on the evaluation: the evaluation says *how well*
the trained policy does; the analysis says *why* -- whether the skill file's priors
(``requires``/``consumes``/``gains``) hold in the env, what a consistent correction would be,
and where failing episodes stall.  The feedback path (``flowrl run --apply-analysis``, the grow
proposers) reads only this record, so it must round-trip through JSON exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

SCHEMA = "flowrl.analysis/1"


class Verdict(str, Enum):
    """What the trained policy's completions say about one claim of a spec."""

    CONFIRMED = "confirmed"
    CONTRADICTED = "contradicted"
    UNOBSERVED = "unobserved"  # too few completions of the step to say


class ClaimKind(str, Enum):
    REQUIRES = "requires"
    CONSUMES = "consumes"
    GAINS = "gains"


class AnalysisStatus(str, Enum):
    ANALYSED = "analysed"
    SKIPPED = "skipped"  # nothing to roll out (a trainer without a policy, analysis disabled)
    FAILED = "failed"  # the analysis itself failed (the run's training and merge are unaffected)


@dataclass(frozen=True)
class ClaimCheck:
    """One ``kind[key] = spec_value`` of a skill's spec against its observed completions.

    ``spec_value`` 0 means the spec does not list the key (an unlisted consumption, gain or
    requirement the completions showed).  ``observed`` is the most common observed value and
    ``agreement`` the fraction of completions showing it; ``proposed`` is set when the claim is
    contradicted consistently (``agreement`` at least the consistency threshold), else None.
    """

    skill: str
    kind: ClaimKind
    key: str
    spec_value: int
    observed: int | None
    agreement: float
    completions: int
    verdict: Verdict
    proposed: int | None = None  # the corrected value (0: drop the key)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"skill": self.skill, "kind": self.kind.value, "key": self.key, "spec_value": self.spec_value,
                "observed": self.observed, "agreement": self.agreement, "completions": self.completions,
                "verdict": self.verdict.value, "proposed": self.proposed, "note": self.note}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ClaimCheck":
        return cls(str(d["skill"]), ClaimKind(d["kind"]), str(d["key"]), int(d["spec_value"]),
                   None if d.get("observed") is None else int(d["observed"]), float(d["agreement"]),
                   int(d["completions"]), Verdict(d["verdict"]),
                   None if d.get("proposed") is None else int(d["proposed"]), str(d.get("note", "")))


@dataclass(frozen=True)
class SpecCheck:
    """Every claim of one plan skill's spec; ``corrected`` is the proposed spec (None: nothing consistent to fix)."""

    skill: str
    completions: int  # completed plan-step runs of this skill over the analysed episodes
    claims: tuple[ClaimCheck, ...]
    corrected: Mapping[str, Any] | None = None  # a skill-file entry (SkillSpec.to_dict form)
    nearby_always: tuple[str, ...] = ()  # block types around the agent at every completion (env permitting)

    @property
    def contradicted(self) -> tuple[ClaimCheck, ...]:
        return tuple(c for c in self.claims if c.verdict is Verdict.CONTRADICTED)

    def to_dict(self) -> dict[str, Any]:
        return {"skill": self.skill, "completions": self.completions, "claims": [c.to_dict() for c in self.claims],
                "corrected": None if self.corrected is None else dict(self.corrected),
                "nearby_always": list(self.nearby_always)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SpecCheck":
        return cls(str(d["skill"]), int(d["completions"]), tuple(ClaimCheck.from_dict(c) for c in d["claims"]),
                   None if d.get("corrected") is None else dict(d["corrected"]), tuple(d.get("nearby_always", ())))


@dataclass(frozen=True)
class StepReach:
    """How far episodes got on one plan step."""

    index: int
    skill: str
    count: int
    reached: float  # fraction of episodes that entered the step
    completed: float  # fraction that completed it
    stalled: float  # fraction of episodes that ended (failed) inside it

    def label(self) -> str:
        return f"step {self.index + 1} ({self.skill}×{self.count})"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "skill": self.skill, "count": self.count, "reached": self.reached,
                "completed": self.completed, "stalled": self.stalled}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "StepReach":
        return cls(int(d["index"]), str(d["skill"]), int(d["count"]), float(d["reached"]), float(d["completed"]),
                   float(d["stalled"]))


@dataclass(frozen=True)
class FailureAnalysis:
    """Where a skill below its success target loses its episodes."""

    success_rate: float
    target: float
    steps: tuple[StepReach, ...]
    stall_step: int | None  # index of the plan step most failed episodes end in (None: no failure)
    end_reasons: Mapping[str, float]  # EndReason value -> fraction of failed episodes
    last_actions: tuple[tuple[str, float], ...]  # most common actions among failed episodes' last ones
    summary: str  # one plain sentence
    death_causes: Mapping[str, float] = field(default_factory=dict)  # cause -> fraction of failed episodes

    def to_dict(self) -> dict[str, Any]:
        return {"success_rate": self.success_rate, "target": self.target, "steps": [s.to_dict() for s in self.steps],
                "stall_step": self.stall_step, "end_reasons": dict(self.end_reasons),
                "last_actions": [[a, f] for a, f in self.last_actions], "summary": self.summary,
                "death_causes": dict(self.death_causes)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FailureAnalysis":
        return cls(float(d["success_rate"]), float(d["target"]), tuple(StepReach.from_dict(s) for s in d["steps"]),
                   None if d.get("stall_step") is None else int(d["stall_step"]),
                   {str(k): float(v) for k, v in d["end_reasons"].items()},
                   tuple((str(a), float(f)) for a, f in d["last_actions"]), str(d["summary"]),
                   {str(k): float(v) for k, v in (d.get("death_causes") or {}).items()})


@dataclass(frozen=True)
class AnalysisRecord:
    """A run's analysis: its policy's evaluation in brief, every plan skill's spec check, the failure analysis."""

    skill: str
    run_id: str
    status: AnalysisStatus
    reason: str = ""  # why it was skipped
    episodes: int = 0
    max_steps: int = 0
    success_rate: float | None = None
    random_success_rate: float | None = None
    spec_checks: tuple[SpecCheck, ...] = ()
    failure: FailureAnalysis | None = None  # None: at or above the success target (or skipped)
    created_at: str = ""
    schema: str = field(default=SCHEMA)

    def corrections(self) -> dict[str, dict[str, Any]]:
        """Plan skill -> its proposed corrected spec, for every skill with a consistent correction."""
        return {c.skill: dict(c.corrected) for c in self.spec_checks if c.corrected is not None}

    def contradictions(self) -> tuple[ClaimCheck, ...]:
        return tuple(c for s in self.spec_checks for c in s.contradicted)

    def headline(self) -> str:
        """One line for tables and logs."""
        if self.status is not AnalysisStatus.ANALYSED:
            return f"{self.status.value}: {self.reason}"
        parts = [f"success {self.success_rate:.0%} vs random {self.random_success_rate:.0%}"]
        bad = self.contradictions()
        parts.append(f"{len(bad)} contradicted claim(s)" if bad else "spec confirmed")
        if self.corrections():
            parts.append("correction proposed for " + ", ".join(sorted(self.corrections())))
        if self.failure is not None:
            parts.append(self.failure.summary)
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "skill": self.skill, "run_id": self.run_id, "status": self.status.value,
                "reason": self.reason, "episodes": self.episodes, "max_steps": self.max_steps,
                "success_rate": self.success_rate, "random_success_rate": self.random_success_rate,
                "spec_checks": [s.to_dict() for s in self.spec_checks],
                "failure": None if self.failure is None else self.failure.to_dict(), "created_at": self.created_at}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AnalysisRecord":
        if d.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} document (schema {d.get('schema')!r})")
        return cls(str(d["skill"]), str(d["run_id"]), AnalysisStatus(d["status"]), str(d.get("reason", "")),
                   int(d.get("episodes", 0)), int(d.get("max_steps", 0)),
                   None if d.get("success_rate") is None else float(d["success_rate"]),
                   None if d.get("random_success_rate") is None else float(d["random_success_rate"]),
                   tuple(SpecCheck.from_dict(s) for s in d.get("spec_checks", ())),
                   None if d.get("failure") is None else FailureAnalysis.from_dict(d["failure"]),
                   str(d.get("created_at", "")), str(d["schema"]))
