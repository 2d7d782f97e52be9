"""The ``file`` proposer: a skill file's skills, one per call, in training order."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from flowrl_core.grow.library import (
    Done,
    LibraryView,
    Proposal,
    Propose,
    analysis_revision,
    invalid_reason,
)
from flowrl_core.skills.graph import build_graph, training_order
from flowrl_core.skills.parsing import load_skill_file


class FileProposer:
    """The skills of one skill file, one per call, in training order.

    Providers always precede their dependants in that order, so the next skill's providers were
    proposed earlier and are learned, in flight or failed by now: this proposer never needs to
    wait.  A skill whose provider failed (or was skipped, or was proposed and never reached the
    library — the flow rejected it) is skipped with a reason, and so are its descendants; other
    branches go on.  Skills already in the library under the same name (a resumed run) are
    not proposed again.
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        self.specs = {s.name: s for s in load_skill_file(path)}
        self.graph = build_graph(list(self.specs.values()), source=self.path)
        self.order = training_order(self.graph)
        self.proposed: list[str] = []
        self.skipped: dict[str, str] = {}

    def _blocked_by(self, name: str, view: LibraryView, failed: Mapping[str, str]) -> str | None:
        for pred in sorted(self.graph.predecessors(name)):
            if pred in self.skipped:
                return f"provider {pred!r} was skipped ({self.skipped[pred]})"
            if pred.casefold() in failed:
                return f"provider {pred!r} failed ({failed[pred.casefold()]})"
        return None

    def propose(self, view: LibraryView) -> Proposal:
        revision = analysis_revision(view)  # a learned skill whose analysis contradicts its spec comes first
        if revision is not None:
            return revision
        present = {s.name.casefold() for s in view.library()}
        failed = {name.casefold(): reason for name, reason in view.failed.items()}
        for name in self.order:
            folded = name.casefold()
            if name in self.skipped or folded in present or folded in failed:
                continue
            if name in self.proposed:
                self.skipped[name] = "proposed, but it never entered the library (rejected by the flow?)"
                continue
            reason = self._blocked_by(name, view, failed)
            if reason is None:
                reason = invalid_reason(self.specs[name], view)
            if reason is not None:
                self.skipped[name] = reason
                continue
            self.proposed.append(name)
            return Propose(self.specs[name])
        return Done(self._summary())

    def _summary(self) -> str:
        text = f"{self.path}: all {len(self.order)} skills handled ({len(self.proposed)} proposed"
        if self.skipped:
            text += f", {len(self.skipped)} skipped: " + "; ".join(f"{n}: {r}" for n, r in self.skipped.items())
        return text + ")"
