"""``faulty://`` — a local-disk fsspec filesystem that fails writes on purpose, for fault drills.

It behaves like an object store (each ``pipe_file`` is all-or-nothing, ``cat_file`` reads) and
fails the first ``fail_times`` writes whose path contains ``fail_pattern``:

- ``fail_mode="before"``: the write raises and nothing lands (a refused PUT);
- ``fail_mode="after"``: the write lands, then raises (the connection dropped on the reply) —
  the case that makes retries see their own earlier work.

The failure count is shared across processes through create-once marker files in
``state_dir``, so a trainer child and the orchestrator fail exactly ``fail_times`` writes in
total.  Importing this module registers the protocol with fsspec; child processes (the
trainer) import it through ``FLOWRL_PLUGINS=tests.support.faulty_fs``.  With ``fail_times=0``
(the default) it is a plain local store.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem


class InjectedFault(OSError):
    """The write failure a drill asked for."""


class FaultyFileSystem(AbstractFileSystem):
    protocol = ("faulty",)
    root_marker = "/"

    def __init__(self, fail_pattern: str = "", fail_times: int = 0, fail_mode: str = "before",
                 state_dir: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if fail_mode not in ("before", "after"):
            raise ValueError(f"fail_mode must be 'before' or 'after', got {fail_mode!r}")
        self.inner = LocalFileSystem()
        self.fail_pattern = fail_pattern
        self.fail_times = int(fail_times)
        self.fail_mode = fail_mode
        self.state_dir = state_dir

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        path = str(path)
        if path.startswith("faulty://"):
            path = path[len("faulty://"):]
        return "/" + path.lstrip("/") if path else "/"

    def _should_fail(self, path: str) -> bool:
        if not self.fail_times or self.fail_pattern not in path:
            return False
        os.makedirs(self.state_dir or "/tmp", exist_ok=True)
        for i in range(self.fail_times):
            marker = os.path.join(self.state_dir or "/tmp", f"fault-{i}")
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(path)
            return True
        return False

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        fail = self._should_fail(path)
        if fail and self.fail_mode == "before":
            raise InjectedFault(f"injected write failure (nothing written): {path}")
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}")
        with open(tmp, "wb") as fh:
            fh.write(value)
        os.replace(tmp, path)
        if fail:
            raise InjectedFault(f"injected failure after the write landed: {path}")

    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Create-once write (flowrl's store asks its backend for it): O_EXCL on the disk underneath."""
        path = self._strip_protocol(path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return True

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        return self.inner.cat_file(self._strip_protocol(path), start=start, end=end)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        return self.inner.ls(self._strip_protocol(path), detail=detail)

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.inner.info(self._strip_protocol(path))

    def rm_file(self, path: str) -> None:
        self.inner.rm_file(self._strip_protocol(path))

    def _rm(self, path: str) -> None:
        self.inner.rm_file(self._strip_protocol(path))

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self.inner.mkdir(self._strip_protocol(path), create_parents=create_parents)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self.inner.makedirs(self._strip_protocol(path), exist_ok=exist_ok)

    def created(self, path: str) -> Any:
        return self.inner.created(self._strip_protocol(path))

    def modified(self, path: str) -> Any:
        return self.inner.modified(self._strip_protocol(path))


fsspec.register_implementation("faulty", FaultyFileSystem, clobber=True)
