"""What ``flowrl status`` shows: every skill's expert, current version, frames, runs and state."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any, Mapping

from flowrl_core.store.experts import ExpertVersion, current_versions
from flowrl_core.store.objects import Store
from flowrl_core.store.runs import RunRecord, RunState, skill_runs

STATUS_SCHEMA = "flowrl.status/1"


class SkillProgress(str, Enum):
    """Where a skill of the store stands, from its runs and its expert's versions."""

    TRAINED = "trained"  # a version of its expert exists, or a run of it completed
    UNFINISHED = "unfinished"  # its latest run started and never ended: running now, or killed (a rerun resumes it)
    FAILED = "failed"  # its latest run failed (``last_error`` says why)
    UNTRAINED = "untrained"  # nothing trained it yet


@dataclass(frozen=True)
class SkillState:
    name: str
    expert: int | None
    frames: int  # frames of the expert's current version (all runs that trained it)
    version: str | None
    trained_frames: int  # frames the skill's own completed runs trained
    runs: int
    completed_runs: int
    unfinished_runs: int
    failed_runs: int
    success_rate: float | None  # of the latest completed run's last update
    state: SkillProgress
    last_error: str = ""
    evaluated_success: float | None = None  # the latest recorded evaluation's (fresh episodes; None: never evaluated)
    random_success: float | None = None  # a uniform random policy's, same episodes and budget
    evaluated_deaths: float | None = None  # fraction of the evaluated episodes that ended in death
    evaluated_death_cause: str | None = None  # their commonest cause (None: none died, or the env cannot say)
    # A dependant's run retrains the plan's experts after the evaluation was recorded, so the figure
    # can describe parameters the store no longer serves (measured: Collect_Iron recorded 0.12, its
    # current experts evaluate 0.54). True when any evaluated expert version is no longer current.
    evaluation_stale: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"state": self.state.value}


@dataclass(frozen=True)
class StoreStatus:
    store: str
    skills: tuple[SkillState, ...]

    def skill(self, name: str) -> SkillState:
        return next(s for s in self.skills if s.name == name)

    def to_dict(self) -> dict[str, Any]:
        """``flowrl status --json``: one object, skills as a list (README "Commands" has the schema)."""
        return {"schema": STATUS_SCHEMA, "store": self.store, "skills": [s.to_dict() for s in self.skills]}


def _state(runs: dict[str, RunRecord], has_version: bool) -> tuple[SkillProgress, str]:
    latest = max((r for r in runs.values() if r.state is not RunState.ABANDONED),
                 key=lambda r: r.ended_at or r.started_at, default=None)
    if latest is not None and latest.state is RunState.STARTED:
        return SkillProgress.UNFINISHED, ""
    if latest is not None and latest.state is RunState.FAILED:
        return SkillProgress.FAILED, latest.reason
    trained = has_version or any(r.state is RunState.COMPLETED for r in runs.values())
    return (SkillProgress.TRAINED if trained else SkillProgress.UNTRAINED), ""


def latest_evaluation(store: Store, skill: str) -> Any:
    from flowrl_core.evaluation.store import latest_evaluation as latest

    try:
        return latest(store, skill)
    except (KeyError, TypeError, ValueError):  # an unreadable record shows as "never evaluated"
        return None


def _stale(evaluated: Mapping[str, str], current: Mapping[str, ExpertVersion | None]) -> bool:
    """Whether an evaluated plan expert has been replaced since (a record without versions cannot tell)."""
    return any((version := current.get(skill)) is None or not version.answers(reference)
               for skill, reference in evaluated.items())


def summarize_store(store: Store) -> StoreStatus:
    """Every skill in the store with its expert's current version and its runs."""
    indices = store.expert_indices()
    by_index = current_versions(store)
    current = {name: by_index.get(index) for name, index in indices.items()}
    rows = []
    for name in sorted(set(store.skill_names()) | set(indices)):
        index = indices.get(name)
        version = current.get(name)
        runs = skill_runs(store, name)
        completed = [r for r in runs.values() if r.state is RunState.COMPLETED]
        last = max(completed, key=lambda r: r.ended_at, default=None)
        state, error = _state(runs, version is not None)
        evaluation = latest_evaluation(store, name)
        rows.append(SkillState(
            name=name, expert=index, frames=version.frames if version else 0,
            version=version.version_id if version else None, trained_frames=sum(r.frames for r in completed),
            runs=len(runs), completed_runs=len(completed),
            unfinished_runs=sum(1 for r in runs.values() if r.state is RunState.STARTED),
            failed_runs=sum(1 for r in runs.values() if r.state is RunState.FAILED),
            success_rate=last.success_rate if last else None, state=state, last_error=error,
            evaluated_success=evaluation.success_rate if evaluation else None,
            random_success=evaluation.baseline.success_rate if evaluation else None,
            evaluated_deaths=evaluation.result.end_reasons.get("death", 0.0) if evaluation else None,
            evaluated_death_cause=evaluation.result.top_death_cause if evaluation else None,
            evaluation_stale=evaluation is not None and _stale(evaluation.versions, current)))
    return StoreStatus(store=store.url, skills=tuple(rows))
