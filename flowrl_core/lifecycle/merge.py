"""Merge: propose every expert a run trained to the store (the frame-count rule decides).

Idempotent, so a merge retried after a failed write changes nothing; it records the run as
completed under ``skills/<name>/runs/`` last.
"""

from __future__ import annotations

from flowrl_core.errors import FlowRLError
from flowrl_core.lifecycle.job import expert_parts, load_job, read_result
from flowrl_core.store.experts import Decision, Proposal, merge_proposals
from flowrl_core.store.objects import Store, now_iso
from flowrl_core.store.params import params_from_bytes


def merge_run(store: Store, run_id: str) -> list[Decision]:
    """Propose every expert the run trained; idempotent, so a retried merge changes nothing."""
    job = load_job(store, run_id)
    run = store.run(run_id)
    result = read_result(store, run_id)
    if result is None:
        raise FlowRLError(f"skill {job.skill!r}: run {run_id} has no result.json yet; train it before merging")
    trained = int(result["frames"])
    steps = {int(k): int(v) for k, v in result.get("expert_steps_global", {}).items()}
    proposals = []
    for g, skill in job.remap.skill_of_global.items():
        parts = expert_parts(run, g)
        params = params_from_bytes(store.read_bytes(parts), store.path(*parts))
        proposals.append(Proposal(index=g, skill=skill, frames=job.frames_at_setup[g] + trained, params=params,
                                  base_version=job.base_versions.get(g), steps_acted=steps.get(g)))
    decisions = merge_proposals(store, run_id, proposals)
    run.write_doc("merge.json", [d.to_dict() for d in decisions])
    store.write_json(("skills", job.skill, "runs", f"{run_id}.json"),
                     {"run_id": run_id, "status": "completed", "started_at": job.created_at,
                      "completed_at": now_iso(), "frames": trained, "continuation": job.continuation,
                      "early_stopped": bool(result.get("early_stopped")),
                      "success_rate": result.get("metrics", {}).get("success_rate"),
                      "decisions": [d.to_dict() for d in decisions]})
    return decisions
