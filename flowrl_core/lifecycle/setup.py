"""Setup: decide whether a skill still needs training, and write the job of the run that will.

The decision, for one skill:

* **done** — its own completed runs trained :func:`~flowrl_core.training.config.planned_frames`
  of its config (the trainer's rule: whole updates) or hit their success threshold; a rerun
  trains nothing;
* **resume** — an unfinished (started or failed) run whose job has the same
  :meth:`~flowrl_core.lifecycle.job.SkillJob.identity` as the one this call would write: same run
  id, same checkpoint, same frames-at-setup, so nothing is counted twice;
* **new** — otherwise.  Unfinished runs whose job differs (the file, settings or env changed)
  are closed as *abandoned*, so a fixed skill file is never stuck resuming its broken job.

A run is taken under its lease (:mod:`flowrl_core.store.leases`) when an ``owner`` is given, so
two live processes never resume the same run.  A new run's plan routes through the experts of its
prerequisites, and each of those must already have a trained version in the store: a dependency
with no expert is an error naming it, never a silently random expert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flowrl_core.errors import FlowRLError
from flowrl_core.lifecycle.job import DEFAULT_TRAINER, SkillJob, job_identity, load_job, network_of
from flowrl_core.skills.plan import execution_plan
from flowrl_core.skills.remap import Remap, remap_for_plan
from flowrl_core.skills.spec import SkillSpec
from flowrl_core.store import leases
from flowrl_core.store.experts import ExpertVersion, current_version
from flowrl_core.store.objects import Store, new_run_id, now_iso
from flowrl_core.store.runs import RunRecord, RunState, skill_runs, write_run_record
from flowrl_core.training.config import planned_frames


class MissingDependencyError(FlowRLError):
    """A skill's plan needs an expert that has never been trained."""


class NetworkMismatchError(FlowRLError):
    """The settings ask for a network shape a stored expert the run would start from does not have."""


@dataclass(frozen=True)
class SetupResult:
    """``job`` is None when the skill already reached its budget (``done_frames`` says how far)."""

    skill: str
    job: SkillJob | None
    resumed: bool
    done_frames: int
    lease: leases.Lease | None = None
    abandoned: tuple[str, ...] = ()


def done_frames(store: Store, skill: str) -> tuple[int, bool]:
    """(frames its completed runs trained, whether one of them stopped early at its threshold)."""
    completed = [r for r in skill_runs(store, skill).values() if r.state is RunState.COMPLETED]
    return sum(r.frames for r in completed), any(r.early_stopped for r in completed)


def is_done(store: Store, skill: str, config: Mapping[str, Any]) -> bool:
    frames, reached = done_frames(store, skill)
    return frames >= planned_frames(config) or reached


def untrained_dependencies(store: Store, skill: str, remap: Remap) -> list[str]:
    """Plan skills (other than ``skill``) whose expert has no trained version yet."""
    return sorted(s for g, s in remap.skill_of_global.items() if s != skill and current_version(store, g) is None)


