"""Evaluation of trained skills: fresh episodes, a step budget, a uniform random baseline beside.

``evaluate_skill(store, skill, ...)`` evaluates from a store; ``evaluate_policies`` /
``evaluate_against_random`` evaluate any policies on a plan; the records (``EvalReport``,
``PolicyStats``, ``EpisodeTrace``, ``StepTrace``) are frozen dataclasses with a JSON round-trip.
"""

from flowrl_core.evaluation.evaluate import (
    DEFAULT_EPISODES,
    PolicyEvaluation,
    evaluate_against_random,
    evaluate_policies,
)
from flowrl_core.evaluation.policies import Policy, composed_policy, network_policy, random_policy
from flowrl_core.evaluation.records import (
    EndReason,
    EpisodeTrace,
    EvalReport,
    PlanStepStats,
    PolicyStats,
    StepTrace,
    wilson_interval,
)
from flowrl_core.evaluation.store import (
    EvaluationError,
    evaluate_skill,
    latest_evaluation,
    load_stored_skill,
    record_evaluation,
)

__all__ = [
    "DEFAULT_EPISODES", "EndReason", "EpisodeTrace", "EvalReport", "EvaluationError", "PlanStepStats", "Policy",
    "PolicyEvaluation", "PolicyStats", "StepTrace", "composed_policy", "evaluate_against_random",
    "evaluate_policies", "evaluate_skill", "latest_evaluation", "load_stored_skill", "network_policy", "random_policy",
    "record_evaluation",
    "wilson_interval",
]
