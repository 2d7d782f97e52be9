"""The expert store: one fsspec URL root holding skills, expert versions, runs and the index.

Layout under the root — the one place it is documented (README and docs/architecture.md point
here).  Objects are immutable unless marked *rewritten*, and every rewritten one has a single
writer (the process holding the run's lease, see :mod:`flowrl_core.store.leases`)::

    store.json                                   marker {"format": "flowrl-store", "version": 1}; create-once
    index/slots/000007.json                      {"skill": ..}: global expert index 7; create-once
    skills/<name>/spec.json                      the skill's declarative spec (rewritten when it changes)
    skills/<name>/spec_history/<stamp>-<sha>.json  every spec it ever had, {"saved_at", "spec"}; create-once
    skills/<name>/evaluations/<stamp>-<run>.json  an evaluation (trained vs random), no traces (evaluation/store.py)
    skills/<name>/runs/<run_id>.json             RunRecord: started → completed | failed | abandoned (rewritten)
    experts/000007/versions/<frames>-<run>-<sha>.json   one merged version of expert 7 (store/experts.py)
    blobs/<sha256>.msgpack                       expert parameters, content-addressed
    graphs/<stamp>-<label>-dag.png               a graph run's DAG picture, coloured by state
    report.html                                  `flowrl report`'s page (rewritten)
    runs/<run_id>/job.json                       SkillJob: plan, remap, config, env, pinned seed versions
    runs/<run_id>/leases/000000.json             who may work on the run (create-once, renewed by its owner)
    runs/<run_id>/checkpoints/000000012.msgpack  trainer state after update 12 (the newest two are kept)
    runs/<run_id>/metrics.jsonl                  one JSON row per PPO update (rewritten while training)
    runs/<run_id>/heartbeat.json                 the trainer is alive (rewritten every few seconds)
    runs/<run_id>/experts/000007.msgpack         the run's trained parameters of expert 7
    runs/<run_id>/artifacts/{learning_curve.png,rollout.gif}
    runs/<run_id>/result.json                    TrainingResult, written last by the trainer
    runs/<run_id>/merge.json                     the frame-count rule's decision per expert
    runs/<run_id>/evaluation.json                the analyse step's evaluation with every episode's trace
    runs/<run_id>/analysis.json                  AnalysisRecord (flowrl.analysis/1): spec checks, failure analysis

Why this shape: object stores (S3, GCS) have no locks and no rename, and several machines write
at once.  So nothing shared is ever read-modified-written: the expert index is a set of
create-once slot objects, expert versions are append-only records whose fold (max by frames)
is the current version, and parameters are content-addressed blobs written before the record
that points at them.  A reader therefore never sees a half-written state, and a crash at any
point leaves at worst an unreferenced blob.

Writes are atomic per object: on a local disk through a temporary file, fsync and rename; on
object stores a single PUT is already atomic.  Create-once writes use ``link()`` locally,
``If-None-Match: *`` on S3 and a process lock for ``memory://``.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from flowrl_core.defaults import DEFAULT_STORE
from flowrl_core.errors import (
    SkillFileError,
    StoreCorruptError,
    StoreError,
    StoreNotFoundError,
    UnreachableError,
)
from flowrl_core.skills.parsing import check_name, parse_skill
from flowrl_core.skills.spec import SkillSpec, skill_key

if TYPE_CHECKING:
    from flowrl_core.store.runs import RunStore

FORMAT = "flowrl-store"
FORMAT_VERSION = 1
_PART = re.compile(r"^[^/\\\x00-\x1f\x7f]{1,120}$")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,119}$")
_SLOT = re.compile(r"^(\d{6,})\.json$")
_MEMORY_LOCK = threading.Lock()


def _durable_temp(path: str, data: bytes) -> str:
    """Write ``data`` to a fsynced temporary file beside ``path`` (to be renamed or linked)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp


def is_unreachable(exc: BaseException) -> bool:
    """A network failure of a storage backend (whatever library raised it), not a refusal.

    fsspec backends raise their own types (botocore's EndpointConnectionError, aiohttp's
    ClientConnectorError ...), which do not derive from ConnectionError.
    """
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    names = " ".join(c.__name__ for c in type(exc).__mro__)
    return any(word in names for word in ("Connect", "Timeout", "Unreachable"))


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def check_run_id(run_id: Any) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id) or ".." in run_id:
        raise StoreError(
            f"invalid run id {run_id!r}: use 1-120 letters, digits, '_', '-' or '.', starting "
            "with a letter or digit")
    return run_id


