"""Pictures of a finished training: the learning curve and a rollout of the trained policy."""

from __future__ import annotations

from typing import Any

from flowrl_core.lifecycle.job import SkillJob
from flowrl_core.store.objects import Store


def write_artifacts(store: Store, job: SkillJob, env: Any, env_params: Any, specs: dict, config: Any,
                    params: Any, rows: list[dict[str, Any]]) -> dict[str, str]:
    """Learning curve (PNG) and, where the env renders, a rollout of the trained policy (GIF).

    Pictures are a convenience: a failure here is reported in the result, never fails the run.
    """
    from flowrl_core.reporting.plots import frames_to_gif, learning_curve_png

    run = store.run(job.run_id)
    labels = [f"{p.skill}×{p.count}" if p.count > 1 else p.skill for p in job.plan]
    out: dict[str, str] = {}
    try:
        png = learning_curve_png(rows, title=f"{job.skill} — run {job.run_id}", plan_labels=labels)
        out["learning_curve"] = run.write_artifact("learning_curve.png", png)
    except Exception as exc:  # noqa: BLE001
        out["learning_curve_error"] = f"{type(exc).__name__}: {exc}"
    if hasattr(env, "render"):
        try:
            from flowrl_core.training.rollout import rollout

            ro = rollout(env, env_params, job.plan, specs, job.remap.local_of_skill(), config, params,
                         seed=config.seed)
            out["rollout"] = run.write_artifact("rollout.gif", frames_to_gif(ro.frames, captions=ro.captions))
            out["rollout_success"] = str(ro.success)
        except Exception as exc:  # noqa: BLE001
            out["rollout_error"] = f"{type(exc).__name__}: {exc}"
    return out
