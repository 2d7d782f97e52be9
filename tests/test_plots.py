"""plots: real PNG/GIF bytes decoded with Pillow; DAG colours sampled at the drawn nodes."""

from __future__ import annotations

import io
import math
from concurrent.futures import ThreadPoolExecutor

import networkx as nx
import numpy as np
import pytest
from PIL import Image

from flowrl_core.reporting import plots
from flowrl_core.skills.graph import build_graph, critical_path
from flowrl_core.skills.parsing import parse_skills


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def metric_rows(n: int) -> list[dict]:
    return [{"update": i, "frames": 4096 * (i + 1), "success_rate": min(1.0, i / 10), "mean_return": 0.1 * i,
             "mean_episode_length": 50 - i, "step_reach": [min(1.0, i / 4), min(1.0, i / 8)]} for i in range(n)]


def tech_tree() -> nx.DiGraph:
    specs = parse_skills({"skills": [
        {"name": "Wood", "gains": {"wood": 1}},
        {"name": "Table", "requires": {"wood": 2}, "consumes": {"wood": 2}, "gains": {"achievement:place_table": 1}},
        {"name": "Pickaxe", "requires": {"wood": 1, "achievement:place_table": 1}, "gains": {"wood_pickaxe": 1}},
        {"name": "Sword", "requires": {"wood": 1, "achievement:place_table": 1}, "gains": {"wood_sword": 1}},
        {"name": "Stone", "requires": {"wood_pickaxe": 1}, "gains": {"stone": 1}},
    ]})
    return build_graph(specs)


# --------------------------------------------------------------------------- learning curves

@pytest.mark.parametrize("n", [0, 1, 25])
def test_learning_curve_is_a_png_for_any_number_of_rows(n):
    png = plots.learning_curve_png(metric_rows(n), "Make_Wood_Pickaxe", ["Collect_Wood×2", "Place_Table×1"])
    image = decode(png)
    assert image.format == "PNG" and image.mode in ("RGB", "RGBA")
    assert image.size == ((800, 300) if n == 0 else (900, 600))


def test_learning_curve_tolerates_missing_and_garbage_values():
    rows = [{"update": 0}, {"update": 1, "success_rate": None, "step_reach": "n/a"},
            {"update": 2, "success_rate": float("nan"), "mean_return": "oops", "step_reach": [0.5, None]},
            {"update": 3, "frames": 100, "success_rate": 0.25, "step_reach": [1.0, 0.5, 0.25]}, "not a row"]
    image = decode(plots.learning_curve_png(rows, "ragged", plan_labels=["only one label"]))  # type: ignore[arg-type]
    assert image.size == (900, 600)


def test_learning_curve_draws_the_data():
    """Different data must give a different picture (a blank template would pass size checks)."""
    low = [dict(r, success_rate=0.0) for r in metric_rows(10)]
    high = [dict(r, success_rate=1.0) for r in metric_rows(10)]
    a = np.asarray(decode(plots.learning_curve_png(low, "t")).convert("RGB"))
    b = np.asarray(decode(plots.learning_curve_png(high, "t")).convert("RGB"))
    assert (a != b).any(axis=-1).sum() > 100


def test_plots_are_thread_safe_and_deterministic():
    """Prefect runs tasks in threads: concurrent plots must equal the same plots drawn alone."""
    jobs = [(metric_rows(5 + i), f"skill {i}") for i in range(4)]
    serial = [plots.learning_curve_png(rows, title) for rows, title in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda job: plots.learning_curve_png(*job), jobs))
    assert parallel == serial


# --------------------------------------------------------------------------- DAG

def node_pixel(fig, image: np.ndarray, x: float, y: float) -> tuple[int, ...]:
    """The colour drawn at data point (x, y) of the DAG axes (display y grows upwards)."""
    px, py = fig.axes[0].transData.transform((x, y))
    return tuple(int(c) for c in image[int(round(image.shape[0] - py)), int(round(px)), :3])


