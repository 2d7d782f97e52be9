"""How close does the skill DAG run to the best possible schedule?

Runs the real ``train-skill-graph`` flow (Prefect ephemeral API, real store, real setup and
merge tasks) with a *benchmark-only* trainer, :func:`sleep_trainer`, that holds its slot for a
set time and writes a trivial result.  It is a fixture for measuring orchestration, never the
product's trainer.  For each DAG and slots in {1, 2, 4, 8} it prints:

- makespan (first slot taken → last merge), the lower bound max(critical path, work / slots),
  their ratio, the makespan of the ideal zero-overhead critical-path-first list schedule and our
  ratio to it;
- dependency launch latency p50/p95: from the moment a skill could start (dependencies merged
  and its slot free) to its training start;
- the same with arrival order instead of critical-path order (``--compare-arrival``).

The training start is the moment the fixture trainer begins (after the skill's setup task and
the train task or child flow run have started), so latency includes every Prefect step between
"could start" and "trains".

Launchers: ``local`` (the default: setup/train/merge task runs in the flow's process) and
``pool`` (each skill a child flow run of the ``train-skill`` deployment on the GPU work pool).
For ``pool`` the benchmark stands up what a fleet has, on 127.0.0.1: a ``prefect server``, the
pools (GPU pool limit = slots), the ``train-skill`` deployment from prefect.yaml and one
``flowrl worker start --gpu K`` per slot (workers poll every 1 s), and stops all of it after.

DAGs: chain, fan-out, diamond lattice, a seeded random 30-skill DAG, or any JSON file
``{"skills": [{"name", "deps": [...], "duration_s"}]}`` (``--dag FILE``).

    python -m benchmarks.orchestration                      # all generated DAGs, local launcher
    python -m benchmarks.orchestration --dag my_dag.json --slots 2 4
    python -m benchmarks.orchestration --launcher pool --dags chain8 diamond3x4 --slots 1 2
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

Dag = list[dict[str, Any]]  # [{"name", "deps", "duration_s"}]


# ----------------------------------------------------------------------------- DAG generators
def chain(n: int = 8, d: float = 1.0) -> Dag:
    return [{"name": f"C{i:02d}", "deps": [f"C{i - 1:02d}"] if i else [], "duration_s": d} for i in range(n)]


def fan_out(n: int = 12, d: float = 1.0) -> Dag:
    return [{"name": "Root", "deps": [], "duration_s": d}] + [
        {"name": f"F{i:02d}", "deps": ["Root"], "duration_s": d} for i in range(n)]


def diamond_lattice(width: int = 3, depth: int = 4, d: float = 1.0) -> Dag:
    out = [{"name": "Src", "deps": [], "duration_s": d}]
    prev = ["Src"]
    for level in range(depth):
        cur = [f"L{level}_{j}" for j in range(width)]
        out += [{"name": c, "deps": list(prev), "duration_s": d} for c in cur]
        prev = cur
    out.append({"name": "Sink", "deps": prev, "duration_s": d})
    return out


def random_dag(n: int = 30, seed: int = 0, p: float = 0.12) -> Dag:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        deps = [f"R{j:02d}" for j in range(i) if rng.random() < p]
        out.append({"name": f"R{i:02d}", "deps": deps, "duration_s": round(rng.uniform(0.5, 3.0), 2)})
    return out


GENERATED = {"chain8": chain, "fanout12": fan_out, "diamond3x4": diamond_lattice, "random30": random_dag}


def to_skills(dag: Dag) -> dict[str, Any]:
    """Synthetic skills: no requirements, explicit depends_on, duration carried as the frame budget (ms)."""
    return {"trainer": "benchmarks.orchestration:sleep_trainer",
            "skills": [{"name": s["name"], "gains": {"sapling": 1}, "depends_on": list(s["deps"]),
                        "train": {"total_timesteps": max(1, int(round(s["duration_s"] * 1000)))}}
                       for s in dag]}


# ----------------------------------------------------------------------------- the fixture trainer
def sleep_trainer(ctx: Any) -> Any:
    """Benchmark trainer (the skill file names it with ``trainer:``): hold the slot for the skill's
    duration (its frame budget in ms), then return trivial experts.  It runs in the trainer child
    process like the real one, so the launch path measured is the product's."""
    from flowrl_core.lifecycle.trainers import TrainedRun

    started = time.time()
    frames = int(ctx.job.config["total_timesteps"])
    time.sleep(frames / 1000.0)
    ctx.run.write_doc("bench.json", {"train_start": started})  # wall clock: the trainer is another process
    experts = {g: {"w": np.zeros(1, np.float32)} for g in ctx.job.remap.local_to_global.values()}
    return TrainedRun(experts=experts, frames=frames, updates=1, early_stopped=False,
                      expert_steps={g: 0 for g in experts}, metrics={})


