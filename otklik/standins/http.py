"""A small threaded HTTP server on a free loopback port, started and stopped from Python.

Every stand-in built on it can be made to answer badly on purpose: ``inject(method, body, status)`` has the next
request(s) to ``method`` answered with exactly those raw bytes and that status instead of what the real API would
say (garbage, truncated JSON, an HTML page from a proxy, a huge page, wrong types), and ``cut=True`` announces the
full length but closes the connection halfway through the body, as a dropped transfer does.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

ANY_METHOD = "*"


@dataclass(frozen=True)
class Fault:
    """One canned answer, sent as is."""

    body: bytes
    status: int = 200
    content_type: str = "application/json; charset=utf-8"
    cut: bool = False  # send the headers and half the body, then close the connection


class LoopbackServer:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]  # handlers reach their server's state here
        self._thread = threading.Thread(target=self.httpd.serve_forever, name=type(self).__name__, daemon=True)
        self._faults_lock = threading.Lock()
        self._faults: dict[str, deque[tuple[Fault, int | None]]] = {}  # method -> (fault, requests left; None: all)
        self.faults_served: list[tuple[str, Fault]] = []  # (method asked, fault answered), in order

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- fault injection ------------------------------------------------------------------------------------

    def inject(
        self,
        method: str,
        body: bytes | str,
        status: int = 200,
        *,
        times: int | None = 1,
        content_type: str = "application/json; charset=utf-8",
        cut: bool = False,
    ) -> Fault:
        """The next ``times`` requests to ``method`` (``None``: every one until ``clear_faults``) get ``body`` with
        ``status`` instead of the API's answer. ``method`` is named as the stand-in names it (VK ``wall.get``,
        Telegram ``getUpdates``, OK ``mediatopic.getTopics``; case-insensitive), or ``*`` for any request.
        Faults queued for one method are served in the order they were injected."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None")
        fault = Fault(body.encode("utf-8") if isinstance(body, str) else body, status, content_type, cut)
        with self._faults_lock:
            self._faults.setdefault(method.lower(), deque()).append((fault, times))
        return fault

    def clear_faults(self) -> None:
        """The API recovers: every request is answered normally again."""
        with self._faults_lock:
            self._faults.clear()

    def take_fault(self, method: str) -> Fault | None:
        """For handlers: the fault this request to ``method`` is to get, if any (consumes one use of it)."""
        with self._faults_lock:
            for key in (method.lower(), ANY_METHOD):
                queue = self._faults.get(key)
                if not queue:
                    continue
                fault, left = queue[0]
                if left is not None:
                    if left <= 1:
                        queue.popleft()
                    else:
                        queue[0] = (fault, left - 1)
                self.faults_served.append((method, fault))
                return fault
        return None


class QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status: int, body: bytes, content_type: str = "application/json; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def reply_fault(self, fault: Fault) -> None:
        if not fault.cut:
            self.reply(fault.status, fault.body, fault.content_type)
            return
        self.send_response(fault.status)
        self.send_header("Content-Type", fault.content_type)
        self.send_header("Content-Length", str(len(fault.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(fault.body[: len(fault.body) // 2])
        self.close_connection = True

    def answer_fault(self, method: str) -> bool:
        """Answer with the fault injected for ``method``, if there is one; True if it did."""
        fault = self.server.owner.take_fault(method)  # type: ignore[attr-defined]
        if fault is None:
            return False
        self.reply_fault(fault)
        return True
