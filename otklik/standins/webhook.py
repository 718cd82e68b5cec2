"""A department's webhook receiver: records every request and whether its signature is valid (with the
department's secret, by the last part of the path: /hooks/<department id>); can be told to fail the next N
requests (with a status code, or by hanging past the client's timeout) to prove retries."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from otklik.standins.http import LoopbackServer, QuietHandler
from shared.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, InvalidSignature, verify


@dataclass
class ReceivedWebhook:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    signature_error: str | None = "no secret known for this path"
    received_at: float = field(default_factory=time.time)  # epoch seconds, for latency measurements

    @property
    def signature_valid(self) -> bool:
        return self.signature_error is None

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
    def __init__(self, secrets: dict[str, str] | None = None) -> None:
        super().__init__(_WebhookHandler)
        self.state = _State()
        self.secrets: dict[str, str] = dict(secrets or {})  # department id -> signing secret

    def fail_next(self, count: int, status: int = 503, delay: float = 0.0) -> None:
        with self.state.lock:
            self.state.failures.append(_Failure(count, status, delay))

    def recover(self) -> None:
        """Answer every request again (after ``fail_next``)."""
        with self.state.lock:
            self.state.failures.clear()

    @property
    def received(self) -> list[ReceivedWebhook]:
        with self.state.lock:
            return list(self.state.received)

    def accepted(self) -> list[ReceivedWebhook]:
        return [r for r in self.received if 200 <= r.answered < 300]

    def signature_error(self, path: str, headers: dict[str, str], body: bytes) -> str | None:
        """What a receiver following docs/webhooks.md would say of this request (None: valid)."""
        secret = self.secrets.get(path.rstrip("/").rsplit("/", 1)[-1])
        if secret is None:
            return "no secret known for this path"
        try:
            verify(
                secret,
                headers.get(TIMESTAMP_HEADER.lower()),
                headers.get(SIGNATURE_HEADER.lower()),
                body,
                time.time(),
            )
        except InvalidSignature as exc:
            return str(exc)
        return None


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
            headers = {k.lower(): v for k, v in self.headers.items()}
            sink.state.received.append(
                ReceivedWebhook(self.path, headers, body, status, sink.signature_error(self.path, headers, body))
            )
        if failure is not None and failure.delay:
            time.sleep(failure.delay)
        self.reply(status, b'{"ok": true}' if status < 300 else b'{"error": "unavailable"}')
