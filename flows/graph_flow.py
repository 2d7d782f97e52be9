"""The main job: ``train-skill-graph`` trains every skill of a skill file as a Prefect DAG.

Order of business: validate everything (graph, plans, configs, environment names) before
anything is written; claim expert indices; submit one ``skill`` task per skill with
``wait_for`` = its dependencies' futures; watch them finish while a progress artifact moves;
publish the results table and the DAG.  A failed skill fails only its descendants (Prefect
leaves them NotReady; the summary says which upstream failed); independent branches finish,
and the flow then ends Failed with the partial results attached.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.futures import wait
from prefect.states import Completed, Failed

from flowrl_core.defaults import DEFAULT_STORE
from flowrl_core.scheduling.slots import PrioritySlots
from flowrl_core.skills.graph import (
    build_graph,
    critical_path,
    critical_path_lengths,
    training_order,
)
from flowrl_core.skills.parsing import load_skill_doc, parse_skills
from flowrl_core.skills.plan import execution_plan
from flowrl_core.store.objects import Store
from flowrl_core.training.config import resolve_config
from tasks.skill import GraphRun, skill_task


def _artifact_key(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:60] or "flowrl"


def dag_markdown(graph, order: list[str], crit: list[str], states: dict[str, str]) -> str:
    lines = ["# Skill DAG", "", f"**Critical path:** {' → '.join(crit)}", "", "```mermaid", "graph LR"]
    ids = {name: f"s{i}" for i, name in enumerate(order)}
    for name in order:
        lines.append(f'  {ids[name]}["{name} ({states.get(name, "pending")})"]')
    for u, v in graph.edges:
        lines.append(f"  {ids[u]} --> {ids[v]}")
    lines += ["```", "", "| skill | state | depends on |", "|---|---|---|"]
    for name in order:
        lines.append(f"| {name} | {states.get(name, 'pending')} | {', '.join(sorted(graph.predecessors(name))) or '—'} |")
    return "\n".join(lines)


def _link(store: Store, path: str) -> str:
    """A URL the Prefect UI can show for an object in the store."""
    return path if "://" in path else f"file://{path}"


def _publish_pictures(store: Store, graph, order: list[str], crit: list[str], states: dict[str, str],
                      rows: list[dict[str, Any]], key: str) -> str:
    """DAG picture coloured by state into the store, and markdown links to every skill's pictures.

    Pictures are for people: failing to draw one is logged, never fails the flow."""
    from flowrl_core.reporting.plots import dag_png
    from flowrl_core.store.objects import now_iso

    lines = ["", "## Pictures", ""]
    try:
        stamp = now_iso().replace(":", "").replace("-", "").replace(".", "")
        path = store.write_bytes(("graphs", f"{stamp}-{key}-dag.png"), dag_png(graph, states, crit))
        lines.append(f"- [DAG picture]({_link(store, path)})")
    except Exception as exc:  # noqa: BLE001
        get_run_logger().warning("could not draw the DAG picture: %s", exc)
    for row in rows:
        arts = row.get("artifacts") or {}
        parts = [f"[{label}]({_link(store, arts[name])})" for name, label in
                 (("learning_curve", "learning curve"), ("rollout", "rollout")) if name in arts]
        if parts:
            lines.append(f"- {row['skill']}: " + ", ".join(parts))
    return "\n".join(lines) + "\n"


@flow(name="train-skill-graph", log_prints=True)
def train_skill_graph(
    skills_file: str | None = None,
    store: str = DEFAULT_STORE,
    env: str | None = None,
    profile: str = "cpu",
    overrides: dict[str, Any] | None = None,
    slots: int = 1,
    gpus: list[str] | None = None,
    retries: int = 2,
    only: list[str] | None = None,
    continuation: bool = False,
    storage_options: dict[str, Any] | None = None,
    launcher: str = "local",
    deployment: str = "train-skill/train-skill",
    skills: dict[str, Any] | None = None,
    stale_after_s: float = 90.0,
    priority: str = "critical-path",
    trainer: str = "subprocess",
    env_options: dict[str, Any] | None = None,
) -> Any:
    """Train the skills of ``skills_file`` into ``store``.

    ``slots`` caps how many skills train at once; ``gpus`` (e.g. ["0", "1"]) pins slot i to
    GPU ``gpus[i]`` and sets ``slots = len(gpus)``.  ``only`` restricts the run to those skills
    (their dependencies must already be in the store).  ``overrides`` are training settings
    applied to every skill (the skill file's ``train:`` still wins).  ``launcher="pool"`` runs
    each skill as a child flow run of ``deployment`` on its work pool (see prefect.yaml).
    """
    logger = get_run_logger()
    from flowrl_core.envs import (
        make_env_and_params,  # validates env name and options up front
    )

    if (skills_file is None) == (skills is None):
        raise ValueError("pass exactly one of skills_file (a path) or skills (the decoded file)")
    if skills_file:
        specs, file_defaults = load_skill_doc(skills_file)
    else:
        specs = parse_skills(skills, source="parameter 'skills'")
        file_defaults = {k: skills[k] for k in ("env", "env_options") if skills.get(k) is not None}
    env = env or file_defaults.get("env") or "gridworld"  # the caller wins, then the file, then the gridworld
    env_options = {**file_defaults.get("env_options", {}), **(env_options or {})}
    label = skills_file or "skills"
    graph = build_graph(specs)
    order = training_order(graph)
    targets = order if not only else [n for n in order if n in set(only)]
    unknown = sorted(set(only or []) - set(order))
    if unknown:
        raise ValueError(f"{label}: only= names unknown skills {unknown}")
    make_env_and_params(env, env_options)
    by_name = {s.name: s for s in specs}
    configs = {n: resolve_config(profile, overrides, by_name[n].train, skill=n) for n in targets}
    if continuation and overrides and "total_timesteps" in overrides:  # extra frames beat the file's budget
        for cfg in configs.values():
            cfg["total_timesteps"] = int(overrides["total_timesteps"])
    for n in targets:
        execution_plan(specs, n)  # every plan must exist before anything trains
    devices = [str(g) for g in gpus] if gpus else [""] * max(1, int(slots))
    if int(slots) < 1:
        raise ValueError(f"slots must be >= 1, got {slots}")
    if priority not in ("critical-path", "arrival"):
        raise ValueError(f"priority must be 'critical-path' or 'arrival', got {priority!r}")
    if launcher not in ("local", "pool"):
        raise ValueError(f"launcher must be 'local' or 'pool', got {launcher!r}")

    st = Store(store, storage_options=storage_options)
    indices = {n: st.assign_index(n) for n in order}
    for spec in specs:  # the store keeps the whole library, so reports and continuations see every skill
        st.save_skill(spec)
    budget = {n: float(configs[n]["total_timesteps"]) if n in configs else 0.0 for n in order}
    lengths = critical_path_lengths(graph, budget)  # frames left on the longest path: who goes first
    crit = critical_path(graph, budget)
    logger.info("%d skills, training %d on %d slot(s); order %s; critical path %s", len(order), len(targets),
                len(devices), " → ".join(targets), " → ".join(crit))
    ctx = GraphRun(store_url=st.url, storage_options=dict(storage_options or {}), env=env, specs=specs,
                   configs=configs, slots=PrioritySlots(devices),
                   priority=lengths if priority == "critical-path" else {}, retries=int(retries), trainer=trainer,
                   continuation=continuation, launcher=launcher, deployment=deployment,
                   skills_doc={"skills": [s.to_dict() for s in specs]}, stale_after_s=float(stale_after_s),
                   env_options=env_options,
                   upstream={n: [d for d in graph.predecessors(n) if d in targets] for n in targets})

    ctx.slots.prime({n: ctx.priority.get(n, 0.0) for n in targets if not ctx.upstream[n]})
    futures = {}
    for name in targets:
        upstream = [futures[d] for d in graph.predecessors(name) if d in futures]
        futures[name] = skill_task.submit(name, ctx, wait_for=upstream)

    progress_id = create_progress_artifact(progress=0.0, key=f"{_artifact_key(label)}-progress",
                                           description=f"skills trained of {len(targets)}")
    pending, finished = set(futures.values()), 0
    while pending:
        done, pending = wait(list(pending), timeout=2.0)
        if done:
            finished += len(done)
            update_progress_artifact(progress_id, 100.0 * finished / max(1, len(futures)))
    for fut in futures.values():
        fut.wait()  # pins each future's final state locally (the API's copy can lag behind)

    rows, states, failures = [], {}, {}
    for name in targets:
        state = futures[name].state
        if state.is_completed():
            row = futures[name].result()
            states[name] = row["status"]
        else:
            if state.is_failed() or state.is_crashed():
                states[name] = "failed"
                try:
                    futures[name].result(raise_on_failure=True)
                    reason = state.message or state.name
                except Exception as exc:  # the skill's own exception, for the summary
                    reason = f"{type(exc).__name__}: {exc}"
                failures[name] = reason
            else:
                states[name] = "skipped"
                roots = sorted(a for a in nx.ancestors(graph, name) if states.get(a) == "failed")
                failures[name] = f"upstream failed: {', '.join(roots) or 'unknown'}"
            row = {"skill": name, "status": states[name], "frames": None, "decisions": [], "error": failures[name]}
        row["expert"] = indices[name]
        rows.append(row)

    table = [{
        "skill": r["skill"], "expert": r["expert"], "status": r["status"], "frames": r.get("frames"),
        "success_rate": r.get("success_rate"), "duration_s": r.get("duration_s"),
        "decisions": "; ".join(f"{d['skill']}:{d['action']}@{d['current_frames']}" for d in r.get("decisions", [])),
        "error": r.get("error", ""),
    } for r in rows]
    key = _artifact_key(label)
    create_table_artifact(key=f"{key}-results", table=table, description=f"skills trained into {st.url}")
    links = _publish_pictures(st, graph, order, crit, states, rows, key)
    create_markdown_artifact(key=f"{key}-dag", markdown=dag_markdown(graph, order, crit, states) + links,
                             description="skill DAG, states, critical path and each skill's pictures")
    peak = ctx.slots.peak_concurrency()
    summary = {"store": st.url, "skills": rows, "failed": failures, "peak_concurrency": peak,
               "timeline": ctx.timeline, "indices": indices, "merged_at": ctx.merged_at,
               "slot_events": [vars(e) for e in ctx.slots.events]}
    logger.info("done: %s", ", ".join(f"{r['skill']}={r['status']}" for r in rows))
    if failures:
        return Failed(message=f"{len(failures)} of {len(targets)} skill(s) did not train: "
                      + "; ".join(f"{k}: {v}" for k, v in failures.items()), data=summary)
    return Completed(message=f"{len(targets)} skill(s) trained or already done", data=summary)
