"""The pictures in the Prefect UI, checked in a real browser (and the screenshots in docs/img).

    python -m tests.support.ui_check [--out docs/img] [--keep]

Starts a ``prefect server`` on 127.0.0.1 (a free port), runs a tiny two-skill graph flow on the
gridworld against it, starts ``flowrl serve`` on the store, attaches the run's artifacts (from
:mod:`flowrl_core.reporting.flow_artifacts`, unless the flow already published image artifacts)
and opens in headless Chromium: the flow run's Artifacts tab, the DAG artifact, a learning-curve
image artifact and the image itself.  Every picture must *load* (``naturalWidth > 0``), not just
the page render.  Screenshots go to ``--out``.  Needs ``apt-get install -y chromium``.
Everything it starts is stopped, whatever fails.  Used by tests/test_ui_pictures.py (slow).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from deployments.local_cluster import ROOT, LocalCluster, free_port

SKILLS = {"skills": [
    {"name": "Collect_Wood", "gains": {"wood": 1}},
    {"name": "Place_Table", "requires": {"wood": 2}, "consumes": {"wood": 2}, "gains": {"achievement:place_table": 1}},
]}
TINY = {"num_envs": 8, "num_steps": 16, "num_minibatches": 2, "update_epochs": 1, "width": 16, "depth": 1,
        "total_timesteps": 8 * 16 * 4, "checkpoint_every": 1}
SERVE_ORIGIN = "http://127.0.0.1:{port}"


def _loaded(images: list[dict], origin: str) -> list[dict]:
    return [i for i in images if i["src"].startswith(origin)]


def _wait_images(browser, origin: str, at_least: int, timeout: float = 90) -> list[dict]:
    """Until ``at_least`` images from ``origin`` are on the page and all of them have loaded."""
    deadline = time.monotonic() + timeout
    ours: list[dict] = []
    while time.monotonic() < deadline:
        ours = _loaded(browser.images(), origin)
        if len(ours) >= at_least and all(i["complete"] for i in ours):
            break
        time.sleep(0.5)
    return ours


def run_check(work: Path, out: Path | None) -> dict:
    """Returns what was seen: {page: [images]}; raises AssertionError when a picture does not load."""
    from tests.support.browser import Browser

    work.mkdir(parents=True, exist_ok=True)
    skills_file = work / "skills.yaml"
    skills_file.write_text(yaml.safe_dump(SKILLS))
    store = str(work / "store")
    serve_port = free_port()
    origin = SERVE_ORIGIN.format(port=serve_port)
    seen: dict[str, list[dict]] = {}
    with LocalCluster(work / "cluster", extra_env={"FLOWRL_SERVE_URL": origin}) as cluster:
        # the flow and the artifacts: in a child process that talks to this server only
        done = subprocess.run([sys.executable, "-m", "tests.support.ui_check", "--flow", str(skills_file), store],
                              cwd=ROOT, env=cluster.env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"flow run failed ({done.returncode}): {done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        facts = json.loads(done.stdout.strip().splitlines()[-1])
        cluster.spawn("serve", [sys.executable, "-m", "flows.cli", "serve", store, "--port", str(serve_port)])
        ui = cluster.api.removesuffix("/api")
        with Browser() as browser:
            # 1. the flow run's Artifacts tab: one card per artifact, the image artifacts among them
            browser.goto(f"{ui}/runs/flow-run/{facts['flow_run_id']}")
            browser.wait_for("!!document.querySelector('li.p-tab#artifacts')", timeout=90)
            browser.eval("document.querySelector('li.p-tab#artifacts').click()")
            cards = browser.wait_for(
                "(() => { const t = document.body.innerText; const n = (t.match(/\\bIMAGE\\b/gi) || []).length;"
                f" return n >= {len(facts['images'])} ? n : 0 }})()", timeout=90)
            seen["artifacts tab"] = [{"src": f"{cards} image artifact cards", "complete": True, "width": cards,
                                      "height": cards}]
            if out:
                browser.screenshot(str(out / "prefect-flow-run-artifacts.png"))
            # 2. the results table: rounded numbers with units, pictures as links
            browser.goto(f"{ui}/artifacts/artifact/{facts['table_id']}")
            browser.wait_for("document.body && document.body.innerText.includes('learning curve')", timeout=90)
            if out:
                browser.screenshot(str(out / "prefect-results-table.png"))
            # 3. the DAG markdown artifact: picture + table, no mermaid
            browser.goto(f"{ui}/artifacts/artifact/{facts['dag_id']}")
            browser.wait_for("document.body && document.body.innerText.includes('Critical path')", timeout=90)
            seen["dag artifact"] = _wait_images(browser, origin, at_least=1)
            if out:
                browser.screenshot(str(out / "prefect-dag-artifact.png"))
            # 4. the details markdown artifact: every skill's pictures inline
            browser.goto(f"{ui}/artifacts/artifact/{facts['details_id']}")
            browser.wait_for("document.body && document.body.innerText.includes('Results in detail')", timeout=90)
            seen["details artifact"] = _wait_images(browser, origin, at_least=len(facts["images"]) - 1)
            if out:
                browser.resize(height=2000)
                browser.screenshot(str(out / "prefect-details-artifact.png"))
                browser.resize(height=1000)
            # 5. one learning curve's image artifact page, and the image itself
            curve = next(i for i in facts["images"] if i["key"].endswith("learning-curve"))
            browser.goto(f"{ui}/artifacts/artifact/{curve['id']}")
            seen["image artifact"] = _wait_images(browser, origin, at_least=1)
            if out:
                browser.screenshot(str(out / "prefect-image-artifact.png"))
            browser.goto(curve["url"])
            browser.wait_for("document.images.length > 0 && document.images[0].complete", timeout=30)
            seen["image itself"] = browser.images()
    problems = [f"{page}: {img['src']} did not load" for page, imgs in seen.items() for img in imgs if img["width"] <= 0]
    problems += [f"{page}: no picture from {origin} on the page" for page, imgs in seen.items() if not imgs]
    assert not problems, "; ".join(problems)
    assert facts["images"][0]["url"].startswith(origin)
    return seen


def _flow_and_artifacts(skills_file: str, store: str) -> None:
    """Child process (PREFECT_API_URL and FLOWRL_SERVE_URL set): run the flow, attach the artifacts,
    print one JSON line of what the browser should find."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.graph_flow import train_skill_graph

    state = train_skill_graph(skills_file=skills_file, store=store, env="gridworld", profile="tiny",
                              overrides=TINY, return_state=True)
    flow_run_id = str(state.state_details.flow_run_id)
    if not state.is_completed():
        raise SystemExit(f"flow ended {state.name}: {state.message}")
    with get_client(sync_client=True) as client:
        existing = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    if not any(a.type == "image" for a in existing):
        raise SystemExit("the flow published no image artifacts")
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    newest = sorted(arts, key=lambda a: a.created, reverse=True)  # ours, if the flow also published its own
    print(json.dumps({
        "flow_run_id": flow_run_id,
        "images": [{"key": a.key, "url": a.data, "id": str(a.id)} for a in newest if a.type == "image"],
        "table_id": next(str(a.id) for a in newest if a.type == "table" and "pictures" in str(a.data)),
        "dag_id": next(str(a.id) for a in newest if a.type == "markdown" and "![skill DAG" in str(a.data)),
        "details_id": next(str(a.id) for a in newest if a.type == "markdown" and "Results in detail" in str(a.data)),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="Write screenshots here (e.g. docs/img).")
    parser.add_argument("--keep", action="store_true", help="Keep the work folder (server logs, store).")
    parser.add_argument("--flow", nargs=2, metavar=("SKILLS_FILE", "STORE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flow:
        _flow_and_artifacts(*args.flow)
        return
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    work = Path(tempfile.mkdtemp(prefix="flowrl-ui-check-"))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    try:
        seen = run_check(work, args.out)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work folder kept: {work}")
    for page, imgs in seen.items():
        print(f"{page}: " + ", ".join(f"{i['width']}x{i['height']} {i['src'].split('?')[0]}" for i in imgs))


if __name__ == "__main__":
    main()
