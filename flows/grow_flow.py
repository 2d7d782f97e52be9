"""``grow-skills``: a proposer grows the skill library while skills train.

Loop: ask the proposer for the next skill given what is learned, in flight and failed;
validate it against the library; submit it at once as a skill task whose upstream futures are
its providers (learned ones need no wait, in-flight ones do).  If it depends on skills still
training — the frontier — generation blocks until those finish, so the proposer's next answer
sees their results.  Its execution plan is built at its setup, i.e. after its providers
finished, from the library as it is then (a plan made while a provider trained never leaves that
provider out).  The flow stops at ``max_skills`` or when the proposer is done, and it never
returns while a skill is still training.  Proposers see every finished skill's analysis and may
answer :class:`~flowrl_core.grow.library.Revise` for a learned skill (see ``_revise``); once a
proposer is done and the last trainings finished, it is asked again for as long as it revises.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.futures import PrefectFuture, wait
from prefect.states import Completed, Failed

from flowrl_core.defaults import DEFAULT_ENV, DEFAULT_PROFILE, DEFAULT_STORE
from flowrl_core.errors import FlowRLError
from flowrl_core.analysis.apply import affected_skills
from flowrl_core.analysis.run import latest_analyses, read_analysis
from flowrl_core.grow.library import (
    Done,
    LibraryView,
    NothingNow,
    Propose,
    Revise,
    frontier,
    validate_against_library,
    validate_revision,
)
from flowrl_core.grow.registry import load_proposer
from flowrl_core.lifecycle.context import (
    LaunchSettings,
    Library,
    RunContext,
    StoreRef,
    TrainingSetup,
)
from flowrl_core.lifecycle.outcomes import GrowSummary, SkillOutcome, SkillStatus
from flowrl_core.plugins import load_plugins
from flowrl_core.scheduling.slots import PrioritySlots
from flowrl_core.skills.graph import build_graph, training_order
from flowrl_core.skills.spec import SkillSpec
from flowrl_core.store import leases
from flowrl_core.store.objects import Store
from flowrl_core.store.runs import completed_runs
from flowrl_core.training.config import resolve_config
from tasks.skill import outcome_of, skill_task


def learned_in_store(store: Store) -> dict[str, SkillSpec]:
    """Skills with a completed run: the library a resumed generation starts from."""
    return {name: store.load_skill(name) for name in store.skill_names() if completed_runs(store, name)}


class _Generation:
    """The skills this flow run submitted and what became of them (the flow's loop state)."""

    def __init__(self, learned: dict[str, SkillSpec], store: Store):
        self.store = store
        self.learned = dict(learned)
        self.analyses = latest_analyses(store, list(learned))  # what the proposer learns from
        self.revised: list[str] = []
        self.futures: dict[str, PrefectFuture] = {}
        self.upstream: dict[str, list[str]] = {}
        self.in_flight: dict[str, SkillSpec] = {}
        self.failed: dict[str, str] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.outcomes: list[SkillOutcome] = []

    def view(self) -> LibraryView:
        return LibraryView(learned=dict(self.learned), in_flight=dict(self.in_flight), failed=dict(self.failed),
                           results=dict(self.results), analyses=dict(self.analyses), revised=tuple(self.revised))

    def finished(self, name: str, outcome: SkillOutcome) -> None:
        """A skill's training ended: its result and (when it trained) its run's analysis join the view."""
        if outcome.status.ok:
            self.results[name] = {"success_rate": outcome.success_rate, "frames": outcome.frames or 0}
            if outcome.run_id:
                analysis = read_analysis(self.store, outcome.run_id)
                if analysis is not None:
                    self.analyses[name] = analysis

    def harvest(self, block_on: list[str] | None = None, timeout: float | None = 0.0) -> list[SkillOutcome]:
        """Collect finished skills; waits up to ``timeout`` for ``block_on`` (default: all in flight)."""
        names = [n for n in (block_on if block_on is not None else list(self.in_flight)) if n in self.in_flight]
        if names and timeout != 0.0:
            wait([self.futures[n] for n in names], timeout=timeout)
        done, _ = wait([self.futures[n] for n in self.in_flight], timeout=0.01) if self.in_flight else (set(), set())
        finished = []
        for name in [n for n in list(self.in_flight) if self.futures[n] in done]:
            fut = self.futures[name]
            fut.wait()
            spec = self.in_flight.pop(name)
            roots = ", ".join(n for n in self.upstream[name] if n in self.failed) or "unknown"
            outcome = outcome_of(name, fut, skipped=lambda n=name, r=roots: SkillOutcome(
                n, SkillStatus.SKIPPED, error=f"upstream failed: {r}"))
            if outcome.status.ok:
                self.learned[name] = spec
                self.finished(name, outcome)
            else:
                self.failed[name] = outcome.error
            self.outcomes.append(outcome)
            finished.append(outcome)
        return finished


def _revise(decision: Revise, gen: _Generation, ctx: RunContext, st: Store, profile: str,
            overrides: dict[str, Any] | None, logger: Any) -> None:
    """Validate a revised spec like a proposal, store it as a new spec version, and retrain every
    learned skill whose plan it changes (as new versions: the frame-count rule decides what stays)."""
    import dataclasses

    spec, view = decision.spec, gen.view()
    try:
        while gen.in_flight:  # the skills in flight plan with the old spec: let them finish first
            gen.harvest(timeout=None)
        view = gen.view()
        validate_revision(spec, view)
        config = resolve_config(profile, overrides, spec.train, skill=spec.name)
    except FlowRLError as exc:
        gen.revised.append(spec.name)  # asked once; a proposer repeating itself must not loop
        gen.outcomes.append(SkillOutcome(spec.name, SkillStatus.REJECTED, error=f"revision rejected: {exc}"))
        logger.warning("revision of %s rejected: %s", spec.name, exc)
        return
    old_library = view.library()
    new_library = [spec if s.name == spec.name else s for s in old_library]
    affected = [n for n in training_order(build_graph(new_library))
                if n in set(affected_skills(old_library, new_library)) and n in gen.learned]
    logger.info("revised %s (%s): %s → %s; retraining %s", spec.name, decision.reason,
                gen.learned[spec.name].to_dict(), spec.to_dict(), ", ".join(affected) or "nothing")
    st.save_skill(spec)
    ctx.library.replace(spec, config)
    gen.learned[spec.name] = spec
    gen.revised.append(spec.name)
    again = RunContext(store=ctx.store, training=dataclasses.replace(ctx.training, continuation=True),
                       library=ctx.library, slots=ctx.slots, launch=ctx.launch, owner=ctx.owner)
    for name in affected:
        other = gen.learned[name]
        again.library.set_config(name, resolve_config(profile, overrides, other.train, skill=name))
        future = skill_task.submit(name, again)
        future.wait()
        outcome = outcome_of(name, future, skipped=lambda n=name: SkillOutcome(n, SkillStatus.SKIPPED))
        gen.outcomes.append(outcome)
        gen.finished(name, outcome)
        if not outcome.status.ok:
            logger.warning("retraining %s after the revision failed: %s", name, outcome.error)


@flow(name="grow-skills", log_prints=True)
def grow_skills(
    proposer: str = "curriculum",
    proposer_args: dict[str, Any] | None = None,
    store: str = DEFAULT_STORE,
    env: str = DEFAULT_ENV,
    profile: str = DEFAULT_PROFILE,
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
    load_plugins()
    logger = get_run_logger()
    from flowrl_core.envs import make_env_and_params

    make_env_and_params(env, env_options)
    resolve_config(profile, overrides)  # bad settings fail before anything is proposed
    prop = load_proposer(proposer, **(proposer_args or {}))
    st = Store(store, storage_options=storage_options)
    gen = _Generation(learned_in_store(st), st)
    ctx = RunContext(store=StoreRef(st.url, dict(storage_options or {})),
                     training=TrainingSetup(env, dict(env_options or {})),
                     library=Library(list(gen.learned.values()), {}), slots=PrioritySlots.cpu(max(1, int(slots))),
                     launch=LaunchSettings(retries=int(retries)), owner=leases.new_owner())
    proposed, idle_since, stop_reason, proposer_done = 0, None, "", False
    while True:
        for outcome in gen.harvest():
            if outcome.status is not SkillStatus.TRAINED and outcome.status is not SkillStatus.ALREADY_DONE:
                logger.warning("%s failed: %s", outcome.skill, outcome.error)
        view = gen.view()
        decision = Done(f"max_skills={max_skills} reached") if proposed >= max_skills else prop.propose(view)
        if isinstance(decision, Done):
            stop_reason, proposer_done = decision.reason, proposed < max_skills
            break
        if isinstance(decision, NothingNow):
            if gen.in_flight:
                gen.harvest(timeout=2.0)
                idle_since = None
                continue
            idle_since = idle_since or time.monotonic()
            waited = time.monotonic() - idle_since
            if waited > idle_patience_s:
                stop_reason = f"proposer had nothing to propose for {idle_patience_s:.0f}s: {decision.reason}"
                break
            time.sleep(min(10.0, 1.0 + waited / 2))  # back off: an LLM proposer pays per question
            continue
        if isinstance(decision, Revise):
            idle_since = None
            proposed += 1
            _revise(decision, gen, ctx, st, profile, overrides, logger)
            continue
        assert isinstance(decision, Propose)
        idle_since = None
        spec = decision.spec
        proposed += 1
        try:
            validate_against_library(spec, view)
            config = resolve_config(profile, overrides, spec.train, skill=spec.name)
        except FlowRLError as exc:
            gen.failed[spec.name] = f"rejected: {exc}"
            gen.outcomes.append(SkillOutcome(spec.name, SkillStatus.REJECTED, error=str(exc)))
            logger.warning("proposal %s rejected: %s", spec.name, exc)
            continue
        st.assign_index(spec.name)
        st.save_skill(spec)
        blocking = sorted(frontier(spec, view))  # every in-flight skill its plan runs through
        ctx.library.add(spec, config, blocking)
        gen.upstream[spec.name] = blocking
        gen.futures[spec.name] = skill_task.submit(spec.name, ctx, wait_for=[gen.futures[n] for n in blocking])
        gen.in_flight[spec.name] = spec
        logger.info("proposed %s (%d/%d)%s", spec.name, proposed, max_skills,
                    f"; frontier {blocking}: generation waits for them" if blocking else "")
        while any(n in gen.in_flight for n in blocking):
            gen.harvest(block_on=blocking, timeout=None)

    while gen.in_flight:  # never return while a skill is still training
        gen.harvest(timeout=None)
    while proposer_done and proposed < max_skills:
        # the last skills' analyses arrived after the proposer was done proposing new skills: it
        # may still revise a learned one (the built-in proposers do when an analysis contradicts it)
        decision = prop.propose(gen.view())
        if not isinstance(decision, Revise):
            break
        proposed += 1
        _revise(decision, gen, ctx, st, profile, overrides, logger)
    rows = [{"skill": o.skill, "status": o.status.value, "frames": o.frames, "success_rate": o.success_rate,
             "error": o.error} for o in gen.outcomes]
    create_table_artifact(key="grow-skills-results", table=rows, description=f"skills grown into {st.url}")
    summary = GrowSummary(store=st.url, outcomes=tuple(gen.outcomes), learned=tuple(sorted(gen.learned)),
                          stop_reason=stop_reason, proposed=proposed)
    logger.info("stopped: %s; learned %s", stop_reason, ", ".join(sorted(gen.learned)))
    trained_failures = {k: v for k, v in gen.failed.items() if not v.startswith("rejected")}
    if trained_failures:
        return Failed(message=f"{len(trained_failures)} skill(s) failed: " + "; ".join(
            f"{k}: {v}" for k, v in trained_failures.items()), data=summary)
    return Completed(message=f"{stop_reason}; learned {len(gen.learned)} skill(s)", data=summary)
