"""Ports: the small interfaces the services need from the outside world.

Adapters implement them for Firestore, Pub/Sub, HTTP and SMTP (``shared.adapters``); tests implement them in
memory (``tests/fakes.py``). Services never import an adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from shared.contracts import Contract
from shared.domain.models import Department, Incident, Notification, Post


class IncidentRepository(Protocol):
    def create(self, incident: Incident) -> bool:
        """Store a new incident. False (and no change) if one with that id exists: the post was replayed."""

    def get(self, incident_id: str) -> Incident | None: ...

    def update(self, incident_id: str, change: Callable[[Incident], Incident | None]) -> Incident | None:
        """Atomically read, apply ``change`` and write. ``change`` returns None to leave the incident as is.
        Returns the incident as stored afterwards, or None if there is no such incident."""

    def due_for_check(self, now: datetime, limit: int) -> list[Incident]:
        """Incidents whose ``next_check_at`` has come, earliest first."""

    def open_incidents(self, created_from: datetime | None, limit: int) -> list[Incident]:
        """Routed, acknowledged and answered incidents created at ``created_from`` or later, oldest first (those
        created at one instant in one stable order)."""

    def undelivered_since(self, before: datetime, limit: int) -> list[Incident]:
        """Incidents still undelivered that were routed at or before ``before``, oldest first."""


class GroupCandidates(Protocol):
    def group_candidates(self, keys: Sequence[str], since: datetime, limit: int) -> list[Incident]:
        """Incidents whose ``group_keys`` hold any of ``keys`` (at most 30) and whose latest post is not older
        than ``since``, latest first."""
        ...

    def group_stored_since(self, keys: Sequence[str], since: datetime, limit: int) -> list[Incident]:
        """Incidents whose ``group_keys`` hold any of ``keys`` (at most 30), stored (``created_at``) at ``since``
        or later, oldest first: route's check for twins, which are stored moments apart."""
        ...


class CursorStore(Protocol):
    def get(self, source_id: str) -> dict[str, Any] | None: ...

    def set(self, source_id: str, cursor: dict[str, Any]) -> None: ...


class MarkerSet(Protocol):
    """Keys that were seen already: posts some path has published, Callback API events handled."""

    def unseen(self, keys: list[str]) -> set[str]: ...

    def mark(self, keys: list[str], at: datetime) -> None: ...


class SourceHealthStore(Protocol):
    """Per source: status (ok, failing, stopped, skipped), last error and what a person should do about it."""

    def get(self, source_id: str) -> dict[str, Any] | None: ...

    def set(self, source_id: str, record: dict[str, Any]) -> None: ...


class Publisher(Protocol):
    def publish(self, topic: str, messages: Sequence[Contract]) -> list[str]:
        """Publish and wait until every message is accepted by Pub/Sub; return their ids. Raises on failure."""


@dataclass(frozen=True)
class QuarantinedMessage:
    id: str = field(metadata={"doc": "deterministic: a replayed bad message overwrites its own record"})
    stage: str
    reason: str
    payload: str
    attributes: dict[str, str]
    received_at: datetime


class Quarantine(Protocol):
    def put(self, item: QuarantinedMessage) -> None: ...


class ClaimState(StrEnum):
    GRANTED = "granted"  # send it now
    DONE = "done"  # sent, or failed for good: nothing to do
    BUSY = "busy"  # another worker claimed it less than a lease ago


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    notification: Notification

    @property
    def granted(self) -> bool:
        return self.state is ClaimState.GRANTED


class NotificationLog(Protocol):
    def claim(self, notification: Notification, lease_seconds: float, now: datetime) -> Claim:
        """Atomically take the right to send ``notification`` (stored, or this fresh one if none is stored):
        DONE when it was sent or failed for good, BUSY while another worker's claim is younger than the
        lease and not released, otherwise GRANTED with ``attempts`` counted up and ``claimed_at`` = now."""

    def save(self, notification: Notification) -> None: ...


@dataclass(frozen=True)
class Rejected:
    """An item a source returned that cannot be read as a post: kept in quarantine, not dropped."""

    key: str
    payload: str
    reason: str


class SkipReason(StrEnum):
    """Why an item a source answered is not a post, on purpose. Each is counted by name in the ingest report, so
    fetched = published + duplicates + skipped + quarantined always holds. The values are stable (health records
    and reports keep them); the Russian names are for people."""

    SERVICE_MESSAGE = "service_message"  # a member joined, a pin, a chat photo changed: no resident's words
    CHAT_NOT_CONFIGURED = "chat_not_configured"  # the bot was added to a chat nobody configured as a source
    EMPTY = "empty"  # nothing to read: no text, no photo, no place (a sticker, a deleted post)
    FOLDED = "folded"  # another item already carries it: an album's later photo, an automatic forward
    OLD = "old"  # older than the first run's window
    NOT_RESIDENT = "not_resident"  # the community's or the bot's own post, an advertisement marked as such
    UNSUPPORTED = "unsupported"  # an update kind Otklik does not read (a poll answer, a reaction)
    SEEN = "seen"  # answered again: read in an earlier run (a wall's known posts), or twice in one answer

    @property
    def russian(self) -> str:
        return SKIP_REASON_NAMES[self]


SKIP_REASON_NAMES = {
    SkipReason.SERVICE_MESSAGE: "служебное сообщение",
    SkipReason.CHAT_NOT_CONFIGURED: "чат не подключён как источник",
    SkipReason.EMPTY: "пустое сообщение",
    SkipReason.FOLDED: "вошло в другое сообщение",
    SkipReason.OLD: "старше окна первого чтения",
    SkipReason.NOT_RESIDENT: "не от жителя",
    SkipReason.UNSUPPORTED: "вид обновления не читается",
    SkipReason.SEEN: "уже прочитано",
}


@dataclass(frozen=True)
class Skipped:
    """An item a source returned that is not a post, on purpose: counted with its reason, not kept."""

    key: str
    reason: SkipReason


@dataclass(frozen=True)
class FetchResult:
    posts: list[Post]
    cursor: dict[str, Any]
    rejected: list[Rejected] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    # The source has more right now. A connector whose fetch acknowledges earlier items on the server's side
    # (Telegram's offset) returns one page at a time with ``more``; ingest publishes it, stores the cursor, then
    # fetches again, so nothing is acknowledged before it is published.
    more: bool = False


class SourceConnector(Protocol):
    source_id: str

    def fetch(self, cursor: dict[str, Any] | None) -> FetchResult:
        """Posts newer than ``cursor``, oldest first, and the cursor to store once they are published."""


class DepartmentDirectory(Protocol):
    def departments_for(self, incident: Incident) -> list[Department]:
        """Who should own this incident now."""

    def department(self, department_id: str) -> Department | None:
        """A department by id (its current contacts), None if it is no longer configured."""

    def departments(self) -> list[Department]:
        """Every department of the directory."""

    @property
    def fallback(self) -> str:
        """The regional coordinator's id: gets what no rule matches and hears of failed deliveries."""


@dataclass(frozen=True)
class Delivery:
    department: Department
    incident: Incident
    event_id: str = field(metadata={"doc": "the notification's id: the same message always has the same one"})
    kind: str = "new_incident"  # new_incident, rerouted, ...
    urgent: bool = False  # a dangerous incident: every channel at once, marked urgent
    answer_url: str | None = None  # signed link to the answer page, None when no public URL is configured


class ChannelSender(Protocol):
    def send(self, delivery: Delivery) -> None:
        """Deliver, or raise TransientError (worth retrying) / PermanentError (will never work)."""


Clock = Callable[[], datetime]
