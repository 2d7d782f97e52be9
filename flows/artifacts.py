"""Hand :class:`~flowrl_core.reporting.flow_artifacts.FlowArtifacts` to Prefect (the only Prefect part)."""

from __future__ import annotations

from prefect.artifacts import (
    create_image_artifact,
    create_markdown_artifact,
    create_table_artifact,
)

from flowrl_core.reporting.flow_artifacts import FlowArtifacts


def publish(artifacts: FlowArtifacts) -> None:
    """Results table, details, DAG, then one image artifact per picture (inside a flow or task run)."""
    create_table_artifact(key=artifacts.table.key, table=artifacts.table.rows, description=artifacts.table.description)
    create_markdown_artifact(key=artifacts.details.key, markdown=artifacts.details.markdown,
                             description=artifacts.details.description)
    create_markdown_artifact(key=artifacts.dag.key, markdown=artifacts.dag.markdown, description=artifacts.dag.description)
    for image in artifacts.images:
        create_image_artifact(image_url=image.url, key=image.key, description=image.description)
