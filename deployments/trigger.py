"""``flowrl trigger``: start a deployment's flow run and follow it to the end, for people and CI.

What a CI job needs from it, and why it is not ``run_deployment``:

* the run's UI URL printed the moment the run exists (``run_deployment`` says nothing until the end);
* state changes and the flow's progress artifact as they happen, so a log shows where a run is;
* exit codes that tell a mistyped deployment (2, naming the deployments that exist) from a run
  that failed (1) from a Prefect API that cannot be reached (3);
* cancelling the Prefect run when the trigger itself is stopped: GitHub cancels a job with SIGINT
  then SIGTERM, and a run left going would keep GPUs busy for hours (exit 130).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import httpx

from deployments.commit import commit_job_variables
from flowrl_core.errors import FlowRLError, UnreachableError
from flows.cli.app import ExitCode


class BadDeployment(FlowRLError):
    """No such deployment, or the server refused the run's parameters."""


class _Stop(BaseException):
    """Raised from the SIGINT/SIGTERM handler so the run is cancelled before we exit."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def run_url(flow_run_id: UUID | str) -> str:
    """The run's page in the UI (PREFECT_UI_URL, else derived from PREFECT_API_URL by Prefect)."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    base = settings.ui_url or str(settings.api.url or "").removesuffix("/api")
    return f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}"


def _known_deployments(client: Any) -> list[str]:
    flows = {f.id: f.name for f in client.read_flows()}
    return sorted(f"{flows.get(d.flow_id, '?')}/{d.name}" for d in client.read_deployments())


def find_deployment(client: Any, name: str) -> Any:
    """The deployment called ``flow/deployment``; a wrong name is one line listing the real ones."""
    from prefect.exceptions import ObjectNotFound

    if "/" in name:
        try:
            return client.read_deployment_by_name(name)
        except ObjectNotFound:
            pass
    known = _known_deployments(client)
    close = [k for k in known if k.split("/", 1)[1] == name or k.split("/", 1)[0] == name]
    hint = f" — did you mean {close[0]!r}?" if len(close) == 1 else ""
    raise BadDeployment(f"no deployment {name!r} on this server{hint} Deployments there: "
                        f"{', '.join(known) or 'none (run `prefect deploy --all` from the checkout)'}")


def cancel(client: Any, flow_run_id: UUID, reason: str) -> str:
    """Cancel a run that has not finished: Cancelled if it never started, else Cancelling (the
    worker then stops its process). Returns the state name set, or '' if it had already finished."""
    from prefect.states import Cancelled, Cancelling

    state = client.read_flow_run(flow_run_id).state
    if state is not None and state.is_final():
        return ""
    new = Cancelled(message=reason) if state is None or state.is_scheduled() else Cancelling(message=reason)
    client.set_flow_run_state(flow_run_id, new, force=True)
    return new.name


def _progress(client: Any, flow_run_id: UUID) -> str | None:
    """The flow's progress artifact (e.g. '40% of skills trained of 5'), if it has one yet."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType

    arts = client.read_artifacts(artifact_filter=ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), type=ArtifactFilterType(any_=["progress"])))
    if not arts:
        return None
    latest = max(arts, key=lambda a: a.updated or a.created)
    try:
        pct = float(latest.data)
    except (TypeError, ValueError):
        return None
    return f"{pct:.0f}%" + (f" ({latest.description})" if latest.description else "")


def follow(deployment: str, parameters: dict[str, Any], *, commit: str | None = None, timeout_s: float = 6 * 3600,
           poll_s: float = 5.0, say: Callable[[str], None] = print) -> ExitCode:
    """Create the run, print its URL, follow it; returns the exit code (see module docstring)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.settings import get_current_settings

    api = str(get_current_settings().api.url)
    handlers = {}
    run_id: UUID | None = None

    def on_signal(signum: int, _frame: Any) -> None:
        raise _Stop(signum)

    try:
        with get_client(sync_client=True) as client:
            try:
                dep = find_deployment(client, deployment)
                try:
                    run = client.create_flow_run_from_deployment(
                        dep.id, parameters=parameters, job_variables=commit_job_variables(commit) or None)
                except (PrefectHTTPStatusError, httpx.HTTPStatusError) as exc:
                    if exc.response.status_code in (409, 422):
                        detail = exc.response.json().get("detail", exc.response.text)
                        raise BadDeployment(f"{deployment}: the server refused the parameters: {detail}") from None
                    raise
                run_id = run.id
                for sig in (signal.SIGINT, signal.SIGTERM):
                    handlers[sig] = signal.signal(sig, on_signal)
                say(f"flow run {run.name} of {deployment}: {run_url(run.id)}")
                return _watch(client, run.id, timeout_s, poll_s, say)
            except _Stop as stop:
                name = signal.Signals(stop.signum).name
                if run_id is not None:
                    set_to = cancel(client, run_id, f"flowrl trigger got {name}")
                    say(f"got {name}: flow run {run_id} " + (f"set to {set_to}" if set_to else "had already finished"))
                return ExitCode.INTERRUPTED
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.RemoteProtocolError) as exc:
        raise UnreachableError(f"Prefect API {api} is unreachable ({type(exc).__name__}: {exc}); is the server "
                               "running and PREFECT_API_URL right?") from None
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _watch(client: Any, run_id: UUID, timeout_s: float, poll_s: float, say: Callable[[str], None]) -> ExitCode:
    started = time.monotonic()
    last_state, last_progress = None, None
    while True:
        run = client.read_flow_run(run_id)
        state = run.state
        name = state.name if state else "unknown"
        if name != last_state:
            say(f"[{time.monotonic() - started:6.0f} s] state: {name}" + (f" — {state.message}" if state and
                                                                        state.message and state.is_final() else ""))
            last_state = name
        progress = _progress(client, run_id)
        if progress and progress != last_progress:
            say(f"[{time.monotonic() - started:6.0f} s] progress: {progress}")
            last_progress = progress
        if state is not None and state.is_final():
            return ExitCode.OK if state.is_completed() else ExitCode.FAILED
        if time.monotonic() - started > timeout_s:
            set_to = cancel(client, run_id, f"flowrl trigger timed out after {timeout_s:.0f} s")
            say(f"timed out after {timeout_s:.0f} s: flow run {run_id} " + (f"set to {set_to}" if set_to else "finished"))
            return ExitCode.FAILED
        time.sleep(poll_s)
