"""One self-contained HTML page describing a store: summary, skill DAG, curves and rollouts.

Why one file with everything inlined (images as base64 data URIs, CSS in a ``<style>``
tag, no scripts): the report is written next to the store, which may be an S3 prefix, and is
opened from wherever it lands — a browser on a laptop, a CI artifact, an e-mail.  Relative
links and CDNs break in all of those; a single file does not.

Everything read from the store (skill names, descriptions, run ids, error messages) is
escaped, because skill files are user input and the page is opened in a browser.
"""

from __future__ import annotations

import base64
import html
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx

from flowrl_core.errors import FlowRLError
from flowrl_core.reporting.plots import dag_png, learning_curve_png
from flowrl_core.reporting.status import SkillState, summarize_store
from flowrl_core.skills.graph import build_graph, critical_path
from flowrl_core.skills.spec import SkillSpec
from flowrl_core.store.objects import Store, now_iso
from flowrl_core.store.runs import RunRecord, RunState, skill_runs

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #212121; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
.meta, .note { color: #666; } .error { color: #b71c1c; }
table { border-collapse: collapse; margin: 0.5em 0; } th, td { border: 1px solid #ddd; padding: 4px 8px; }
th { background: #f5f5f5; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; } img.gif { image-rendering: pixelated; }
code { background: #f5f5f5; padding: 0 3px; }
.state-trained { background: #c8e6c9; } .state-failed { background: #ffcdd2; } .state-pending, .state-untrained { background: #fff; } .state-unfinished { background: #bbdefb; }
"""


# --------------------------------------------------------------------------- store reading

def _load_specs(store: Store) -> tuple[list[SkillSpec], list[str]]:
    """Every readable saved spec; unreadable ones become notes so one bad file cannot hide
    the rest of the report."""
    specs, notes = [], []
    for name in store.skill_names():
        if not store.exists(("skills", name, "spec.json")):
            continue
        try:
            specs.append(store.load_skill(name))
        except FlowRLError as exc:
            notes.append(f"skill {name}: {exc}")
    return specs, notes


def _skill_graph(specs: list[SkillSpec]) -> tuple[nx.DiGraph, str | None]:
    """The dependency graph of the saved specs, or just their nodes if it cannot be built.

    The store only holds specs that some job needed, so a requirement's provider can be
    missing; the picture should then degrade, not vanish.
    """
    try:
        return build_graph(specs), None
    except FlowRLError as exc:
        graph = nx.DiGraph()
        graph.add_nodes_from(s.name for s in specs)
        return graph, f"dependency edges not drawn: {exc}"


def _latest_completed(runs: Mapping[str, RunRecord]) -> tuple[str, RunRecord] | None:
    done = [(r.ended_at, rid, r) for rid, r in runs.items() if r.state is RunState.COMPLETED]
    if not done:
        return None
    _, rid, record = max(done, key=lambda t: (t[0], t[1]))
    return rid, record


def _plan_labels(store: Store, run_id: str) -> list[str] | None:
    """'Collect_Wood×2' per plan step, from the run's job; None when the job is unreadable."""
    run = store.run(run_id)
    if not run.has_doc("job.json"):
        return None
    try:
        plan = run.read_doc("job.json").get("plan", [])
        return [f"{step['skill']}×{int(step['count'])}" for step in plan]
    except (FlowRLError, AttributeError, KeyError, TypeError, ValueError):
        return None


def _artifact(store: Store, run_id: str, name: str) -> bytes | None:
    parts = store.run(run_id).parts("artifacts", name)
    return store.read_bytes(parts) if store.exists(parts) else None


def _learning_curve(store: Store, skill: str, run_id: str) -> bytes:
    """The run's own saved curve if the trainer wrote one, else drawn from its metrics."""
    saved = _artifact(store, run_id, "learning_curve.png")
    if saved is not None:
        return saved
    rows = store.run(run_id).read_metrics()
    return learning_curve_png(rows, f"{skill} — run {run_id}", _plan_labels(store, run_id))


# --------------------------------------------------------------------------- HTML pieces

def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _img(mime: str, data: bytes, alt: str, css: str = "") -> str:
    uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    cls = f' class="{css}"' if css else ""
    return f'<img{cls} src="{uri}" alt="{_e(alt)}">'


def _rate(value: Any) -> str:
    try:
        return f"{100 * float(value):.1f}%"
    except (TypeError, ValueError):
        return "—"


def _count(value: Any) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "—"


def _table(headers: Sequence[str], rows: Sequence[Sequence[tuple[str, str]]]) -> str:
    """rows of (already-escaped html, td class) cells."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="{cls}">{cell}</td>' if cls else f"<td>{cell}</td>" for cell, cls in row) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary_table(skills: Sequence[SkillState], anchors: Mapping[str, str]) -> str:
    rows = []
    for s in skills:
        rows.append([
            (f'<a href="#{anchors[s.name]}">{_e(s.name)}</a>', ""),
            (_e(s.state.value), f"state-{s.state.value}"),
            (_e(s.expert if s.expert is not None else "—"), "num"),
            (_count(s.frames), "num"),
            (_count(s.trained_frames), "num"),
            (_e(s.runs), "num"),
            (_e(s.completed_runs), "num"),
            (_e(s.unfinished_runs), "num"),
            (_rate(s.success_rate), "num"),
        ])
    headers = ["skill", "state", "expert index", "expert frames", "trained frames", "runs", "completed",
               "unfinished", "last success rate"]
    return _table(headers, rows) if rows else '<p class="note">No skills in this store yet.</p>'


def _spec_html(spec: SkillSpec | None) -> str:
    if spec is None:
        return '<p class="note">No saved spec for this skill.</p>'
    parts = []
    if spec.description:
        parts.append(f"<p>{_e(spec.description)}</p>")
    fields = [(k, getattr(spec, k)) for k in ("requires", "consumes", "gains")]
    items = [f"<b>{_e(k)}</b>: " + ", ".join(f"<code>{_e(key)}</code>×{_e(n)}" for key, n in v.items())
             for k, v in fields if v]
    if spec.depends_on:
        items.append("<b>depends on</b>: " + ", ".join(f"<code>{_e(d)}</code>" for d in spec.depends_on))
    if spec.predicate:
        items.append(f"<b>predicate</b>: <code>{_e(spec.predicate)}</code>")
    if items:
        parts.append("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
    return "".join(parts)


def _runs_table(runs: Mapping[str, RunRecord]) -> str:
    ordered = sorted(runs.items(), key=lambda item: (item[1].started_at or item[1].ended_at, item[0]))
    rows = [[(f"<code>{_e(rid)}</code>", ""), (_e(r.state.value), ""),
             (_count(r.frames), "num"), (_rate(r.success_rate), "num"),
             (_e(r.started_at or "—"), ""), (_e(r.ended_at or "—"), ""), (_e(r.reason[:200] or ""), "")]
            for rid, r in ordered]
    return _table(["run", "state", "frames", "success rate", "started", "ended", "reason"], rows)


def _run_media(store: Store, skill: str, run_id: str) -> str:
    """Curve and rollout of one run; a failure to read either is shown, not raised."""
    out = []
    try:
        out.append(_img("image/png", _learning_curve(store, skill, run_id), f"learning curve of {skill}"))
    except (FlowRLError, OSError, ValueError) as exc:
        out.append(f'<p class="error">learning curve unavailable: {_e(exc)}</p>')
    try:
        gif = _artifact(store, run_id, "rollout.gif")
    except (FlowRLError, OSError) as exc:
        gif = None
        out.append(f'<p class="error">rollout unavailable: {_e(exc)}</p>')
    if gif is not None:
        out.append(f"<h4>Rollout</h4>{_img('image/gif', gif, f'rollout of {skill}', 'gif')}")
    return "".join(out)


def _analysis_html(store: Store, run_id: str) -> str:
    """The run's analysis: headline, every spec claim, and the failure analysis when there is one."""
    from flowrl_core.analysis.run import read_analysis
    from flowrl_core.reporting.flow_artifacts import analysis_rows

    try:
        record = read_analysis(store, run_id)
    except (FlowRLError, OSError, ValueError, KeyError) as exc:
        return f'<p class="error">analysis unavailable: {_e(exc)}</p>'
    if record is None:
        return '<p class="note">No analysis of this run.</p>'
    parts = [f"<h4>Analysis</h4><p>{_e(record.headline())}</p>"]
    rows = analysis_rows(record)
    if rows:
        headers = list(rows[0])
        parts.append(_table(headers, [[(_e(r[h]), f"verdict-{r[h]}" if h == "verdict" else "") for h in headers]
                                      for r in rows]))
    for skill, spec in record.corrections().items():
        parts.append(f"<p>Proposed spec for <code>{_e(skill)}</code> (<code>flowrl run FILE --apply-analysis</code>):"
                     f" <code>{_e(spec)}</code></p>")
    return "".join(parts)


def _skill_section(store: Store, name: str, anchor: str, spec: SkillSpec | None,
                   runs: Mapping[str, RunRecord]) -> str:
    parts = [f'<h2 id="{anchor}">{_e(name)}</h2>', _spec_html(spec)]
    if runs:
        parts.append(_runs_table(runs))
    latest = _latest_completed(runs)
    if latest is None:
        parts.append('<p class="note">No completed run yet.</p>')
    else:
        run_id, _ = latest
        parts.append(f"<h3>Latest completed run <code>{_e(run_id)}</code></h3>")
        parts.append(_run_media(store, name, run_id))
        parts.append(_analysis_html(store, run_id))
    return "\n".join(parts)


# --------------------------------------------------------------------------- the page

def render_report(store: Store) -> str:
    """The report as an HTML string (write_report stores it; tests and servers can use it)."""
    summary = summarize_store(store)
    skills = summary.skills
    specs, notes = _load_specs(store)
    by_name = {s.name: s for s in specs}
    runs: dict[str, dict[str, RunRecord]] = {}
    for s in skills:
        try:
            runs[s.name] = skill_runs(store, s.name)
        except FlowRLError as exc:
            runs[s.name] = {}
            notes.append(f"skill {s.name}: run records unreadable: {exc}")
    states = {s.name: s.state.value for s in skills}
    anchors = {s.name: f"skill-{i}" for i, s in enumerate(skills)}
    graph, graph_note = _skill_graph(specs)
    if graph_note:
        notes.append(graph_note)

    body = [f"<h1>flowrl store report</h1><p class=\"meta\">store <code>{_e(summary.store)}</code> · "
            f"generated {_e(now_iso())}</p>", "<h2>Summary</h2>", _summary_table(skills, anchors)]
    if graph.number_of_nodes():
        body += ["<h2>Skill graph</h2>",
                 '<p class="note">Columns are training generations; bold edges are the critical path.</p>',
                 _img("image/png", dag_png(graph, states, critical_path(graph)), "skill dependency graph")]
    body += [f'<p class="error">{_e(n)}</p>' for n in notes]
    body += [_skill_section(store, s.name, anchors[s.name], by_name.get(s.name), runs[s.name]) for s in skills]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>flowrl report — {_e(summary.store)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _write_local(path: str, text: str) -> str:
    """Write through a temporary file and rename, so a browser never opens half a report."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), f".tmp-report-{uuid.uuid4().hex}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_report(store: Store, out_path: str | None = None) -> str:
    """Write the report to ``out_path`` (a local file) or to ``report.html`` in the store,
    and return the path written."""
    text = render_report(store)
    if out_path is not None:
        return _write_local(os.fspath(out_path), text)
    return store.write_bytes(("report.html",), text.encode("utf-8"))
