"""How validation and planning scale with the size of a skill file (issue: 10k skills in seconds).

Usage:  python -m benchmarks.plan_scale [--sizes 1000 10000] [--cli] [--order gather_first]

Generates skill files of random libraries over the Craftax-Classic vocabulary (each skill gains one
key and requires up to two keys some earlier skill provides — the shape an LLM proposer grows), then
times, in this process: reading and validating the file (bounded read, YAML/JSON, every skill and
the graph) and planning every skill with its remap (what ``flowrl plan`` computes).  ``--cli`` also
times the whole ``flowrl plan FILE --json`` command (process start and imports included).
``--order gather_first`` plans every skill with that plan order (its ``train:`` map sets it).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flowrl_core.skills.vocab import CLASSIC_ACHIEVEMENTS, CLASSIC_ITEMS


def library(n: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    keys = list(CLASSIC_ITEMS) + ["achievement:" + a for a in CLASSIC_ACHIEVEMENTS]
    first: dict[str, int] = {}
    skills = []
    for i in range(n):
        key = rng.choice(keys)
        avail = [k for k, p in first.items() if p < i and k != key]
        req = {k: (1 if k.startswith("achievement:") else rng.randint(1, 2))
               for k in rng.sample(avail, min(len(avail), rng.randint(0, 2)))}
        skills.append({"name": f"S{i:05d}", "gains": {key: 1}, **({"requires": req} if req else {})})
        first.setdefault(key, i)
    return {"skills": skills}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--cli", action="store_true", help="also time `flowrl plan FILE --json`")
    parser.add_argument("--order", default="just_in_time", help="plan_order every skill's train: map sets")
    args = parser.parse_args()
    from flowrl_core.reporting.plan_view import overview
    from flowrl_core.skills.parsing import read_skill_file

    print(f"{'skills':>8} {'read+validate s':>16} {'plan all s':>11} {'plan steps':>11}" + ("  cli s" if args.cli else ""))
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"lib{n}.json"
            lib = library(n)
            if args.order != "just_in_time":
                for skill in lib["skills"]:
                    skill["train"] = {"plan_order": args.order}
            path.write_text(json.dumps(lib))
            t0 = time.perf_counter()
            doc = read_skill_file(path)
            t1 = time.perf_counter()
            view = overview(doc.specs, {})
            t2 = time.perf_counter()
            steps = sum(len(s.plan) for s in view.skills.values())
            line = f"{n:>8} {t1 - t0:>16.2f} {t2 - t1:>11.2f} {steps:>11}"
            if args.cli:
                t3 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "flows.cli", "plan", str(path), "--json"], check=True,
                               stdout=subprocess.DEVNULL)
                line += f"  {time.perf_counter() - t3:5.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
