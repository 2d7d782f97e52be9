"""``flowrl grow``: the grow-skills flow."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from flows.cli.app import _parse_settings, app, fail, out


@app.command()
def grow(
    target: Optional[str] = typer.Option(None, help="Skill or key to reach, e.g. Collect_Stone or achievement:collect_stone."),
    proposer: str = typer.Option("curriculum", help="curriculum, file, llm or package.module:factory."),
    kb: str = typer.Option("gridworld", help="Knowledge base of the curriculum proposer (gridworld, craftax_classic)."),
    skills_file: Optional[Path] = typer.Option(None, help="Skill file for the file proposer."),
    store: str = typer.Option("./flowrl-store", help="Store URL."),
    env: str = typer.Option("gridworld", help="Environment."),
    profile: str = typer.Option("cpu", help="Training profile."),
    slots: int = typer.Option(1, min=1, help="Skills training at once."),
    max_skills: int = typer.Option(20, min=1, help="Stop proposing after this many skills."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Training setting, KEY=VALUE."),
) -> None:
    """Grow the skill library with a proposer while it trains (the grow-skills flow)."""
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
    state = grow_skills(proposer=proposer, proposer_args=args, store=store, env=env, profile=profile,
                        overrides=_parse_settings(set_ or []), slots=slots, max_skills=max_skills, return_state=True)
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, dict):
        out.print(f"learned: {', '.join(summary['learned']) or 'nothing'} — {summary['stop_reason']}")
    if not state.is_completed():
        fail(f"grow-skills ended {state.name}: {state.message}", code=1)


