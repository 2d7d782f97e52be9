"""The pictures in the Prefect UI load in a real browser (slow): a `prefect server` on 127.0.0.1,
a tiny graph flow, `flowrl serve`, headless Chromium checking naturalWidth > 0 for every picture
on the flow run's Artifacts tab, the DAG and details artifacts, an image artifact and the image."""

from __future__ import annotations

import pytest

from tests.support.browser import chromium_path

pytestmark = pytest.mark.slow


@pytest.mark.skipif(chromium_path() is None, reason="needs Debian's chromium: apt-get install -y chromium")
def test_pictures_load_in_the_prefect_ui(tmp_path):
    from tests.support.ui_check import run_check

    seen = run_check(tmp_path / "work", tmp_path)
    assert set(seen) == {"artifacts tab", "dag artifact", "details artifact", "image artifact", "image itself"}
    assert all(img["width"] > 0 and img["height"] > 0 for imgs in seen.values() for img in imgs)
    assert seen["artifacts tab"][0]["width"] >= 5  # image cards: the DAG, 2 skills × (learning curve, rollout)
    assert any(".gif" in img["src"] for img in seen["details artifact"])  # rollouts animate in the page too
    for name in ("prefect-flow-run-artifacts", "prefect-results-table", "prefect-dag-artifact", "prefect-details-artifact",
                 "prefect-image-artifact"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
