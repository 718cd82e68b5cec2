"""Firestore adapters. Collections:

- ``incidents/{incident_id}``: one document per incident (id from source, community and post id);
- ``source_cursors/{source_id}``: where each source's next fetch starts;
- ``notifications/{incident}.{department}.{channel}.{kind}``: one per notification, the idempotency record;
- ``quarantine/{stage}.{message_id}``: bad messages with the reason they were refused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from shared.domain.lifecycle import OPEN_FOR_REPLY
from shared.domain.models import Incident, Notification
from shared.ports import Claim, QuarantinedMessage, decide_claim

INCIDENTS = "incidents"
CURSORS = "source_cursors"
NOTIFICATIONS = "notifications"
QUARANTINE = "quarantine"


def to_document(data: Any) -> Any:
    """pydantic's python dump -> what the Firestore client stores: lists, plain strings, native timestamps."""
    if isinstance(data, dict):
        return {k: to_document(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [to_document(v) for v in data]
    if isinstance(data, Enum):
        return data.value
    return data


def incident_document(incident: Incident) -> dict[str, Any]:
    doc: dict[str, Any] = to_document(incident.model_dump(mode="python"))
    return doc


class FirestoreIncidents:
    def __init__(self, client: firestore.Client) -> None:
        self.client = client
        self.collection = client.collection(INCIDENTS)

    def create(self, incident: Incident) -> bool:
        try:
            self.collection.document(incident.id).create(incident_document(incident))
        except AlreadyExists:
            return False
        return True

    def get(self, incident_id: str) -> Incident | None:
        snap = self.collection.document(incident_id).get()
        return Incident.model_validate(snap.to_dict()) if snap.exists else None

    def update(self, incident_id: str, change: Callable[[Incident], Incident | None]) -> Incident | None:
        ref = self.collection.document(incident_id)

        @firestore.transactional
        def apply(tx: firestore.Transaction) -> Incident | None:
            snap = ref.get(transaction=tx)
            if not snap.exists:
                return None
            current = Incident.model_validate(snap.to_dict())
            changed = change(current)
            if changed is None:
                return current
            tx.set(ref, incident_document(changed))
            return changed

        result: Incident | None = apply(self.client.transaction())
        return result

    def due_for_reply(self, now: datetime, limit: int) -> list[Incident]:
        # Composite index: (status, overdue, reply_due_at), declared in infra/terraform.
        query = (
            self.collection.where(filter=FieldFilter("status", "in", [s.value for s in OPEN_FOR_REPLY]))
            .where(filter=FieldFilter("overdue", "==", False))
            .where(filter=FieldFilter("reply_due_at", "<=", now))
            .order_by("reply_due_at")
            .limit(limit)
        )
        return [Incident.model_validate(s.to_dict()) for s in query.stream()]


class FirestoreCursors:
    def __init__(self, client: firestore.Client) -> None:
        self.collection = client.collection(CURSORS)

    def get(self, source_id: str) -> dict[str, Any] | None:
        snap = self.collection.document(source_id).get()
        if not snap.exists:
            return None
        cursor: dict[str, Any] = (snap.to_dict() or {}).get("cursor", {})
        return cursor

    def set(self, source_id: str, cursor: dict[str, Any]) -> None:
        self.collection.document(source_id).set({"cursor": cursor, "updated_at": firestore.SERVER_TIMESTAMP})


class FirestoreQuarantine:
    def __init__(self, client: firestore.Client) -> None:
        self.collection = client.collection(QUARANTINE)

    def put(self, item: QuarantinedMessage) -> None:
        self.collection.document(item.id).set(
            {
                "stage": item.stage,
                "reason": item.reason,
                "payload": item.payload,
                "attributes": item.attributes,
                "received_at": item.received_at,
            }
        )


class FirestoreNotifications:
    def __init__(self, client: firestore.Client) -> None:
        self.client = client
        self.collection = client.collection(NOTIFICATIONS)

    def claim(self, notification: Notification, lease_seconds: float, now: datetime) -> Claim:
        ref = self.collection.document(notification.id)

        @firestore.transactional
        def take(tx: firestore.Transaction) -> Claim:
            snap = ref.get(transaction=tx)
            current = Notification.model_validate(snap.to_dict()) if snap.exists else notification
            claim = decide_claim(current, lease_seconds, now)
            if claim.granted:
                tx.set(ref, to_document(claim.notification.model_dump(mode="python")))
            return claim

        result: Claim = take(self.client.transaction())
        return result

    def save(self, notification: Notification) -> None:
        self.collection.document(notification.id).set(to_document(notification.model_dump(mode="python")))
