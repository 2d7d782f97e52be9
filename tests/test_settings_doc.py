"""The README's training-settings table is the only place a user learns a setting's range: every
setting the config checks must be listed there (the table once lacked four of them)."""

from __future__ import annotations

import re
from pathlib import Path

from flowrl_core.training.config import BOUNDS

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_checked_setting_is_in_the_readme_table():
    text = README.read_text(encoding="utf-8")
    section = text.split("### Training settings", 1)[1].split("\n#", 1)[0]
    listed = set(re.findall(r"\| `([a-z_]+)`", section))
    assert not set(BOUNDS) - listed, f"README's settings table lacks {sorted(set(BOUNDS) - listed)}"
