"""``flowrl eval SKILL``: a trained skill on fresh episodes, beside a uniform random policy.

    flowrl eval Collect_Stone [--store URL] [--episodes N] [--max-steps N] [--seed S] [--greedy]
                              [--env NAME] [--env-opt KEY=VALUE ...] [--json]

Rolls out the skill's composed policy -- its execution plan routed through every plan skill's
expert at the version the store serves now -- on ``--episodes`` fresh worlds (the evaluation's
own seed stream: no reset bank, no frontier states, no world a trainer drew), each with the same
step budget, and the same worlds with a uniform random policy.  Env, env options and budget
default to what the skill's last training run used (its ``job.json``).

``--json`` prints exactly one JSON object (nothing else on stdout), schema ``flowrl.eval/1``::

    {
      "schema": "flowrl.eval/1",
      "skill": str, "env": str, "env_options": {str: any},
      "episodes": int,                 # per policy
      "max_steps": int,                # the step budget of every episode
      "seed": int, "greedy": bool,
      "plan": [{"skill": str, "count": int}, ...],
      "versions": {skill: expert version id},     # what was evaluated
      "step_goal": "gained" | "held",  # how plan steps were judged (the skill's training setting)
      "policy": "trained",
      "success_rate": float,           # target skill completed within the budget
      "success_ci95": [lo, hi],        # 95 % Wilson interval
      "successes": int,
      "mean_steps": float | null,      # env steps to success, over successful episodes
      "mean_episode_steps": float,     # over all episodes
      "plan_steps": [{"index", "skill", "count",
                      "reached": float,        # fraction of episodes that entered this step
                      "completed": float,      # ... that completed it
                      "mean_steps": float|null}],
      "achievements": {name: float},   # fraction of episodes that unlocked each achievement
      "end_reasons": {"success"|"budget"|"death"|"env_end": float},
      "death_causes": {cause: float},  # fraction of episodes dying of each cause (sums to end_reasons.death;
                                       # Craftax: lava, zombie, skeleton, thirst, hunger, fatigue, other)
      "baseline": {"policy": "random", "episodes", "successes", "success_rate", "success_ci95",
                   "mean_steps", "mean_episode_steps", "plan_steps", "achievements", "end_reasons", "death_causes"}
    }

The same numbers for the same seed, store and options.  Exit codes: 0 evaluated, 2 bad input
(unknown skill, untrained skill or expert, bad option: one line on stderr naming the fix),
3 store unreachable.
"""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from flows.cli.app import _parse_settings, app, fail, out, print_json


SCHEMA = "flowrl.eval/1"


def _compilation_cache() -> None:
    """Reuse compiled rollouts across invocations (the trainer's cache; world generation alone
    compiles for seconds), unless ``FLOWRL_JAX_CACHE`` is set empty."""
    import os

    import jax

    cache = os.environ.get("FLOWRL_JAX_CACHE", os.path.expanduser("~/.cache/flowrl/jax"))
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def _rate(stats) -> str:
    lo, hi = stats.success_ci95
    return f"{stats.success_rate:.1%} [{lo:.1%}, {hi:.1%}]"


def _steps(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


@app.command("eval")
def eval_(
    skill: str = typer.Argument(..., help="A trained skill in the store."),
    store: str = typer.Option("./flowrl-store", help="Store URL."),
    episodes: int = typer.Option(256, min=1, help="Fresh episodes per policy (trained and random)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1,
                                            help="Step budget per episode (default: the skill's training budget)."),
    seed: int = typer.Option(0, help="Evaluation seed (its own stream: never a training world)."),
    greedy: bool = typer.Option(False, help="Act with the most likely action instead of sampling."),
    env: Optional[str] = typer.Option(None, help="Environment (default: the one the skill last trained on)."),
    env_opt: Optional[list[str]] = typer.Option(None, "--env-opt", help="Environment setting KEY=VALUE "
                                                "(default: the last training run's)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout (schema flowrl.eval/1, see README)."),
    record: bool = typer.Option(False, "--record", help="Also store it as the skill's latest evaluation (what "
                                "`flowrl status` shows; refreshes one marked stale)."),
) -> None:
    """Evaluate SKILL from the store on fresh episodes, beside a uniform random policy."""
    from flowrl_core.evaluation import evaluate_skill
    from flowrl_core.store.objects import Store

    st = Store(store, create=False)
    _compilation_cache()
    options = _parse_settings(env_opt, "--env-opt") if env_opt else None
    report = evaluate_skill(st, skill, episodes=episodes, max_steps=max_steps, seed=seed, env=env,
                            env_options=options, greedy=greedy)
    if record:
        from flowrl_core.evaluation import record_evaluation

        record_evaluation(st, report)
    if as_json:
        print_json({"schema": SCHEMA, **report.to_dict()})
        return
    r, b = report.result, report.baseline
    out.print(f"[bold]{report.skill}[/] on {report.env} {report.env_options or ''}: {report.episodes} fresh episodes "
              f"per policy, budget {report.max_steps} steps, seed {report.seed}")
    table = Table()
    for col in ("policy", "success (95 % CI)", "mean steps to success", "ended by budget", "died"):
        table.add_column(col)
    for stats in (r, b):
        table.add_row(stats.policy, _rate(stats), _steps(stats.mean_steps), f"{stats.end_reasons.get('budget', 0):.0%}",
                      f"{stats.end_reasons.get('death', 0):.0%}")
    out.print(table)
    if r.death_causes or b.death_causes:
        out.print("deaths by cause (trained / random): " + ", ".join(
            f"{c} {r.death_causes.get(c, 0.0):.0%}/{b.death_causes.get(c, 0.0):.0%}"
            for c in dict.fromkeys([*r.death_causes, *b.death_causes])))
    steps = Table(title="plan steps reached")
    for col in ("#", "step", "trained", "random"):
        steps.add_column(col)
    for mine, rnd in zip(r.plan_steps, b.plan_steps):
        label = f"{mine.skill}×{mine.count}" if mine.count > 1 else mine.skill
        steps.add_row(str(mine.index + 1), label, f"{mine.reached:.0%}", f"{rnd.reached:.0%}")
    out.print(steps)
    unlocked = {a: (v, b.achievements.get(a, 0.0)) for a, v in r.achievements.items()
                if v or b.achievements.get(a, 0.0)}
    if unlocked:
        out.print("achievements (trained / random): " + ", ".join(
            f"{a} {v:.0%}/{w:.0%}" for a, (v, w) in sorted(unlocked.items(), key=lambda kv: -kv[1][0])))
    margin = report.margin
    out.print(f"trained − random: [bold]{margin:+.1%}[/]" if margin > 0 else
              f"[bold red]trained − random: {margin:+.1%}[/] (no better than random)")


__all__ = ["eval_", "fail"]
