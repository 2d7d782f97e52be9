"""Analyse a trained run before its merge: evaluate its policy, check its specs, explain its failures.

What is rolled out, and why: the run's *own* trained experts (``runs/<id>/experts/*``) -- the
policy this run produced, whatever the frame-count rule later keeps -- composed along the run's
plan, with the store's current version for a plan skill the run has no expert file for.  The
same episodes are played by a uniform random policy under the same step budget, and the result
is recorded as an evaluation (so ``flowrl status`` shows trained vs random after every training).

Cheap by design: one jitted rollout of ``analysis_episodes`` (a ``train:`` setting, default 32;
0 turns the analysis off) episodes, run at the end of the trainer process
(:func:`flowrl_core.lifecycle.train.analyse_after_training`), where JAX and the device are warm;
the ``analyse`` task runs it in a child process only when that record is missing.  A run whose
trainer is not the PPO trainer has no policy to roll out and is skipped at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flowrl_core.analysis.failure import analyse_failures
from flowrl_core.analysis.records import AnalysisRecord, AnalysisStatus
from flowrl_core.analysis.spec_check import achievement_producers, check_spec, completions_of
from flowrl_core.errors import FlowRLError
from flowrl_core.lifecycle.job import DEFAULT_TRAINER, SkillJob, expert_parts, load_job
from flowrl_core.skills.spec import SkillSpec
from flowrl_core.store.objects import Store, now_iso

DEFAULT_ANALYSIS_EPISODES = 32
DEFAULT_SUCCESS_TARGET = 0.9  # below it a skill gets a failure analysis, unless its success_threshold says otherwise
ANALYSIS_DOC = "analysis.json"


class AnalysisError(FlowRLError):
    """A run that cannot be analysed (an expert missing, an env that cannot be built)."""


def analysis_episodes(job: SkillJob) -> int:
    value = job.config.get("analysis_episodes", DEFAULT_ANALYSIS_EPISODES)
    return DEFAULT_ANALYSIS_EPISODES if value is None else int(value)


def success_target(job: SkillJob) -> float:
    value = job.config.get("success_threshold")
    return float(value) if value is not None else DEFAULT_SUCCESS_TARGET


def skip_reason(job: SkillJob) -> str | None:
    """Why this run is not analysed (None: it is)."""
    if job.trainer != DEFAULT_TRAINER:
        return f"trainer {job.trainer} has no policy to analyse"
    if analysis_episodes(job) <= 0:
        return "analysis disabled (train: analysis_episodes: 0)"
    return None


def _run_policy(store: Store, job: SkillJob):
    """The run's composed policy and, per plan skill, where its expert came from."""
    from flowrl_core.evaluation.policies import composed_policy
    from flowrl_core.store.experts import current_version, load_params, run_reference, version_by_id
    from flowrl_core.store.params import params_from_bytes

    run = store.run(job.run_id)
    global_of = {skill: g for g, skill in job.remap.skill_of_global.items()}
    indices = store.expert_indices()
    experts: dict[str, Any] = {}
    versions: dict[str, str] = {}
    for name in dict.fromkeys(step.skill for step in job.plan):
        g = global_of.get(name, indices.get(name))
        parts = expert_parts(run, g) if g in job.trained_experts else None
        if parts is not None and store.exists(parts):
            experts[name] = params_from_bytes(store.read_bytes(parts), store.path(*parts))
            versions[name] = run_reference(job.run_id)
            continue
        # A prerequisite the run kept frozen acted with the version setup pinned: name that one,
        # so the evaluation stays current after a merge that leaves it in place.
        pinned = job.base_versions.get(g) if g is not None else None
        version = version_by_id(store, pinned) if pinned else current_version(store, g) if g is not None else None
        if version is None:
            raise AnalysisError(f"skill {job.skill!r}: run {job.run_id} has no expert for plan step {name!r} "
                                f"({store.path(*run.parts('experts'))}) and the store has no version of it; "
                                f"train {name!r} first (`flowrl run SKILLS.yaml --only {name}`)")
        experts[name] = load_params(store, version)
        versions[name] = version.version_id
    return composed_policy(job.plan, experts), versions


