"""``grow-skills``: a proposer grows the skill library while skills train.

Loop: ask the proposer for the next skill given what is learned, in flight and failed;
validate it against the library; submit it at once as a skill task whose upstream futures are
its providers (learned ones need no wait, in-flight ones do).  If it depends on skills still
training — the frontier — generation blocks until those finish, so the proposer's next answer
sees their results.  Its execution plan is built at its setup, i.e. after its providers
finished, from the library as it is then (a plan made while a provider trained never leaves that
provider out).  The flow stops at ``max_skills`` or when the proposer is done, and it never
returns while a skill is still training.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.futures import wait
from prefect.states import Completed, Failed

from flowrl_core.defaults import DEFAULT_STORE
from flowrl_core.errors import FlowRLError
from flowrl_core.grow.library import (
    Done,
    LibraryView,
    NothingNow,
    Propose,
    frontier,
    validate_against_library,
)
from flowrl_core.grow.registry import load_proposer
from flowrl_core.scheduling.slots import PrioritySlots
from flowrl_core.store.objects import Store
from flowrl_core.store.runs import skill_runs
from flowrl_core.training.config import resolve_config
from tasks.skill import GraphRun, skill_task


def learned_in_store(store: Store) -> dict[str, Any]:
    """Skills with a completed run: the library a resumed generation starts from."""
    out = {}
    for name in store.skill_names():
        if any(r.get("status") == "completed" for r in skill_runs(store, name).values()):
            out[name] = store.load_skill(name)
    return out


@flow(name="grow-skills", log_prints=True)
def grow_skills(
    proposer: str = "curriculum",
    proposer_args: dict[str, Any] | None = None,
    store: str = DEFAULT_STORE,
    env: str = "gridworld",
    profile: str = "cpu",
    overrides: dict[str, Any] | None = None,
    slots: int = 1,
    retries: int = 2,
    max_skills: int = 20,
    idle_patience_s: float = 30.0,
    storage_options: dict[str, Any] | None = None,
    env_options: dict[str, Any] | None = None,
) -> Any:
    """``proposer``: "file", "curriculum", "llm" or "pkg.module:factory"; ``proposer_args`` its
    keyword arguments (e.g. {"kb": "gridworld", "target": "Collect_Stone"})."""
    logger = get_run_logger()
    from flowrl_core.envs import make_env_and_params

    make_env_and_params(env, env_options)
    resolve_config(profile, overrides)  # bad settings fail before anything is proposed
    prop = load_proposer(proposer, **(proposer_args or {}))
    st = Store(store, storage_options=storage_options)
    learned = learned_in_store(st)
    ctx = GraphRun(store_url=st.url, storage_options=dict(storage_options or {}), env=env, specs=list(learned.values()),
                   configs={}, slots=PrioritySlots.cpu(max(1, int(slots))), priority={}, retries=int(retries),
                   env_options=env_options)
    futures: dict[str, Any] = {}
    upstream: dict[str, list[str]] = {}
    in_flight: dict[str, Any] = {}
    failed: dict[str, str] = {}
    results: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    proposed = 0
    idle_since: float | None = None
    stop_reason = ""

    def harvest(block_on: list[str] | None = None, timeout: float | None = 0.0) -> None:
        targets = [futures[n] for n in (block_on if block_on is not None else list(in_flight)) if n in in_flight]
        if targets:
            wait(targets, timeout=timeout)
        for name in list(in_flight):
            fut = futures[name]
            if not fut._wrapped_future.done():  # noqa: SLF001 - non-blocking check on the thread future
                continue
            fut.wait()
            state = fut.state
            spec = in_flight.pop(name)
            if state.is_completed():
                row = fut.result()
                learned[name] = spec
                results[name] = {"success_rate": row.get("success_rate"), "frames": row.get("frames", 0)}
                rows.append({"skill": name, "status": row["status"], "frames": row.get("frames"),
                             "success_rate": row.get("success_rate"), "error": ""})
            else:
                skipped = not (state.is_failed() or state.is_crashed())  # NotReady: an upstream failed
                if skipped:
                    reason = f"upstream failed: {', '.join(n for n in upstream[name] if n in failed) or 'unknown'}"
                else:
                    try:
                        fut.result(raise_on_failure=True)
                        reason = state.message or state.name
                    except Exception as exc:  # noqa: BLE001 - the skill's own error, for the summary
                        reason = f"{type(exc).__name__}: {exc}"
                failed[name] = reason
                rows.append({"skill": name, "status": "skipped" if skipped else "failed", "frames": None,
                             "success_rate": None, "error": reason})
                logger.warning("%s failed: %s", name, reason)

    while True:
        harvest()
        view = LibraryView(learned=dict(learned), in_flight=dict(in_flight), failed=dict(failed), results=dict(results))
        decision = Done(f"max_skills={max_skills} reached") if proposed >= max_skills else prop.propose(view)
        if isinstance(decision, Done):
            stop_reason = decision.reason
            break
        if isinstance(decision, NothingNow):
            if in_flight:
                harvest(timeout=2.0)
                idle_since = None
                continue
            idle_since = idle_since or time.monotonic()
            waited = time.monotonic() - idle_since
            if waited > idle_patience_s:
                stop_reason = f"proposer had nothing to propose for {idle_patience_s:.0f}s: {decision.reason}"
                break
            time.sleep(min(10.0, 1.0 + waited / 2))  # back off: an LLM proposer pays per question
            continue
        assert isinstance(decision, Propose)
        idle_since = None
        spec = decision.spec
        proposed += 1
        try:
            validate_against_library(spec, view)
            config = resolve_config(profile, overrides, spec.train, skill=spec.name)
        except FlowRLError as exc:
            failed[spec.name] = f"rejected: {exc}"
            rows.append({"skill": spec.name, "status": "rejected", "frames": None, "success_rate": None,
                         "error": str(exc)})
            logger.warning("proposal %s rejected: %s", spec.name, exc)
            continue
        st.assign_index(spec.name)
        st.save_skill(spec)
        ctx.add_skill(spec, config)
        blocking = sorted(frontier(spec, view))  # every in-flight skill its plan runs through
        upstream[spec.name] = blocking
        futures[spec.name] = skill_task.submit(spec.name, ctx, wait_for=[futures[n] for n in blocking])
        in_flight[spec.name] = spec
        logger.info("proposed %s (%d/%d)%s", spec.name, proposed, max_skills,
                    f"; frontier {blocking}: generation waits for them" if blocking else "")
        if blocking:
            while any(n in in_flight for n in blocking):
                harvest(block_on=blocking, timeout=None)

    while in_flight:  # never return while a skill is still training
        harvest(timeout=None)
    create_table_artifact(key="grow-skills-results", table=rows, description=f"skills grown into {st.url}")
    summary = {"store": st.url, "skills": rows, "learned": sorted(learned), "failed": failed, "stop_reason": stop_reason,
               "proposed": proposed}
    logger.info("stopped: %s; learned %s", stop_reason, ", ".join(sorted(learned)))
    trained_failures = {k: v for k, v in failed.items() if not v.startswith("rejected")}
    if trained_failures:
        return Failed(message=f"{len(trained_failures)} skill(s) failed: " + "; ".join(
            f"{k}: {v}" for k, v in trained_failures.items()), data=summary)
    return Completed(message=f"{stop_reason}; learned {len(learned)} skill(s)", data=summary)
