"""The CI trigger workflow and the deployments' pull steps: hardened, and running the triggering commit."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "train.yml"


def zizmor() -> str:
    exe = shutil.which("zizmor")
    if exe is None:
        pytest.skip("zizmor (GitHub Actions linter, in the dev extra) is not installed: pip install zizmor")
    return exe


def test_workflow_passes_the_linter():
    res = subprocess.run([zizmor(), "--offline", str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_linter_catches_an_input_pasted_into_run(tmp_path):
    """The check above is not vacuous: the old pattern (an input inside `run:`) fails it."""
    bad = WORKFLOW.read_text().replace('--skills-file "$SKILLS_FILE"', '--skills-file "${{ inputs.skills_file }}"')
    assert bad != WORKFLOW.read_text()
    path = tmp_path / ".github" / "workflows" / "train.yml"
    path.parent.mkdir(parents=True)
    path.write_text(bad)
    res = subprocess.run([zizmor(), "--offline", str(path)], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "template-injection" in res.stdout


def test_workflow_shape():
    doc = yaml.safe_load(WORKFLOW.read_text())
    job = doc["jobs"]["trigger"]
    runs = [step["run"] for step in job["steps"] if "run" in step]
    assert runs and not any("${{" in r for r in runs), "workflow expressions inside run: are script injection"
    assert doc["concurrency"]["group"]
    trigger = next(r for r in runs if "flowrl trigger" in r)
    assert trigger.startswith("exec flowrl trigger")  # signals reach the trigger, not a shell around it
    assert '--commit "$GITHUB_SHA"' in trigger
    timeout_s = int(job["env"]["TRIGGER_TIMEOUT_S"])
    assert '--timeout "$TRIGGER_TIMEOUT_S"' in trigger
    assert job["timeout-minutes"] * 60 >= timeout_s + 10 * 60  # the trigger times out (and cancels) first
    assert doc["permissions"] == {"contents": "read"}


# --------------------------------------------------------------------------- pull steps


def git(cwd: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.invalid")
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True, env=env).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> tuple[Path, str, str]:
    """A git repository with two commits; returns (path, first sha, second sha)."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "code.txt").write_text("v1\n")
    git(path, "add", "code.txt")
    git(path, "commit", "-qm", "one")
    first = git(path, "rev-parse", "HEAD")
    (path / "code.txt").write_text("v2\n")
    git(path, "commit", "-qam", "two")
    return path, first, git(path, "rev-parse", "HEAD")


def pull_steps(prefect_file: Path) -> list[dict]:
    return yaml.safe_load(prefect_file.read_text())["pull"]


def run_pull_steps(steps: list[dict], env: dict[str, str], cwd: Path) -> dict:
    """Prefect's own step runner, with the environment a worker would give the flow run."""
    from prefect.deployments.steps.core import run_steps

    old_env, old_cwd = dict(os.environ), os.getcwd()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        return asyncio.run(run_steps(steps, print_function=lambda *_: None))
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)


def refused(steps: list[dict], env: dict[str, str], cwd: Path) -> str:
    """The message a failing pull step raised (Prefect wraps it in StepExecutionError)."""
    from prefect.deployments.steps.core import StepExecutionError

    from deployments.commit import CommitMismatch

    with pytest.raises(StepExecutionError) as info:
        run_pull_steps(steps, env, cwd)
    assert isinstance(info.value.__cause__, CommitMismatch)
    return str(info.value.__cause__)


def test_shared_checkout_refuses_another_commit(repo, tmp_path, prefect_harness):
    path, first, second = repo
    steps = pull_steps(ROOT / "prefect.yaml")
    assert any("deployments.commit.require_commit" in s for s in steps)
    out = run_pull_steps(steps, {"FLOWRL_CHECKOUT": str(path), "FLOWRL_COMMIT": second}, tmp_path)
    assert out["commit"] == second
    assert run_pull_steps(steps, {"FLOWRL_CHECKOUT": str(path), "FLOWRL_COMMIT": ""}, tmp_path)["commit"] == ""
    message = refused(steps, {"FLOWRL_CHECKOUT": str(path), "FLOWRL_COMMIT": first}, tmp_path)
    assert f"at {second[:12]}, but this run was triggered for {first[:12]}" in message
    assert "does not have commit" in refused(steps, {"FLOWRL_CHECKOUT": str(path), "FLOWRL_COMMIT": "f" * 40}, tmp_path)


def test_git_variant_clones_the_triggering_commit(repo, tmp_path, prefect_harness):
    path, first, second = repo
    work = tmp_path / "work"
    work.mkdir()
    out = run_pull_steps(pull_steps(ROOT / "deployments" / "prefect-git.yaml"),
                         {"FLOWRL_REPOSITORY": f"file://{path}", "FLOWRL_COMMIT": first}, work)
    clone = work / out["directory"]
    assert (clone / "code.txt").read_text() == "v1\n"
    assert git(clone, "rev-parse", "HEAD") == first


def test_git_variant_keeps_the_deployments_of_the_shared_one():
    shared = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    git_doc = yaml.safe_load((ROOT / "deployments" / "prefect-git.yaml").read_text())["deployments"]
    assert [d["name"] for d in shared] == [d["name"] for d in git_doc]
    assert [d["entrypoint"] for d in shared] == [d["entrypoint"] for d in git_doc]
    for d in git_doc:
        assert re.search(r"FLOWRL_REPOSITORY", str(d["work_pool"].get("job_variables")))


def test_child_runs_carry_the_commit():
    from deployments.commit import child_job_variables

    assert child_job_variables({"FLOWRL_COMMIT": "abc123"}) == {"env": {"FLOWRL_COMMIT": "abc123"}}
    assert child_job_variables({}) == {}
