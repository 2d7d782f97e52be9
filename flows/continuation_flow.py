"""``continue-weakest``: train the least successful skills of a store a little further.

Meant to run on a schedule (nightly, see prefect.yaml).  It reads the store only — the
skills' specs were saved there by earlier runs — and sends each chosen skill through the same
setup → train → merge path as a continuation, so the frame-count rule decides what is kept.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flowrl_core.defaults import DEFAULT_STORE
from flowrl_core.reporting.status import summarize_store
from flowrl_core.store.objects import Store
from flows.graph_flow import train_skill_graph


def weakest(summary: dict[str, Any], count: int) -> list[str]:
    """Skills with a known success rate, lowest first (never-evaluated skills first of all)."""
    rows = [(s["success_rate"] if s["success_rate"] is not None else -1.0, name)
            for name, s in summary["skills"].items() if s["completed_runs"]]
    return [name for _, name in sorted(rows)[:count]]


@flow(name="continue-weakest", log_prints=True)
def continue_weakest(
    store: str = DEFAULT_STORE,
    count: int = 2,
    frames: int = 100_000,
    env: str = "gridworld",
    profile: str = "cpu",
    launcher: str = "local",
    slots: int = 1,
    storage_options: dict[str, Any] | None = None,
) -> Any:
    logger = get_run_logger()
    st = Store(store, storage_options=storage_options, create=False)
    chosen = weakest(summarize_store(st), count)
    if not chosen:
        logger.info("no trained skills in %s yet: nothing to continue", st.url)
        return {"continued": []}
    logger.info("continuing %s by %d frames each", ", ".join(chosen), frames)
    skills = {"skills": [st.load_skill(n).to_dict() for n in st.skill_names()]}
    return train_skill_graph(skills=skills, store=store, env=env, profile=profile,
                             overrides={"total_timesteps": frames}, only=chosen, continuation=True,
                             launcher=launcher, slots=slots, storage_options=storage_options)
