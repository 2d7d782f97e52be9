"""Which skills the nightly continuation trains further: the weakest by what they do on fresh episodes.

A skill's latest recorded evaluation is only worth ranking by while it describes the experts the
store serves. A dependant's run retrains the plan's experts after the evaluation was recorded
(on the Craftax tree, Collect_Iron recorded 0.12 and its current experts evaluate 0.54), so a
stale or missing figure is measured again first (:func:`to_reevaluate`), and the training
success of the last update is the fallback only where no evaluation can be had.
"""

from __future__ import annotations

from flowrl_core.reporting.status import SkillState, StoreStatus


def _continuable(skill: SkillState) -> bool:
    return skill.completed_runs > 0


def to_reevaluate(status: StoreStatus) -> list[str]:
    """Trained skills whose latest evaluation is missing or names experts the store no longer serves."""
    return [s.name for s in status.skills
            if _continuable(s) and (s.evaluated_success is None or s.evaluation_stale)]


def weakest(status: StoreStatus, count: int) -> list[str]:
    """Trained skills, lowest success first: the latest evaluated success on fresh episodes where
    there is one, else the last training update's; never-measured first."""
    rows = []
    for s in status.skills:
        if not _continuable(s):
            continue
        rate = s.evaluated_success if s.evaluated_success is not None else s.success_rate
        rows.append((rate if rate is not None else -1.0, s.name))
    return [name for _, name in sorted(rows)[:count]]
