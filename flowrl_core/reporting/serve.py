"""``flowrl serve``: a store's objects over HTTP, read-only, so browsers can show its pictures.

The Prefect UI shows learning curves and rollouts as ``<img>`` elements, and a web page may not
load ``file://`` URLs; :func:`flowrl_core.reporting.links.object_url` therefore points local-store
pictures at this server.  It is deliberately small and closed:

* GET and HEAD only; every other method is 405, so nothing can be written through it.
* A URL path maps to store-relative parts that go through :meth:`Store.path`, which refuses
  ``..``, empty or control-character segments; on a local store the resolved real path must
  still lie under the store root, so a symlink cannot lead out of it either.
* No directory listings: a folder is 404.  ``/`` is a short page naming the store.
* Content types from a fixed table (png, gif, json, html, ...), ``nosniff`` so a browser never
  guesses a script out of an object; everything else is ``application/octet-stream``.
* Binds 127.0.0.1 unless told otherwise: there is no authentication.
"""

from __future__ import annotations

import html
import os
import posixpath
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from flowrl_core.errors import StoreError, StoreNotFoundError
from flowrl_core.store.objects import Store

CONTENT_TYPES: dict[str, str] = {
    ".png": "image/png",
    ".gif": "image/gif",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
}


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(posixpath.splitext(name)[1].lower(), "application/octet-stream")


class Refused(Exception):
    """A request path the server will not map into the store (traversal, odd bytes, a folder)."""


def store_parts(url_path: str) -> tuple[str, ...]:
    """URL path → store-relative parts; raises :class:`Refused` for anything but plain segments."""
    raw = urlsplit(url_path).path
    parts = tuple(unquote(p, errors="strict") for p in raw.split("/") if p != "")
    for part in parts:
        if part in (".", "..") or "/" in part or "\\" in part or any(ord(c) < 32 or ord(c) == 127 for c in part):
            raise Refused(f"refused path segment {part!r}")
    return parts


def _resolve(store: Store, parts: tuple[str, ...]) -> str:
    try:
        full = store.path(*parts)
    except StoreError as exc:
        raise Refused(str(exc)) from None
    if store.local:
        root = os.path.realpath(store.root)
        real = os.path.realpath(full)
        if not real.startswith(root + os.sep):
            raise Refused(f"{'/'.join(parts)} resolves outside the store")
        if os.path.isdir(real):
            raise Refused("folders are not listed")
    elif store.fs.isdir(full):
        raise Refused("folders are not listed")
    return full


def _index_page(store: Store) -> bytes:
    report = '<p><a href="/report.html">report.html</a></p>' if store.exists("report.html") else ""
    return (f"<!doctype html><meta charset=utf-8><title>flowrl store</title>"
            f"<p>flowrl store <code>{html.escape(store.url)}</code>, served read-only. Objects are at "
            f"<code>/&lt;path in the store&gt;</code>, e.g. <code>/runs/&lt;run&gt;/artifacts/learning_curve.png</code>."
            f" Folders are not listed.</p>{report}").encode()


def make_handler(store: Store) -> type[BaseHTTPRequestHandler]:
    class StoreHandler(BaseHTTPRequestHandler):
        server_version = "flowrl-serve"
        quiet = True

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
            if not self.quiet:
                super().log_message(format, *args)

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: HTTPStatus, message: str) -> None:
            self._send(status, (message + "\n").encode(), "text/plain; charset=utf-8")

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            try:
                parts = store_parts(self.path)
                if not parts:
                    self._send(HTTPStatus.OK, _index_page(store), "text/html; charset=utf-8")
                    return
                _resolve(store, parts)
                data = store.read_bytes(parts)
            except Refused as exc:
                self._error(HTTPStatus.NOT_FOUND, f"not found: {exc}")
                return
            except (StoreNotFoundError, FileNotFoundError, UnicodeDecodeError):
                self._error(HTTPStatus.NOT_FOUND, "not found")
                return
            self._send(HTTPStatus.OK, data, content_type(parts[-1]))

        do_HEAD = do_GET  # noqa: N815

        def _read_only(self) -> None:
            self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
            self.send_header("Allow", "GET, HEAD")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _read_only  # noqa: N815

    return StoreHandler


def make_server(store: Store, host: str = "127.0.0.1", port: int = 8765, *, quiet: bool = True) -> ThreadingHTTPServer:
    """A bound (not yet serving) server; ``port=0`` picks a free port (``server.server_address``)."""
    handler = make_handler(store)
    handler.quiet = quiet
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
