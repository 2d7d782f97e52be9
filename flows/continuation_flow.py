"""``continue-weakest``: train the least successful skills of a store a little further.

Meant to run on a schedule (nightly, see prefect.yaml).  It reads the store only — the skills'
specs were saved there by earlier runs — and sends the chosen skills through the same
setup → train → merge path as a continuation, so the frame-count rule decides what is kept.
Each skill continues in the environment (and with the env options) its last run trained in.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flowrl_core.defaults import DEFAULT_PROFILE, DEFAULT_STORE
from flowrl_core.lifecycle.prepare import Launcher
from flowrl_core.plugins import load_plugins
from flowrl_core.lifecycle.job import last_completed_job
from flowrl_core.reporting.status import summarize_store
from flowrl_core.store.objects import Store
from flows.graph_flow import GraphRunInternals, train_skill_graph


def weakest(store: Store, count: int) -> list[str]:
    """Trained skills, lowest success first: the latest *evaluated* success on fresh episodes where
    there is one (what a skill really does), else its last training update's; never-measured first."""
    rows = []
    for s in summarize_store(store).skills:
        if not s.completed_runs:
            continue
        rate = s.evaluated_success if s.evaluated_success is not None else s.success_rate
        rows.append((rate if rate is not None else -1.0, s.name))
    return [name for _, name in sorted(rows)[:count]]


@flow(name="continue-weakest", log_prints=True)
def continue_weakest(
    store: str = DEFAULT_STORE,
    count: int = 2,
    frames: int = 100_000,
    profile: str = DEFAULT_PROFILE,
    launcher: Launcher = Launcher.LOCAL,
    slots: int = 1,
    storage_options: dict[str, Any] | None = None,
) -> Any:
    load_plugins()
    logger = get_run_logger()
    st = Store(store, storage_options=storage_options, create=False)
    chosen = weakest(st, count)
    if not chosen:
        logger.info("no trained skills in %s yet: nothing to continue", st.url)
        return {"continued": []}
    groups: dict[tuple[str, str], list[str]] = {}
    envs: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for name in chosen:
        job = last_completed_job(st, name)
        env, options = (job.env, dict(job.env_options)) if job else (None, {})
        key = (str(env), repr(sorted(options.items())))
        groups.setdefault(key, []).append(name)
        envs[key] = (env, options)
    skills = {"skills": [st.load_skill(n).to_dict() for n in st.skill_names()]}
    states = []
    for key, names in groups.items():
        env, options = envs[key]
        logger.info("continuing %s by %d frames each in %s %s", ", ".join(names), frames, env, options or "")
        states.append(train_skill_graph(store=store, env=env, env_options=options, profile=profile,
                                        overrides={"total_timesteps": frames}, only=names, launcher=launcher,
                                        slots=slots, storage_options=storage_options, return_state=True,
                                        internal=GraphRunInternals(skills=skills, continuation=True)))
    failed = [s for s in states if not s.is_completed()]
    return failed[0] if failed else states[-1]
