"""Transfer benchmark: does seeding a skill with its dependencies' trained experts speed it up?

    python -m benchmarks.transfer                       # Make_Wood_Pickaxe, seed 0, 400k-frame cap
    python -m benchmarks.transfer --seed 1 --frames 300000
    python -m benchmarks.transfer --target-skill Make_Wood_Sword

What it does, and why this way:

1. Builds a library the way the product does (``flowrl_core.lifecycle.train``): every skill trains
   through its own execution plan, its dependencies' experts are seeded from earlier runs
   (``init_params``: local index in *this* plan -> expert subtree cut out of the earlier run's
   params with ``extract_experts``), and afterwards every plan skill's expert goes back to the
   library.  Here that is Collect_Wood (plan Collect_Wood), then Place_Table (plan
   Collect_Wood x2 -> Place_Table, seeded with Collect_Wood).  Each library run uses the skill
   file's ``train`` block (frames, early stop at 95 %), like ``flowrl run`` would.
2. Trains the target twice from the same seed and config: (a) seeded with every library expert
   its plan uses (only the target's own expert is random), (b) from scratch (all random).
3. Reports the frames each needs to reach 90 % success, measured the same way for both (see
   :func:`frames_to_success`), and the ratio seeded / scratch.  The bar is <= 0.5.

The gridworld (``env_options: {max_steps: 60}`` as in ``examples/gridworld_basic.yaml``) is
used because Craftax is ~100x slower per step on this CPU; the tech tree is the same.
``tests/test_transfer.py`` imports these helpers, so the test measures exactly what this prints.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from flowrl_core.envs import make_env_and_params
from flowrl_core.skills.parsing import read_skill_file
from flowrl_core.skills.plan import execution_plan, plan_skills
from flowrl_core.skills.spec import PlanStep, SkillSpec
from flowrl_core.training.config import PPOConfig
from flowrl_core.training.ppo import extract_experts, train

PyTree = Any
SKILL_FILE = ROOT / "examples" / "gridworld_basic.yaml"
LIBRARY_SKILLS = ("Collect_Wood", "Place_Table")
THRESHOLD = 0.9
WINDOW = 3  # updates in the moving average
MIN_EPISODES = 16  # episodes ended in *each* update of the window
DEFAULT_CAP = 400_000


# --------------------------------------------------------------------------- measuring


def frames_to_success(rows: Sequence[Mapping[str, Any]], threshold: float = THRESHOLD, window: int = WINDOW,
                      min_episodes: int = MIN_EPISODES) -> int | None:
    """Frames at the first update whose trailing ``window``-update mean success rate >= ``threshold``.

    Every update of the window must have ended >= ``min_episodes`` episodes, so a lucky update
    with two finished episodes can not count; a moving average rather than one update keeps a
    single noisy update from deciding the comparison.  ``None``: never reached.
    """
    for i in range(window - 1, len(rows)):
        win = rows[i - window + 1:i + 1]
        if any(r["success_rate"] is None or r["episodes"] < min_episodes for r in win):
            continue
        if sum(r["success_rate"] for r in win) / window >= threshold:
            return int(rows[i]["frames"])
    return None


def early_success(rows: Sequence[Mapping[str, Any]], updates: int = 4) -> float | None:
    """Success rate pooled over the episodes ended in the first ``updates`` updates.

    Pooled over several updates because the first update alone only sees episodes that ended
    early, i.e. mostly successes (a failure lasts the full episode); by update 4 (128 steps per
    env at cpu_profile) every env has ended at least two 60-step episodes.  Shows how much of
    the target the seeded experts solve before the new expert has learned anything.
    """
    head = [r for r in rows[:updates] if r["episodes"]]
    episodes = sum(r["episodes"] for r in head)
    return sum(r["success_rate"] * r["episodes"] for r in head) / episodes if episodes else None


class _Reached(Exception):
    """Raised from ``on_metrics`` to end a comparison run once the bar is met (saves CPU time)."""


# --------------------------------------------------------------------------- setup


def load_gridworld(skill_file: Path = SKILL_FILE) -> tuple[Any, Any, dict[str, SkillSpec], dict[str, Any]]:
    """(env, env_params, specs by name, skill-file doc) for the example gridworld tech tree."""
    doc = read_skill_file(skill_file)
    specs = list(doc.specs)
    env, env_params = make_env_and_params(doc.env or "gridworld", dict(doc.env_options) or {"max_steps": 60})
    return env, env_params, {s.name: s for s in specs}, doc


def plan_for(specs: Mapping[str, SkillSpec], target: str) -> tuple[list[PlanStep], dict[str, int]]:
    """The target's execution plan and its local expert indices (plan skills in first-appearance order)."""
    plan = execution_plan(list(specs.values()), target)
    return plan, {name: i for i, name in enumerate(plan_skills(plan))}


