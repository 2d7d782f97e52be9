"""The artifacts a graph run leaves in the Prefect UI, decided by
:mod:`flowrl_core.reporting.flow_artifacts` and handed to Prefect by :mod:`flows.artifacts`.

Pictures are for people: failing to draw one is logged, never fails the flow.
"""

from __future__ import annotations

from prefect import get_run_logger

from flowrl_core.lifecycle.outcomes import GraphSummary
from flowrl_core.lifecycle.prepare import GraphRunPlan
from flowrl_core.reporting.flow_artifacts import (
    flow_artifacts,
    run_key,
    write_dag_picture,
)
from flowrl_core.store.objects import Store
from flows.artifacts import publish


def artifact_key(label: str) -> str:
    return run_key(label)


def publish_results(store: Store, plan: GraphRunPlan, summary: GraphSummary) -> None:
    states = {o.skill: o.status.value for o in summary.outcomes}
    try:
        dag_path = write_dag_picture(store, plan.label, plan.graph, states, plan.critical_path)
    except Exception as exc:  # noqa: BLE001 - pictures never fail the flow
        get_run_logger().warning("could not draw the DAG picture: %s", exc)
        dag_path = None
    publish(flow_artifacts(store, plan.label, plan.graph, plan.order, plan.critical_path, states,
                           summary.outcomes, dag_path))
