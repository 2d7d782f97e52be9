"""Pictures of training: learning curves, the skill DAG and rollout GIFs, all as bytes.

Every function returns encoded bytes (PNG or GIF) so callers can hand them straight to
``RunStore.write_artifact`` or embed them in the HTML report; nothing touches the screen.

Why no ``pyplot``: pyplot keeps a process-wide "current figure" registry, and Prefect runs
tasks in threads, so two tasks plotting at once would draw into each other's figures.  Here
each picture is a private :class:`~matplotlib.figure.Figure` bound to its own Agg canvas,
which needs no global state and no display.
"""

from __future__ import annotations

import functools
import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
from PIL import Image, ImageDraw, ImageFont

# --------------------------------------------------------------------------- shared helpers

STATE_COLORS: dict[str, str] = {
    "trained": "#4caf50",  # completed / trained / already done
    "running": "#2196f3",
    "failed": "#e53935",
    "skipped": "#9e9e9e",  # skipped / upstream failed / cancelled
    "pending": "#ffffff",
}
"""Fill colour per state category (the legend shows them in this order)."""

STATE_LABELS: dict[str, str] = {
    "trained": "trained / done",
    "running": "running",
    "failed": "failed",
    "skipped": "skipped / upstream failed",
    "pending": "pending",
}

_CATEGORY_OF: dict[str, str] = {
    **dict.fromkeys(("completed", "trained", "already done", "done", "merged", "cached"), "trained"),
    **dict.fromkeys(("running", "training", "started", "setup", "merging", "unfinished"), "running"),
    "untrained": "pending",
    **dict.fromkeys(("failed", "crashed", "error"), "failed"),
    **dict.fromkeys(("skipped", "upstream failed", "cancelled", "canceled", "cancelling"), "skipped"),
}


def state_category(state: str | None) -> str:
    """Fold the many spellings of a state (Prefect's, ours) into one of :data:`STATE_COLORS`.

    Unknown states count as pending: white says "nothing known to be done yet", which is the
    honest reading of a state this module has never heard of.
    """
    if not state:
        return "pending"
    key = " ".join(str(state).lower().replace("_", " ").replace("-", " ").split())
    return _CATEGORY_OF.get(key, "pending")


def figure_png(fig: Figure, dpi: float | None = None) -> bytes:
    """Encode through a private Agg canvas, at the figure's own dpi unless told otherwise.

    No ``bbox_inches="tight"``: keeping the canvas exactly figsize x dpi means data
    coordinates map to known pixels (the DAG test samples node colours that way).
    """
    FigureCanvasAgg(fig)  # binds the figure to its own canvas
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi if dpi is None else dpi)
    return buf.getvalue()


def _number(value: Any) -> float:
    """A finite float, or NaN: metrics come from JSON written by other code, so be lenient."""
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


# --------------------------------------------------------------------------- learning curves

def _x_axis(rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, str]:
    """Frames when every row has them, else the update number, else the row position."""
    frames = np.array([_number(r.get("frames")) for r in rows])
    if rows and not np.isnan(frames).any():
        return frames, "environment frames"
    updates = np.array([_number(r.get("update")) for r in rows])
    if rows and not np.isnan(updates).any():
        return updates, "PPO update"
    return np.arange(len(rows), dtype=float), "metrics row"


