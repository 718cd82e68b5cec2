"""Firestore adapters. Collections:

- ``incidents/{incident_id}``: one document per incident (id from source, community and post id);
- ``source_cursors/{source_id}``: where each source's next fetch starts;
- ``notifications/{incident}.{department}.{channel}.{kind}``: one per notification, the idempotency record;
- ``notification_claims/{notification}.{k}``: the k-th claim to send it (see FirestoreNotifications);
- ``quarantine/{stage}.{message_id}``: bad messages with the reason they were refused;
- ``published_posts/{incident_id}``: posts ingest has published (so another path does not publish them again);
- ``vk_callback_events/{event_id}``: Callback API events handled (VK retries until it hears "ok");
- ``source_health/{source_id}``: each source's status, last error and what to do about it;
- ``departments/{department_id}`` and ``routing/current`` (rules, fallback): the directory ``otklik seed``
  loads from config/departments.yaml and operators may edit in place;
- ``department_tokens/{sha256 of the token}``: which department an API token belongs to (never the token);
- ``corpus_feedback/{incident_id}``: the operator's verdicts on the classifier (triage), as corpus lines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from enum import Enum
from typing import Any

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from shared.config import RoutingConfig
from shared.domain.errors import TransientError
from shared.domain.models import (
    FINAL_NOTIFICATION_STATUSES,
    Department,
    Incident,
    IncidentStatus,
    Notification,
    NotificationStatus,
)
from shared.ports import Claim, ClaimState, QuarantinedMessage

INCIDENTS = "incidents"
CURSORS = "source_cursors"
NOTIFICATIONS = "notifications"
QUARANTINE = "quarantine"
NOTIFICATION_CLAIMS = "notification_claims"
PUBLISHED_POSTS = "published_posts"
VK_CALLBACK_EVENTS = "vk_callback_events"
SOURCE_HEALTH = "source_health"
DEPARTMENTS = "departments"
ROUTING = "routing"
CORPUS_FEEDBACK = "corpus_feedback"
DEPARTMENT_TOKENS = "department_tokens"
# Markers are only needed while the same post or event can still turn up again (search, comments, Callback
# API retries); a Firestore TTL policy on expire_at (infra/terraform) deletes them after this long.
MARKER_DAYS = 60
MAX_CLAIM_STEPS = 20
OPEN_STATUSES = ["routed", "acknowledged", "answered"]  # waiting for a reply, or for the problem to be solved


def to_document(data: Any) -> Any:
    """pydantic's python dump -> what the Firestore client stores: lists, plain strings, native timestamps."""
    if isinstance(data, dict):
        return {k: to_document(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [to_document(v) for v in data]
    if isinstance(data, Enum):
        return data.value
    if isinstance(data, date) and not isinstance(data, datetime):
        return data.isoformat()  # Firestore stores timestamps only; a calendar date stays a date as text
    if isinstance(data, time):
        return data.strftime("%H:%M")
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
            # Only the fields that changed: route marking an incident routed and classify counting one more report
            # touch different fields, so even where transactions are not isolated (the standalone emulator) one
            # cannot undo the other. Under Firestore's own transactions the result is the same as a full set.
            before, after = incident_document(current), incident_document(changed)
            delta = {key: value for key, value in after.items() if before.get(key) != value}
            if delta:
                tx.update(ref, delta)
            return changed

        result: Incident | None = apply(self.client.transaction())
        return result

    def due_for_check(self, now: datetime, limit: int) -> list[Incident]:
        # One field, so Firestore's automatic single-field index serves it; an incident with nothing pending has
        # next_check_at null, which a range filter never matches.
        query = (
            self.collection.where(filter=FieldFilter("next_check_at", "<=", now)).order_by("next_check_at").limit(limit)
        )
        return [Incident.model_validate(s.to_dict()) for s in query.stream()]

    def open_incidents(self, created_from: datetime | None, limit: int) -> list[Incident]:
        # Composite index (status, created_at). Paged by created_at itself (the standalone emulator ignores
        # start_after cursors), from the last page's instant inclusive: see DigestService._open.
        query = self.collection.where(filter=FieldFilter("status", "in", OPEN_STATUSES))
        if created_from is not None:
            query = query.where(filter=FieldFilter("created_at", ">=", created_from))
        query = query.order_by("created_at").limit(limit)
        return [Incident.model_validate(s.to_dict()) for s in query.stream()]

    def created_between(self, start: datetime, end: datetime, page: int = 500) -> list[Incident]:
        """Every incident created in [start, end), oldest first (reports). One field, so the automatic
        single-field index serves it. Paged by created_at itself, as the standalone emulator ignores start_after
        cursors: the next page starts after the last page's timestamp. Incidents sharing that timestamp may
        straddle the page boundary, so they are read together by equality before moving past it."""
        found: list[Incident] = []
        lower = FieldFilter("created_at", ">=", start)
        while True:
            query = (
                self.collection.where(filter=lower)
                .where(filter=FieldFilter("created_at", "<", end))
                .order_by("created_at")
                .limit(page)
            )
            batch = [Incident.model_validate(s.to_dict()) for s in query.stream()]
            if len(batch) < page:
                return found + batch
            last = batch[-1].created_at
            found += [i for i in batch if i.created_at != last]
            same = self.collection.where(filter=FieldFilter("created_at", "==", last))
            found += sorted((Incident.model_validate(s.to_dict()) for s in same.stream()), key=lambda i: i.id)
            lower = FieldFilter("created_at", ">", last)

    def created_in_range_page(
        self, statuses: Sequence[IncidentStatus], start: datetime, end: datetime, limit: int
    ) -> list[Incident]:
        # The open311 API's read. The (status, created_at) index of open_incidents serves it; the caller pages by
        # moving ``start`` (the standalone emulator ignores start_after cursors).
        query = (
            self.collection.where(filter=FieldFilter("status", "in", [s.value for s in statuses]))
            .where(filter=FieldFilter("created_at", ">=", start))
            .where(filter=FieldFilter("created_at", "<", end))
            .order_by("created_at")
            .limit(limit)
        )
        return [Incident.model_validate(s.to_dict()) for s in query.stream()]

    def group_candidates(self, keys: Sequence[str], since: datetime, limit: int) -> list[Incident]:
        """Grouping (services/group_posts.py): incidents indexed under any of ``keys``, latest post first."""
        if not keys:
            return []
        query = (
            self.collection.where(filter=FieldFilter("group_keys", "array_contains_any", list(keys)[:30]))
            .where(filter=FieldFilter("last_post_at", ">=", since))
            .order_by("last_post_at", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )
        return [Incident.model_validate(s.to_dict()) for s in query.stream()]

    def group_stored_since(self, keys: Sequence[str], since: datetime, limit: int) -> list[Incident]:
        """Route's check for twins (services/group_posts.py): incidents indexed under any of ``keys``, stored
        since ``since``. A few minutes back, so it reads a handful, not the 50 of a city's category."""
        if not keys:
            return []
        query = (
            self.collection.where(filter=FieldFilter("group_keys", "array_contains_any", list(keys)[:30]))
            .where(filter=FieldFilter("created_at", ">=", since))
            .order_by("created_at")
            .limit(limit)
        )
        return [Incident.model_validate(s.to_dict()) for s in query.stream()]

    def undelivered_since(self, before: datetime, limit: int) -> list[Incident]:
        # Composite index (undelivered, routed_at), declared in infra/terraform/firestore.tf.
        query = (
            self.collection.where(filter=FieldFilter("undelivered", "==", True))
            .where(filter=FieldFilter("routed_at", "<=", before))
            .order_by("routed_at")
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


class FirestoreCorpusFeedback:
    """The operator's latest verdict per incident (a second correction replaces the first)."""

    def __init__(self, client: firestore.Client) -> None:
        self.collection = client.collection(CORPUS_FEEDBACK)

    def put(self, incident_id: str, record: dict[str, Any]) -> None:
        self.collection.document(incident_id).set(to_document(record))

    def all(self) -> list[dict[str, Any]]:
        return [snap.to_dict() or {} for snap in self.collection.stream()]


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
    """Claims rest on ``create()`` alone: the one write that is atomic on Firestore, on gcloud's emulator and on
    the standalone emulator, which ignores transaction isolation and preconditions. Claim number k of a
    notification is the document ``notification_claims/{id}.{k}``; exactly one worker can create it, and the
    next claim is possible only once claim k is released (the sender failed) or older than the lease."""

    def __init__(self, client: firestore.Client) -> None:
        self.client = client
        self.collection = client.collection(NOTIFICATIONS)
        self.claims = client.collection(NOTIFICATION_CLAIMS)

    def claim(self, notification: Notification, lease_seconds: float, now: datetime) -> Claim:
        snap = self.collection.document(notification.id).get()
        current = Notification.model_validate(snap.to_dict()) if snap.exists else notification
        if current.status is not NotificationStatus.SENDING:
            return Claim(ClaimState.DONE, current)
        lease = timedelta(seconds=lease_seconds)
        k = current.attempts
        for _ in range(MAX_CLAIM_STEPS):
            if k > 0:
                held = self.claims.document(f"{notification.id}.{k}").get()
                data = held.to_dict() or {}
                if held.exists and not data.get("released") and now - data["claimed_at"] < lease:
                    return Claim(ClaimState.BUSY, current)
            try:
                self.claims.document(f"{notification.id}.{k + 1}").create({"claimed_at": now, "released": False})
            except AlreadyExists:
                k += 1  # another worker took claim k + 1; look at how fresh it is
                continue
            claimed = current.model_copy(update={"attempts": k + 1, "claimed_at": now})
            self.collection.document(notification.id).set(to_document(claimed.model_dump(mode="python")))
            return Claim(ClaimState.GRANTED, claimed)
        return Claim(ClaimState.BUSY, current)

    def save(self, notification: Notification) -> None:
        if notification.status is NotificationStatus.SENDING and notification.claimed_at is None:
            # Released after a failed attempt: the next delivery may claim at once.
            self.claims.document(f"{notification.id}.{notification.attempts}").set({"released": True}, merge=True)
        ref = self.collection.document(notification.id)

        @firestore.transactional
        def write(tx: firestore.Transaction) -> None:
            stored = ref.get(transaction=tx)
            status = (stored.to_dict() or {}).get("status") if stored.exists else None
            if status in FINAL_NOTIFICATION_STATUSES and notification.status is NotificationStatus.SENDING:
                return  # a slow worker's late release must not undo another's success
            tx.set(ref, to_document(notification.model_dump(mode="python")))

        write(self.client.transaction())


class FirestoreMarkers:
    """A set of keys as documents ``{collection}/{key}`` with ``marked_at`` and ``expire_at`` (for TTL)."""

    def __init__(self, client: firestore.Client, collection: str, keep_days: int = MARKER_DAYS) -> None:
        self.client = client
        self.collection = client.collection(collection)
        self.keep = timedelta(days=keep_days)

    def unseen(self, keys: list[str]) -> set[str]:
        if not keys:
            return set()
        refs = [self.collection.document(k) for k in keys]
        seen = {snap.id for snap in self.client.get_all(refs) if snap.exists}
        return set(keys) - seen

    def mark(self, keys: list[str], at: datetime) -> None:
        for start in range(0, len(keys), 400):  # a batch holds at most 500 writes
            batch = self.client.batch()
            for key in keys[start : start + 400]:
                batch.set(self.collection.document(key), {"marked_at": at, "expire_at": at + self.keep})
            batch.commit()


class FirestoreSourceHealth:
    def __init__(self, client: firestore.Client) -> None:
        self.collection = client.collection(SOURCE_HEALTH)

    def get(self, source_id: str) -> dict[str, Any] | None:
        snap = self.collection.document(source_id).get()
        return snap.to_dict() if snap.exists else None

    def set(self, source_id: str, record: dict[str, Any]) -> None:
        self.collection.document(source_id).set(record)


class FirestoreRouting:
    """The department directory and routing rules in Firestore (see the module docstring)."""

    def __init__(self, client: firestore.Client) -> None:
        self.client = client
        self.departments = client.collection(DEPARTMENTS)
        self.current = client.collection(ROUTING).document("current")

    def load(self) -> RoutingConfig | None:
        """What operators keep in Firestore; None if it was never seeded. TransientError if it is invalid (an
        operator's edit in progress): messages wait and retry rather than go to the wrong department."""
        snap = self.current.get()
        if not snap.exists:
            return None
        data = snap.to_dict() or {}
        departments = [d.to_dict() for d in self.departments.stream()]
        try:
            return RoutingConfig.model_validate(
                {"departments": departments, "rules": data.get("rules", []), "fallback": data.get("fallback")}
            )
        except ValueError as exc:
            raise TransientError(f"the routing directory in Firestore is invalid: {exc}") from exc

    def save(self, config: RoutingConfig, at: datetime) -> int:
        """Replace the directory with ``config``; returns how many stale departments were removed."""
        keep = {d.id for d in config.departments}
        stale = [snap.reference for snap in self.departments.stream() if snap.id not in keep]
        batch = self.client.batch()
        for dep in config.departments:
            batch.set(self.departments.document(dep.id), department_document(dep))
        for ref in stale:
            batch.delete(ref)
        batch.set(
            self.current,
            {
                "rules": [to_document(r.model_dump(mode="json", exclude_none=True)) for r in config.rules],
                "fallback": config.fallback,
                "loaded_at": at,
            },
        )
        batch.commit()
        return len(stale)


def department_document(department: Department) -> dict[str, Any]:
    doc: dict[str, Any] = to_document(department.model_dump(mode="json", exclude_none=True))
    return doc


class FirestoreDepartmentTokens:
    def __init__(self, client: firestore.Client) -> None:
        self.collection = client.collection(DEPARTMENT_TOKENS)

    def department_for(self, digest: str) -> str | None:
        snap = self.collection.document(digest).get()
        data = snap.to_dict() or {}
        if not snap.exists or data.get("revoked"):
            return None
        department = data.get("department_id")
        return str(department) if department else None

    def store(self, digest: str, department_id: str, label: str, at: datetime) -> None:
        self.collection.document(digest).create(
            {"department_id": department_id, "label": label, "created_at": at, "revoked": False}
        )

    def revoke_all(self, department_id: str) -> int:
        found = list(self.collection.where(filter=FieldFilter("department_id", "==", department_id)).stream())
        for snap in found:
            snap.reference.update({"revoked": True})
        return len(found)
