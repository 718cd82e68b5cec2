"""Webhook channel: POST the incident as versioned JSON to the department's URL (httpx)."""

from __future__ import annotations

import ipaddress
import socket
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from shared.contracts import webhook_payload
from shared.domain.errors import PermanentError, TransientError
from shared.ports import Delivery


class WebhookSender:
    def __init__(self, http: httpx.Client, allow_private: bool) -> None:
        self.http = http
        self.allow_private = allow_private

    def send(self, delivery: Delivery) -> None:
        url = delivery.department.webhook_url
        if url is None:
            raise PermanentError(f"department {delivery.department.id} has no webhook_url")
        target = str(url)
        check_target(target, self.allow_private)
        body = webhook_payload(delivery.incident, delivery.department, delivery.event_id).to_bytes()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Otklik-Event-Id": delivery.event_id,  # receivers dedupe on it: we deliver at least once
            "Otklik-Timestamp": str(int(datetime.now(UTC).timestamp())),
        }
        try:
            response = self.http.post(target, content=body, headers=headers)
        except httpx.TransportError as exc:  # timeouts, refused connections, DNS
            raise TransientError(f"webhook {target}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"webhook {target}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise PermanentError(f"webhook {target}: HTTP {response.status_code}: {response.text[:200]}")


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