def _series(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([_number(r.get(key)) for r in rows])


def _reach_matrix(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """[rows, steps] reach rates, NaN where a row lacks a step (plans may differ in length)."""
    def reach(r: Mapping[str, Any]) -> Any:  # the trainer logs "step_reached"
        return r.get("step_reached", r.get("step_reach"))

    lists = [reach(r) if isinstance(reach(r), (list, tuple)) else [] for r in rows]
    width = max((len(x) for x in lists), default=0)
    out = np.full((len(rows), width), np.nan)
    for i, reach in enumerate(lists):
        for j, value in enumerate(reach):
            out[i, j] = _number(value)
    return out


def _plot(ax: Any, x: np.ndarray, y: np.ndarray, **kwargs: Any) -> bool:
    """Plot the finite points only; markers when sparse so a single update still shows."""
    keep = ~np.isnan(y)
    if not keep.any():
        return False
    marker = "o" if keep.sum() <= 30 else None
    ax.plot(x[keep], y[keep], marker=marker, markersize=4, **kwargs)
    return True


def _empty_figure(title: str, message: str) -> Figure:
    fig = Figure(figsize=(8, 3), dpi=100)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=14, color="#666666", transform=ax.transAxes)
    fig.suptitle(title)
    return fig


def _success_panel(ax: Any, x: np.ndarray, rows: Sequence[Mapping[str, Any]]) -> None:
    """Success rate on the left axis; mean return, on its own scale, on a twin right axis."""
    handles = []
    if _plot(ax, x, _series(rows, "success_rate"), color="#2e7d32", label="success rate"):
        handles += ax.get_lines()[-1:]
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("success rate")
    ax.grid(alpha=0.3)
    returns = _series(rows, "mean_return")
    if not np.isnan(returns).all():
        twin = ax.twinx()
        _plot(twin, x, returns, color="#ef6c00", linestyle="--", label="mean return")
        twin.set_ylabel("mean return")
        handles += twin.get_lines()[-1:]
    if handles:
        ax.legend(handles=handles, labels=[h.get_label() for h in handles], loc="upper left", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no success rate logged", ha="center", va="center", color="#666666",
                transform=ax.transAxes)


def _reach_panel(ax: Any, x: np.ndarray, rows: Sequence[Mapping[str, Any]], plan_labels: Sequence[str] | None) -> None:
    reach = _reach_matrix(rows)
    labels = list(plan_labels or [])
    drawn = False
    for j in range(reach.shape[1]):
        label = labels[j] if j < len(labels) else f"step {j + 1}"
        drawn |= _plot(ax, x, reach[:, j], label=f"{j + 1}. {label}")
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("fraction of episodes\nreaching the step")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="plan step", title_fontsize=8)
    else:
        ax.text(0.5, 0.5, "no per-step reach logged", ha="center", va="center", color="#666666",
                transform=ax.transAxes)


def learning_curve_png(rows: list[dict], title: str, plan_labels: list[str] | None = None) -> bytes:
    """Success (and return) over frames above, per-plan-step reach rates below.

    The reach panel is the diagnostic one: a flat success curve with the early steps rising
    says the policy is learning the prerequisites but stalls at a particular step.
    """
    rows = [r for r in rows if isinstance(r, Mapping)]
    if not rows:
        return figure_png(_empty_figure(title, "no metrics yet"))
    x, xlabel = _x_axis(rows)
    fig = Figure(figsize=(9, 6), dpi=100, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    _success_panel(top, x, rows)
    _reach_panel(bottom, x, rows, plan_labels)
    bottom.set_xlabel(xlabel)
    bottom.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4), useMathText=True)
    fig.suptitle(title)
    return figure_png(fig)


# --------------------------------------------------------------------------- the skill DAG

DAG_BOX_W = 0.78  # node box size in data units; generations are 1 apart in x, rows 1 apart in y
DAG_BOX_H = 0.62


