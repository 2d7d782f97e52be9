"""URLs a browser can load for objects in a store: what the Prefect UI's pictures point at.

A browser refuses ``file://`` links from a web page ("Not allowed to load local resource"), and a
bare ``s3://`` path means nothing to it, so every picture a flow publishes goes through
:func:`object_url`:

* **Object stores** (``s3://`` and any fsspec backend that can sign): a presigned HTTPS URL,
  valid for ``expires_s`` (at most 7 days: the S3 SigV4 limit).  Anyone holding the URL can read
  that one object until it expires, and nothing else.
* **Local folders**: a URL under ``flowrl serve`` (:mod:`flowrl_core.reporting.serve`), which
  serves the store read-only on 127.0.0.1.  Its base is ``FLOWRL_SERVE_URL`` when set, else
  ``http://127.0.0.1:8765``, the server's default, so links written by any run load whenever
  ``flowrl serve STORE`` is running on the machine with the browser (or behind an SSH tunnel to
  that port).  Nothing is started by the flow: a long-lived web server is not a flow's business.
* **memory://** stores have no URL outside their process: None, and the artifact says why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote

from flowrl_core.store.objects import Store

SERVE_URL_ENV = "FLOWRL_SERVE_URL"
DEFAULT_SERVE_PORT = 8765
DEFAULT_SERVE_URL = f"http://127.0.0.1:{DEFAULT_SERVE_PORT}"
MAX_PRESIGN_S = 7 * 24 * 3600  # S3 SigV4 refuses longer


@dataclass(frozen=True)
class ObjectLink:
    """Where a browser can load one store object; ``url`` is None when no browser can."""

    path: str  # store-relative, e.g. runs/<id>/artifacts/learning_curve.png
    url: str | None
    how: str  # "presigned" | "flowrl serve" | "none"
    note: str  # one line for the artifact: expiry, the command to run, or why there is no URL


def serve_base_url(environ: dict[str, str] | None = None) -> str:
    """The ``flowrl serve`` base URL links are written against (``FLOWRL_SERVE_URL`` or the default)."""
    env = os.environ if environ is None else environ
    base = (env.get(SERVE_URL_ENV) or DEFAULT_SERVE_URL).strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"{SERVE_URL_ENV}={base!r} is not an http(s) URL; set it to where `flowrl serve` "
                         f"listens, e.g. {DEFAULT_SERVE_URL}")
    return base


def served_url(base: str, rel_path: str) -> str:
    """URL of a store-relative path under a ``flowrl serve`` base (each segment percent-encoded)."""
    return base.rstrip("/") + "/" + "/".join(quote(part, safe="") for part in rel_path.strip("/").split("/"))


def _protocol(store: Store) -> str:
    proto = store.fs.protocol
    return proto[0] if isinstance(proto, (tuple, list)) else proto


def object_url(store: Store, path: str, *, expires_s: int = MAX_PRESIGN_S,
               environ: dict[str, str] | None = None) -> ObjectLink:
    """A browser-loadable URL for ``path`` (absolute in the store's file system, or store-relative).

    Never raises for a missing capability: pictures are a convenience, so a store that cannot give
    a URL yields ``url=None`` with the reason in ``note``.
    """
    rel = store.rel(path) if path.startswith(store.root + "/") else path.strip("/")
    full = store.path(*rel.split("/"))
    if store.local:
        base = serve_base_url(environ)
        return ObjectLink(rel, served_url(base, rel), "flowrl serve",
                          f"served by `flowrl serve {store.url}` at {base} (set {SERVE_URL_ENV} to change)")
    proto = _protocol(store)
    if proto == "memory":
        return ObjectLink(rel, None, "none", f"{store.url} lives in one process's memory; no browser can load it")
    expires = max(1, min(int(expires_s), MAX_PRESIGN_S))
    try:
        url = store.fs.sign(full, expiration=expires)
    except NotImplementedError:
        return ObjectLink(rel, None, "none", f"{proto}:// cannot presign URLs; read {store.url}/{rel} directly")
    except Exception as exc:  # noqa: BLE001 - no credentials to sign with, an unreachable endpoint, ...
        return ObjectLink(rel, None, "none", f"could not presign {store.url}/{rel}: {type(exc).__name__}: {exc}")
    days = expires / 86400
    return ObjectLink(rel, url, "presigned", f"presigned link, expires after {days:.3g} day(s)" if days >= 1
                      else f"presigned link, expires after {expires} s")
