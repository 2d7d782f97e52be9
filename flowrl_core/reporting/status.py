"""What ``flowrl status`` shows: every skill's expert, current version, frames and runs."""

from __future__ import annotations

from typing import Any

from flowrl_core.store.experts import current_version
from flowrl_core.store.objects import Store
from flowrl_core.store.runs import skill_runs


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
        skills[name] = {
            "index": index,
            "frames": version.frames if version else 0,
            "version": version.version_id if version else None,
            "trained_frames": sum(int(r.get("frames", 0)) for r in completed),
            "runs": len(runs), "completed_runs": len(completed),
            "unfinished_runs": sum(1 for r in runs.values() if r.get("status") == "started"),
            "success_rate": last.get("success_rate") if last else None,
        }
    return {"store": store.url, "skills": skills}
