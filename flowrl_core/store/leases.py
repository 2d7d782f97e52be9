"""Leases: which live process may resume, train and finish a run — on any store, object stores too.

Object stores have no locks, so a lease is a sequence of create-once objects
``runs/<run_id>/leases/<seq>.json``.  The highest sequence number is the current lease; its
holder renews it by rewriting its own object with a later expiry.  Taking over needs the current
lease to have expired and wins only by creating the next sequence number first (create-once), so
two processes can never both believe they hold a run.  A holder that crashed stops renewing and
its lease lapses after ``ttl_s``; a holder that finds a higher sequence than its own has lost
the run and must stop.  Wall clocks of different machines are compared, so ``ttl_s`` should be
far above their skew (the default is a minute, renewed every few seconds).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import socket
import threading
import time
import uuid
import weakref
from dataclasses import asdict, dataclass

from flowrl_core.errors import FlowRLError, StoreCorruptError
from flowrl_core.store.objects import Store

_SEQ = re.compile(r"^(\d{6})\.json$")
DEFAULT_TTL_S = 60.0


class RunBusyError(FlowRLError):
    """Another live process holds the run."""


class LeaseLostError(FlowRLError):
    """This process no longer holds the run (its lease lapsed and someone took it over)."""


def new_owner() -> str:
    """An owner token: unique per process and purpose, readable in error messages."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _holder_is_dead(owner: str) -> bool:
    """True when the holder ran on this machine and its process is gone (killed, crashed).

    Such a lease cannot be renewed any more, so waiting for it to lapse would only make the
    rerun after a crash fail for a minute.  A holder on another machine is trusted until expiry.
    """
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True)
class Lease:
    run_id: str
    seq: int
    owner: str
    expires_at: float  # epoch seconds
    acquired_at: float

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()


def _parts(run_id: str, seq: int) -> tuple[str, ...]:
    return ("runs", run_id, "leases", f"{seq:06d}.json")


def current_lease(store: Store, run_id: str) -> Lease | None:
    seqs = sorted(int(m.group(1)) for n in store.list(("runs", run_id, "leases")) if (m := _SEQ.match(n)))
    if not seqs:
        return None
    parts = _parts(run_id, seqs[-1])
    data = store.read_json(parts)
    try:
        return Lease(**data)
    except TypeError as exc:
        raise StoreCorruptError(store.path(*parts), f"not a lease ({exc})") from None


def acquire(store: Store, run_id: str, owner: str, *, skill: str = "", ttl_s: float = DEFAULT_TTL_S) -> Lease:
    """Take (or renew) the run's lease for ``owner``; :class:`RunBusyError` if someone else holds it."""
    for _ in range(100):
        now = time.time()
        cur = current_lease(store, run_id)
        if cur is not None and cur.owner == owner:
            return renew(store, cur, ttl_s=ttl_s)
        if cur is not None and cur.expires_at > now and not _holder_is_dead(cur.owner):
            who = f"skill {skill!r}: " if skill else ""
            raise RunBusyError(
                f"{who}run {run_id} is held by {cur.owner} (lease until "
                f"{time.strftime('%H:%M:%S', time.localtime(cur.expires_at))}); another flowrl process is "
                "training it — wait for it to finish, or stop it and retry after its lease lapses")
        seq = 0 if cur is None else cur.seq + 1
        lease = Lease(run_id=run_id, seq=seq, owner=owner, expires_at=now + ttl_s, acquired_at=now)
        if store.create_exclusive(_parts(run_id, seq), lease.to_json()):
            return lease
    raise RunBusyError(f"run {run_id}: could not take its lease (too much contention)")


def renew(store: Store, lease: Lease, *, ttl_s: float = DEFAULT_TTL_S) -> Lease:
    cur = current_lease(store, lease.run_id)
    if cur is None or cur.seq != lease.seq or cur.owner != lease.owner:
        raise LeaseLostError(f"run {lease.run_id}: lease lost to {cur.owner if cur else 'nobody'}; "
                             "another process took the run over after this one stopped renewing")
    fresh = Lease(lease.run_id, lease.seq, lease.owner, time.time() + ttl_s, lease.acquired_at)
    store.write_bytes(_parts(lease.run_id, lease.seq), fresh.to_json())
    return fresh


def release(store: Store, lease: Lease) -> None:
    """Let the lease lapse now (if it is still ours), so the next process need not wait."""
    cur = current_lease(store, lease.run_id)
    if cur is not None and cur.seq == lease.seq and cur.owner == lease.owner:
        store.write_bytes(_parts(lease.run_id, lease.seq),
                          Lease(lease.run_id, lease.seq, lease.owner, 0.0, lease.acquired_at).to_json())


_KEEPERS: "weakref.WeakSet[LeaseKeeper]" = weakref.WeakSet()


def release_all() -> None:
    """Release every lease this process still keeps (an interrupted command lets its runs go at
    once, so the user's next command can resume them without waiting for them to lapse)."""
    for keeper in list(_KEEPERS):
        keeper.close()


atexit.register(release_all)


class LeaseKeeper:
    """Renews a lease in a daemon thread until closed; ``lost`` says whether it was taken over."""

    def __init__(self, store: Store, lease: Lease, *, ttl_s: float = DEFAULT_TTL_S, every_s: float | None = None):
        self.store, self.lease, self.ttl_s = store, lease, ttl_s
        self.every_s = every_s if every_s is not None else max(1.0, ttl_s / 6)
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{lease.run_id}", daemon=True)
        self._thread.start()
        _KEEPERS.add(self)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.lease = renew(self.store, self.lease, ttl_s=self.ttl_s)
            except LeaseLostError as exc:
                self.lost = str(exc)
                return
            except Exception:  # noqa: BLE001 - a missed renewal is not fatal; the next may land
                continue

    def close(self, *, release_lease: bool = True) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        _KEEPERS.discard(self)
        if self._thread is not threading.current_thread():
            self._thread.join(5.0)
        if release_lease and self.lost is None:
            try:
                release(self.store, self.lease)
            except Exception:  # noqa: BLE001 - it lapses on its own after ttl_s
                pass
