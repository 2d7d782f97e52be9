"""report: a hand-built memory store → one self-contained, escaped HTML page."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from PIL import Image

from flowrl_core.reporting.plots import frames_to_gif
from flowrl_core.reporting.report import render_report, write_report
from flowrl_core.skills.parsing import parse_skills
from flowrl_core.store.objects import Store

EVIL = '<script>alert("x")</script> & friends'


def make_store(url: str, *, gif: bool = True) -> Store:
    """Two skills: Collect_Wood with one completed run, Place_Table with a started one only."""
    store = Store(url)
    specs = parse_skills({"skills": [
        {"name": "Collect_Wood", "gains": {"wood": 1}, "description": EVIL},
        {"name": "Place_Table", "requires": {"wood": 2}, "consumes": {"wood": 2},
         "gains": {"achievement:place_table": 1}},
    ]})
    for spec in specs:
        store.assign_index(spec.name)
        store.save_skill(spec)
    run = store.run("wood-run-1")
    run.write_metrics([{"update": i, "frames": 1024 * (i + 1), "success_rate": i / 4, "mean_return": float(i),
                        "mean_episode_length": 30.0, "step_reach": [i / 4]} for i in range(5)])
    run.write_doc("job.json", {"plan": [{"skill": "Collect_Wood", "count": 1}]})
    if gif:
        run.write_artifact("rollout.gif", frames_to_gif(np.zeros((3, 4, 4, 3), np.uint8) + 40, scale=2))
    store.write_json(("skills", "Collect_Wood", "runs", "wood-run-1.json"),
                     {"run_id": "wood-run-1", "status": "completed", "frames": 5120,
                      "started_at": "2025-01-01T00:00:00.000+00:00",
                      "completed_at": "2025-01-01T01:00:00.000+00:00", "success_rate": 0.5})
    store.write_json(("skills", "Place_Table", "runs", "table-run-1.json"),
                     {"run_id": "table-run-1", "status": "started", "started_at": "2025-01-01T02:00:00.000+00:00"})
    return store


def embedded(html_text: str, mime: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(rf'src="data:{mime};base64,([A-Za-z0-9+/=]+)"', html_text)]


def test_report_has_names_images_and_escapes(mem_url, tmp_path):
    store = make_store(mem_url)
    out = tmp_path / "sub" / "report.html"
    written = write_report(store, str(out))
    assert written == str(out)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "Collect_Wood" in text and "Place_Table" in text and "wood-run-1" in text
    assert "<script" not in text.lower()  # neither ours (none) nor the description's
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; friends" in text
    assert "50.0%" in text  # the completed run's success rate in the summary
    pngs = embedded(text, "image/png")
    assert len(pngs) == 2  # the DAG and Collect_Wood's learning curve (Place_Table has no completed run)
    for png in pngs:
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG" and image.size[0] > 300
    gifs = embedded(text, "image/gif")
    assert len(gifs) == 1 and Image.open(io.BytesIO(gifs[0])).n_frames >= 1
    assert not re.search(r'(src|href)="(?!data:|#)', text)  # nothing external to fetch


def test_report_states_drive_the_summary(mem_url):
    text = render_report(make_store(mem_url, gif=False))
    assert 'class="state-trained">trained<' in text and 'class="state-unfinished">unfinished<' in text
    assert "No completed run yet." in text  # Place_Table
    assert not embedded(text, "image/gif")


def test_saved_learning_curve_artifact_is_embedded_verbatim(mem_url):
    store = make_store(mem_url)
    buf = io.BytesIO()
    Image.new("RGB", (7, 3), (1, 2, 3)).save(buf, format="PNG")
    store.run("wood-run-1").write_artifact("learning_curve.png", buf.getvalue())
    assert buf.getvalue() in embedded(render_report(store), "image/png")


def test_report_defaults_to_the_store(mem_url):
    store = make_store(mem_url)
    path = write_report(store)
    assert path == store.path("report.html")
    assert b"Collect_Wood" in store.read_bytes("report.html")


def test_report_of_an_empty_store(mem_url, tmp_path):
    text = open(write_report(Store(mem_url), str(tmp_path / "r.html")), encoding="utf-8").read()
    assert "No skills in this store yet." in text


def test_report_survives_a_partial_graph_and_a_corrupt_metrics_file(mem_url):
    """A store can hold a skill whose provider was never saved, and a run with a bad
    metrics line; the report shows both problems instead of failing."""
    store = Store(mem_url)
    spec = parse_skills({"skills": [
        {"name": "Wood", "gains": {"wood": 1}},
        {"name": "Table", "requires": {"wood": 2}, "gains": {"achievement:place_table": 1}},
    ]})[1]
    store.save_skill(spec)
    store.write_bytes(("runs", "t-1", "metrics.jsonl"), b'{"update": 0}\nnot json\n')
    store.write_json(("skills", "Table", "runs", "t-1.json"),
                     {"run_id": "t-1", "status": "completed", "frames": 10, "completed_at": "2025-01-01"})
    text = render_report(store)
    assert "dependency edges not drawn" in text
    assert "learning curve unavailable" in text and "line 2 is not JSON" in text
    assert len(embedded(text, "image/png")) == 1  # the DAG, nodes only
