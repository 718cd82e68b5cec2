"""A department's webhook receiver: records every request; can be told to fail the next N requests (with a
status code, or by hanging past the client's timeout) to prove retries."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from otklik.standins.http import LoopbackServer, QuietHandler


@dataclass
class ReceivedWebhook:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Failure:
    remaining: int
    status: int
    delay: float = 0.0


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    received: list[ReceivedWebhook] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)


class WebhookSink(LoopbackServer):
    def __init__(self) -> None:
        super().__init__(_WebhookHandler)
        self.state = _State()

    def fail_next(self, count: int, status: int = 503, delay: float = 0.0) -> None:
        with self.state.lock:
            self.state.failures.append(_Failure(count, status, delay))

    @property
    def received(self) -> list[ReceivedWebhook]:
        with self.state.lock:
            return list(self.state.received)

    def accepted(self) -> list[ReceivedWebhook]:
        return [r for r in self.received if 200 <= r.answered < 300]


class _WebhookHandler(QuietHandler):
    def do_POST(self) -> None:
        sink: WebhookSink = self.server.owner  # type: ignore[attr-defined]
        body = self.read_body()
        with sink.state.lock:
            failure = next((f for f in sink.state.failures if f.remaining > 0), None)
            status = 200
            if failure is not None:
                failure.remaining -= 1
                status = failure.status
            sink.state.received.append(
                ReceivedWebhook(self.path, {k.lower(): v for k, v in self.headers.items()}, body, status)
            )
        if failure is not None and failure.delay:
            time.sleep(failure.delay)
        self.reply(status, b'{"ok": true}' if status < 300 else b'{"error": "unavailable"}')