# ----------------------------------------------------------------------------- ideal schedule
def cp_lengths(dag: Dag) -> dict[str, float]:
    children: dict[str, list[str]] = {s["name"]: [] for s in dag}
    for s in dag:
        for d in s["deps"]:
            children[d].append(s["name"])
    dur = {s["name"]: s["duration_s"] for s in dag}
    memo: dict[str, float] = {}

    def length(n: str) -> float:
        if n not in memo:
            memo[n] = dur[n] + max((length(c) for c in children[n]), default=0.0)
        return memo[n]

    return {n: length(n) for n in dur}


def ideal_makespan(dag: Dag, slots: int) -> float:
    """Zero-overhead list scheduling, critical-path-first (the schedule we aim to match)."""
    cp = cp_lengths(dag)
    deps = {s["name"]: set(s["deps"]) for s in dag}
    dur = {s["name"]: s["duration_s"] for s in dag}
    done: set[str] = set()
    started: set[str] = set()
    running: list[tuple[float, str]] = []
    t = 0.0
    while len(done) < len(dag):
        ready = sorted((n for n in dag_names(dag) if n not in started and deps[n] <= done), key=lambda n: (-cp[n], n))
        while ready and len(running) < slots:
            n = ready.pop(0)
            started.add(n)
            heapq.heappush(running, (t + dur[n], n))
        t, n = heapq.heappop(running)
        done.add(n)
        while running and running[0][0] == t:
            done.add(heapq.heappop(running)[1])
    return t


def dag_names(dag: Dag) -> list[str]:
    return [s["name"] for s in dag]


# ----------------------------------------------------------------------------- one measured run
def measure(dag: Dag, slots: int, priority: str, launcher: str = "local") -> dict[str, Any]:
    from flowrl_core.store.objects import Store
    from flows.graph_flow import train_skill_graph

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dag.json"
        path.write_text(json.dumps(to_skills(dag)))
        store = str(Path(tmp) / "store")
        state = train_skill_graph(skills_file=str(path), store=store, profile="tiny",
                                  overrides={"num_envs": 1, "num_steps": 1, "num_minibatches": 1},  # 1 frame = 1 ms
                                  slots=slots, retries=0, launcher=launcher, return_state=True,
                                  internal={"priority": priority})
        summary = state.result(raise_on_failure=False)
        if not state.is_completed():
            raise RuntimeError(f"benchmark flow failed: {state.message}")
        st = Store(store, create=False)
        train_start = {o.skill: st.run(o.run_id).read_doc("bench.json")["train_start"] for o in summary.outcomes}
    wall = time.time() - time.monotonic()  # the orchestrator's monotonic clock -> wall clock
    events = {e["label"]: e for e in summary.slot_events}
    merged = summary.merged_at
    t0 = min(e["acquired_at"] for e in events.values())
    makespan = max(merged.values()) - t0
    by_slot: dict[int, list[dict[str, Any]]] = {}
    for e in sorted(events.values(), key=lambda e: e["acquired_at"]):
        by_slot.setdefault(e["slot"], []).append(e)
    prev_release = {}
    for slot_events in by_slot.values():
        for before, after in zip(slot_events, slot_events[1:]):
            prev_release[after["label"]] = before["released_at"]
    latencies = []
    deps = {s["name"]: s["deps"] for s in dag}
    for name, e in events.items():
        ready = max([merged[d] for d in deps[name]], default=t0)
        could = max(ready, prev_release.get(name, t0))
        latencies.append(max(0.0, train_start[name] - (could + wall)))
    cp = max(cp_lengths(dag).values())
    work = sum(s["duration_s"] for s in dag)
    bound = max(cp, work / slots)
    ideal = ideal_makespan(dag, slots)
    return {"slots": slots, "priority": priority, "launcher": launcher, "makespan_s": makespan, "lower_bound_s": bound,
            "ratio_to_bound": makespan / bound, "ideal_s": ideal, "ratio_to_ideal": makespan / ideal,
            "latency_p50_s": statistics.median(latencies), "latency_p95_s": float(np.percentile(latencies, 95)),
            "peak": summary.peak_concurrency}