def hex_rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def test_dag_layout_puts_generations_in_columns():
    graph = tech_tree()
    pos = plots.dag_layout(graph)
    assert set(pos) == set(graph)
    for gen, nodes in enumerate(nx.topological_generations(graph)):
        assert {pos[n][0] for n in nodes} == {float(gen)}
    assert all(pos[u][0] < pos[v][0] for u, v in graph.edges)
    assert len(set(pos.values())) == len(pos)  # no two boxes on the same spot


def test_dag_nodes_are_coloured_by_state():
    graph = tech_tree()
    states = {"Wood": "Completed", "Table": "already done", "Pickaxe": "Running", "Sword": "Failed",
              "Stone": "upstream failed"}
    expected = {"Wood": "trained", "Table": "trained", "Pickaxe": "running", "Sword": "failed", "Stone": "skipped"}
    fig = plots.dag_figure(graph, states, critical_path(graph))
    image = np.asarray(decode(plots.figure_png(fig)).convert("RGB"))
    for node, (x, y) in plots.dag_layout(graph).items():
        # sample inside the box, left of the centred label text
        got = node_pixel(fig, image, x - plots.DAG_BOX_W / 2 + 0.06, y)
        want = hex_rgb(plots.STATE_COLORS[expected[node]])
        assert max(abs(a - b) for a, b in zip(got, want)) <= 3, (node, got, want)


def test_dag_png_changes_with_state_and_critical_path():
    graph = tech_tree()
    trained = {n: "trained" for n in graph}
    failed = dict(trained, Sword="failed")
    images = [np.asarray(decode(plots.dag_png(graph, s, c)).convert("RGB"))
              for s, c in ((trained, None), (failed, None), (trained, critical_path(graph)))]
    assert images[0].shape == images[1].shape == images[2].shape
    red = np.array(hex_rgb(plots.STATE_COLORS["failed"]))
    red_pixels = [int((np.abs(im.astype(int) - red).max(axis=-1) <= 2).sum()) for im in images]
    assert red_pixels[1] > red_pixels[0] + 1000  # the failed node's box, beyond the legend swatch
    assert (images[0] != images[2]).any()


def test_dag_of_an_empty_graph_and_unknown_states():
    assert decode(plots.dag_png(nx.DiGraph(), {})).format == "PNG"
    graph = nx.DiGraph([("A" * 100, "b")])
    assert decode(plots.dag_png(graph, {"b": "Weird", "ghost": "failed"}, ["nope"])).format == "PNG"


@pytest.mark.parametrize("state,category", [
    ("Completed", "trained"), ("already_done", "trained"), ("RUNNING", "running"), ("Crashed", "failed"),
    ("Upstream-Failed", "skipped"), ("Skipped", "skipped"), ("Scheduled", "pending"), (None, "pending"),
])
def test_state_category(state, category):
    assert plots.state_category(state) == category


# --------------------------------------------------------------------------- GIFs

def distinct_frames(t: int, h: int = 6, w: int = 5) -> np.ndarray:
    frames = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):
        frames[i, :, :, 0] = 20 * i
        frames[i, i % h, i % w] = (255, 255, 0)
    return frames


def gif_frames(data: bytes) -> list[np.ndarray]:
    image = decode(data)
    out = []
    for i in range(image.n_frames):
        image.seek(i)
        out.append(np.asarray(image.convert("RGB")))
    return out


def test_gif_frames_size_mode_and_nearest_neighbour_pixels():
    frames = distinct_frames(7)
    data = plots.frames_to_gif(frames, fps=5, scale=3)
    image = decode(data)
    assert image.format == "GIF" and image.mode == "P" and image.n_frames == 7
    assert image.size == (5 * 3, 6 * 3)
    assert image.info.get("loop") == 0
    for t, got in enumerate(gif_frames(data)):
        np.testing.assert_array_equal(got, np.repeat(np.repeat(frames[t], 3, axis=0), 3, axis=1))


