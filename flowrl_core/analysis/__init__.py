"""Trajectory analysis of trained runs: spec checks against observed completions, failure analysis.

``analyse_run(store, run_id)`` is what the ``analyse`` subtask calls between train and merge;
``check_spec`` / ``analyse_failures`` are the pure functions behind it; the records
(``AnalysisRecord`` and its parts, schema ``flowrl.analysis/1``) round-trip through JSON.
"""

from flowrl_core.analysis.failure import analyse_failures, step_reach
from flowrl_core.analysis.records import (
    SCHEMA,
    AnalysisRecord,
    AnalysisStatus,
    ClaimCheck,
    ClaimKind,
    FailureAnalysis,
    SpecCheck,
    StepReach,
    Verdict,
)
from flowrl_core.analysis.run import (
    DEFAULT_ANALYSIS_EPISODES,
    AnalysisError,
    analyse_run,
    failed_analysis,
    latest_analyses,
    read_analysis,
)
from flowrl_core.analysis.spec_check import achievement_producers, check_spec, completions_of, corrected_spec

__all__ = [
    "DEFAULT_ANALYSIS_EPISODES", "SCHEMA", "AnalysisError", "AnalysisRecord", "AnalysisStatus", "ClaimCheck",
    "ClaimKind", "FailureAnalysis", "SpecCheck", "StepReach", "Verdict", "achievement_producers", "analyse_failures",
    "analyse_run", "check_spec", "completions_of", "corrected_spec", "failed_analysis", "latest_analyses",
    "read_analysis", "step_reach",
]
