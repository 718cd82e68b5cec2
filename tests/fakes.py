"""In-memory implementations of the ports, for fast unit tests of the services. Never a substitute for the
integration tests against the emulators."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from shared.contracts import Contract
from shared.domain.errors import TransientError
from shared.domain.models import Incident, IncidentStatus, Notification, NotificationStatus
from shared.ports import Claim, ClaimState, Delivery, FetchResult, QuarantinedMessage


class MemoryIncidents:
    def __init__(self) -> None:
        self.items: dict[str, Incident] = {}
        self.lock = threading.Lock()

    def create(self, incident: Incident) -> bool:
        with self.lock:
            if incident.id in self.items:
                return False
            self.items[incident.id] = incident
            return True

    def get(self, incident_id: str) -> Incident | None:
        return self.items.get(incident_id)

    def update(self, incident_id: str, change: Callable[[Incident], Incident | None]) -> Incident | None:
        with self.lock:
            current = self.items.get(incident_id)
            if current is None:
                return None
            changed = change(current)
            if changed is None:
                return current
            self.items[incident_id] = changed
            return changed

    def due_for_check(self, now: datetime, limit: int) -> list[Incident]:
        due = [i for i in self.items.values() if i.next_check_at is not None and i.next_check_at <= now]
        return sorted(due, key=lambda i: i.next_check_at or now)[:limit]

    def open_incidents(self, created_from: datetime | None, limit: int) -> list[Incident]:
        found = [
            i
            for i in self.items.values()
            if i.status in ("routed", "acknowledged", "answered")
            and (created_from is None or i.created_at >= created_from)
        ]
        return sorted(found, key=lambda i: (i.created_at, i.id))[:limit]

    def group_candidates(self, keys: Sequence[str], since: datetime, limit: int) -> list[Incident]:
        wanted = set(keys[:30])
        found = [
            i
            for i in self.items.values()
            if wanted & set(i.group_keys) and i.last_post_at is not None and i.last_post_at >= since
        ]
        return sorted(found, key=lambda i: i.last_post_at or since, reverse=True)[:limit]

    def group_stored_since(self, keys: Sequence[str], since: datetime, limit: int) -> list[Incident]:
        wanted = set(keys[:30])
        found = [i for i in self.items.values() if wanted & set(i.group_keys) and i.created_at >= since]
        return sorted(found, key=lambda i: (i.created_at, i.id))[:limit]

    def created_between(self, start: datetime, end: datetime, page: int = 500) -> list[Incident]:
        found = [i for i in self.items.values() if start <= i.created_at < end]
        return sorted(found, key=lambda i: (i.created_at, i.id))

    def created_in_range_page(
        self, statuses: Sequence[IncidentStatus], start: datetime, end: datetime, limit: int
    ) -> list[Incident]:
        found = [i for i in self.items.values() if i.status in statuses and start <= i.created_at < end]
        return sorted(found, key=lambda i: (i.created_at, i.id))[:limit]  # Firestore breaks ties by document id

    def undelivered_since(self, before: datetime, limit: int) -> list[Incident]:
        stuck = [i for i in self.items.values() if i.undelivered and i.routed_at is not None and i.routed_at <= before]
        return sorted(stuck, key=lambda i: i.routed_at or before)[:limit]


class MemoryCursors:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def get(self, source_id: str) -> dict[str, Any] | None:
        return self.items.get(source_id)

    def set(self, source_id: str, cursor: dict[str, Any]) -> None:
        self.items[source_id] = dict(cursor)


class MemoryPublisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, Contract]] = []
        self.fail_with: Exception | None = None

    def publish(self, topic: str, messages: Sequence[Contract]) -> list[str]:
        if self.fail_with is not None:
            raise self.fail_with
        ids = []
        for m in messages:
            self.published.append((topic, m))
            ids.append(str(len(self.published)))
        return ids

    def on(self, topic: str) -> list[Contract]:
        return [m for t, m in self.published if t == topic]


class MemoryQuarantine:
    def __init__(self) -> None:
        self.items: dict[str, QuarantinedMessage] = {}

    def put(self, item: QuarantinedMessage) -> None:
        self.items[item.id] = item


def decide_claim(current: Notification, lease_seconds: float, now: datetime) -> Claim:
    if current.status is not NotificationStatus.SENDING:
        return Claim(ClaimState.DONE, current)
    if current.claimed_at is not None and now - current.claimed_at < timedelta(seconds=lease_seconds):
        return Claim(ClaimState.BUSY, current)
    return Claim(ClaimState.GRANTED, current.model_copy(update={"claimed_at": now, "attempts": current.attempts + 1}))


class MemoryNotifications:
    def __init__(self) -> None:
        self.items: dict[str, Notification] = {}
        self.lock = threading.Lock()

    def claim(self, notification: Notification, lease_seconds: float, now: datetime) -> Claim:
        with self.lock:
            claim = decide_claim(self.items.get(notification.id, notification), lease_seconds, now)
            if claim.granted:
                self.items[notification.id] = claim.notification
            return claim

    def save(self, notification: Notification) -> None:
        with self.lock:
            self.items[notification.id] = notification


class RecordingSender:
    """A channel that records deliveries and fails the next ``failures`` of them with ``error``."""

    def __init__(self) -> None:
        self.sent: list[Delivery] = []
        self.failures = 0
        self.error: Exception = TransientError("receiver unavailable")
        self.while_sending: Callable[[Delivery], None] | None = None  # runs inside send: to interleave workers

    def send(self, delivery: Delivery) -> None:
        if self.while_sending is not None:
            self.while_sending(delivery)
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        self.sent.append(delivery)


class ListConnector:
    """A source that returns the posts given to it, newer than the cursor; optionally fails."""

    def __init__(self, source_id: str, posts: list[Any], fail: Exception | None = None) -> None:
        self.source_id = source_id
        self.posts = posts
        self.fail = fail

    def fetch(self, cursor: dict[str, Any] | None) -> FetchResult:
        if self.fail is not None:
            raise self.fail
        last = int((cursor or {}).get("last_post_id", 0))
        fresh = [p for p in self.posts if int(p.post_id) > last]
        newest = max([last, *(int(p.post_id) for p in fresh)])
        return FetchResult(posts=fresh, cursor={"last_post_id": newest})


class MemoryMarkers:
    def __init__(self) -> None:
        self.items: dict[str, datetime] = {}

    def unseen(self, keys: list[str]) -> set[str]:
        return {k for k in keys if k not in self.items}

    def mark(self, keys: list[str], at: datetime) -> None:
        for k in keys:
            self.items[k] = at


class MemoryHealth:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def get(self, source_id: str) -> dict[str, Any] | None:
        return self.items.get(source_id)

    def set(self, source_id: str, record: dict[str, Any]) -> None:
        self.items[source_id] = dict(record)


class MemoryFeedback:
    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    def put(self, incident_id: str, record: dict[str, Any]) -> None:
        self.records[incident_id] = record


class MemoryTokens:
    """Department API tokens by digest (shared/services/tokens.py's TokenStore)."""

    def __init__(self) -> None:
        self.items: dict[str, str] = {}

    def department_for(self, digest: str) -> str | None:
        return self.items.get(digest)

    def store(self, digest: str, department_id: str, label: str, at: datetime) -> None:
        self.items[digest] = department_id


class NoCandidates:
    """Grouping's query as classify on another instance sees it at the very moment a twin is being stored:
    nothing yet (route folds the twins: services/group_posts.py)."""

    def group_candidates(self, keys: Sequence[str], since: datetime, limit: int) -> list[Incident]:
        return []

    def group_stored_since(self, keys: Sequence[str], since: datetime, limit: int) -> list[Incident]:
        return []
