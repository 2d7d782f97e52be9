"""Folding trained experts back into the store: the frame-count rule, without locks.

The rule: a proposed version of an expert replaces the stored one only if it has more training
frames.  Ties (equal frames) are broken by run id, then by the parameters' hash, so the
winner is a total order's maximum.

Design — append-only records, current version = fold:
    Each accepted proposal writes its parameters to a content-addressed blob, then one
    immutable record ``experts/<index>/versions/<frames>-<run_id>-<sha>.json``.  The current
    version is the maximum record under (frames, run_id, sha).  Maximum is commutative,
    associative and idempotent, so the final store is the same whatever order concurrent
    merges land in, a merge retried after a crash changes nothing, and no update can be lost:
    nobody ever overwrites anybody else's record.

    Why not a lock around read-modify-write of an index file (the reference design)?  A lock
    file only works where every writer sees the same POSIX file system; on S3/GCS there are no
    locks and no atomic rename, and a lock held by a crashed machine blocks everyone.  Why not
    conditional writes on one "head" object?  They exist on S3 now, but a compare-and-swap loop
    under contention retries O(writers) times and still needs the history for audits; the fold
    needs neither.

    A proposal that is already beaten by an existing record is not written at all ("kept"):
    records are never deleted, so it could never win later.  The decision reported per expert
    (new / updated / kept) describes the store as this merge saw it; under concurrency the
    final winner is whatever the fold says, which is the point.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from flowrl_core.errors import StoreCorruptError, StoreError
from flowrl_core.store.objects import Store, check_run_id, now_iso
from flowrl_core.store.params import params_from_bytes, params_to_bytes, sha256

Action = Literal["new", "updated", "kept"]
_RECORD = re.compile(r"^(\d{16})-([A-Za-z0-9][A-Za-z0-9_.-]*)-([0-9a-f]{16})\.json$")


@dataclass(frozen=True, order=True)
class VersionKey:
    """Total order of versions: frames first, then run id, then parameter hash."""

    frames: int
    run_id: str
    sha: str

    @property
    def record_name(self) -> str:
        return f"{self.frames:016d}-{self.run_id}-{self.sha[:16]}.json"

    @classmethod
    def parse(cls, name: str) -> "VersionKey | None":
        match = _RECORD.match(name)
        return cls(int(match.group(1)), match.group(2), match.group(3)) if match else None


@dataclass(frozen=True)
class ExpertVersion:
    index: int
    skill: str
    frames: int
    run_id: str
    params_sha256: str
    params_path: str  # relative to the store root
    base_version: str | None
    created_at: str
    steps_acted: int | None = None

    @property
    def key(self) -> VersionKey:
        return VersionKey(self.frames, self.run_id, self.params_sha256[:16])

    @property
    def version_id(self) -> str:
        return f"{self.index}:{self.key.record_name[:-5]}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"version_id": self.version_id}

    def answers(self, reference: str) -> bool:
        """Whether ``reference`` (a version id, or :func:`run_reference`) names these parameters."""
        if reference.startswith(RUN_REFERENCE):
            return self.run_id == reference[len(RUN_REFERENCE):]
        return self.version_id == reference


# A run's analysis evaluates its trained parameters before the merge has published them as a
# version; the merge then publishes them under that run's id, so the run names them until then.
RUN_REFERENCE = "run:"


def run_reference(run_id: str) -> str:
    return f"{RUN_REFERENCE}{run_id}"


@dataclass(frozen=True)
class Proposal:
    """One expert a run trained: its parameters and total frames (frames at setup + run)."""

    index: int
    skill: str
    frames: int
    params: Any
    base_version: str | None = None
    steps_acted: int | None = None


@dataclass(frozen=True)
class Decision:
    index: int
    skill: str
    action: Action
    proposed_frames: int
    previous_frames: int | None  # the stored version's frames before this merge (None if new)
    current_frames: int  # frames of the version the store holds after this merge
    current_version: str
    already_merged: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Decision":
        """Raises KeyError/TypeError/ValueError on a malformed record; the reader names the file."""
        action = str(d["action"])
        if action not in ("new", "updated", "kept"):
            raise ValueError(f"unknown merge action {action!r}")
        previous = d.get("previous_frames")
        return cls(index=int(d["index"]), skill=str(d["skill"]), action=action,  # type: ignore[arg-type]
                   proposed_frames=int(d["proposed_frames"]),
                   previous_frames=None if previous is None else int(previous),
                   current_frames=int(d["current_frames"]), current_version=str(d["current_version"]),
                   already_merged=bool(d.get("already_merged", False)))


def _check_proposal(p: Proposal) -> None:
    if isinstance(p.index, bool) or not isinstance(p.index, int) or p.index < 0:
        raise StoreError(f"skill {p.skill!r}: expert index must be a non-negative int, got {p.index!r}")
    if isinstance(p.frames, bool) or not isinstance(p.frames, int) or p.frames < 0:
        raise StoreError(f"skill {p.skill!r}: expert {p.index} frames must be a non-negative int, got {p.frames!r}")
    if p.frames >= 10 ** 16:
        raise StoreError(f"skill {p.skill!r}: expert {p.index} frames {p.frames} exceed 1e16")


def version_keys(store: Store, index: int) -> list[VersionKey]:
    return sorted(k for n in store.list(("experts", f"{index:06d}", "versions")) if (k := VersionKey.parse(n)))


def read_version(store: Store, index: int, key: VersionKey) -> ExpertVersion:
    parts = ("experts", f"{index:06d}", "versions", key.record_name)
    data = store.read_json(parts)
    try:
        data.pop("version_id", None)
        version = ExpertVersion(**data)
    except (TypeError, AttributeError) as exc:
        raise StoreCorruptError(store.path(*parts), f"not an expert version record ({exc})") from None
    if version.key != key or version.index != index:
        raise StoreCorruptError(store.path(*parts), "record contents do not match its name")
    return version


def version_by_id(store: Store, version_id: str) -> ExpertVersion:
    """Read the version named by :attr:`ExpertVersion.version_id` (``"<index>:<record stem>"``)."""
    index, _, stem = str(version_id).partition(":")
    key = VersionKey.parse(stem + ".json")
    if not index.isdigit() or key is None:
        raise StoreError(f"malformed expert version id {version_id!r}")
    return read_version(store, int(index), key)


def current_version(store: Store, index: int) -> ExpertVersion | None:
    keys = version_keys(store, index)
    return read_version(store, index, keys[-1]) if keys else None


def current_versions(store: Store) -> dict[int, ExpertVersion]:
    out = {}
    for name in store.list("experts"):
        if name.isdigit() and (v := current_version(store, int(name))) is not None:
            out[int(name)] = v
    return out


def load_params(store: Store, version: ExpertVersion) -> Any:
    data = store.read_bytes(version.params_path.split("/"))
    if sha256(data) != version.params_sha256:
        raise StoreCorruptError(store.path(*version.params_path.split("/")),
                                "parameters do not match the hash recorded in their version")
    return params_from_bytes(data, store.path(*version.params_path.split("/")))


def merge_one(store: Store, run_id: str, proposal: Proposal) -> Decision:
    _check_proposal(proposal)
    check_run_id(run_id)
    blob = params_to_bytes(proposal.params)
    digest = sha256(blob)
    key = VersionKey(proposal.frames, run_id, digest[:16])
    keys = version_keys(store, proposal.index)
    others = [k for k in keys if k != key]
    best_other = max(others, default=None)
    previous = best_other.frames if best_other else None
    if key in keys:  # this exact version is already in: a retry; change nothing
        action: Action = "new" if best_other is None else ("updated" if key > best_other else "kept")
        winner = max(keys)
        return Decision(proposal.index, proposal.skill, action, proposal.frames, previous, winner.frames,
                        f"{proposal.index}:{winner.record_name[:-5]}", already_merged=True)
    if best_other is not None and best_other > key:
        return Decision(proposal.index, proposal.skill, "kept", proposal.frames, previous, best_other.frames,
                        f"{proposal.index}:{best_other.record_name[:-5]}")
    params_parts = ("blobs", f"{digest}.msgpack")
    if not store.exists(params_parts):
        store.write_bytes(params_parts, blob)
    version = ExpertVersion(
        index=proposal.index, skill=proposal.skill, frames=proposal.frames, run_id=run_id,
        params_sha256=digest, params_path="/".join(params_parts), base_version=proposal.base_version,
        created_at=now_iso(), steps_acted=proposal.steps_acted,
    )
    store.write_bytes(("experts", f"{proposal.index:06d}", "versions", key.record_name),
                      json.dumps(version.to_dict(), indent=1, sort_keys=True).encode())
    return Decision(proposal.index, proposal.skill, "new" if best_other is None else "updated",
                    proposal.frames, previous, proposal.frames, version.version_id)


def merge_proposals(store: Store, run_id: str, proposals: Iterable[Proposal]) -> list[Decision]:
    """Merge every expert a run trained; returns one decision per expert, for the UI."""
    proposals = list(proposals)
    for p in proposals:  # validate all before writing any
        _check_proposal(p)
    check_run_id(run_id)
    if len({p.index for p in proposals}) != len(proposals):
        raise StoreError(f"run {run_id}: two proposals for the same expert index")
    return [merge_one(store, run_id, p) for p in sorted(proposals, key=lambda p: p.index)]


def store_snapshot(store: Store) -> dict[int, dict[str, Any]]:
    """index → {skill, frames, run_id, sha}: what the store currently serves (for comparisons)."""
    return {i: {"skill": v.skill, "frames": v.frames, "run_id": v.run_id, "sha": v.params_sha256}
            for i, v in current_versions(store).items()}
