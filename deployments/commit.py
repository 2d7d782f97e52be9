"""Deployments run the commit that triggered them.

``flowrl trigger --commit SHA`` (CI passes ``$GITHUB_SHA``) puts ``FLOWRL_COMMIT=SHA`` into the flow
run's environment through its job variables; the pull steps in ``prefect.yaml`` read it there at run
time (Prefect resolves ``{{ $VAR }}`` in pull steps on the worker, not at deploy time):

* shared checkout (``prefect.yaml``): :func:`require_commit` refuses to run when the checkout on
  the worker is at another commit, instead of silently training yesterday's code;
* git variant (``deployments/prefect-git.yaml``): Prefect's ``git_clone`` step with
  ``commit_sha: "{{ $FLOWRL_COMMIT }}"`` checks out exactly that commit.

An orchestrating flow that launches child runs (``launcher: pool``) passes the same variable on
with :func:`child_job_variables`, so every skill trains the same commit.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping

COMMIT_ENV = "FLOWRL_COMMIT"


class CommitMismatch(RuntimeError):
    """The worker's checkout is not at the commit the run was triggered for."""


def _git(directory: str, *args: str) -> str:
    done = subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise CommitMismatch(f"git {' '.join(args)} in {directory} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def require_commit(directory: str, commit: str = "") -> dict[str, str]:
    """Pull step: pass when ``commit`` is empty (nothing asked) or is what ``directory`` has checked out.

    Uncommitted changes do not count against it: a developer's shared checkout may carry local
    edits on purpose; the commit is what CI asked for.
    """
    directory = os.path.abspath(directory)
    commit = (commit or "").strip()
    if not commit:
        return {"directory": directory, "commit": ""}
    head = _git(directory, "rev-parse", "HEAD")
    try:
        wanted = _git(directory, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    except CommitMismatch:
        raise CommitMismatch(f"checkout {directory} is at {head[:12]} and does not have commit {commit[:12]} "
                             f"that this run was triggered for: `git fetch && git checkout {commit[:12]}` there on "
                             "every worker, or deploy deployments/prefect-git.yaml (clones the commit per run)") from None
    if wanted != head:
        raise CommitMismatch(f"checkout {directory} is at {head[:12]}, but this run was triggered for {wanted[:12]}: "
                             f"`git checkout {wanted[:12]}` there on every worker, or deploy deployments/prefect-git.yaml "
                             "(clones the commit per run)")
    return {"directory": directory, "commit": head}


def commit_job_variables(commit: str | None) -> dict[str, dict[str, str]]:
    """Job variables that make a run's pull steps check out (or check for) ``commit``."""
    return {"env": {COMMIT_ENV: commit}} if commit else {}


def child_job_variables(environ: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
    """For ``run_deployment(..., job_variables=...)`` inside a flow: the commit this run was triggered for."""
    env = os.environ if environ is None else environ
    return commit_job_variables(env.get(COMMIT_ENV, "").strip() or None)
