"""What ``flowrl status`` shows: every skill's expert, current version, frames and runs."""

from __future__ import annotations

from typing import Any

from flowrl_core.store.experts import current_version
from flowrl_core.store.objects import Store
from flowrl_core.store.runs import skill_runs


STATUS_SCHEMA = "flowrl.status/1"


def skill_state(has_version: bool, unfinished_runs: int) -> str:
    """One word per skill: ``trained`` (the store holds a version of its expert), ``unfinished``
    (no version yet, but a run started: training now, or interrupted and resumable), ``untrained``."""
    if has_version:
        return "trained"
    return "unfinished" if unfinished_runs else "untrained"


def status_document(summary: dict[str, Any]) -> dict[str, Any]:
    """``flowrl status --json``: one object, skills as a list (README "Commands" has the schema)."""
    return {
        "schema": STATUS_SCHEMA, "store": summary["store"],
        "skills": [{
            "name": name, "expert": s["index"], "frames": s["frames"], "state": s["state"],
            "success_rate": s["success_rate"], "version": s["version"], "trained_frames": s["trained_frames"],
            "runs": s["runs"], "completed_runs": s["completed_runs"], "unfinished_runs": s["unfinished_runs"],
        } for name, s in summary["skills"].items()],
    }


def summarize_store(store: Store) -> dict[str, Any]:
    """What ``flowrl status`` prints: skills, their experts' current versions and their runs."""
    indices = store.expert_indices()
    skills = {}
    for name in sorted(set(store.skill_names()) | set(indices)):
        index = indices.get(name)
        version = current_version(store, index) if index is not None else None
        runs = skill_runs(store, name)
        completed = [r for r in runs.values() if r.get("status") == "completed"]
        last = max(completed, key=lambda r: r.get("completed_at", ""), default=None)
        unfinished = sum(1 for r in runs.values() if r.get("status") == "started")
        skills[name] = {
            "index": index,
            "state": skill_state(version is not None, unfinished),
            "frames": version.frames if version else 0,
            "version": version.version_id if version else None,
            "trained_frames": sum(int(r.get("frames", 0)) for r in completed),
            "runs": len(runs), "completed_runs": len(completed),
            "unfinished_runs": unfinished,
            "success_rate": last.get("success_rate") if last else None,
        }
    return {"store": store.url, "skills": skills}
