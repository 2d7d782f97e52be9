"""What became of each skill of a run, and of the run as a whole — typed, so the CLI, the flows'
artifacts, ``--json`` and the tests all read the same record instead of a dict's spellings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

import networkx as nx

from flowrl_core.store.experts import Decision


class SkillStatus(str, Enum):
    TRAINED = "trained"  # a run trained and merged
    ALREADY_DONE = "already done"  # its completed runs already met its budget: nothing to do
    FAILED = "failed"  # its own setup, training or merge failed (after retries)
    SKIPPED = "skipped"  # a skill it depends on failed, so it never started
    REJECTED = "rejected"  # grow-skills: the proposal was invalid and never trained

    @property
    def ok(self) -> bool:
        return self in (SkillStatus.TRAINED, SkillStatus.ALREADY_DONE)


@dataclass(frozen=True)
class SkillOutcome:
    skill: str
    status: SkillStatus
    expert: int | None = None
    run_id: str | None = None
    frames: int | None = None  # frames this run trained (already done: frames its runs trained before)
    success_rate: float | None = None  # of the last training update
    decisions: tuple[Decision, ...] = ()  # the frame-count rule's decision per expert
    duration_s: float | None = None
    resumed: bool = False
    artifacts: Mapping[str, str] = field(default_factory=dict)  # learning_curve / rollout paths in the store
    error: str = ""
    analysis: str = ""  # the run's analysis in one line (flowrl_core.analysis.AnalysisRecord.headline)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        d["decisions"] = [x.to_dict() for x in self.decisions]
        d["artifacts"] = dict(self.artifacts)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SkillOutcome":
        return cls(**{**d, "status": SkillStatus(d["status"]),
                      "decisions": tuple(Decision.from_dict(x) for x in d.get("decisions", ())),
                      "artifacts": dict(d.get("artifacts") or {})})


def skipped(skill: str, graph: nx.DiGraph, failed: Iterable[str], expert: int | None = None) -> SkillOutcome:
    """A skill that never ran because an ancestor failed; the reason names the failed roots."""
    failed = set(failed)
    roots = sorted(a for a in nx.ancestors(graph, skill) if a in failed)
    return SkillOutcome(skill, SkillStatus.SKIPPED, expert=expert,
                        error=f"upstream failed: {', '.join(roots) or 'unknown'}")


@dataclass(frozen=True)
class GraphSummary:
    """The result of one ``train-skill-graph`` run (the flow's return value and the CLI's table)."""

    store: str
    outcomes: tuple[SkillOutcome, ...]
    indices: Mapping[str, int] = field(default_factory=dict)
    peak_concurrency: int = 0
    timeline: tuple[Mapping[str, Any], ...] = ()  # one entry per training attempt: skill, slot, start, end, exit
    merged_at: Mapping[str, float] = field(default_factory=dict)
    slot_events: tuple[Mapping[str, Any], ...] = ()

    @property
    def failed(self) -> dict[str, str]:
        return {o.skill: o.error for o in self.outcomes if not o.status.ok and o.status is not SkillStatus.REJECTED}

    @property
    def ok(self) -> bool:
        return not self.failed

    def outcome(self, skill: str) -> SkillOutcome:
        return next(o for o in self.outcomes if o.skill == skill)

    @property
    def message(self) -> str:
        total = len(self.outcomes)
        if self.failed:
            return (f"{len(self.failed)} of {total} skill(s) did not train: "
                    + "; ".join(f"{k}: {v}" for k, v in self.failed.items()))
        return f"{total} skill(s) trained or already done"

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "flowrl.run/1", "store": self.store, "ok": self.ok, "message": self.message,
                "skills": [o.to_dict() for o in self.outcomes], "failed": self.failed, "indices": dict(self.indices),
                "peak_concurrency": self.peak_concurrency}


def order_outcomes(order: Sequence[str], outcomes: Mapping[str, SkillOutcome]) -> tuple[SkillOutcome, ...]:
    return tuple(outcomes[name] for name in order if name in outcomes)


@dataclass(frozen=True)
class GrowSummary:
    """The result of one ``grow-skills`` run."""

    store: str
    outcomes: tuple[SkillOutcome, ...]  # in the order the skills finished (or were rejected)
    learned: tuple[str, ...]  # the library at the end, including skills learned before this run
    stop_reason: str
    proposed: int

    @property
    def failed(self) -> dict[str, str]:
        return {o.skill: o.error for o in self.outcomes if not o.status.ok}

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "flowrl.grow/1", "store": self.store, "skills": [o.to_dict() for o in self.outcomes],
                "learned": list(self.learned), "failed": self.failed, "stop_reason": self.stop_reason,
                "proposed": self.proposed}
