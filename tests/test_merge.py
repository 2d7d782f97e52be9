"""The frame-count merge: reference cases, order independence, idempotence, no lost update."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowrl_core.errors import StoreError
from flowrl_core.store.experts import (
    Proposal,
    current_version,
    load_params,
    merge_proposals,
    store_snapshot,
)
from flowrl_core.store.objects import Store
from tests.support.merge_worker import proposals as worker_proposals

HERE = Path(__file__).resolve().parent

M = 1_000_000


def P(index, frames, value, skill="S"):
    return Proposal(index, skill, frames, {"w": np.full((2,), value, np.float32)})


def stored_value(store, index):
    return float(load_params(store, current_version(store, index))["w"][0])


def test_new_updated_kept(mem_url):
    store = Store(mem_url)
    [d] = merge_proposals(store, "r1", [P(0, 50 * M, 1.0)])
    assert (d.action, d.current_frames, d.previous_frames) == ("new", 50 * M, None)
    [d] = merge_proposals(store, "r2", [P(0, 150 * M, 2.0)])
    assert (d.action, d.previous_frames, d.current_frames) == ("updated", 50 * M, 150 * M)
    assert stored_value(store, 0) == 2.0
    [d] = merge_proposals(store, "r3", [P(0, 140 * M, 3.0)])
    assert (d.action, d.current_frames) == ("kept", 150 * M)
    assert stored_value(store, 0) == 2.0  # params untouched
    assert len(store.list(("experts", "000000", "versions"))) == 2  # a beaten proposal writes nothing


def test_sequential_conflict_a_then_b_keeps_a(mem_url):
    store = Store(mem_url)
    merge_proposals(store, "A", [P(0, 180 * M, 1.0)])
    [d] = merge_proposals(store, "B", [P(0, 160 * M, 2.0)])
    assert d.action == "kept" and stored_value(store, 0) == 1.0


def test_later_but_larger_c_then_d_ends_with_d(mem_url):
    store = Store(mem_url)
    merge_proposals(store, "C", [P(0, 130 * M, 1.0)])
    [d] = merge_proposals(store, "D", [P(0, 150 * M, 2.0)])
    assert d.action == "updated" and stored_value(store, 0) == 2.0
    assert current_version(store, 0).frames == 150 * M


def test_run_with_several_experts_reports_each(mem_url):
    store = Store(mem_url)
    merge_proposals(store, "wood", [P(0, 50 * M, 1.0, "Wood")])
    merge_proposals(store, "stone", [P(1, 40 * M, 1.0, "Stone")])
    decisions = merge_proposals(store, "pick", [P(0, 150 * M, 9.0, "Wood"), P(1, 30 * M, 9.0, "Stone"),
                                          P(2, 100 * M, 9.0, "Pick")])
    assert [(d.skill, d.action) for d in decisions] == [("Wood", "updated"), ("Stone", "kept"), ("Pick", "new")]
    assert decisions[1].to_dict()["current_frames"] == 40 * M


def test_idempotent_remerge_changes_nothing(mem_url):
    store = Store(mem_url)
    first = merge_proposals(store, "r1", [P(0, 10, 1.0), P(1, 20, 1.0)])
    snap = store_snapshot(store)
    listing = sorted(store.fs.find(store.root))
    again = merge_proposals(store, "r1", [P(0, 10, 1.0), P(1, 20, 1.0)])
    assert store_snapshot(store) == snap
    assert sorted(store.fs.find(store.root)) == listing
    assert [d.action for d in again] == [d.action for d in first]
    assert all(d.already_merged for d in again)


def test_ties_break_deterministically_by_run_id(mem_url):
    a, b = Store(mem_url), Store(mem_url + "x")
    merge_proposals(a, "run-a", [P(0, 100, 1.0)]); merge_proposals(a, "run-b", [P(0, 100, 2.0)])
    merge_proposals(b, "run-b", [P(0, 100, 2.0)]); merge_proposals(b, "run-a", [P(0, 100, 1.0)])
    assert store_snapshot(a) == store_snapshot(b)
    assert store_snapshot(a)[0]["run_id"] == "run-b"


@pytest.mark.parametrize("bad,fragment", [
    (P(0, -1, 1.0), "frames must be a non-negative int"),
    (P(-2, 1, 1.0), "expert index must be a non-negative int"),
    (Proposal(0, "S", 1.5, {"w": np.zeros(1)}), "frames must be a non-negative int"),
    (P(0, 10 ** 17, 1.0), "exceed 1e16"),
])
def test_bad_proposals_write_nothing(mem_url, bad, fragment):
    store = Store(mem_url)
    before = sorted(store.fs.find(store.root))
    with pytest.raises(StoreError, match=fragment):
        merge_proposals(store, "r1", [P(1, 5, 1.0), bad])  # the good one must not land either
    assert sorted(store.fs.find(store.root)) == before


def test_duplicate_index_and_bad_run_id_write_nothing(mem_url):
    store = Store(mem_url)
    before = sorted(store.fs.find(store.root))
    with pytest.raises(StoreError, match="same expert index"):
        merge_proposals(store, "r1", [P(0, 5, 1.0), P(0, 6, 2.0)])
    with pytest.raises(StoreError, match="invalid run id"):
        merge_proposals(store, "../evil", [P(0, 5, 1.0)])
    assert sorted(store.fs.find(store.root)) == before


proposal_lists = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 5), st.sampled_from(["ra", "rb", "rc", "rd"]), st.integers(0, 3)),
    min_size=1, max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(proposal_lists, st.randoms(use_true_random=False))
def test_order_independence_and_fold_equals_max(items, rnd):
    """Any landing order of the same merges ends in the same store: the max by (frames, run, sha)."""
    def run(order):
        store = Store(f"memory://prop-{uuid.uuid4().hex}")
        for index, frames, run_id, value in order:
            merge_proposals(store, run_id, [P(index, frames, float(value))])
        return store_snapshot(store)

    shuffled = list(items)
    rnd.shuffle(shuffled)
    first, second = run(items), run(shuffled)
    assert first == second
    for index in {i for i, *_ in items}:
        best = max((f, r) for i, f, r, _ in items if i == index)
        assert (first[index]["frames"], first[index]["run_id"]) == best


def sequential_replay(workers: int, merges: int) -> dict:
    store = Store(f"memory://replay-{uuid.uuid4().hex}")
    for w in range(workers):
        for run_id, batch in worker_proposals(w, merges):
            merge_proposals(store, run_id, batch)
    return store_snapshot(store)


def run_workers(url: str, options: dict, workers: int, merges: int) -> None:
    procs = [subprocess.Popen([sys.executable, str(HERE / "support" / "merge_worker.py"), url, json.dumps(options),
                               str(w), str(merges)], stderr=subprocess.PIPE, text=True) for w in range(workers)]
    for p in procs:
        _, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr[-2000:]


def assert_storm_equals_replay(url: str, options: dict, workers: int, merges: int) -> None:
    """``workers`` processes merging ``merges`` runs each end exactly like a sequential replay."""
    Store(url, storage_options=options)
    run_workers(url, options, workers=workers, merges=merges)
    assert store_snapshot(Store(url, storage_options=options)) == sequential_replay(workers, merges)


def test_concurrent_processes_file_store_equal_sequential_replay(tmp_path):
    assert_storm_equals_replay(str(tmp_path / "st"), {}, workers=4, merges=8)


def test_concurrent_processes_s3_store_equal_sequential_replay(s3_url):
    assert_storm_equals_replay(*s3_url, workers=4, merges=5)


def test_s3_create_once_and_index(s3_url):
    url, options = s3_url
    store = Store(url, storage_options=options)
    assert store.create_exclusive(("index", "x.json"), b"1")
    assert not store.create_exclusive(("index", "x.json"), b"2")
    assert store.read_bytes(("index", "x.json")) == b"1"
    assert [store.assign_index(n) for n in ("A", "B", "A")] == [0, 1, 0]