def _library(store: Store, job: SkillJob) -> list[SkillSpec]:
    from flowrl_core.skills.parsing import parse_skill

    specs = {name: parse_skill(d) for name, d in job.specs.items()}
    for name in store.skill_names():
        if name not in specs:
            try:
                specs[name] = store.load_skill(name)
            except FlowRLError:
                continue
    return list(specs.values())


def analyse_run(store: Store, run_id: str, *, episodes: int | None = None, seed: int = 0) -> AnalysisRecord:
    """Analyse ``run_id`` (trained, not necessarily merged) and store ``runs/<run_id>/analysis.json``."""
    from flowrl_core.envs import make_env_and_params
    from flowrl_core.evaluation.evaluate import evaluate_against_random
    from flowrl_core.evaluation.store import record_evaluation
    from flowrl_core.training.budget import step_budget

    job = load_job(store, run_id)
    reason = skip_reason(job)
    if episodes is not None and job.trainer == DEFAULT_TRAINER:
        reason = None if episodes > 0 else "analysis disabled (0 episodes)"
    if reason is not None:
        record = AnalysisRecord(job.skill, run_id, AnalysisStatus.SKIPPED, reason=reason, created_at=now_iso())
        store.run(run_id).write_doc(ANALYSIS_DOC, record.to_dict())
        return record
    n = analysis_episodes(job) if episodes is None else int(episodes)
    policy, versions = _run_policy(store, job)
    library = _library(store, job)
    specs = {s.name: s for s in library}
    try:
        env, env_params = make_env_and_params(job.env, dict(job.env_options))
        budget = step_budget(job.config.get("max_steps"), env, list(job.plan))
    except (ValueError, ImportError) as exc:
        raise AnalysisError(f"skill {job.skill!r}: run {run_id} cannot be analysed on env {job.env!r} "
                            f"with options {job.env_options}: {exc}") from None
    report = evaluate_against_random(env, env_params, list(job.plan), specs, policy, env_name=job.env,
                                     env_options=dict(job.env_options), episodes=n, max_steps=budget, seed=seed,
                                     versions=versions, step_goal=job.config["step_goal"])
    record_evaluation(store, report, run_id=run_id)
    producers = achievement_producers(library)
    checks = tuple(check_spec(specs[name], completions_of(report.traces, name), producers=producers)
                   for name in dict.fromkeys(step.skill for step in job.plan))
    failure = analyse_failures(report.traces, report.plan, target=success_target(job))
    record = AnalysisRecord(job.skill, run_id, AnalysisStatus.ANALYSED, episodes=n, max_steps=budget,
                            success_rate=report.success_rate, random_success_rate=report.baseline.success_rate,
                            spec_checks=checks, failure=failure, created_at=now_iso())
    store.run(run_id).write_doc(ANALYSIS_DOC, record.to_dict())
    return record


def failed_analysis(store: Store, run_id: str, skill: str, error: BaseException) -> AnalysisRecord:
    """Record that the analysis failed: the run's training is unaffected and its merge goes on."""
    record = AnalysisRecord(skill, run_id, AnalysisStatus.FAILED, reason=f"{type(error).__name__}: {error}",
                            created_at=now_iso())
    store.run(run_id).write_doc(ANALYSIS_DOC, record.to_dict())
    return record


def read_analysis(store: Store, run_id: str) -> AnalysisRecord | None:
    run = store.run(run_id)
    if not run.has_doc(ANALYSIS_DOC):
        return None
    return AnalysisRecord.from_dict(run.read_doc(ANALYSIS_DOC))


def latest_analyses(store: Store, skills: Iterable[str] | None = None) -> dict[str, AnalysisRecord]:
    """Each skill's analysis of its most recently completed run that has one."""
    from flowrl_core.store.runs import completed_runs

    out: dict[str, AnalysisRecord] = {}
    for skill in (store.skill_names() if skills is None else skills):
        for rec in sorted(completed_runs(store, skill), key=lambda r: (r.ended_at, r.run_id), reverse=True):
            analysis = read_analysis(store, rec.run_id)
            if analysis is not None:
                out[skill] = analysis
                break
    return out

