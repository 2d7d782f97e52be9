"""``flowrl grow``: the grow-skills flow."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from flowrl_core.defaults import DEFAULT_ENV, DEFAULT_PROFILE, DEFAULT_STORE
from flows.cli.app import ExitCode, _parse_settings, app, fail, out


@app.command()
def grow(
    target: Optional[str] = typer.Option(None, help="Skill or key to reach, e.g. Collect_Stone or achievement:collect_stone."),
    proposer: str = typer.Option("curriculum", help="curriculum, file, llm or package.module:factory."),
    kb: str = typer.Option("gridworld", help="Knowledge base of the curriculum proposer (gridworld, craftax_classic)."),
    skills_file: Optional[Path] = typer.Option(None, help="Skill file for the file proposer."),
    store: str = typer.Option(DEFAULT_STORE, help="Store URL."),
    env: str = typer.Option(DEFAULT_ENV, help="Environment."),
    env_opt: Optional[list[str]] = typer.Option(None, "--env-opt", help="Environment setting KEY=VALUE."),
    profile: str = typer.Option(DEFAULT_PROFILE, help="Training profile."),
    slots: int = typer.Option(1, min=1, help="Skills training at once."),
    max_skills: int = typer.Option(20, min=1, help="Stop proposing after this many skills."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Training setting, KEY=VALUE."),
) -> None:
    """Grow the skill library with a proposer while it trains (the grow-skills flow)."""
    from flowrl_core.lifecycle.outcomes import GrowSummary
    from flows.grow_flow import grow_skills

    args: dict = {}
    if proposer == "curriculum":
        if not target:
            fail("the curriculum proposer needs --target")
        args = {"kb": kb, "target": target}
    elif proposer == "file":
        if not skills_file:
            fail("the file proposer needs --skills-file")
        args = {"path": str(skills_file)}
    elif proposer == "llm" and target:
        args = {"target": target}
    overrides, env_options = _parse_settings(set_ or []), _parse_settings(env_opt or [], "--env-opt")
    # Everything is checked before Prefect starts or the store is created (exit 2 on bad input).
    from flowrl_core.envs import make_env_and_params
    from flowrl_core.grow.registry import load_proposer
    from flowrl_core.store.objects import Store
    from flowrl_core.training.config import resolve_config

    make_env_and_params(env, env_options)
    resolve_config(profile, overrides)
    load_proposer(proposer, **args)
    Store.probe(store)
    state = grow_skills(proposer=proposer, proposer_args=args, store=store, env=env, profile=profile,
                        overrides=overrides, slots=slots, max_skills=max_skills, env_options=env_options or None,
                        return_state=True)
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, GrowSummary):
        out.print(f"learned: {', '.join(summary.learned) or 'nothing'} — {summary.stop_reason}")
    if not state.is_completed():
        fail(f"grow-skills ended {state.name}: {str(state.message)[:500]}", code=ExitCode.FAILED)
