"""Pictures where users look: browser-loadable URLs for store objects, `flowrl serve`, and the
artifacts a graph flow publishes (as data)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import networkx as nx
import pytest

from flowrl_core.lifecycle.outcomes import SkillOutcome, SkillStatus
from flowrl_core.reporting.flow_artifacts import flow_artifacts, fmt_duration, fmt_frames, fmt_rate
from flowrl_core.reporting.links import DEFAULT_SERVE_URL, object_url, served_url
from flowrl_core.reporting.plots import dag_png
from flowrl_core.store.experts import Decision
from flowrl_core.store.objects import Store

ROOT = Path(__file__).resolve().parent.parent
PNG = dag_png(nx.DiGraph([("A", "B")]), {"A": "trained"}, ["A", "B"])


@pytest.fixture
def served_store(tmp_path):
    """A local store with a PNG, a GIF, JSON and HTML in it, served by `flowrl serve` on a free port."""
    st = Store(str(tmp_path / "store"))
    paths = {
        "png": st.write_bytes(("runs", "r1", "artifacts", "learning_curve.png"), PNG),
        "gif": st.write_bytes(("runs", "r1", "artifacts", "rollout.gif"), b"GIF89a" + b"\0" * 20),
        "json": st.write_bytes(("runs", "r1", "result.json"), b'{"ok": true}'),
        "html": st.write_bytes(("report.html",), b"<!doctype html><p>report</p>"),
    }
    (tmp_path / "secret.txt").write_text("TOPSECRET")
    os.symlink(tmp_path / "secret.txt", tmp_path / "store" / "link.txt")
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve", st.url, "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, NO_COLOR="1", COLUMNS="200"))
    try:
        line = proc.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+)", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
        yield st, paths, match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def raw_get(base: str, target: str) -> tuple[int, bytes]:
    """GET with the request target sent byte for byte (HTTP clients normalise '..' away)."""
    import socket

    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_serve_gives_objects_with_their_content_types(served_store):
    st, paths, base = served_store
    want = {"png": "image/png", "gif": "image/gif", "json": "application/json", "html": "text/html; charset=utf-8"}
    for kind, path in paths.items():
        res = httpx.get(served_url(base, st.rel(path)))
        assert res.status_code == 200, (kind, res.text)
        assert res.headers["content-type"] == want[kind]
        assert res.headers["x-content-type-options"] == "nosniff"
        assert res.content == st.read_bytes(st.rel(path).split("/"))
    head = httpx.head(served_url(base, st.rel(paths["png"])))
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) == len(PNG)


def test_serve_refuses_traversal_listings_and_writes(served_store, tmp_path):
    st, paths, base = served_store
    for bad in ("/../secret.txt", "/%2e%2e/secret.txt", "/runs/..%2F..%2Fsecret.txt", "/runs/%2e%2e/%2e%2e/secret.txt",
                "/link.txt", "/runs", "/runs/r1/", "/nope.png", "/runs/%00x"):
        status, body = raw_get(base, bad)
        assert status == 404, bad
        assert b"TOPSECRET" not in body
    index = httpx.get(base + "/")
    assert index.status_code == 200 and "runs/r1" not in index.text  # no listing, just the store's name
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for method in ("PUT", "POST", "DELETE", "PATCH"):
        res = httpx.request(method, base + "/runs/r1/new.png", content=b"x")
        assert res.status_code == 405 and res.headers["allow"] == "GET, HEAD"
    assert httpx.put(base + "/report.html", content=b"overwritten").status_code == 405
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert st.read_bytes("report.html") == b"<!doctype html><p>report</p>"


def test_serve_port_in_use_is_one_line_exit_2(served_store):
    _, _, base = served_store
    port = base.rsplit(":", 1)[1]
    res = subprocess.run([sys.executable, "-m", "flows.cli", "serve", served_store[0].url, "--port", port], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "cannot listen" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_local_links_point_at_flowrl_serve(tmp_path):
    st = Store(str(tmp_path / "st"))
    path = st.write_bytes(("runs", "r 1", "artifacts", "learning_curve.png"), PNG)
    link = object_url(st, path, environ={})
    assert link.url == f"{DEFAULT_SERVE_URL}/runs/r%201/artifacts/learning_curve.png"
    assert "flowrl serve" in link.note and link.path == "runs/r 1/artifacts/learning_curve.png"
    custom = object_url(st, path, environ={"FLOWRL_SERVE_URL": "http://127.0.0.1:9000/"})
    assert custom.url == "http://127.0.0.1:9000/runs/r%201/artifacts/learning_curve.png"
    with pytest.raises(ValueError, match="FLOWRL_SERVE_URL"):
        object_url(st, path, environ={"FLOWRL_SERVE_URL": "file:///tmp"})


def test_memory_store_has_no_url_and_says_why(mem_url):
    st = Store(mem_url)
    path = st.write_bytes(("x.png",), PNG)
    link = object_url(st, path)
    assert link.url is None and "memory" in link.note


def test_s3_links_are_presigned_and_load_without_credentials(s3_url):
    url, options = s3_url
    st = Store(url, storage_options=options)
    path = st.write_bytes(("runs", "r1", "artifacts", "learning_curve.png"), PNG)
    link = object_url(st, path, expires_s=600)
    assert link.how == "presigned" and "Signature=" in link.url and "600 s" in link.note
    res = httpx.get(link.url)  # a browser has no AWS credentials: the signature is all it needs
    assert res.status_code == 200 and res.content == PNG
    unsigned = link.url.split("?", 1)[0]
    assert httpx.get(unsigned).status_code == 403


def test_formats_round_and_carry_units():
    assert fmt_rate(0.9863945578231292) == "98.6 %"
    assert fmt_rate(None) == fmt_rate(float("nan")) == "—"
    assert fmt_frames(12_345_678) == "12.3 M frames" and fmt_frames(950) == "950 frames"
    assert fmt_duration(4.26) == "4.3 s" and fmt_duration(72.5) == "1 min 12 s" and fmt_duration(3723.4) == "1 h 02 min"


def test_flow_artifacts_short_table_details_and_images(tmp_path):
    st = Store(str(tmp_path / "st"))
    curve = st.write_bytes(("runs", "r1", "artifacts", "learning_curve.png"), PNG)
    dag = st.write_bytes(("graphs", "dag.png"), PNG)
    error = "RuntimeError: trainer exited 139 " + "while stepping the environment " * 5
    outcomes = [
        SkillOutcome("Collect_Wood", SkillStatus.TRAINED, expert=0, frames=65536, success_rate=0.9863945578231292,
                     duration_s=75.3, run_id="r1", artifacts={"learning_curve": curve},
                     decisions=(Decision(0, "Collect_Wood", "new", 65536, None, 65536, "0:new"),)),
        SkillOutcome("Place_Table", SkillStatus.FAILED, error=error),
    ]
    graph = nx.DiGraph([("Collect_Wood", "Place_Table")])
    fa = flow_artifacts(st, "examples/gridworld_basic.yaml", graph, ["Collect_Wood", "Place_Table"],
                        ["Collect_Wood", "Place_Table"], {"Collect_Wood": "trained", "Place_Table": "failed"},
                        outcomes, dag, environ={"FLOWRL_SERVE_URL": "http://127.0.0.1:9000"})
    wood, table = fa.table.rows
    assert wood["success"] == "98.6 %" and wood["frames"] == "65.5 k frames" and wood["time"] == "1 min 15 s"
    assert wood["pictures"] == "[learning curve](http://127.0.0.1:9000/runs/r1/artifacts/learning_curve.png)"
    assert all(len(v) <= 100 for row in fa.table.rows for k, v in row.items() if k != "pictures")
    assert fa.details.key in fa.table.description
    assert table["note"].startswith("RuntimeError: trainer exited 139") and table["note"].endswith("(see details)")
    assert error.strip() in fa.details.markdown and "0.9864" in fa.details.markdown
    assert "![Collect_Wood learning curve](http://127.0.0.1:9000/runs/r1/artifacts/learning_curve.png)" in fa.details.markdown
    assert "mermaid" not in fa.dag.markdown and "![skill DAG" in fa.dag.markdown
    assert "| Place_Table | failed | Collect_Wood | yes |" in fa.dag.markdown
    assert [i.url for i in fa.images] == ["http://127.0.0.1:9000/graphs/dag.png",
                                          "http://127.0.0.1:9000/runs/r1/artifacts/learning_curve.png"]
    for key in [fa.table.key, fa.details.key, fa.dag.key] + [i.key for i in fa.images]:
        assert re.fullmatch(r"[a-z0-9-]+", key), key
