"""The artifacts a graph run leaves in the Prefect UI: results table, DAG, pictures.

Pictures are for people: failing to draw one is logged, never fails the flow.
"""

from __future__ import annotations

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flowrl_core.lifecycle.outcomes import GraphSummary
from flowrl_core.lifecycle.prepare import GraphRunPlan
from flowrl_core.store.objects import Store, now_iso


def artifact_key(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:60] or "flowrl"


def dag_markdown(plan: GraphRunPlan, states: dict[str, str]) -> str:
    order, graph = plan.order, plan.graph
    lines = ["# Skill DAG", "", f"**Critical path:** {' → '.join(plan.critical_path)}", "", "```mermaid", "graph LR"]
    ids = {name: f"s{i}" for i, name in enumerate(order)}
    for name in order:
        lines.append(f'  {ids[name]}["{name} ({states.get(name, "pending")})"]')
    for u, v in graph.edges:
        lines.append(f"  {ids[u]} --> {ids[v]}")
    lines += ["```", "", "| skill | state | depends on |", "|---|---|---|"]
    for name in order:
        lines.append(f"| {name} | {states.get(name, 'pending')} | {', '.join(sorted(graph.predecessors(name))) or '—'} |")
    return "\n".join(lines)


def _link(path: str) -> str:
    return path if "://" in path else f"file://{path}"


def _pictures(store: Store, plan: GraphRunPlan, summary: GraphSummary, states: dict[str, str], key: str) -> str:
    from flowrl_core.reporting.plots import dag_png

    lines = ["", "## Pictures", ""]
    try:
        stamp = now_iso().replace(":", "").replace("-", "").replace(".", "")
        path = store.write_bytes(("graphs", f"{stamp}-{key}-dag.png"), dag_png(plan.graph, states, list(plan.critical_path)))
        lines.append(f"- [DAG picture]({_link(path)})")
    except Exception as exc:  # noqa: BLE001
        get_run_logger().warning("could not draw the DAG picture: %s", exc)
    for o in summary.outcomes:
        parts = [f"[{label}]({_link(o.artifacts[name])})" for name, label in
                 (("learning_curve", "learning curve"), ("rollout", "rollout")) if name in o.artifacts]
        if parts:
            lines.append(f"- {o.skill}: " + ", ".join(parts))
    return "\n".join(lines) + "\n"


def publish_results(store: Store, plan: GraphRunPlan, summary: GraphSummary) -> None:
    key = artifact_key(plan.label)
    table = [{
        "skill": o.skill, "expert": o.expert, "status": o.status.value, "frames": o.frames,
        "success_rate": o.success_rate, "duration_s": o.duration_s,
        "decisions": "; ".join(f"{d['skill']}:{d['action']}@{d['current_frames']}" for d in o.decisions),
        "error": o.error,
    } for o in summary.outcomes]
    create_table_artifact(key=f"{key}-results", table=table, description=f"skills trained into {store.url}")
    states = {o.skill: o.status.value for o in summary.outcomes}
    create_markdown_artifact(key=f"{key}-dag", markdown=dag_markdown(plan, states) + _pictures(store, plan, summary, states, key),
                             description="skill DAG, states, critical path and each skill's pictures")
