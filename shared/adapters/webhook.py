"""Webhook channel: POST the incident as versioned JSON (docs/schemas/otklik.webhook.incident.v1.json) to the
department's URL, signed with the department's secret (shared/signing.py, docs/webhooks.md).

A few quick retries with exponential backoff (tenacity) ride out a blip; a longer outage is left to Pub/Sub's
redelivery (TransientError), whose backoff grows to minutes. 4xx other than 429 will not get better: permanent.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from shared.contracts import webhook_payload
from shared.domain.errors import PermanentError, TransientError
from shared.ports import Delivery
from shared.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, URGENT_HEADER, sign


class WebhookSender:
    def __init__(
        self,
        http: httpx.Client,
        allow_private: bool,
        secrets: dict[str, str],
        attempts: int = 3,
        backoff_seconds: float = 0.5,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.http = http
        self.allow_private = allow_private
        self.secrets = secrets
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.now = now

    def send(self, delivery: Delivery) -> None:
        department = delivery.department
        if department.webhook_url is None:
            raise PermanentError(f"department {department.id} has no webhook_url")
        secret = self.secrets.get(department.id)
        if not secret:
            raise PermanentError(
                f"department {department.id} has no webhook signing secret (OTKLIK_WEBHOOK_SECRETS): not sent unsigned"
            )
        target = str(department.webhook_url)
        check_target(target, self.allow_private)
        body = webhook_payload(
            delivery.incident, department, delivery.event_id, delivery.kind, delivery.urgent, delivery.answer_url
        ).to_bytes()
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_seconds, max=10),
            retry=retry_if_exception_type(TransientError),
            reraise=True,
        )
        retrying(self._post, target, body, secret, delivery)

    def _post(self, target: str, body: bytes, secret: str, delivery: Delivery) -> None:
        timestamp = int(self.now())  # signed per attempt: a retry is not refused as a replay
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            EVENT_ID_HEADER: delivery.event_id,  # receivers dedupe on it: we deliver at least once
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        }
        if delivery.urgent:
            headers[URGENT_HEADER] = "1"
        try:
            response = self.http.post(target, content=body, headers=headers)
        except httpx.TransportError as exc:  # timeouts, refused connections, DNS
            raise TransientError(f"webhook {target}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"webhook {target}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise PermanentError(f"webhook {target}: HTTP {response.status_code}: {response.text[:200]}")


def parse_secrets(raw: str | None) -> dict[str, str]:
    """OTKLIK_WEBHOOK_SECRETS: a JSON object of department id -> secret. The error never quotes the value."""
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"OTKLIK_WEBHOOK_SECRETS is not JSON (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(parsed, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()):
        raise ValueError('OTKLIK_WEBHOOK_SECRETS must be a JSON object {"department id": "secret", ...}')
    return parsed


def check_target(url: str, allow_private: bool) -> None:
    """Outside local mode: https only, and never an address inside our own network (SSRF)."""
    if allow_private:
        return
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise PermanentError(f"webhook {url}: only https URLs are allowed")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise TransientError(f"webhook {url}: cannot resolve {parts.hostname}: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise PermanentError(f"webhook {url}: {parts.hostname} resolves to non-public {address}")
