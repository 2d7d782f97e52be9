"""Shared fixtures: isolated memory stores and a real local S3 server (moto) on 127.0.0.1."""

from __future__ import annotations

import os
import uuid

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def pytest_configure(config):
    """Compile in this process through the same persistent cache the trainer processes use: many
    tests build the same tiny PPO update, and a cold suite otherwise compiles it again each time
    (the cache cut test_early_stop + test_ppo + test_frontier from 209 s to 155 s on 2 cores)."""
    from flowrl_core.lifecycle.train import configure_jax

    configure_jax()


@pytest.fixture
def mem_url() -> str:
    return f"memory://flowrl-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server in server mode on 127.0.0.1; yields (endpoint, storage_options)."""
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    import boto3

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    options = {"key": "testing", "secret": "testing",
               "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    client.create_bucket(Bucket="flowrl")
    yield endpoint, options
    server.stop()


@pytest.fixture
def s3_url(s3_server) -> tuple[str, dict]:
    _, options = s3_server
    return f"s3://flowrl/test-{uuid.uuid4().hex[:10]}", options


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """Prefect's own test harness: a temporary database and API server for this session."""
    from prefect.settings import (
        PREFECT_HOME,
        PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW,
        PREFECT_RESULTS_LOCAL_STORAGE_PATH,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect_home")
    with temporary_settings(updates={
        PREFECT_HOME: home, PREFECT_RESULTS_LOCAL_STORAGE_PATH: home / "storage",
        PREFECT_SERVER_ANALYTICS_ENABLED: False, PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore",
    }):
        with prefect_test_harness(server_startup_timeout=120):
            yield