def base_config(seed: int, **overrides: Any) -> PPOConfig:
    """cpu_profile (64 envs x 32 steps, 3 x 128), no checkpoints: the size this CPU trains at."""
    return PPOConfig.cpu_profile(seed=seed, checkpoint_every=0, **overrides)


@dataclass
class SkillRun:
    skill: str
    plan: list[PlanStep]
    seeded: list[str]  # plan skills whose experts came from the library
    frames: int  # frames trained
    reached: int | None  # frames to THRESHOLD (frames_to_success), None if not within the run
    rows: list[dict[str, Any]] = field(repr=False)
    wall_s: float
    experts: dict[str, PyTree] = field(default_factory=dict, repr=False)  # skill -> trained expert


def train_skill(env: Any, env_params: Any, specs: Mapping[str, SkillSpec], skill: str, config: PPOConfig,
                library: Mapping[str, PyTree] | None = None, *, stop_when_reached: bool = False,
                log: Callable[[str], None] | None = None) -> SkillRun:
    """Train ``skill`` through its own plan, seeding every plan skill that ``library`` holds.

    ``init_params`` maps the skill's local index in *this* plan to the library expert, as
    ``train_job.seed_params`` does.  With ``stop_when_reached`` the run ends at the first
    update that meets :func:`frames_to_success` (its experts are then not returned).
    """
    plan, local = plan_for(specs, skill)
    library = library or {}
    init = {local[name]: library[name] for name in local if name in library}
    rows: list[dict[str, Any]] = []

    def on_metrics(row: dict[str, Any]) -> None:
        rows.append(row)
        if log and (row["update"] % 20 == 0):
            rate = row["success_rate"] if row["success_rate"] is not None else float("nan")
            log(f"  {skill}: {row['frames']:>8,} frames  success {rate:.2f}  ({row['episodes']} episodes, "
                f"{row['steps_per_s']:,.0f} steps/s)")
        if stop_when_reached and frames_to_success(rows) is not None:
            raise _Reached

    t0 = time.perf_counter()
    experts: dict[str, PyTree] = {}
    try:
        result = train(env, env_params, plan, specs, local, config, init_params=init, on_metrics=on_metrics)
        by_local = extract_experts(result.params)
        experts = {name: by_local[i] for name, i in local.items()}
        frames = result.frames
    except _Reached:
        frames = int(rows[-1]["frames"])
    return SkillRun(skill=skill, plan=plan, seeded=sorted(n for n in local if n in library), frames=frames,
                    reached=frames_to_success(rows), rows=rows, wall_s=time.perf_counter() - t0, experts=experts)


def build_library(env: Any, env_params: Any, specs: Mapping[str, SkillSpec], seed: int,
                  skills: Sequence[str] = LIBRARY_SKILLS, log: Callable[[str], None] | None = None
                  ) -> tuple[dict[str, PyTree], list[SkillRun]]:
    """Train ``skills`` in order, each seeded from the library so far; returns (library, runs).

    Each run uses its skill file ``train`` block (e.g. 100k frames) on top of
    :func:`base_config`, as the product would, but *without* its early stop: with 60-step
    episodes a random policy already collects wood in ~99 % of episodes, so Collect_Wood's
    ``success_threshold: 0.95`` fires after the first update and would hand an untrained
    (random) expert to the library, which is not what "seeded with trained experts" means.
    """
    library: dict[str, PyTree] = {}
    runs = []
    for skill in skills:
        overrides = {**dict(specs[skill].train), "success_threshold": None}
        run = train_skill(env, env_params, specs, skill, base_config(seed, **overrides), library, log=log)
        library.update(run.experts)  # the plan's experts, dependencies included, as the merge would
        runs.append(run)
        if log:
            first, last = run.rows[0], run.rows[-1]
            log(f"library: {skill} trained {run.frames:,} frames in {run.wall_s:.0f}s; success {first['success_rate']}"
                f" -> {last['success_rate']}, mean episode length {first['mean_episode_length']} -> "
                f"{last['mean_episode_length']}; 90% at {run.reached}")
    return library, runs


