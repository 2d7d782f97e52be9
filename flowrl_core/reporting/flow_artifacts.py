"""What a training flow shows in the Prefect UI, as data: table rows, markdown and image URLs.

The flow only hands these records to Prefect (``flows/artifacts.py``); everything a person reads
is decided here, without Prefect, so it is tested as plain values.

* **Results table**: one short row per skill — rounded numbers with units, a pictures cell of
  markdown links (the UI renders markdown in table cells) and a short note.  Exact numbers,
  every merge decision and whole error messages go to the **details** markdown artifact.
* **DAG**: a picture (PNG in the store, shown through a browser-loadable URL, see
  :mod:`flowrl_core.reporting.links`) and a plain markdown table.  No mermaid: Prefect's own UI
  shows mermaid as raw code.
* **Images**: one image artifact per picture (the DAG, each skill's learning curve and
  rollout), keyed so the Artifacts page keeps the latest of each across runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import networkx as nx

from flowrl_core.analysis.records import AnalysisRecord
from flowrl_core.lifecycle.outcomes import SkillOutcome
from flowrl_core.reporting.links import ObjectLink, object_url
from flowrl_core.store.experts import Decision
from flowrl_core.store.objects import Store

PICTURES: tuple[tuple[str, str], ...] = (("learning_curve", "learning curve"), ("rollout", "rollout"))
NOTE_CHARS = 60  # the table's note column; the rest is in the details artifact


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class ImageArtifact:
    key: str
    url: str
    description: str


@dataclass(frozen=True)
class MarkdownArtifact:
    key: str
    markdown: str
    description: str


@dataclass(frozen=True)
class TableArtifact:
    key: str
    rows: list[dict[str, str]]
    description: str


@dataclass(frozen=True)
class FlowArtifacts:
    """Everything a graph flow publishes at its end, in the order to publish it."""

    table: TableArtifact
    details: MarkdownArtifact
    dag: MarkdownArtifact
    images: list[ImageArtifact]


# --------------------------------------------------------------------------- formatting


def run_key(label: str) -> str:
    """The key prefix of a run's artifacts: the skill file's name without folder or suffix, so
    every run of one file updates the same keys (Prefect keeps each key's history)."""
    name = PurePath(str(label)).name
    stem = name.rsplit(".", 1)[0] if name.lower().endswith((".yaml", ".yml", ".json")) else name
    return artifact_key(stem or str(label))


def artifact_key(text: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return re.sub(r"-+", "-", "".join(c if c.isalnum() else "-" for c in text.lower())).strip("-")[:60] or "flowrl"


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def fmt_frames(frames: Any) -> str:
    """12_345_678 → '12.3 M frames'; three significant digits are what a table needs."""
    n = _finite(frames)
    if n is None:
        return "—"
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit} frames"
    return f"{int(n)} frames"


def fmt_rate(rate: Any) -> str:
    """0.9863945578231292 → '98.6 %'."""
    r = _finite(rate)
    return "—" if r is None else f"{100 * r:.1f} %"


def fmt_duration(seconds: Any) -> str:
    """3723.4 → '1 h 02 min'; 72.5 → '1 min 13 s'; 4.26 → '4.3 s'."""
    s = _finite(seconds)
    if s is None:
        return "—"
    if s < 60:
        return f"{s:.1f} s"
    whole = int(round(s))
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def short(text: str, limit: int = NOTE_CHARS) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"


def decision_text(d: Decision) -> str:
    """One merge decision in words."""
    return f"expert {d.index} ({d.skill}) {d.action}: proposed {d.proposed_frames} frames, store now {d.current_frames}"


def _md_cell(text: str) -> str:
    """Text safe inside a markdown table cell (no pipes or newlines)."""
    return " ".join(str(text).replace("|", "\\|").split())


def _md_link(label: str, link: ObjectLink | None) -> str:
    return f"[{label}]({link.url})" if link is not None and link.url else ""


# --------------------------------------------------------------------------- the artifacts


def results_rows(outcomes: Sequence[SkillOutcome], links: Mapping[tuple[str, str], ObjectLink]) -> list[dict[str, str]]:
    """Short table rows: every value rounded and with its unit; long text points at the details."""
    rows = []
    for o in outcomes:
        pictures = " · ".join(filter(None, (_md_link(label, links.get((o.skill, name))) for name, label in PICTURES)))
        if o.error:
            note = short(o.error)
        elif o.decisions:
            note = f"{len(o.decisions)} merge decision" + ("s" if len(o.decisions) > 1 else "")
        else:
            note = ""
        if len(o.error) > NOTE_CHARS:
            note += " (see details)"
        rows.append({
            "skill": o.skill, "expert": "—" if o.expert is None else str(o.expert), "status": o.status.value,
            "frames": fmt_frames(o.frames), "success": fmt_rate(o.success_rate), "time": fmt_duration(o.duration_s),
            "pictures": pictures or "—", "note": note,
        })
    return rows


def details_markdown(outcomes: Sequence[SkillOutcome], links: Mapping[tuple[str, str], ObjectLink],
                     store_url: str) -> str:
    """Per skill: exact numbers, every merge decision, the whole error, and its pictures inline."""
    lines = ["# Results in detail", "", f"Store: `{store_url}`", ""]
    notes = sorted({link.note for link in links.values()})
    for note in notes:
        lines.append(f"> Pictures: {note}")
    if notes:
        lines.append("")
    for o in outcomes:
        lines += [f"## {o.skill}: {o.status.value}", ""]
        facts = [("expert", o.expert), ("run", f"`{o.run_id}`" if o.run_id else None),
                 ("frames", f"{o.frames:,}" if isinstance(o.frames, int) else None),
                 ("success rate", f"{fmt_rate(o.success_rate)} ({o.success_rate:.4f})"
                  if _finite(o.success_rate) is not None else None),
                 ("time", f"{fmt_duration(o.duration_s)} ({o.duration_s:.1f} s)" if _finite(o.duration_s) is not None
                  else None)]
        lines += [f"- **{name}:** {value}" for name, value in facts if value is not None]
        if o.decisions:
            lines.append("- **merge decisions:**")
            lines += [f"  - {decision_text(d)}" for d in o.decisions]
        if o.error:
            lines += ["", "```", o.error, "```"]
        for name, label in PICTURES:
            link = links.get((o.skill, name))
            if link is None:
                continue
            if link.url:
                lines += ["", f"**{label}**", "", f"![{o.skill} {label}]({link.url})"]
            else:
                lines += ["", f"**{label}**: `{link.path}` ({link.note})"]
        lines.append("")
    return "\n".join(lines)


def dag_markdown(graph: nx.DiGraph, order: Sequence[str], critical: Sequence[str], states: Mapping[str, str],
                 picture: ObjectLink | None = None) -> str:
    """The DAG as a picture and a plain table: readable in any UI, mermaid or not."""
    lines = ["# Skill DAG", "", f"**Critical path:** {' → '.join(critical) or '—'}", ""]
    if picture is not None and picture.url:
        lines += [f"![skill DAG coloured by state]({picture.url})", "", f"*{picture.note}*", ""]
    elif picture is not None:
        lines += [f"DAG picture: `{picture.path}` ({picture.note})", ""]
    on_path = set(critical)
    lines += ["| skill | state | depends on | critical path |", "|---|---|---|---|"]
    for name in order:
        deps = ", ".join(sorted(graph.predecessors(name))) or "—"
        lines.append(f"| {_md_cell(name)} | {_md_cell(states.get(name, 'pending'))} | {_md_cell(deps)} | "
                     f"{'yes' if name in on_path else ''} |")
    return "\n".join(lines) + "\n"


def picture_links(store: Store, outcomes: Iterable[SkillOutcome], *,
                  environ: Mapping[str, str] | None = None) -> dict[tuple[str, str], ObjectLink]:
    """(skill, picture name) → link, for every picture a skill's run wrote."""
    env = dict(environ) if environ is not None else None
    return {(o.skill, name): object_url(store, o.artifacts[name], environ=env)
            for o in outcomes for name, _ in PICTURES if o.artifacts.get(name)}


def dag_picture_parts(key: str, stamp: str) -> tuple[str, str]:
    """Where a run's DAG picture goes in the store (one per flow run; the stamp orders them)."""
    safe = re.sub(r"[^0-9A-Za-z]", "", stamp)
    return ("graphs", f"{safe}-{run_key(key)}-dag.png")


def flow_artifacts(store: Store, label: str, graph: nx.DiGraph, order: Sequence[str], critical: Sequence[str],
                   states: Mapping[str, str], outcomes: Sequence[SkillOutcome], dag_picture: str | None = None,
                   *, environ: Mapping[str, str] | None = None) -> FlowArtifacts:
    """Everything the graph flow publishes at its end.

    ``label`` names the run (the skill file); ``dag_picture`` is the store path the DAG PNG was
    written to (None if drawing it failed: the table still shows the DAG).
    """
    key = run_key(label)
    env = dict(environ) if environ is not None else None
    links = picture_links(store, outcomes, environ=env)
    dag_link = object_url(store, dag_picture, environ=env) if dag_picture else None
    details_key = f"{key}-details"
    images = []
    if dag_link is not None and dag_link.url:
        images.append(ImageArtifact(f"{key}-dag-picture", dag_link.url, f"skill DAG coloured by state; {dag_link.note}"))
    for o in outcomes:
        for name, label_ in PICTURES:
            link = links.get((o.skill, name))
            if link is not None and link.url:
                images.append(ImageArtifact(f"{key}-{artifact_key(o.skill)}-{name.replace('_', '-')}", link.url,
                                            f"{o.skill}: {label_} (run {o.run_id}); {link.note}"))
    return FlowArtifacts(
        table=TableArtifact(f"{key}-results", results_rows(outcomes, links),
                            f"skills trained into {store.url}; exact numbers and errors in '{details_key}'"),
        details=MarkdownArtifact(details_key, details_markdown(outcomes, links, store.url),
                                 "every skill's exact numbers, merge decisions, errors and pictures"),
        dag=MarkdownArtifact(f"{key}-dag", dag_markdown(graph, order, critical, states, dag_link),
                             "skill DAG: picture, states, dependencies and critical path"),
        images=images,
    )


def write_dag_picture(store: Store, label: str, graph: nx.DiGraph, states: Mapping[str, str],
                      critical: Sequence[str]) -> str:
    """Draw the DAG coloured by state into the store; returns its path (for :func:`flow_artifacts`)."""
    from flowrl_core.reporting.plots import dag_png
    from flowrl_core.store.objects import now_iso

    return store.write_bytes(dag_picture_parts(label, now_iso()), dag_png(graph, dict(states), list(critical)))


# --------------------------------------------------------------------------- a run's analysis


def analysis_rows(record: AnalysisRecord) -> list[dict[str, str]]:
    """One row per spec claim, then one per plan step when the skill is below its target."""
    rows = []
    for check in record.spec_checks:
        for c in check.claims:
            rows.append({
                "skill": c.skill, "claim": f"{c.kind.value} {c.key}", "spec": str(c.spec_value) if c.spec_value else "—",
                "observed": "—" if c.observed is None else f"{c.observed} ({c.agreement:.0%} of {c.completions})",
                "verdict": c.verdict.value, "proposed": "—" if c.proposed is None else str(c.proposed),
                "note": short(c.note)})
    if record.failure is not None:
        for s in record.failure.steps:
            rows.append({"skill": s.skill, "claim": f"reach {s.label()}", "spec": "—",
                         "observed": f"reached {s.reached:.0%}, completed {s.completed:.0%}", "verdict": "—",
                         "proposed": "—", "note": f"{s.stalled:.0%} of episodes end here"})
    return rows


def analysis_table(record: AnalysisRecord) -> TableArtifact:
    """The Prefect table artifact of a run's analysis (key ``analysis-<skill>``: one history per skill)."""
    return TableArtifact(key=artifact_key(f"analysis-{record.skill}"), rows=analysis_rows(record),
                         description=f"{record.skill} (run {record.run_id}): {record.headline()}")