def run_all(dags: dict[str, Dag], slot_counts: list[int], orders: list[str], launcher: str,
            rows: list[dict[str, Any]], before_slots: Any = None) -> None:
    for name, dag in dags.items():
        for slots in slot_counts:
            if before_slots is not None:
                before_slots(slots)
            for priority in orders:
                r = measure(dag, slots, priority, launcher) | {"dag": name}
                rows.append(r)
                print(f"{name:<11} {launcher:<6} {priority:<13} {slots:>5} {r['makespan_s']:>8.2f}s "
                      f"{r['lower_bound_s']:>6.2f}s {r['ratio_to_bound']:>7.3f} {r['ideal_s']:>6.2f}s "
                      f"{r['ratio_to_ideal']:>7.3f} {r['latency_p50_s']:>7.3f}s {r['latency_p95_s']:>7.3f}s "
                      f"{r['peak']:>4}", flush=True)


def run_on_pool(dags: dict[str, Dag], slot_counts: list[int], orders: list[str], rows: list[dict[str, Any]]) -> None:
    """The pool launcher against a server, pools, deployment and workers started here and stopped after."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.local_cluster import LocalCluster

    with tempfile.TemporaryDirectory() as home, LocalCluster(Path(home), extra_env={"FLOWRL_STORE": home}) as cluster:
        cluster.create_pools(max(slot_counts))
        cluster.deploy("train-skill")
        cluster.start_workers(range(max(slot_counts)))
        with temporary_settings(updates={PREFECT_API_URL: cluster.api}):
            run_all(dags, slot_counts, orders, "pool", rows, before_slots=cluster.create_pools)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dag", help="JSON file {'skills': [{'name','deps','duration_s'}]}")
    parser.add_argument("--dags", nargs="+", choices=sorted(GENERATED), help="generated DAGs to run (default: all)")
    parser.add_argument("--slots", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--launcher", choices=["local", "pool", "both"], default="local")
    parser.add_argument("--compare-arrival", action="store_true", help="also run with arrival order")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every duration")
    parser.add_argument("--json", help="write all rows to this file")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    if args.dag:
        dags = {Path(args.dag).stem: json.loads(Path(args.dag).read_text())["skills"]}
    else:
        dags = {name: GENERATED[name]() for name in (args.dags or GENERATED)}
    dags = {name: [dict(s, duration_s=s["duration_s"] * args.scale) for s in dag] for name, dag in dags.items()}
    orders = ["critical-path", "arrival"] if args.compare_arrival else ["critical-path"]
    rows: list[dict[str, Any]] = []
    header = (f"{'dag':<11} {'launch':<6} {'order':<13} {'slots':>5} {'makespan':>9} {'bound':>7} {'x bound':>7} "
              f"{'ideal':>7} {'x ideal':>7} {'lat p50':>8} {'lat p95':>8} {'peak':>4}")
    print(header)
    print("-" * len(header))
    if args.launcher in ("local", "both"):
        run_all(dags, args.slots, orders, "local", rows)
    if args.launcher in ("pool", "both"):
        run_on_pool(dags, args.slots, orders, rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