@dataclass
class Comparison:
    target: str
    seed: int
    cap: int
    seeded: SkillRun
    scratch: SkillRun
    library_runs: list[SkillRun]

    @property
    def ratio(self) -> float | None:
        """seeded / scratch frames to 90 %; a scratch run that never got there counts as ``cap``
        (so the ratio is an upper bound), a seeded run that never got there gives ``None``."""
        if self.seeded.reached is None:
            return None
        return self.seeded.reached / (self.scratch.reached or self.cap)


def compare(target: str = "Make_Wood_Pickaxe", seed: int = 0, cap: int = DEFAULT_CAP,
            log: Callable[[str], None] | None = None, **config_overrides: Any) -> Comparison:
    """Library of the target's dependencies, then the target seeded vs from scratch (same seed/config)."""
    env, env_params, specs, _ = load_gridworld()
    plan, _ = plan_for(specs, target)
    deps = [s for s in plan_skills(plan) if s != target]
    library, lib_runs = build_library(env, env_params, specs, seed, [s for s in LIBRARY_SKILLS if s in deps]
                                      + [s for s in deps if s not in LIBRARY_SKILLS], log=log)
    config = base_config(seed, total_timesteps=cap, **config_overrides)
    seeded = train_skill(env, env_params, specs, target, config, library, stop_when_reached=True, log=log)
    if log:
        log(f"seeded:  90% at {seeded.reached} ({seeded.wall_s:.0f}s)")
    scratch = train_skill(env, env_params, specs, target, config, None, stop_when_reached=True, log=log)
    if log:
        log(f"scratch: 90% at {scratch.reached} ({scratch.wall_s:.0f}s)")
    return Comparison(target, seed, cap, seeded, scratch, lib_runs)


def table(results: Sequence[Comparison]) -> str:
    """Plain-text table: one row per (seed, variant), then the ratio per seed."""
    fmt = lambda x: f"{x:,}" if x is not None else "not reached"  # noqa: E731
    rate = lambda x: f"{x:.2f}" if x is not None else "-"  # noqa: E731
    lines = [f"{'target':<20} {'seed':>4} {'variant':<8} {'seeded experts':<26} {'early success':>13} "
             f"{'frames to 90%':>14} {'wall s':>7}"]
    for c in results:
        for name, run in (("seeded", c.seeded), ("scratch", c.scratch)):
            lines.append(f"{c.target:<20} {c.seed:>4} {name:<8} {(', '.join(run.seeded) or '-'):<26} "
                         f"{rate(early_success(run.rows)):>13} {fmt(run.reached):>14} {run.wall_s:>7.0f}")
        r = c.ratio
        bound = "<=" if c.scratch.reached is None and r is not None else "="
        verdict = "n/a" if r is None else ("PASS" if r <= 0.5 else "FAIL")
        lines.append(f"{'':<20} {c.seed:>4} ratio seeded/scratch {bound} "
                     f"{'n/a' if r is None else f'{r:.2f}'}  (target <= 0.50: {verdict}; cap {c.cap:,})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=DEFAULT_CAP, help="budget cap per target run (frames)")
    ap.add_argument("--seed", type=int, nargs="+", default=[0], help="one or more seeds")
    ap.add_argument("--target-skill", default="Make_Wood_Pickaxe")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    log = None if args.quiet else (lambda s: print(s, flush=True))
    results = [compare(args.target_skill, seed, args.frames, log=log) for seed in args.seed]
    print()
    print(table(results))


if __name__ == "__main__":
    main()
