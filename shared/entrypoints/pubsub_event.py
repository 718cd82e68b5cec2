"""Unwrap the CloudEvent that Eventarc delivers for a Pub/Sub message
(``google.cloud.pubsub.topic.v1.messagePublished``, data ``{"message": {...}, "subscription": ...}``)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from shared.domain.errors import PermanentError
from shared.services.inbound import InboundMessage

MESSAGE_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


def inbound_from_cloudevent(event_id: str, event_type: str, data: Any) -> InboundMessage:
    """The Pub/Sub message inside the event. Raises PermanentError with the message as far as it could be
    read, so even an envelope we cannot parse is quarantined rather than retried."""
    fallback = InboundMessage(message_id=event_id, data=_raw(data))
    if event_type != MESSAGE_PUBLISHED:
        raise UnreadableEvent(fallback, f"unexpected event type {event_type!r}, expected {MESSAGE_PUBLISHED}")
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, too long an integer, too deep
            raise UnreadableEvent(fallback, f"event data is not JSON: {exc}") from exc
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, dict):
        raise UnreadableEvent(fallback, "event data has no Pub/Sub 'message' object")
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise UnreadableEvent(fallback, f"message attributes are a {type(attributes).__name__}, not an object")
    message_id = str(message.get("messageId") or message.get("message_id") or event_id)
    publish_time = _time(message.get("publishTime") or message.get("publish_time"))
    try:
        payload = base64.b64decode(message.get("data") or "", validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise UnreadableEvent(
            InboundMessage(message_id, _raw(message.get("data")), dict(attributes), publish_time),
            f"message data is not base64: {exc}",
        ) from exc
    return InboundMessage(message_id, payload, {str(k): str(v) for k, v in attributes.items()}, publish_time)


class UnreadableEvent(PermanentError):
    def __init__(self, message: InboundMessage, reason: str) -> None:
        super().__init__(reason)
        self.message = message


Unreadable = UnreadableEvent


def _raw(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    return json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    # Pub/Sub always sends UTC; a stamp without a zone is read as UTC rather than breaking age arithmetic.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
