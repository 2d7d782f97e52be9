"""Failure analysis: where a skill's episodes end when it is below its success target.

Why one sentence at the end: "Collect_Iron failed" says nothing; "87 % of episodes never finish
step 4 (Collect_Stone×1) within the budget" says which prior or which expert to look at.  The
numbers behind it (reach per plan step, how failed episodes end, their last actions) are kept
beside it for the report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from flowrl_core.analysis.records import FailureAnalysis, StepReach
from flowrl_core.evaluation.records import EndReason, EpisodeTrace, death_cause_counts

TOP_ACTIONS = 3
TOP_CAUSES = 2
_HOW = {EndReason.BUDGET: "within the budget", EndReason.DEATH: "before the agent dies",
        EndReason.ENV_END: "before the env ends the episode"}


def step_reach(traces: Sequence[EpisodeTrace], plan: Sequence[tuple[str, int]]) -> tuple[StepReach, ...]:
    n = len(traces)
    out = []
    for j, (skill, count) in enumerate(plan):
        reached = sum(1 for t in traces if len(t.step_traces) > j)
        done = sum(1 for t in traces if len(t.step_traces) > j and t.step_traces[j].completed)
        stalled = sum(1 for t in traces if not t.success and t.stalled_step == j)
        out.append(StepReach(j, skill, int(count), reached / n, done / n, stalled / n))
    return tuple(out)


def analyse_failures(traces: Sequence[EpisodeTrace], plan: Sequence[tuple[str, int]], *,
                     target: float) -> FailureAnalysis | None:
    """The failure analysis of ``traces`` (the trained policy's episodes); None when success >= ``target``."""
    n = len(traces)
    if n == 0:
        raise ValueError("no episodes to analyse")
    rate = sum(1 for t in traces if t.success) / n
    if rate >= target:
        return None
    steps = step_reach(traces, plan)
    failed = [t for t in traces if not t.success]
    stall = max(steps, key=lambda s: (s.stalled, -s.index))
    ends = {r.value: sum(1 for t in failed if t.end is r) / len(failed) for r in EndReason if r is not EndReason.SUCCESS}
    actions = Counter(a for t in failed for a in t.last_actions)
    total = sum(actions.values()) or 1
    top = tuple((a, c / total) for a, c in actions.most_common(TOP_ACTIONS))
    in_stall = [t for t in failed if t.stalled_step == stall.index]
    how = Counter(t.end for t in in_stall).most_common(1)[0][0] if in_stall else EndReason.BUDGET
    summary = (f"{stall.stalled:.0%} of episodes never finish {stall.label()} {_HOW[how]}"
               .replace("%", " %", 1))
    died = death_cause_counts(in_stall)
    if how is EndReason.DEATH and died:
        total_died = sum(died.values())
        summary += " (" + ", ".join(f"{cause} {c / total_died:.0%}".replace("%", " %")
                                    for cause, c in died.most_common(TOP_CAUSES)) + ")"
    if stall.index > 0:
        summary += f" ({steps[stall.index].reached:.0%} reach it)".replace("%", " %", 1)
    causes = death_cause_counts(failed)
    return FailureAnalysis(rate, float(target), steps, stall.index, ends, top, summary,
                           {k: c / len(failed) for k, c in causes.most_common()})
