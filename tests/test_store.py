"""The fsspec store: path safety, atomic objects, clear corruption errors, the expert index."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flowrl_core.errors import StoreCorruptError, StoreError, StoreNotFoundError
from flowrl_core.store.experts import (
    Proposal,
    current_version,
    load_params,
    merge_proposals,
)
from flowrl_core.store.objects import Store, check_run_id
from flowrl_core.store.params import params_from_bytes, params_to_bytes

HERE = Path(__file__).resolve().parent


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_local_store_layout_and_marker(tmp_path):
    store = Store(str(tmp_path / "st"))
    assert (tmp_path / "st" / "store.json").exists()
    assert json.loads((tmp_path / "st" / "store.json").read_text())["format"] == "flowrl-store"
    assert Store(f"file://{tmp_path / 'st'}").root == store.root  # reopen by URL


def test_refuses_non_store_folder_and_missing_store(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty and is not a flowrl store"):
        Store(str(tmp_path / "home"))
    assert files_under(tmp_path / "home") == ["notes.txt"]
    with pytest.raises(StoreNotFoundError, match="is not a flowrl store"):
        Store(str(tmp_path / "nothing"), create=False)
    assert not (tmp_path / "nothing").exists()


def test_bad_urls_are_clear():
    with pytest.raises(StoreError, match="empty"):
        Store("")
    with pytest.raises(StoreError, match="use a folder, file://, memory:// or s3://"):
        Store("nosuchproto://bucket/x")


@pytest.mark.parametrize("part", ["..", ".", "a/b", "a\\b", "", "x\x00y", "x" * 121])
def test_unsafe_path_parts_never_escape(mem_url, part):
    store = Store(mem_url)
    with pytest.raises(StoreError, match="unsafe path part"):
        store.write_bytes(("runs", part), b"x")
    assert store.list("runs") == []


@pytest.mark.parametrize("run_id", ["", "../x", "a/b", "-lead", "a..b", "x" * 200, 5])
def test_bad_run_ids(run_id):
    with pytest.raises(StoreError, match="invalid run id"):
        check_run_id(run_id)


def test_atomic_write_leaves_no_temp_files_and_replaces(tmp_path):
    store = Store(str(tmp_path / "st"))
    store.write_bytes(("runs", "r1", "a.bin"), b"one")
    store.write_bytes(("runs", "r1", "a.bin"), b"two")
    assert store.read_bytes(("runs", "r1", "a.bin")) == b"two"
    assert files_under(tmp_path / "st" / "runs") == ["r1", "r1/a.bin"]


def test_create_exclusive_local_and_memory(tmp_path, mem_url):
    for store in (Store(str(tmp_path / "st")), Store(mem_url)):
        assert store.create_exclusive(("index", "x.json"), b"first")
        assert not store.create_exclusive(("index", "x.json"), b"second")
        assert store.read_bytes(("index", "x.json")) == b"first"


def test_corrupt_objects_name_their_path(tmp_path):
    store = Store(str(tmp_path / "st"))
    store.assign_index("Wood")
    slot = tmp_path / "st" / "index" / "slots" / "000000.json"
    slot.write_text('{"skill": "Wo')  # truncated
    with pytest.raises(StoreCorruptError, match=r"corrupt object .*000000\.json: not valid JSON"):
        Store(str(tmp_path / "st")).expert_indices()
    with pytest.raises(StoreCorruptError, match=r"corrupt object /x/params: not a flax msgpack"):
        params_from_bytes(b"\xc1\xc1garbage", "/x/params")
    good = params_to_bytes({"w": np.ones(3)})
    with pytest.raises(StoreCorruptError, match="corrupt object"):
        params_from_bytes(good[: len(good) // 2], "/x/half")


def test_truncated_params_blob_is_detected(mem_url):
    store = Store(mem_url)
    merge_proposals(store, "r1", [Proposal(0, "Wood", 10, {"w": np.arange(4.0)})])
    version = current_version(store, 0)
    store.write_bytes(version.params_path.split("/"), b"\x80")
    with pytest.raises(StoreCorruptError, match="do not match the hash"):
        load_params(store, version)


def test_corrupt_version_record(mem_url):
    store = Store(mem_url)
    merge_proposals(store, "r1", [Proposal(0, "Wood", 10, {"w": np.arange(4.0)})])
    name = store.list(("experts", "000000", "versions"))[0]
    store.write_bytes(("experts", "000000", "versions", name), b"{")
    with pytest.raises(StoreCorruptError, match=name):
        current_version(store, 0)


def test_indices_assigned_once_never_reused(mem_url):
    store = Store(mem_url)
    assert [store.assign_index(n) for n in ("A", "B", "A", "C")] == [0, 1, 0, 2]
    assert Store(mem_url).expert_indices() == {"A": 0, "B": 1, "C": 2}
    with pytest.raises(StoreError, match="path separator"):
        store.assign_index("bad/name")
    assert store.expert_indices() == {"A": 0, "B": 1, "C": 2}


def test_index_assignment_across_processes_is_unique(tmp_path):
    url = str(tmp_path / "st")
    Store(url)
    procs = [subprocess.Popen([sys.executable, str(HERE / "support" / "merge_worker.py"), url, "{}", str(w), "0", "--index"],
                              stdout=subprocess.PIPE, text=True) for w in range(4)]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert all(r == results[0] for r in results)  # every process sees the same index per skill
    assert sorted(results[0].values()) == sorted(set(results[0].values()))  # distinct
    assert Store(url).expert_indices() == results[0]


def test_run_checkpoints_keep_latest_and_metrics(mem_url):
    run = Store(mem_url).run("r-1")
    assert run.load_latest() is None
    from flax import serialization

    states = {u: serialization.msgpack_serialize({"state": u}) for u in (1, 2, 3)}
    for update in (1, 2, 3):
        run.save(update, states[update])
    assert run.load_latest() == states[3] and run.resumed_from == 3
    assert run.checkpoints() == ["000000002.msgpack", "000000003.msgpack"]
    run.write_metrics([{"update": 1, "success": 0.5}, {"update": 2, "success": 0.75}])
    assert [r["update"] for r in run.read_metrics()] == [1, 2]
    with pytest.raises(StoreError, match="non-negative int"):
        run.save(-1, b"x")