def test_gif_captions_add_a_strip_below_each_frame():
    frames = distinct_frames(4)
    data = plots.frames_to_gif(frames, scale=8, captions=[f"t={i} DO +1.0 with a long tail" for i in range(4)])
    image = decode(data)
    assert image.n_frames == 4 and image.size[0] == 5 * 8 and image.size[1] > 6 * 8
    first = gif_frames(data)[0]
    strip = first[6 * 8:]
    assert (strip.max(axis=-1) > 200).any() and (strip.max(axis=-1) < 30).any()  # white text on black
    np.testing.assert_array_equal(first[:48], np.repeat(np.repeat(frames[0], 8, axis=0), 8, axis=1))


def test_gif_of_identical_frames_keeps_playing_time():
    data = plots.frames_to_gif(np.zeros((5, 4, 4, 3), np.uint8), fps=10, scale=1)
    image = decode(data)
    total = 0
    for i in range(image.n_frames):
        image.seek(i)
        total += image.info["duration"]
    assert math.isclose(total, 500, abs_tol=10)


def test_gif_of_rendered_gridworld_states():
    """The real producer of rollout frames: env.render output goes in unchanged."""
    pytest.importorskip("jax")
    from flowrl_core.envs.gridworld import Action, Gridworld

    env = Gridworld()
    layout = ["SSSSSSSSS", "SCSISDSSS", "SSSSSSSSS", ".........", "..T..A...",
              ".........", "..~~..T..", "..~~.....", "........."]
    states = [env.state_from_layout(layout, direction=d) for d in (Action.UP, Action.LEFT)]
    frames = np.stack([np.asarray(env.render(s)) for s in states])
    data = plots.frames_to_gif(frames, scale=2, captions=["facing up", "facing left"])
    image = decode(data)
    assert image.size[0] == frames.shape[2] * 2 and image.n_frames == 2
    got = gif_frames(data)
    np.testing.assert_array_equal(got[1][: frames.shape[1] * 2: 2, ::2], frames[1])


@pytest.mark.parametrize("bad,kwargs", [
    (np.zeros((0, 4, 4, 3), np.uint8), {}),
    (np.zeros((2, 4, 4), np.uint8), {}),
    (np.zeros((2, 4, 4, 3), np.float32), {}),
    (np.zeros((2, 4, 4, 3), np.uint8), {"fps": 0}),
    (np.zeros((2, 4, 4, 3), np.uint8), {"scale": 0}),
    (np.zeros((2, 4, 4, 3), np.uint8), {"captions": ["one"]}),
])
def test_gif_rejects_bad_input_with_a_clear_error(bad, kwargs):
    with pytest.raises(ValueError):
        plots.frames_to_gif(bad, **kwargs)


def test_caption_glyphs_render_not_as_missing_boxes():
    """Every character a rollout caption uses is drawn with its own glyph, not the font's
    missing-glyph box: the mask of each differs from that of a character no font has."""
    from PIL import Image, ImageDraw

    from flowrl_core.reporting.plots import caption_font

    font = caption_font()

    def mask(ch: str) -> bytes:
        img = Image.new("L", (40, 30), 0)
        ImageDraw.Draw(img).text((5, 5), ch, fill=255, font=font)
        return img.tobytes()

    missing = mask("\U0010fffd")  # a private-use code point: the missing-glyph box
    for ch in "×→…:.0123456789 step done success Collect_Wood Make_Stone_Pickaxe".replace(" ", "") + "×":
        drawn = mask(ch)
        assert drawn != missing, f"{ch!r} renders as the missing glyph"
        assert any(drawn), f"{ch!r} renders as nothing"
    gif = plots.frames_to_gif(np.zeros((2, 8, 8, 3), np.uint8), captions=["step 1. Collect_Wood×2", "done: success"], scale=30)
    frame = np.asarray(Image.open(io.BytesIO(gif)).convert("L"))
    assert frame[240:].max() > 200  # white caption text is in the band under the frame
