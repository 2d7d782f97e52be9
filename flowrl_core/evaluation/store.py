"""Evaluate a skill from the store: its plan's experts at their current versions, on fresh episodes.

What is evaluated, and why: the *library as it stands* -- every plan skill's expert at the
version the store serves now (the frame-count rule's winner), looked up through the store's
expert index, exactly the experts a dependant would be seeded with.  The plan, the specs and the
env come from the skill's latest completed training run (``runs/<id>/job.json``), because those
are what its experts were trained to follow; env, options and budget can be overridden.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowrl_core.errors import FlowRLError
from flowrl_core.evaluation.evaluate import DEFAULT_EPISODES, evaluate_against_random
from flowrl_core.evaluation.policies import Policy, composed_policy
from flowrl_core.evaluation.records import EvalReport
from flowrl_core.lifecycle.job import SkillJob, last_completed_job
from flowrl_core.skills.spec import PlanStep, SkillSpec
from flowrl_core.store.experts import current_version, load_params
from flowrl_core.store.objects import Store
from flowrl_core.training.budget import step_budget


class EvaluationError(FlowRLError):
    """A skill that cannot be evaluated (not in the store, never trained, an expert missing)."""


@dataclass(frozen=True)
class StoredSkill:
    """What evaluating a stored skill needs: its last training job and its plan's current experts."""

    skill: str
    job: SkillJob
    plan: tuple[PlanStep, ...]
    specs: Mapping[str, SkillSpec]
    policy: Policy
    versions: Mapping[str, str]  # plan skill -> expert version id


def latest_completed_job(store: Store, skill: str) -> SkillJob:
    """The job of the skill's most recently completed run (errors name the skill and the fix)."""
    names = store.skill_names()
    if skill not in names:
        known = ", ".join(names) or "none"
        raise EvaluationError(f"skill {skill!r} is not in store {store.url} (known: {known}); train it first "
                              f"with `flowrl run SKILLS.yaml --store {store.url}`")
    job = last_completed_job(store, skill)
    if job is None:
        raise EvaluationError(f"skill {skill!r} has no completed training run in store {store.url}, so it has no "
                              f"trained version; train it first with `flowrl run SKILLS.yaml --store {store.url} "
                              f"--only {skill}`")
    return job


def load_stored_skill(store: Store, skill: str) -> StoredSkill:
    """The skill's composed policy: its last run's plan routed through every plan skill's current expert."""
    from flowrl_core.skills.parsing import parse_skill

    job = latest_completed_job(store, skill)
    specs = {name: parse_skill(d) for name, d in job.specs.items()}
    indices = store.expert_indices()
    experts: dict[str, Any] = {}
    versions: dict[str, str] = {}
    for name in dict.fromkeys(step.skill for step in job.plan):
        index = indices.get(name)
        version = current_version(store, index) if index is not None else None
        if version is None:
            raise EvaluationError(f"skill {skill!r}: its plan step {name!r} has no trained expert version in store "
                                  f"{store.url}; train {name!r} first with `flowrl run SKILLS.yaml --store "
                                  f"{store.url} --only {name}`")
        experts[name] = load_params(store, version)
        versions[name] = version.version_id
    policy = composed_policy(job.plan, experts)
    return StoredSkill(skill, job, tuple(job.plan), specs, policy, versions)


def evaluate_skill(store: Store, skill: str, *, episodes: int = DEFAULT_EPISODES, max_steps: int | None = None,
                   seed: int = 0, env: str | None = None, env_options: Mapping[str, Any] | None = None,
                   greedy: bool = False) -> EvalReport:
    """Evaluate ``skill`` from ``store`` against a uniform random policy (see the module docstring).

    ``env``/``env_options`` default to the last training run's; ``max_steps`` to that run's
    ``max_steps`` setting, else the default budget (env allowance x plan runs).
    """
    from flowrl_core.envs import make_env_and_params

    stored = load_stored_skill(store, skill)
    env_name = env or stored.job.env
    options = dict(stored.job.env_options if env_options is None else env_options)
    try:
        env_obj, env_params = make_env_and_params(env_name, options)
    except (ValueError, ImportError) as exc:
        raise EvaluationError(f"skill {skill!r}: cannot build env {env_name!r} with options {options}: {exc}") from None
    configured = stored.job.config.get("max_steps")
    try:
        budget = step_budget(max_steps if max_steps is not None else configured, env_obj, list(stored.plan))
    except ValueError as exc:
        raise EvaluationError(f"skill {skill!r}: {exc}") from None
    return evaluate_against_random(env_obj, env_params, list(stored.plan), stored.specs, stored.policy,
                                   env_name=env_name, env_options=options, episodes=episodes, max_steps=budget,
                                   seed=seed, greedy=greedy, versions=stored.versions,
                                   step_goal=stored.job.config["step_goal"])


# --------------------------------------------------------------------------- recorded evaluations
#
# Where evaluations live, for the flow (an eval task after each training), `flowrl status` (the
# latest one) and the nightly continuation (weakest skills by evaluated success):
#   skills/<name>/evaluations/<stamp>.json   the report without traces (small; one per evaluation)
#   runs/<run_id>/evaluation.json            the same report with every episode's trace, beside the
#                                            run it evaluated (what trajectory analysis reads)


def _stamp() -> str:
    from flowrl_core.store.objects import now_iso

    return now_iso().replace(":", "").replace("-", "").replace("+0000", "Z").replace("+00:00", "Z")


def record_evaluation(store: Store, report: EvalReport, *, run_id: str | None = None) -> str:
    """Store ``report`` under its skill (and, with traces, in run ``run_id``'s folder); returns its name."""
    name = f"{_stamp()}-{run_id or 'manual'}.json"
    store.write_json(("skills", report.skill, "evaluations", name), report.to_dict() | {"run_id": run_id})
    if run_id is not None:
        store.run(run_id).write_doc("evaluation.json", report.to_dict(with_traces=True))
    return name


def latest_evaluation(store: Store, skill: str) -> EvalReport | None:
    """The skill's most recent recorded evaluation (None: never evaluated)."""
    names = [n for n in store.list(("skills", skill, "evaluations")) if n.endswith(".json")]
    if not names:
        return None
    return EvalReport.from_dict(store.read_json(("skills", skill, "evaluations", max(names))))