def dag_layout(graph: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """Node → (x, y): x is the topological generation, so every edge points rightwards.

    Within a generation nodes are ordered by the mean row of their predecessors (one
    barycentre pass), which removes most crossings in skill trees, then by name so the
    picture is deterministic.  Rows are centred on y = 0, top row first.
    """
    pos: dict[str, tuple[float, float]] = {}
    for gen, nodes in enumerate(nx.topological_generations(graph)):
        def weight(n: str) -> tuple[float, str]:
            ys = [pos[p][1] for p in graph.predecessors(n) if p in pos]
            return (-float(np.mean(ys)) if ys else 0.0, str(n))

        ordered = sorted(nodes, key=weight)
        top = (len(ordered) - 1) / 2
        for row, node in enumerate(ordered):
            pos[node] = (float(gen), top - row)
    return pos


def _wrap_name(name: str, width: int = 20, max_lines: int = 2) -> list[str]:
    """Break at '_', '-' or spaces (skill names are identifiers like Make_Stone_Pickaxe),
    hard-splitting only words longer than a line, so long names stay inside the box."""
    lines: list[str] = []
    for token in re.split(r"(?<=[_\- ])", str(name)):
        while len(token) > width:
            lines.append(token[:width])
            token = token[width:]
        if lines and len(lines[-1]) + len(token) <= width:
            lines[-1] += token
        elif token:
            lines.append(token)
    if len(lines) > max_lines:
        lines = lines[:max_lines - 1] + [lines[max_lines - 1][:width - 1].rstrip() + "…"]
    return [line.strip() for line in lines] or [""]


def _node_label(name: str, state: str | None) -> str:
    return "\n".join(_wrap_name(name) + [f"({state})" if state else "(pending)"])


def _critical_edges(graph: nx.DiGraph, critical: Sequence[str] | None) -> set[tuple[str, str]]:
    path = list(critical or [])
    return {(u, v) for u, v in zip(path, path[1:]) if graph.has_edge(u, v)}


def _draw_edges(ax: Any, graph: nx.DiGraph, pos: Mapping[str, tuple[float, float]], bold: set[tuple[str, str]]) -> None:
    """Edges implied by others (A→C when A→B→C exists) are drawn faint: they are real
    dependencies, but at full strength they bury the structure under long arcs."""
    direct = set(nx.transitive_reduction(graph).edges) if graph.number_of_nodes() else set()
    for u, v in graph.edges:
        (x0, y0), (x1, y1) = pos[u], pos[v]
        is_bold = (u, v) in bold
        skip = x1 - x0 > 1  # edges over a generation arc so they do not run through boxes
        ax.add_patch(FancyArrowPatch(
            (x0 + DAG_BOX_W / 2, y0), (x1 - DAG_BOX_W / 2, y1),
            arrowstyle="-|>", mutation_scale=14 if is_bold else 10,
            connectionstyle=f"arc3,rad={-0.12 if skip else 0.0}",
            color="#212121" if is_bold else "#757575", linewidth=2.8 if is_bold else 1.0,
            alpha=1.0 if is_bold or (u, v) in direct else 0.3,
            zorder=3 if is_bold else 1, shrinkA=0, shrinkB=1))


def _draw_nodes(ax: Any, pos: Mapping[str, tuple[float, float]], states: Mapping[str, str], on_path: set[str]) -> None:
    for node, (x, y) in pos.items():
        state = states.get(node)
        category = state_category(state)
        ax.add_patch(FancyBboxPatch(
            (x - DAG_BOX_W / 2, y - DAG_BOX_H / 2), DAG_BOX_W, DAG_BOX_H,
            boxstyle="round,pad=0,rounding_size=0.06", facecolor=STATE_COLORS[category],
            edgecolor="#212121", linewidth=2.4 if node in on_path else 1.0, zorder=4))
        ink = "white" if category in ("running", "failed") else "#212121"
        ax.text(x, y, _node_label(node, state), ha="center", va="center", fontsize=8, color=ink,
                zorder=5, linespacing=1.15)


def dag_figure(graph: nx.DiGraph, states: Mapping[str, str], critical: Sequence[str] | None = None) -> Figure:
    """The DAG as a Figure whose data coordinates are :func:`dag_layout`'s (see dag_png)."""
    pos = dag_layout(graph)
    n_gen = 1 + int(max((x for x, _ in pos.values()), default=0))
    n_row = max([1] + [sum(1 for p in pos.values() if p[0] == g) for g in range(n_gen)])
    width, plot_h, legend_h = max(5.0, 2.0 * n_gen + 0.4), max(1.6, 0.95 * n_row + 0.3), 0.45
    # keep the picture below ~4000 px on its long side however many skills there are
    dpi = min(100.0, 4000.0 / max(width, plot_h + legend_h))
    fig = Figure(figsize=(width, plot_h + legend_h), dpi=dpi)
    ax = fig.add_axes((0.0, legend_h / (plot_h + legend_h), 1.0, plot_h / (plot_h + legend_h)))
    ax.set_axis_off()
    ax.set_xlim(-0.6, n_gen - 0.4)
    half = n_row / 2
    ax.set_ylim(-half, half)
    if not pos:
        ax.text(0.5, 0.5, "no skills", ha="center", va="center", transform=ax.transAxes, color="#666666")
    bold = _critical_edges(graph, critical)
    _draw_edges(ax, graph, pos, bold)
    _draw_nodes(ax, pos, states, {n for e in bold for n in e})
    handles: list[Any] = [Patch(facecolor=STATE_COLORS[c], edgecolor="#212121", label=STATE_LABELS[c])
                          for c in STATE_COLORS]
    if bold:
        handles.append(Line2D([], [], color="#212121", linewidth=2.8, label="critical path"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 3 if width < 7 else 6),
               fontsize=8, frameon=False)
    return fig


def dag_png(graph: nx.DiGraph, states: dict[str, str], critical: list[str] | None = None) -> bytes:
    """The skill DAG left to right by topological generation, nodes coloured by state.

    Laid out here rather than with graphviz so the report needs no system package; skill
    DAGs are shallow and narrow, which generation columns show well.
    """
    return figure_png(dag_figure(graph, states, critical))


# --------------------------------------------------------------------------- rollout GIFs

CAPTION_PX = 11


def caption_font(size: int = CAPTION_PX) -> ImageFont.FreeTypeFont:
    """DejaVu Sans from matplotlib's own data: always installed with flowrl, and it has every glyph
    the captions use ("×", "→", "…").  Pillow's built-in default font has no "×" (it drew a box)."""
    import matplotlib

    return _font(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf"), size)


@functools.lru_cache(maxsize=8)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _caption_strip(text: str, width: int) -> np.ndarray:
    """A black band with one line of white text, cut with an ellipsis to fit the frame."""
    font = caption_font()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    _, top, _, bottom = probe.textbbox((0, 0), "Ag|", font=font)
    height = int(bottom - top) + 6
    line = str(text).replace("\n", " ")
    while line and probe.textlength(line, font=font) > width - 4:
        line = line[:-2] + "…" if len(line) > 1 else ""
    strip = Image.new("RGB", (width, height), (0, 0, 0))
    ImageDraw.Draw(strip).text((2, 3 - top), line, fill=(255, 255, 255), font=font)
    return np.asarray(strip)


def _check_frames(frames: Any, fps: int, scale: int, captions: Sequence[str] | None) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] == 0:
        raise ValueError(f"frames must be a non-empty [T, H, W, 3] array, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB (what env.render returns), got {arr.dtype}")
    if isinstance(fps, bool) or not isinstance(fps, int) or fps < 1:
        raise ValueError(f"fps must be a positive integer, got {fps!r}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    if captions is not None and len(captions) != arr.shape[0]:
        raise ValueError(f"got {len(captions)} captions for {arr.shape[0]} frames; pass one per frame")
    return arr


def frames_to_gif(frames: np.ndarray, fps: int = 8, scale: int = 4, captions: Sequence[str] | None = None) -> bytes:
    """An endlessly looping GIF of ``frames`` upscaled by ``scale`` (nearest neighbour, so
    tiles stay crisp), with an optional caption band under each frame.

    Pillow merges consecutive identical frames into one longer frame, so the frame count may
    be below T but the playing time is always T / fps.
    """
    arr = _check_frames(frames, fps, scale, captions)
    images = []
    for t, frame in enumerate(arr):
        big = np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)
        if captions is not None:
            big = np.concatenate([big, _caption_strip(captions[t], big.shape[1])], axis=0)
        images.append(Image.fromarray(np.ascontiguousarray(big), "RGB"))
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(1, round(1000 / fps)), loop=0)
    return buf.getvalue()
