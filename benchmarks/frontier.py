"""Frontier resets: frames until a skill succeeds, with and without them, side by side.

    python -m benchmarks.frontier                                  # Collect_Stone, p = 0.3, seeds 0 1 2
    python -m benchmarks.frontier --target Make_Wood_Pickaxe --prob 0.5 --seed 0 1 --frames 300000
    python -m benchmarks.frontier --scratch                        # dependencies untrained too
    python -m benchmarks.frontier --from failed_step               # only the failed-step arm beside "off"

What it does: builds the library of the target's dependencies once (each trained through its own
plan, seeded with the library so far, its skill file's ``train`` block, as ``flowrl run`` would;
:mod:`benchmarks.transfer`), then trains the target from that library once per arm and seed, with
the same config and seed -- ``frontier_reset_prob = 0``, then ``= --prob`` with each ``frontier_from``
of ``--from`` (the last step's states; the failed step's) -- and prints the frames each
needs until its success rate on *fresh* episodes (frontier-started episodes are not counted)
averages >= 90 % over 3 updates (:func:`benchmarks.transfer.frames_to_success`).  Frames are
every env step, frontier episodes' included.  With ``--scratch`` no expert is seeded, which is
where re-walking the whole plan costs the most.

The gridworld is the README example's (``examples/gridworld_basic.yaml``), every episode under
the skill's default step budget.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from benchmarks.common import device_line
from benchmarks.transfer import base_config, build_library, load_gridworld, plan_for, train_skill
from flowrl_core.training.config import FRONTIER_FROM

DEFAULT_CAP = 400_000


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="Collect_Stone")
    ap.add_argument("--prob", type=float, default=0.3, help="frontier_reset_prob of the 'with' runs")
    ap.add_argument("--seed", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--frames", type=int, default=DEFAULT_CAP, help="cap per target run")
    ap.add_argument("--scratch", action="store_true", help="no seeded experts: the target's whole plan from random")
    ap.add_argument("--from", dest="modes", nargs="+", choices=FRONTIER_FROM, default=list(FRONTIER_FROM),
                    help="frontier_from of the 'with' arms (default: both)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    log = None if args.quiet else (lambda s: print(s, flush=True))
    print(device_line())
    env, env_params, specs, _ = load_gridworld()
    plan, _ = plan_for(specs, args.target)
    deps = list(dict.fromkeys(s.skill for s in plan if s.skill != args.target))
    library = {}
    if not args.scratch:
        t0 = time.perf_counter()
        library, _ = build_library(env, env_params, specs, args.seed[0], deps, log=log)
        print(f"library {deps} built in {time.perf_counter() - t0:.0f}s (seed {args.seed[0]})", flush=True)
    rows = []
    arms = [("off", 0.0)] + [(mode, args.prob) for mode in args.modes]
    for seed in args.seed:
        for mode, prob in arms:
            extra = {"frontier_from": mode} if prob else {}
            config = base_config(seed, total_timesteps=args.frames, frontier_reset_prob=prob, **extra)
            run = train_skill(env, env_params, specs, args.target, config, library, stop_when_reached=True, log=log)
            starts = sum(r.get("episode_starts", 0) for r in run.rows)
            from_frontier = sum(r.get("frontier_starts", 0) for r in run.rows)
            rows.append((seed, mode, prob, run.reached, from_frontier / starts if starts else 0.0, run.wall_s))
            print(f"seed {seed} {mode} p={prob}: 90% at {run.reached} ({run.wall_s:.0f}s)", flush=True)
    fmt = lambda x: f"{x:,}" if x is not None else "not reached"  # noqa: E731
    print(f"\n{args.target} (plan {' → '.join(f'{s.skill}×{s.count}' for s in plan)}), "
          f"{'from scratch' if args.scratch else 'dependencies seeded from the library'}, cap {args.frames:,}")
    print(f"{'seed':>4} {'frontier':>12} {'p':>5} {'frames to 90%':>14} {'starts from frontier':>21} {'wall s':>7}")
    for seed, mode, prob, reached, share, wall in rows:
        print(f"{seed:>4} {mode:>12} {prob:>5.2f} {fmt(reached):>14} {share:>21.2f} {wall:>7.0f}")
    for seed in args.seed:
        off = next(r for r in rows if r[0] == seed and r[1] == "off")[3]
        for mode in args.modes:
            on = next(r for r in rows if r[0] == seed and r[1] == mode)[3]
            if off and on:
                print(f"seed {seed}: {mode} / off = {on / off:.2f}")
            else:
                print(f"seed {seed}: {mode} {fmt(on)}, off {fmt(off)}")


if __name__ == "__main__":
    main()
