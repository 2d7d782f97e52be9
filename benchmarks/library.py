"""Train a skill file through the product's lifecycle in this process, without Prefect.

The flow runs ``setup → train → merge`` per skill as Prefect tasks with the trainer in a child
process; benchmarks and tests that only care about *what* is learned run the same three
functions (:mod:`flowrl_core.lifecycle`) in dependency order here, so they measure the product's
training, not a copy of it, and skip Prefect's start-up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowrl_core.lifecycle.job import read_result
from flowrl_core.lifecycle.merge import merge_run
from flowrl_core.lifecycle.messages import TrainerInput
from flowrl_core.lifecycle.setup import setup
from flowrl_core.lifecycle.train import run_job
from flowrl_core.skills.graph import build_graph, training_order
from flowrl_core.skills.parsing import read_skill_file
from flowrl_core.skills.spec import SkillSpec
from flowrl_core.store.objects import Store
from flowrl_core.training.config import resolve_config


@dataclass(frozen=True)
class TrainedSkill:
    skill: str
    run_id: str | None  # None: nothing to train (budget already reached)
    frames: int
    early_stopped: bool
    success_rate: float | None  # training's last-update success rate
    wall_s: float


def skill_configs(specs: Sequence[SkillSpec], profile: str = "cpu",
                  overrides: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Each skill's resolved training config, as ``flowrl run --profile PROFILE --set ...`` resolves it."""
    return {s.name: resolve_config(profile, overrides, s.train, skill=s.name) for s in specs}


def train_skills(store: Store, specs: Sequence[SkillSpec], *, env: str, env_options: Mapping[str, Any] | None = None,
                 profile: str = "cpu", overrides: Mapping[str, Any] | None = None,
                 only: Sequence[str] | None = None, child: bool = False,
                 analyse: bool = False) -> list[TrainedSkill]:
    """setup → train → merge for every skill (or ``only`` these), dependencies first.

    ``analyse``: make sure the flow's analyse step ran (:func:`flowrl_core.analysis.analyse_run`)
    between train and merge, so ``runs/<id>/analysis.json`` is there as after a flow (the trainer
    process, ``child``, writes it itself).

    ``child``: train in the trainer's own process, ``python -m flowrl_core.lifecycle.train``, as
    the flow does -- which also uses the persistent compilation cache, so a second run of the same
    shapes (or the same test on the next day) skips most of its compile time.
    """
    configs = skill_configs(specs, profile, overrides)
    order = training_order(build_graph(list(specs)))
    for name in order:
        store.assign_index(name)
    for spec in specs:
        store.save_skill(spec)
    out = []
    for name in order:
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        res = setup(store, list(specs), name, env=env, config=configs[name], env_options=dict(env_options or {}))
        if res.job is None:
            out.append(TrainedSkill(name, None, res.done_frames, False, None, 0.0))
            continue
        if child:
            train_in_child(store, res.job.run_id)
        else:
            run_job(store, res.job.run_id)
        if analyse:  # the trainer process analyses its run itself; in this process, do it here
            from flowrl_core.analysis import analyse_run, read_analysis

            if read_analysis(store, res.job.run_id) is None:
                analyse_run(store, res.job.run_id)
        merge_run(store, res.job.run_id)
        result = read_result(store, res.job.run_id)
        assert result is not None, f"run {res.job.run_id} of {name} finished without a result"
        out.append(TrainedSkill(name, res.job.run_id, result.frames, result.early_stopped, result.success_rate,
                                time.perf_counter() - t0))
    return out


def train_in_child(store: Store, run_id: str) -> None:
    """The product's trainer process on one run (stdin: its TrainerInput); raises with its stderr if it fails."""
    doc = TrainerInput(store=store.url, run_id=run_id).to_json()
    res = subprocess.run([sys.executable, "-m", "flowrl_core.lifecycle.train", "--run-id", run_id], input=doc,
                         capture_output=True, text=True, env=dict(os.environ))
    if res.returncode != 0:
        raise RuntimeError(f"trainer for run {run_id} exited {res.returncode}: {res.stderr.strip()[-2000:]}")


def train_file(store: Store, skills_file: str | Path, *, env: str | None = None,
               env_options: Mapping[str, Any] | None = None, profile: str = "cpu",
               overrides: Mapping[str, Any] | None = None, only: Sequence[str] | None = None) -> list[TrainedSkill]:
    """:func:`train_skills` on a skill file, with its ``env``/``env_options`` defaults as ``flowrl run`` uses them."""
    doc = read_skill_file(skills_file)
    env = env or doc.env or "gridworld"
    options = {**doc.env_options, **(env_options or {})}
    return train_skills(store, list(doc.specs), env=env, env_options=options, profile=profile, overrides=overrides,
                        only=only)
