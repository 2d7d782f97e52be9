"""Merge: propose every expert a run trained to the store (the frame-count rule decides).

Idempotent, so a merge retried after a failed write changes nothing; it records the run as
completed (its :class:`~flowrl_core.store.runs.RunRecord`) last.
"""

from __future__ import annotations

from flowrl_core.errors import FlowRLError
from flowrl_core.lifecycle.job import expert_parts, load_job, read_result
from flowrl_core.store.experts import Decision, Proposal, merge_proposals
from flowrl_core.store.objects import Store, now_iso
from flowrl_core.store.params import params_from_bytes
from flowrl_core.store.runs import RunRecord, RunState, write_run_record


def merge_run(store: Store, run_id: str) -> list[Decision]:
    """Propose every expert the run trained (not the prerequisites it kept frozen); idempotent,
    so a retried merge changes nothing."""
    job = load_job(store, run_id)
    run = store.run(run_id)
    result = read_result(store, run_id)
    if result is None:
        raise FlowRLError(f"skill {job.skill!r}: run {run_id} has no result.json yet; train it before merging")
    proposals = []
    for g in job.trained_experts:
        skill = job.remap.skill_of_global[g]
        parts = expert_parts(run, g)
        params = params_from_bytes(store.read_bytes(parts), store.path(*parts))
        proposals.append(Proposal(index=g, skill=skill, frames=job.frames_at_setup[g] + result.frames, params=params,
                                  base_version=job.base_versions.get(g), steps_acted=result.expert_steps_global.get(g)))
    decisions = merge_proposals(store, run_id, proposals)
    run.write_doc("merge.json", [d.to_dict() for d in decisions])
    write_run_record(store, RunRecord(
        run_id=run_id, skill=job.skill, state=RunState.COMPLETED, started_at=job.created_at, job_hash=job.identity(),
        continuation=job.continuation, ended_at=now_iso(), frames=result.frames, early_stopped=result.early_stopped,
        success_rate=result.success_rate, decisions=tuple(decisions)))
    return decisions
