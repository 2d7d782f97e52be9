"""Does success mean something?  Train a skill file, then evaluate every skill against random.

    python -m benchmarks.gridworld_eval                      # examples/gridworld_basic.yaml, cpu profile
    python -m benchmarks.gridworld_eval --episodes 1000 --seed 1
    python -m benchmarks.gridworld_eval --store /tmp/st      # keep (or reuse) the trained store
    python -m benchmarks.gridworld_eval --file F.yaml --env-opt size=11 --set frontier_reset_prob=0.3

It trains the file through the product's lifecycle (setup → train → merge per skill, in
dependency order, in this process: :mod:`benchmarks.library`), then runs the same evaluation as
``flowrl eval`` (:func:`flowrl_core.evaluation.evaluate_skill`: the plan's experts at their
current store versions, fresh worlds from the evaluation's own seed stream, each skill's step
budget) and prints, per skill, trained vs uniform random success side by side from one run.
The bar (issue 13): every learned skill beats random by >= 0.5 absolute.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.common import device_line
from benchmarks.library import train_file
from flowrl_core.evaluation import evaluate_skill
from flowrl_core.skills.parsing import read_skill_file
from flowrl_core.store.objects import Store

ROOT = Path(__file__).resolve().parents[1]
MARGIN = 0.5


def _settings(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--file", default=str(ROOT / "examples" / "gridworld_basic.yaml"))
    p.add_argument("--store", default=None, help="store URL (default: a fresh temporary folder)")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--env-opt", action="append", default=[], help="env option KEY=VALUE (training and evaluation)")
    p.add_argument("--set", dest="set_", action="append", default=[], help="training setting KEY=VALUE")
    p.add_argument("--json", default=None, help="also write the reports here")
    args = p.parse_args(argv)
    print(device_line())
    doc = read_skill_file(args.file)
    env_options = {**doc.env_options, **_settings(args.env_opt)}
    store = Store(args.store or tempfile.mkdtemp(prefix="flowrl-gridworld-eval-"))
    t0 = time.perf_counter()
    trained = train_file(store, args.file, env_options=env_options, profile=args.profile,
                         overrides=_settings(args.set_))
    train_s = time.perf_counter() - t0
    print(f"trained {args.file} into {store.url} in {train_s:.0f}s (profile {args.profile}, env options {env_options})")
    header = (f"{'skill':<18} {'runs':>4} {'budget':>6} {'frames':>8} {'trained':>7} {'95% CI':>13} "
              f"{'random':>6} {'margin':>6} {'steps':>6} {'rnd steps':>9}")
    print(header)
    print("-" * len(header))
    reports, ok = [], True
    for t in trained:
        t1 = time.perf_counter()
        r = evaluate_skill(store, t.skill, episodes=args.episodes, seed=args.seed)
        reports.append(r.to_dict())
        runs = sum(c for _, c in r.plan)
        lo, hi = r.result.success_ci95
        steps = f"{r.mean_steps:.1f}" if r.mean_steps is not None else "-"
        rsteps = f"{r.baseline.mean_steps:.1f}" if r.baseline.mean_steps is not None else "-"
        ok &= r.margin >= MARGIN
        print(f"{t.skill:<18} {runs:>4} {r.max_steps:>6} {t.frames:>8} {r.success_rate:>7.3f} "
              f"[{lo:.3f},{hi:.3f}] {r.baseline.success_rate:>6.3f} {r.margin:>+6.3f} {steps:>6} {rsteps:>9}"
              f"   ({time.perf_counter() - t1:.1f}s)")
    print(f"\n{args.episodes} fresh episodes per policy, seed {args.seed}; every skill >= {MARGIN} above random: "
          f"{'yes' if ok else 'NO'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"file": args.file, "train_s": train_s, "reports": reports}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