def new_run_id(skill: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", skill).strip("-")[:40] or "run"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{slug}-{stamp}-{uuid.uuid4().hex[:8]}"


class Store:
    """A handle on one store root.  Cheap to create; holds no open files."""

    def __init__(self, url: str = DEFAULT_STORE, *, storage_options: dict[str, Any] | None = None,
                 create: bool = True):
        self._locate(url, storage_options)
        self._ensure_marker(create)

    def _locate(self, url: str, storage_options: dict[str, Any] | None) -> None:
        if not isinstance(url, str) or not url.strip():
            raise StoreError("store URL is empty; pass a folder, file://, memory:// or s3:// URL")
        self.storage_options = dict(storage_options or {})
        try:
            fs, root = fsspec.core.url_to_fs(url, **self.storage_options)
        except ImportError as exc:
            raise StoreError(f"store {url}: the backend is not installed ({exc}); for s3:// "
                             "install flowrl[s3]") from None
        except (ValueError, TypeError) as exc:
            raise StoreError(f"store {url}: {str(exc)[:200]}; use a folder, file://, memory:// or s3:// URL") from None
        self.fs = fs
        self.local = isinstance(fs, LocalFileSystem)
        if self.local:
            root = os.path.abspath(root)
        root = root.rstrip("/")
        if not root:
            raise StoreError(f"store {url}: the root of a file system is not a store; name a folder or bucket prefix")
        self.root = root
        self.url = self._url_of(root, fs)
        self._slot_cache: dict[str, str] = {}

    @staticmethod
    def _url_of(root: str, fs: Any) -> str:
        proto = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
        if proto in ("file", "local"):
            return root
        return f"{proto}://{root.lstrip('/')}"

    # ----------------------------------------------------------------- paths and raw objects
    def path(self, *parts: str) -> str:
        """Absolute path of an object; every part is checked so nothing escapes the root."""
        for part in parts:
            if not isinstance(part, str) or not _PART.match(part) or part in (".", ".."):
                raise StoreError(f"unsafe path part {part!r} under store {self.url}")
        full = "/".join((self.root, *parts))
        norm = os.path.normpath(full) if self.local else full
        if not (norm == self.root or norm.startswith(self.root + "/")):
            raise StoreError(f"path {full} escapes store root {self.root}")
        return full

    def rel(self, path: str) -> str:
        return path[len(self.root) + 1:] if path.startswith(self.root + "/") else path

    def _ensure_marker(self, create: bool) -> None:
        """Open the store, creating it when asked; race-free when many processes create it at once.

        The marker is written create-once: of several processes creating one fresh store, one
        writes it and the others read it.  Only entries that are not ours count against an
        existing folder (our temporary files and a marker being written do not).
        """
        try:
            self._open_or_create(create)
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError):
            raise
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            raise UnreachableError(f"store {self.url} cannot be reached ({type(exc).__name__}: {str(exc)[:200]}); "
                                   "check its endpoint, credentials and network") from None

    def _open_or_create(self, create: bool) -> None:
        marker = self.path("store.json")
        for _ in range(50):
            if self.fs.exists(marker):
                try:
                    data = self.read_json("store.json")
                except StoreNotFoundError:
                    continue  # listed but not yet readable (object stores): look again
                if not isinstance(data, dict) or data.get("format") != FORMAT:
                    raise StoreCorruptError(marker, "not a flowrl store marker")
                if data.get("version", 0) > FORMAT_VERSION:
                    raise StoreError(f"store {self.url} has format version {data.get('version')}; this "
                                     f"flowrl reads up to {FORMAT_VERSION}: upgrade flowrl")
                return
            if not create:
                raise StoreNotFoundError(f"{self.url} is not a flowrl store (no store.json); run "
                                         "`flowrl run` to create one or check the URL")
            self._check_creatable()
            body = json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "created_at": now_iso()},
                              indent=1, sort_keys=True).encode()
            if self.create_exclusive(("store.json",), body):
                return
        raise StoreError(f"store {self.url}: its marker store.json exists but cannot be read")

    def _check_creatable(self) -> None:
        """Refuse to turn a file, or a folder holding something else, into a store."""
        if not self.fs.exists(self.root):
            return
        if not self.fs.isdir(self.root):
            raise StoreError(f"store root {self.url} is a file; name a folder")
        try:
            entries = self.fs.ls(self.root, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            entries = []
        names = {e.rstrip("/").rsplit("/", 1)[-1] for e in entries}
        foreign = sorted(n for n in names if n != "store.json" and not n.startswith(".tmp-"))
        if foreign:
            raise StoreError(f"{self.url} is not empty and is not a flowrl store (no store.json; it holds "
                             f"{', '.join(foreign[:3])}{'…' if len(foreign) > 3 else ''}); pick a new or empty folder")

    @classmethod
    def probe(cls, url: str, *, storage_options: dict[str, Any] | None = None) -> bool:
        """True if ``url`` is a store, False if one can be created there; raises otherwise.

        Writes nothing: it is how a run validates its store before anything is written.
        """
        try:
            cls(url, storage_options=storage_options, create=False)
            return True
        except StoreNotFoundError:
            pass
        handle = cls.__new__(cls)
        handle._locate(url, storage_options)
        try:
            handle._check_creatable()
            if not handle.local:
                bucket = handle.root.split("/", 1)[0]
                if not handle.fs.exists(bucket):
                    raise StoreError(f"store {handle.url}: bucket {bucket!r} does not exist; create it first")
        except (FileNotFoundError, PermissionError) as exc:
            raise StoreError(f"store {handle.url}: {exc}") from None
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            raise UnreachableError(f"store {handle.url} cannot be reached ({type(exc).__name__}: {str(exc)[:200]})") from None
        if handle.local:
            parent = handle.root
            while parent and not os.path.exists(parent):
                parent = os.path.dirname(parent)
            if not parent or not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
                raise StoreError(f"store {handle.url} cannot be created: {parent or '/'} is not a writable folder")
        return False

    def _parts(self, parts: str | Iterable[str]) -> tuple[str, ...]:
        return (parts,) if isinstance(parts, str) else tuple(parts)

    def write_bytes(self, parts: str | Iterable[str], data: bytes) -> str:
        """Atomically replace one object (a reader sees the old or the new bytes, never a mix)."""
        path = self.path(*self._parts(parts))
        if self.local:
            tmp = _durable_temp(path, data)
            try:
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            self.fs.pipe_file(path, data)
        return path

    def create_exclusive(self, parts: str | Iterable[str], data: bytes) -> bool:
        """Write an object only if it does not exist yet; False when someone else got there first."""
        path = self.path(*self._parts(parts))
        if self.local:
            tmp = _durable_temp(path, data)
            try:
                os.link(tmp, path)  # atomic and fails if ``path`` exists, content already complete
                return True
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
        backend = getattr(self.fs, "create_exclusive", None)  # a backend that knows how to do it itself
        if callable(backend):
            return bool(backend(path, data))
        if isinstance(self.fs, MemoryFileSystem):
            with _MEMORY_LOCK:
                if self.fs.exists(path):
                    return False
                self.fs.pipe_file(path, data)
                return True
        proto = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        if proto in ("s3", "s3a"):
            try:
                self.fs.pipe_file(path, data, IfNoneMatch="*")
                return True
            except FileExistsError:
                return False
            except OSError as exc:
                if "PreconditionFailed" in str(exc) or "412" in str(exc):
                    return False
                raise
        raise StoreError(f"store {self.url}: create-once writes are not supported on {proto}://; "
                         "use a local/shared folder, memory:// or s3://")

    def read_bytes(self, parts: str | Iterable[str]) -> bytes:
        path = self.path(*self._parts(parts))
        try:
            return self.fs.cat_file(path)
        except FileNotFoundError:
            raise StoreNotFoundError(f"missing object {path} in store {self.url}") from None
        except IsADirectoryError:
            raise StoreCorruptError(path, "is a folder where an object was expected") from None

    def read_json(self, parts: str | Iterable[str]) -> Any:
        parts = self._parts(parts)
        data = self.read_bytes(parts)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreCorruptError(self.path(*parts), f"not valid JSON ({exc})") from None

    def write_json(self, parts: str | Iterable[str], value: Any) -> str:
        return self.write_bytes(parts, json.dumps(value, indent=1, sort_keys=True).encode())

    def exists(self, parts: str | Iterable[str]) -> bool:
        return self.fs.exists(self.path(*self._parts(parts)))

    def list(self, parts: str | Iterable[str]) -> list[str]:
        """Names directly under a folder, fresh (listing caches are dropped first), sorted."""
        path = self.path(*self._parts(parts))
        self.fs.invalidate_cache(path)
        try:
            entries = self.fs.ls(path, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        names = (e.rstrip("/").rsplit("/", 1)[-1] for e in entries)
        return sorted(n for n in names if n and not n.startswith("."))

    def delete(self, parts: str | Iterable[str]) -> None:
        path = self.path(*self._parts(parts))
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass

    # ----------------------------------------------------------------- expert index
    def expert_indices(self) -> dict[str, int]:
        """skill → global expert index: the fold of the slot objects (lowest slot wins)."""
        out: dict[str, int] = {}
        for name in self.list(("index", "slots")):
            match = _SLOT.match(name)
            if not match:
                continue
            skill = self._slot_cache.get(name)
            if skill is None:
                data = self.read_json(("index", "slots", name))
                if not isinstance(data, dict) or not isinstance(data.get("skill"), str):
                    raise StoreCorruptError(self.path("index", "slots", name), "slot without a 'skill' name")
                skill = self._slot_cache[name] = data["skill"]
            out.setdefault(skill, int(match.group(1)))
        return out

    def assign_index(self, skill: str) -> int:
        """The skill's global index, claiming the next free slot if it has none.

        Two machines assigning at once race on a create-once slot object: the loser re-reads
        and tries the next slot.  If both claim a slot for the same skill, the lower one wins
        and the other stays burnt, so an index is never handed out twice or reused.
        """
        try:
            check_name(skill)
        except SkillFileError as exc:
            raise StoreError(str(exc)) from None
        for _ in range(10_000):
            names = [n for n in self.list(("index", "slots")) if _SLOT.match(n)]
            current = self.expert_indices()
            if skill in current:
                return current[skill]
            clash = next((name for name in current if skill_key(name) == skill_key(skill)), None)
            if clash is not None:
                raise StoreError(f"skill {skill!r} reads the same as {clash!r}, already in store {self.url} (names "
                                 f"are compared case-insensitively after Unicode NFKC normalisation); use {clash!r} "
                                 "or a clearly different name")
            nxt = 1 + max((int(_SLOT.match(n).group(1)) for n in names), default=-1)  # type: ignore[union-attr]
            slot = f"{nxt:06d}.json"
            body = json.dumps({"skill": skill, "claimed_at": now_iso()}).encode()
            if self.create_exclusive(("index", "slots", slot), body):
                self._slot_cache[slot] = skill
                return self.expert_indices()[skill]
        raise StoreError(f"store {self.url}: could not claim an expert index for {skill!r}")

    # ----------------------------------------------------------------- skill specs
    def save_skill(self, spec: SkillSpec) -> None:
        """Store the spec (the latest one wins); unchanged specs are not rewritten.  Every version
        is also kept in ``spec_history/`` (create-once), so a spec corrected by an analysis, a
        proposer or a hand edit never loses what it was."""
        import hashlib

        parts = ("skills", spec.name, "spec.json")
        body = spec.to_dict()
        try:
            if self.read_json(parts) == body:
                return
        except StoreNotFoundError:
            pass
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
        stamp = now_iso().replace(":", "").replace("-", "").replace("+00:00", "Z").replace("+0000", "Z")
        self.create_exclusive(("skills", spec.name, "spec_history", f"{stamp}-{digest}.json"),
                              json.dumps({"saved_at": now_iso(), "spec": body}, sort_keys=True).encode())
        self.write_json(parts, body)

    def spec_history(self, name: str) -> list[dict[str, Any]]:
        """The skill's spec versions, oldest first: ``{"saved_at", "spec"}`` each."""
        names = sorted(n for n in self.list(("skills", name, "spec_history")) if n.endswith(".json"))
        return [self.read_json(("skills", name, "spec_history", n)) for n in names]

    def load_skill(self, name: str) -> SkillSpec:
        data = self.read_json(("skills", name, "spec.json"))
        try:
            return parse_skill(data, source=self.path("skills", name, "spec.json"))
        except SkillFileError as exc:
            raise StoreCorruptError(self.path("skills", name, "spec.json"), str(exc)) from None

    def skill_names(self) -> list[str]:
        return self.list("skills")

    # ----------------------------------------------------------------- runs
    def run(self, run_id: str) -> "RunStore":
        from flowrl_core.store.runs import RunStore

        return RunStore(self, check_run_id(run_id))

    def run_ids(self) -> list[str]:
        return self.list("runs")
