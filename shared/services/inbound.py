"""What every Pub/Sub-triggered function does with a message, whatever its business.

Pub/Sub delivers at least once and redelivers when the function fails, so the decision per message is:
- handled: acknowledge;
- bad input (``PermanentError``): keep it in quarantine with the reason, acknowledge; never retry forever;
- anything else: raise so Pub/Sub redelivers with backoff; a message still failing ``max_retry_age`` after it
  was published is quarantined instead (the "avoid infinite retries" pattern), as the dead-letter topic would.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.domain.errors import PermanentError
from shared.logs import redact
from shared.ports import Clock, Quarantine, QuarantinedMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InboundMessage:
    message_id: str
    data: bytes
    attributes: dict[str, str] = field(default_factory=dict)
    publish_time: datetime | None = None


@dataclass(frozen=True)
class MessageOutcome:
    status: str  # "handled" | "quarantined"
    detail: str = ""


class InboundHandler:
    def __init__(self, stage: str, quarantine: Quarantine, clock: Clock, max_retry_age: timedelta) -> None:
        self.stage = stage
        self.quarantine = quarantine
        self.clock = clock
        self.max_retry_age = max_retry_age

    def handle(self, message: InboundMessage, process: Callable[[InboundMessage], str]) -> MessageOutcome:
        try:
            detail = process(message)
        except PermanentError as exc:
            return self.to_quarantine(message, str(exc))
        except Exception as exc:
            age = self.clock() - message.publish_time if message.publish_time else None
            if age is not None and age > self.max_retry_age:
                log.exception("giving up on message %s after %s", message.message_id, age)
                return self.to_quarantine(message, f"still failing after {age}: {type(exc).__name__}: {exc}")
            raise
        return MessageOutcome("handled", detail)

    def to_quarantine(self, message: InboundMessage, reason: str) -> MessageOutcome:
        reason = redact(reason)  # kept in Firestore and logged: no credentials (shared/logs.py)
        item = QuarantinedMessage(
            id=quarantine_id(self.stage, message),
            stage=self.stage,
            reason=reason,
            payload=_printable(message.data),
            attributes=dict(message.attributes),
            received_at=self.clock(),
        )
        self.quarantine.put(item)
        log.warning(
            "quarantined message",
            extra={"json_fields": {"stage": self.stage, "message_id": message.message_id, "reason": reason}},
        )
        return MessageOutcome("quarantined", reason)


def quarantine_id(stage: str, message: InboundMessage) -> str:
    """Same message, same record: a redelivered bad message does not pile up copies."""
    if message.message_id:
        return f"{stage}.{message.message_id}"
    return f"{stage}.sha256-{hashlib.sha256(message.data).hexdigest()[:32]}"


def _printable(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode("ascii")
