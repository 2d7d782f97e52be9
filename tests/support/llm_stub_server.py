"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for testing LLMProposer
over real HTTP (sockets, status codes, bodies) without a model or a network.

Each POST /v1/chat/completions takes the next scripted reply:

* a ``str`` — 200 with a chat completion whose ``choices[0].message.content`` is the string;
* ``Status(code, body)`` — that status with that raw body;
* ``Raw(body)`` — 200 with a raw (typically non-JSON) body;
* ``Slow(seconds, reply)`` — wait, then answer ``reply`` (for client timeouts).

Requests are recorded (decoded JSON body and headers) in ``server.requests``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Union


@dataclass(frozen=True)
class Status:
    code: int
    body: str = ""


@dataclass(frozen=True)
class Raw:
    body: str


@dataclass(frozen=True)
class Slow:
    seconds: float
    reply: "Reply"


Reply = Union[str, Status, Raw, Slow]


def completion(content: str, model: str = "stub") -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


class StubLLMServer:
    """``with StubLLMServer(["{...}", Status(500)]) as server: server.base_url``."""

    def __init__(self, replies: list[Reply] | None = None):
        self.replies: deque[Reply] = deque(replies or [])
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def _next(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self.replies.popleft() if self.replies else Status(500, "no scripted reply left")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, code: int, body: str, ctype: str) -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out
                    pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                if self.path != "/v1/chat/completions":
                    self._send(404, json.dumps({"error": "not found"}), "application/json")
                    return
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                reply = server._next({"json": body, "headers": dict(self.headers)})
                while isinstance(reply, Slow):
                    time.sleep(reply.seconds)
                    reply = reply.reply
                if isinstance(reply, Status):
                    self._send(reply.code, reply.body, "text/plain")
                elif isinstance(reply, Raw):
                    self._send(200, reply.body, "application/json")
                else:
                    self._send(200, json.dumps(completion(reply)), "application/json")

        return Handler

    def __enter__(self) -> "StubLLMServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
