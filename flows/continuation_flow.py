"""``continue-weakest``: train the least successful skills of a store a little further.

Meant to run on a schedule (nightly, see prefect.yaml).  It reads the store only — the skills'
specs were saved there by earlier runs — measures again (an ``evaluate`` task each, in a child
process) the skills whose recorded evaluation is missing or stale, ranks by evaluated success
(:mod:`flowrl_core.lifecycle.continuation`), and sends the chosen skills through the same
setup → train → merge path as a continuation, so the frame-count rule decides what is kept.
Each skill continues in the environment (and with the env options and network shape) its last run
trained in.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flowrl_core.defaults import DEFAULT_PROFILE, DEFAULT_STORE
from flowrl_core.lifecycle.context import StoreRef
from flowrl_core.lifecycle.continuation import to_reevaluate, weakest
from flowrl_core.lifecycle.prepare import Launcher
from flowrl_core.plugins import load_plugins
from flowrl_core.lifecycle.job import continuation_network, last_completed_job
from flowrl_core.reporting.status import summarize_store
from flowrl_core.store.objects import Store
from flows.graph_flow import GraphRunInternals, train_skill_graph
from tasks.evaluation import evaluate_task


@flow(name="continue-weakest", log_prints=True)
def continue_weakest(
    store: str = DEFAULT_STORE,
    count: int = 2,
    frames: int = 100_000,
    eval_episodes: int = 64,
    profile: str = DEFAULT_PROFILE,
    launcher: Launcher = Launcher.LOCAL,
    slots: int = 1,
    storage_options: dict[str, Any] | None = None,
) -> Any:
    load_plugins()
    logger = get_run_logger()
    st = Store(store, storage_options=storage_options, create=False)
    status = summarize_store(st)
    stale = to_reevaluate(status) if eval_episodes > 0 else []
    if stale:
        logger.info("measuring %s again on %d fresh episodes: %s", ", ".join(stale), eval_episodes,
                    "their evaluations are missing or name experts the store has replaced since")
        ref = StoreRef(st.url, dict(storage_options or {}))
        for name in stale:  # one at a time: each child process takes the device
            state = evaluate_task(name, ref, eval_episodes, return_state=True)
            if not state.is_completed():
                logger.warning("%s: ranked by its older figure (%s)", name, state.message or state.name)
        status = summarize_store(st)
    chosen = weakest(status, count)
    if not chosen:
        logger.info("no trained skills in %s yet: nothing to continue", st.url)
        return {"continued": []}
    groups: dict[tuple[str, str, str], list[str]] = {}
    envs: dict[tuple[str, str, str], tuple[str, dict[str, Any], dict[str, Any]]] = {}
    for name in chosen:
        job = last_completed_job(st, name)
        env, options = (job.env, dict(job.env_options)) if job else (None, {})
        network = continuation_network(st, name, {})  # the shapes its stored experts have
        key = (str(env), repr(sorted(options.items())), repr(sorted(network.items())))
        groups.setdefault(key, []).append(name)
        envs[key] = (env, options, network)
    skills = {"skills": [st.load_skill(n).to_dict() for n in st.skill_names()]}
    states = []
    for key, names in groups.items():
        env, options, network = envs[key]
        logger.info("continuing %s by %d frames each in %s %s", ", ".join(names), frames, env, options or "")
        states.append(train_skill_graph(store=store, env=env, env_options=options, profile=profile,
                                        overrides={**network, "total_timesteps": frames}, only=names, launcher=launcher,
                                        slots=slots, storage_options=storage_options, return_state=True,
                                        internal=GraphRunInternals(skills=skills, continuation=True)))
    failed = [s for s in states if not s.is_completed()]
    return failed[0] if failed else states[-1]
