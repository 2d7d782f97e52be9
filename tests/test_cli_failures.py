"""Every way a user's command can fail, run as the user runs it: the installed ``flowrl`` command in
a subprocess.  Each refused invocation must exit with its documented code (2 bad input, 3
unreachable), say what is wrong in a line or two on stderr (no traceback), and — when it was
refused before running — leave no store behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
GRAPH = {"skills": [
    {"name": "Collect_Wood", "gains": {"wood": 1}},
    {"name": "Place_Table", "requires": {"wood": 2}, "consumes": {"wood": 2}, "gains": {"achievement:place_table": 1}},
]}
TINY = ["--profile", "tiny", "--set", "num_envs=8", "--set", "num_steps=16", "--set", "num_minibatches=2",
        "--set", "width=16", "--set", "depth=1", "--set", "checkpoint_every=1"]


def flowrl_exe() -> list[str]:
    exe = shutil.which("flowrl")
    return [exe] if exe else [sys.executable, "-m", "flows.cli"]


def flowrl(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    full = dict(os.environ, COLUMNS="200", NO_COLOR="1", PYTHONPATH=os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    full.update(env or {})
    return subprocess.run([*flowrl_exe(), *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout)


def write(path: Path, data: object) -> str:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return str(path)


def with_skill(**changes: object) -> dict:
    data = {"skills": [dict(s) for s in GRAPH["skills"]]}
    data["skills"][0].update(changes)
    return data


ALIAS_BOMB = "\n".join(["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
                       + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
                          f"*a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 9)]
                       + ["skills: [{name: A, gains: {wood: 1}, description: *a8}]"])


def _fifo(d: Path) -> str:
    path = d / "pipe.yaml"
    os.mkfifo(path)
    return str(path)


def _symlink_to_device(d: Path) -> str:
    path = d / "device.yaml"
    path.symlink_to("/dev/zero")
    return str(path)


def _big(d: Path) -> str:
    path = d / "big.yaml"
    path.write_text("# " + "x" * (9 * 1024 * 1024))
    return str(path)


def _nonempty_folder(d: Path) -> str:
    (d / "elsewhere").mkdir()
    (d / "elsewhere" / "notes.txt").write_text("mine")
    return str(d / "elsewhere")


def _a_file(d: Path) -> str:
    (d / "afile").write_text("x")
    return str(d / "afile")


# (id, files to write -> args, expected code, stderr fragment)
CASES = [
    ("plan-missing-file", lambda d: ["plan", str(d / "nope.yaml")], 2, "no such file"),
    ("plan-directory", lambda d: ["plan", str(d)], 2, "skill files must end in"),
    ("plan-directory-yaml", lambda d: (d / "dir.yaml").mkdir() or ["plan", str(d / "dir.yaml")], 2, "is a directory"),
    ("plan-fifo", lambda d: ["plan", _fifo(d)], 2, "not a regular file"),
    ("plan-device", lambda d: ["plan", _symlink_to_device(d)], 2, "not a regular file"),
    ("plan-too-big", lambda d: ["plan", _big(d)], 2, "limited to"),
    ("plan-alias-bomb", lambda d: ["plan", write(d / "bomb.yaml", ALIAS_BOMB)], 2, "YAML"),
    ("plan-wrong-extension", lambda d: ["plan", write(d / "s.txt", GRAPH)], 2, "must end in"),
    ("plan-not-utf8", lambda d: (d / "s.yaml").write_bytes(b"skills: [\xff\xfe]") and ["plan", str(d / "s.yaml")],
     2, "not UTF-8"),
    ("plan-bad-yaml", lambda d: ["plan", write(d / "s.yaml", "skills: [ {")], 2, "not valid YAML"),
    ("plan-duplicate-key", lambda d: ["plan", write(d / "s.yaml", "skills: []\nskills: []\n")], 2, "duplicate key"),
    ("plan-cycle", lambda d: ["plan", write(d / "s.yaml", {"skills": [
        {"name": "A", "requires": {"stone": 1}, "gains": {"wood": 1}},
        {"name": "B", "requires": {"wood": 1}, "gains": {"stone": 1}}]})], 2, "dependency cycle"),
    ("plan-homoglyph", lambda d: ["plan", write(d / "s.yaml", with_skill(name="C\u043ellect_Wood"))], 2, "several scripts"),
    ("plan-nfkc-duplicate", lambda d: ["plan", write(d / "s.yaml", {"skills": [
        {"name": "Collect_Wood", "gains": {"wood": 1}}, {"name": "\uff23ollect_Wood", "gains": {"wood": 1}}]})],
     2, "reads the same"),
    ("plan-unknown-item", lambda d: ["plan", write(d / "s.yaml", with_skill(gains={"wod": 1}))], 2, "did you mean 'wood'"),
    ("run-lr-negative", lambda d: ["run", write(d / "s.yaml", GRAPH), *TINY, "--set", "lr=-1"], 2, "out of range"),
    ("run-gamma-inf", lambda d: ["run", write(d / "s.yaml", GRAPH), *TINY, "--set", "gamma=Infinity"], 2, "gamma"),
    ("run-clip-negative", lambda d: ["run", write(d / "s.yaml", GRAPH), *TINY, "--set", "clip_eps=-3"], 2, "clip_eps"),
    ("run-budget-huge", lambda d: ["run", write(d / "s.yaml", GRAPH), *TINY, "--set", "total_timesteps=1e30"],
     2, "total_timesteps"),
    ("run-budget-below-one-update", lambda d: ["run", write(d / "s.yaml", GRAPH), *TINY, "--set", "total_timesteps=5"],
     2, "less than one update"),
    ("run-unknown-setting", lambda d: ["run", write(d / "s.yaml", GRAPH), *TINY, "--set", "num_envz=3"],
     2, "did you mean 'num_envs'"),
    ("run-file-nan-setting", lambda d: ["run", write(d / "s.yaml", "skills:\n- {name: A, gains: {wood: 1}, "
                                                     "train: {lr: .nan}}\n"), *TINY], 2, "finite"),
    ("run-survival-without-vitals", lambda d: ["run", write(d / "s.yaml", GRAPH), *TINY, "--set",
                                               "survival_shaping=0.1"], 2, "has none. Fix"),
    ("run-unknown-env", lambda d: ["run", write(d / "s.yaml", GRAPH), *TINY, "--env", "no-such-env"], 2, "unknown env"),
    ("run-env-option-type", lambda d: ["run", write(d / "s.yaml", GRAPH), *TINY, "--env-opt", "max_steps=abc"],
     2, "max_steps"),
    ("run-env-option-unknown", lambda d: ["run", write(d / "s.yaml", GRAPH), *TINY, "--env-opt", "bogus=1"],
     2, "unknown option"),
    ("run-store-scheme", lambda d: ["run", write(d / "s.yaml", GRAPH), *TINY, "--store", "nosuchproto://x/y"],
     2, "nosuchproto"),
    ("run-store-not-a-store", lambda d: ["run", write(d / "s.yaml", GRAPH), *TINY, "--store", _nonempty_folder(d)],
     2, "not empty"),
    ("run-store-is-a-file", lambda d: ["run", write(d / "s.yaml", GRAPH), *TINY, "--store", _a_file(d)], 2, "is a file"),
    ("run-only-unknown", lambda d: ["run", write(d / "s.yaml", GRAPH), *TINY, "--only", "Place_Tabel"],
     2, "did you mean 'Place_Table'"),
    ("run-only-untrained-dependency", lambda d: ["run", write(d / "s.yaml", GRAPH), *TINY, "--only", "Place_Table"],
     2, "train them first"),
    ("run-predicate-raises-on-import", lambda d: ["run", write(d / "s.yaml", with_skill(
        predicate="tests.support.broken_import:done")), *TINY], 2, "Collect_Wood"),
    ("run-predicate-missing-module", lambda d: ["run", write(d / "s.yaml", with_skill(
        predicate="flowrl_no_such_module:done")), *TINY], 2, "flowrl_no_such_module"),
    ("run-predicate-wrong-signature", lambda d: ["run", write(d / "s.yaml", with_skill(
        predicate="tests.support.cli_plugins:one_argument_predicate")), *TINY], 2, "abstract inputs"),
    ("run-plan-networks-differ", lambda d: ["run", write(d / "s.yaml", {"skills": [
        GRAPH["skills"][0], {**GRAPH["skills"][1], "train": {"width": 64}}]}), "--profile", "tiny"],
     2, "the experts of one plan share a shape"),
    ("run-view-key-on-the-gridworld", lambda d: ["run", write(d / "s.yaml", {"skills": [
        {"name": "Find_Stone", "gains": {"view:stone": 1}},
        {"name": "Mine", "requires": {"view:stone": 1}, "gains": {"stone": 1}}]}), *TINY],
     2, "'Find_Stone': key 'view:stone' needs to know what the agent sees"),
    ("run-trainer-unknown", lambda d: ["run", write(d / "s.yaml", {**GRAPH, "trainer": "nosuch"}), *TINY], 2, "trainer"),
    ("run-slots-zero", lambda d: ["run", write(d / "s.yaml", GRAPH), *TINY, "--slots", "0"], 2, "slots"),
    ("run-gpus-duplicate", lambda d: ["run", write(d / "s.yaml", GRAPH), *TINY, "--gpus", "0,0"], 2, "gpus"),
    ("run-retries-negative", lambda d: ["run", write(d / "s.yaml", GRAPH), *TINY, "--retries", "-1"], 2, "retries"),
    ("run-set-malformed", lambda d: ["run", write(d / "s.yaml", GRAPH), "--set", "lr"], 2, "KEY=VALUE"),
    ("continue-missing-store", lambda d: ["continue", "Collect_Wood", "--frames", "10", "--store", str(d / "none")],
     2, "not a flowrl store"),
    ("status-missing-store", lambda d: ["status", str(d / "none")], 2, "not a flowrl store"),
    ("report-missing-store", lambda d: ["report", str(d / "none")], 2, "not a flowrl store"),
    ("unknown-command", lambda d: ["bogus"], 2, "No such command"),
    ("worker-without-api", lambda d: ["worker", "start", "--gpu", "0"], 2, "PREFECT_API_URL"),
    ("grow-unknown-proposer", lambda d: ["grow", "--proposer", "nope", "--store", str(d / "st")], 2, "unknown proposer"),
    ("grow-curriculum-without-target", lambda d: ["grow", "--store", str(d / "st")], 2, "--target"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_refused_invocation_exits_with_its_code_says_why_and_writes_nothing(tmp_path, case):
    _, make_args, code, fragment = case
    work = tmp_path / "work"
    work.mkdir()
    args = make_args(work)
    before = sorted(p.name for p in work.iterdir())
    t0 = time.monotonic()
    res = flowrl(*args, cwd=work, env={"PREFECT_API_URL": ""}, timeout=120)
    assert res.returncode == code, (res.returncode, res.stderr[-2000:])
    assert fragment in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and len(res.stderr) < 1200, res.stderr[-2000:]
    assert res.stdout == "" or res.returncode == 2 and "Usage" in res.stderr
    assert sorted(p.name for p in work.iterdir()) == before  # no store, no flowrl-store, nothing
    assert time.monotonic() - t0 < 60  # bounded: a FIFO or an alias bomb must not hang


def test_status_names_a_corrupt_object(tmp_path):
    from flowrl_core.store.objects import Store

    store = Store(str(tmp_path / "st"))
    store.assign_index("Collect_Wood")
    slot = tmp_path / "st" / "index" / "slots" / "000000.json"
    slot.write_text("{not json")
    res = flowrl("status", str(tmp_path / "st"), cwd=tmp_path)
    assert res.returncode == 2
    assert str(slot) in res.stderr and "corrupt object" in res.stderr and "Traceback" not in res.stderr


def test_continue_unknown_skill_is_refused(tmp_path):
    from flowrl_core.store.objects import Store

    Store(str(tmp_path / "st")).assign_index("Collect_Wood")
    res = flowrl("continue", "No_Such_Skill", "--frames", "100", "--store", str(tmp_path / "st"), cwd=tmp_path)
    assert res.returncode == 2 and "No_Such_Skill" in res.stderr and "known: " in res.stderr


def test_unreachable_object_store_exits_3(tmp_path):
    pytest.importorskip("s3fs")
    res = flowrl("run", write(tmp_path / "s.yaml", GRAPH), *TINY, "--store", "s3://flowrl/x", cwd=tmp_path,
                 env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                      "AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard"})
    assert res.returncode == 3, res.stderr[-2000:]
    assert "cannot be reached" in res.stderr and "Traceback" not in res.stderr


def test_unreachable_prefect_api_exits_3(tmp_path):
    res = flowrl("run", write(tmp_path / "s.yaml", GRAPH), *TINY, "--set", "total_timesteps=128", "--store",
                 str(tmp_path / "st"), cwd=tmp_path, env={"PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert res.returncode == 3, res.stderr[-3000:]
    assert "Prefect API" in res.stderr and "Traceback" not in res.stderr[-1500:]


def test_a_blank_prefect_api_url_runs_embedded_without_tracebacks(tmp_path):
    # ``PREFECT_API_URL=`` (a CI file clearing it) means the embedded API; Prefect itself would
    # treat the blank value as a server and print a traceback for every event it fails to send
    res = flowrl("run", write(tmp_path / "s.yaml", {"skills": GRAPH["skills"][:1]}), *TINY, "--set",
                 "total_timesteps=128", "--store", str(tmp_path / "st"), cwd=tmp_path,
                 env={"PREFECT_API_URL": "", "PREFECT_HOME": str(tmp_path / "ph")}, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr and "EventsWorker" not in res.stderr, res.stderr[-3000:]