def setup(
    store: Store,
    specs: Sequence[SkillSpec],
    skill: str,
    *,
    env: str,
    config: Mapping[str, Any],
    continuation: bool = False,
    run_id: str | None = None,
    env_options: Mapping[str, Any] | None = None,
    trainer: str = DEFAULT_TRAINER,
    owner: str | None = None,
) -> SetupResult:
    """Decide done / resume / new (see the module docstring); for a new run, write its job."""
    done, reached = done_frames(store, skill)
    if not continuation and run_id is None and (done >= planned_frames(config) or reached):
        return SetupResult(skill, None, resumed=False, done_frames=done)

    plan = execution_plan(specs, skill, str(config.get("plan_order", "just_in_time")))
    remap = remap_for_plan(skill, plan, store.expert_indices())
    by_name = {s.name: s for s in specs}
    plan_specs = {s: by_name[s].to_dict() for s in remap.skill_of_global.values()}
    identity = job_identity(skill=skill, env=env, env_options=dict(env_options or {}), config=dict(config),
                            continuation=continuation, plan=plan, specs=plan_specs, trainer=trainer)

    if run_id is not None and store.run(run_id).has_doc("job.json"):  # the orchestrator names the run
        return _resume(store, skill, load_job(store, run_id), done, owner, ())

    abandoned: list[str] = []
    resumable: SkillJob | None = None
    records = skill_runs(store, skill)
    unfinished = sorted((r for r in records.values() if r.state in (RunState.STARTED, RunState.FAILED)
                         and r.continuation == continuation), key=lambda r: r.started_at)
    if run_id is None:
        for record in unfinished:
            job = load_job(store, record.run_id) if store.run(record.run_id).has_doc("job.json") else None
            if job is not None and job.identity() == identity:
                resumable = job  # the latest matching one wins; earlier duplicates are abandoned below
                continue
            abandoned.append(_abandon(store, record, owner, "its job differs from this run's (skill file, settings "
                                      "or env changed)" if job else "it has no job.json"))
        if resumable is not None:
            return _resume(store, skill, resumable, done, owner, tuple(abandoned))

    missing = untrained_dependencies(store, skill, remap)
    if missing:
        raise MissingDependencyError(
            f"skill {skill!r}: its plan runs through {', '.join(repr(m) for m in missing)}, which "
            f"{'has' if len(missing) == 1 else 'have'} no trained expert in store {store.url}; train "
            f"{'it' if len(missing) == 1 else 'them'} first (flowrl run FILE --only {missing[0]}, or without --only)")
    frames: dict[int, int] = {}
    bases: dict[int, str | None] = {}
    for g in remap.local_to_global.values():
        version = current_version(store, g)
        frames[g] = version.frames if version else 0
        bases[g] = version.version_id if version else None
        if version is not None and trainer == DEFAULT_TRAINER:
            check_network(store, skill, remap.skill_of_global[g], version, config)
    job = SkillJob(run_id=run_id or new_run_id(skill), skill=skill, env=env, plan=list(plan), specs=plan_specs,
                   remap=remap, frames_at_setup=frames, base_versions=bases, config=dict(config),
                   continuation=continuation, env_options=dict(env_options or {}), trainer=trainer)
    lease = leases.acquire(store, job.run_id, owner, skill=skill) if owner else None
    store.run(job.run_id).write_doc("job.json", job.to_dict())
    write_run_record(store, RunRecord(run_id=job.run_id, skill=skill, state=RunState.STARTED,
                                      started_at=job.created_at, job_hash=identity, continuation=continuation))
    return SetupResult(skill, job, resumed=False, done_frames=done, lease=lease, abandoned=tuple(abandoned))


def check_network(store: Store, skill: str, expert_skill: str, version: ExpertVersion,
                   config: Mapping[str, Any]) -> None:
    """Refuse here, before a job is written, a network the stored expert does not fit -- not in
    the trainer after its retries, as a leaf-shape mismatch."""
    run = store.run(version.run_id)
    if not run.has_doc("job.json"):
        return  # a version from a run whose job is gone: the trainer's own check still applies
    seeded_by = load_job(store, version.run_id)
    if seeded_by.trainer != DEFAULT_TRAINER:
        return  # another trainer's parameters: their shapes are its own business
    trained = network_of(seeded_by.config)
    asked = network_of(config)
    if trained != asked:
        sets = " ".join(f"--set {k}={v}" for k, v in trained.items())
        raise NetworkMismatchError(
            f"skill {skill!r}: expert of {expert_skill!r} (version {version.version_id}) is a "
            f"{trained['depth']}x{trained['width']} network and these settings ask for "
            f"{asked['depth']}x{asked['width']}; train with {sets} (or the profile it trained with), "
            "or in a new store")


def _resume(store: Store, skill: str, job: SkillJob, done: int, owner: str | None,
            abandoned: tuple[str, ...]) -> SetupResult:
    lease = leases.acquire(store, job.run_id, owner, skill=skill) if owner else None
    record = skill_runs(store, skill).get(job.run_id)
    if record is None or record.state is not RunState.STARTED:  # a failed run tried again
        write_run_record(store, RunRecord(run_id=job.run_id, skill=skill, state=RunState.STARTED,
                                          started_at=job.created_at, job_hash=job.identity(),
                                          continuation=job.continuation))
    return SetupResult(skill, job, resumed=True, done_frames=done, lease=lease, abandoned=abandoned)


def _abandon(store: Store, record: RunRecord, owner: str | None, reason: str) -> str:
    """Close a run that will never be resumed; refuses (RunBusyError) while a live process holds it."""
    lease = leases.acquire(store, record.run_id, owner or leases.new_owner(), skill=record.skill)
    write_run_record(store, record.ended(RunState.ABANDONED, at=now_iso(), reason=reason))
    leases.release(store, lease)
    return record.run_id


def record_failure(store: Store, job: SkillJob, reason: str) -> None:
    """Mark a run failed with its reason (after the last retry); a rerun of the same job resumes it."""
    record = skill_runs(store, job.skill).get(job.run_id) or RunRecord(
        run_id=job.run_id, skill=job.skill, state=RunState.STARTED, started_at=job.created_at,
        job_hash=job.identity(), continuation=job.continuation)
    write_run_record(store, record.ended(RunState.FAILED, at=now_iso(), reason=reason[:2000]))
