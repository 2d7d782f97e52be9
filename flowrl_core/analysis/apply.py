"""Feed analyses back into a skill file: consistent corrections, their diff, and what must retrain.

Why corrections come only from consistent contradictions: a spec is a prior the whole library
plans with, so it is changed only when the trained policy's completions agree on another value
(see :mod:`flowrl_core.analysis.spec_check`).  A corrected file is validated like any other (it
goes through :func:`~flowrl_core.skills.parsing.parse_skill_doc`), and a skill must retrain when
its plan or any spec along its plan changed -- its experts were trained to follow the old one.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flowrl_core.analysis.records import AnalysisRecord, AnalysisStatus
from flowrl_core.skills.parsing import SkillFileDoc, parse_skill, parse_skill_doc
from flowrl_core.skills.plan import execution_plan, file_plan_order
from flowrl_core.skills.spec import SkillSpec


@dataclass(frozen=True)
class SpecCorrection:
    """One skill's spec, before and after, and the analysed run that proposed the change."""

    skill: str
    before: Mapping[str, Any]
    after: Mapping[str, Any]
    run_id: str  # the run whose analysis proposed it
    completions: int

    def diff(self) -> str:
        """A unified diff of the skill's spec (JSON, one key per line)."""
        a = json.dumps(dict(self.before), indent=2, sort_keys=True).splitlines()
        b = json.dumps(dict(self.after), indent=2, sort_keys=True).splitlines()
        return "\n".join(difflib.unified_diff(a, b, f"{self.skill} (skill file)", f"{self.skill} (analysis of "
                                              f"{self.run_id}, {self.completions} completions)", lineterm=""))

    def to_dict(self) -> dict[str, Any]:
        return {"skill": self.skill, "before": dict(self.before), "after": dict(self.after), "run_id": self.run_id,
                "completions": self.completions}


@dataclass(frozen=True)
class AppliedAnalysis:
    """A skill file with its corrections applied, and the skills that must retrain."""

    doc: SkillFileDoc
    corrections: tuple[SpecCorrection, ...]
    affected: tuple[str, ...]  # skills whose plan or plan specs changed, in file order

    def diff(self) -> str:
        return "\n".join(c.diff() for c in self.corrections)


def proposed_corrections(specs: Sequence[SkillSpec], analyses: Sequence[AnalysisRecord]) -> tuple[SpecCorrection, ...]:
    """Every consistent correction the analyses propose for one of ``specs`` that still differs from it.

    Several analyses may check the same skill (it is on many plans): the one with the most
    completions of it speaks for it.
    """
    current = {s.name: s for s in specs}
    best: dict[str, SpecCorrection] = {}
    for record in analyses:
        if record.status is not AnalysisStatus.ANALYSED:
            continue
        for check in record.spec_checks:
            if check.corrected is None or check.skill not in current:
                continue
            before = current[check.skill]
            after = _keep_file_fields(before, parse_skill(dict(check.corrected)))
            if after == before:
                continue
            candidate = SpecCorrection(check.skill, before.to_dict(), after.to_dict(), record.run_id,
                                       check.completions)
            if check.skill not in best or candidate.completions > best[check.skill].completions:
                best[check.skill] = candidate
    order = [s.name for s in specs]
    return tuple(sorted(best.values(), key=lambda c: order.index(c.skill)))


def corrected(before: SkillSpec, correction: SpecCorrection) -> SkillSpec:
    """``before`` with the correction's requires/consumes/gains."""
    return _keep_file_fields(before, parse_skill(dict(correction.after)))


def _keep_file_fields(before: SkillSpec, after: SkillSpec) -> SkillSpec:
    """Only requires/consumes/gains come from the analysis; the file keeps its train:, description, ..."""
    return dataclasses.replace(before, requires=after.requires, consumes=after.consumes, gains=after.gains)


def apply_corrections(doc: SkillFileDoc, corrections: Sequence[SpecCorrection]) -> AppliedAnalysis:
    """``doc`` with ``corrections`` applied (validated as a whole) and the skills that must retrain."""
    fixed = {c.skill: dict(c.after) for c in corrections}
    data = doc.to_data()
    data["skills"] = [fixed.get(s["name"], s) for s in data["skills"]]
    new = parse_skill_doc(data, source=f"{doc.source} (with analysis corrections)")
    new = dataclasses.replace(new, source=doc.source)
    return AppliedAnalysis(new, tuple(corrections), affected_skills(doc.specs, new.specs))


def affected_skills(old: Sequence[SkillSpec], new: Sequence[SkillSpec]) -> tuple[str, ...]:
    """Skills of ``new`` whose execution plan, or the spec of a skill on it, differs from ``old``'s."""
    before, after = {s.name: s for s in old}, {s.name: s for s in new}
    out = []
    for spec in new:
        try:
            plan_old = (execution_plan(list(old), spec.name, file_plan_order(before[spec.name]))
                        if spec.name in before else None)
        except Exception:  # noqa: BLE001 - an old spec set that could not plan it: the new one differs
            plan_old = None
        plan_new = execution_plan(list(new), spec.name, file_plan_order(spec))
        changed = plan_old != plan_new or any(before.get(step.skill) != after.get(step.skill) for step in plan_new)
        if changed:
            out.append(spec.name)
    return tuple(out)
