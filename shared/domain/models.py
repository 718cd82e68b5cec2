"""Domain model (pydantic v2). Times are always timezone-aware UTC."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, field_validator

from shared.domain.ids import incident_id_for


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a time zone")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+05:00 has no UTC time: bad input, not a crash
        raise ValueError(f"timestamp {value.isoformat()} is out of range in UTC") from exc


UtcDatetime = Annotated[datetime, AfterValidator(_require_utc)]

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(value: str) -> str:
    """A network's JSON may carry half of an emoji (``"\\ud83d"``): Python reads it, but no UTF-8 encoder
    (Pub/Sub, Firestore) can write it, so one such post would stop its source for good. It becomes U+FFFD."""
    return value if value.isascii() else _LONE_SURROGATE.sub("\ufffd", value)


# Text as a source sent it, made storable.
SourceText = Annotated[str, AfterValidator(_without_lone_surrogates)]


class Model(BaseModel):
    """Base: unknown fields are errors, so a typo in a message or a config file is reported, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Geo(Model):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Attachment(Model):
    kind: SourceText = Field(description="photo, video, link, doc, ... as the network names it")
    url: SourceText


class RepostOrigin(Model):
    """The original post a repost carries (a community reposting a resident's complaint is how complaints
    spread). The repost's ``Post`` keeps where it was seen and who reposted it; its text and attachments are the
    reposter's words followed by the original's; this names the original and its author."""

    source: str = Field(min_length=1)
    community: SourceText = Field(min_length=1)
    post_id: SourceText = Field(min_length=1)
    author_id: SourceText | None = None
    url: SourceText = ""

    @property
    def incident_id(self) -> str:
        return incident_id_for(self.source, self.community, self.post_id)


class ReplyTarget(Model):
    """Where an answer to the author goes, in the network's own terms (the answer loop sends it)."""

    channel: str = Field(min_length=1, description="vk_message, telegram_chat, max_chat, ...")
    chat_id: SourceText = Field(min_length=1, description="VK peer_id, Telegram chat id, MAX chat id")
    message_id: SourceText | None = Field(default=None, description="the resident's message, to reply to it")


class Post(Model):
    """A citizen's post or comment exactly as a source connector fetched it, normalised across networks."""

    source: str = Field(min_length=1, description="network kind: vk, telegram, ok, rss, inbox, ...")
    community: SourceText = Field(min_length=1, description="wall / chat / feed id within the network")
    post_id: SourceText = Field(min_length=1)
    author_id: SourceText | None = None
    text: SourceText
    published_at: UtcDatetime
    url: SourceText
    geo: Geo | None = None
    attachments: tuple[Attachment, ...] = ()
    parent_post_id: str | None = Field(default=None, description="for comments: the post they answer")
    source_id: str | None = Field(default=None, description="the configured source that fetched it")
    municipality_hint: str | None = Field(default=None, description="municipality the configured source belongs to")
    repost_of: RepostOrigin | None = None
    direct: bool = Field(default=False, description="written to the city itself (a community message, a bot chat)")
    reply_to: ReplyTarget | None = None
    edited_at: UtcDatetime | None = Field(
        default=None, description="set on a later version of a post fetched before: the same incident, new text"
    )

    @property
    def incident_id(self) -> str:
        return incident_id_for(self.source, self.community, self.post_id)

    @property
    def intake_key(self) -> str:
        """What publish-once remembers: the post (a repost is its original, so the original is published once
        however it is seen: on its own wall, in a repost, in a repost of a repost), and each edit of it once."""
        key = self.repost_of.incident_id if self.repost_of is not None else self.incident_id
        if self.edited_at is None:
            return key
        return f"{key}.edit.{int(self.edited_at.timestamp())}"


class Priority(StrEnum):
    CRITICAL = "critical"  # immediate physical hazard: handled first
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Classification(Model):
    category: str
    is_complaint: bool
    danger: bool = False
    priority: Priority = Priority.NORMAL
    municipality: str | None = None
    places: tuple[str, ...] = ()
    confidence: float = Field(ge=0, le=1)
    evidence: tuple[str, ...] = Field(default=(), description="words or rules that decided it")
    classifier: str = Field(description="name and version of the classifier that decided")


class IncidentStatus(StrEnum):
    NEW = "new"
    ROUTED = "routed"
    ACKNOWLEDGED = "acknowledged"
    ANSWERED = "answered"
    CLOSED = "closed"
    REJECTED = "rejected"
    IRRELEVANT = "irrelevant"
    # Another resident's report of a problem an incident already tracks: kept with a link to it (merged_into),
    # counted on that incident, never routed on its own.
    MERGED = "merged"


class StatusChange(Model):
    status: IncidentStatus
    at: UtcDatetime
    actor: str = Field(description="function or person that made the change")
    note: str = ""


class HistoryEvent(Model):
    """Something that happened to an incident without changing its status (overdue, reminder, ...)."""

    kind: str
    at: UtcDatetime
    actor: str
    note: str = ""


class Answer(Model):
    """A department's reply to the author. An interim one promises a date for the full answer."""

    text: str = Field(min_length=1, max_length=4000)
    at: UtcDatetime
    department_id: str
    interim: bool = False
    promised_by: date | None = Field(default=None, description="interim answers: when the full answer comes")
    request_key: str | None = Field(default=None, description="the client's idempotency key: a resend is not new")


class Report(Model):
    """One more post about an incident's problem (grouping, shared/services/grouping.py): where it is, who wrote
    it, what it did to the incident."""

    incident_id: str = Field(description="the post's own (merged) incident document")
    source: str
    url: str
    author_id: str | None = None
    published_at: UtcDatetime
    action: str = Field(default="join", description="join, reopen or raise (it raised the priority)")
    routing_round: int | None = Field(default=None, description="the round it started (reopen, raise): route again")


class PostVersion(Model):
    """A version of an incident's post other than the one ``Incident.post`` shows (the edit rule:
    shared/domain/edits.py): an earlier text its author has since edited, or an edit that came once the incident
    was answered, closed or rejected, kept beside the text the department answered."""

    text: SourceText
    attachments: tuple[Attachment, ...] = ()
    geo: Geo | None = None
    edited_at: UtcDatetime | None = Field(default=None, description="when its author wrote it; None: first published")
    received_at: UtcDatetime = Field(description="when Otklik set it aside (replaced it, or received it too late)")
    shown: bool = Field(description="True: the incident showed it until a later edit; False: an edit never shown")


class Incident(Model):
    id: str
    post: Post
    post_versions: tuple[PostVersion, ...] = Field(
        default=(), description="its post's other versions, in the order they were set aside (the author's edits)"
    )
    classification: Classification
    status: IncidentStatus
    status_history: tuple[StatusChange, ...]
    events: tuple[HistoryEvent, ...] = ()
    created_at: UtcDatetime
    updated_at: UtcDatetime
    department_ids: tuple[str, ...] = ()
    routed_at: UtcDatetime | None = None
    reply_due_at: UtcDatetime | None = None
    overdue: bool = False
    overdue_at: UtcDatetime | None = None
    resolve_due_at: UtcDatetime | None = Field(default=None, description="the resolution clock's deadline")
    reply_level: int = Field(default=0, description="escalation steps taken on the first-reply clock")
    resolve_level: int = Field(default=0, description="escalation steps taken on the resolution clock")
    next_check_at: UtcDatetime | None = Field(default=None, description="when remind looks at it next")
    routing_round: int = Field(default=0, description="0 when first routed, +1 on every re-routing")
    routing_reason: str = Field(
        default="new",
        description="why the last routing round began: new, rerouted, reopened, raised, marked_dangerous, "
        "edited_dangerous",
    )
    followup_asked_at: UtcDatetime | None = Field(default=None, description="when the author was asked: is it fixed?")
    # "<department>/<channel>" -> sent, sending (retrying) or failed: a clerk sees at once who never got it.
    delivery: dict[str, str] = Field(default_factory=dict)
    undelivered: bool = Field(default=False, description="some department has not received it (yet)")
    acknowledged_at: UtcDatetime | None = None
    first_reply_at: UtcDatetime | None = None
    resolved_at: UtcDatetime | None = None
    answers: tuple[Answer, ...] = ()
    # Grouping (shared/services/grouping.py): the incident's problem key and the index keys a new post about the
    # same problem finds it by; every other post about it; how many different residents wrote.
    group: dict[str, Any] | None = Field(default=None, description="ProblemKey of its latest post")
    group_keys: tuple[str, ...] = Field(default=(), description="queried with array-contains-any")
    last_post_at: UtcDatetime | None = Field(default=None, description="its latest post's time")
    reports: tuple[Report, ...] = ()
    residents: int = Field(default=1, ge=1, description="different authors of its post and reports")
    merged_into: str | None = Field(default=None, description="merged: the incident this post was grouped into")
    related_id: str | None = Field(default=None, description="the same problem, resolved long ago: that incident")


class Channel(StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"
    COMMENT = "comment"  # a reply under the author's post, in the network it came from (VK: wall.createComment)


EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+$"


class Person(Model):
    name: str
    email: str = Field(pattern=EMAIL_PATTERN)
    position: str | None = None


class WorkingHours(Model):
    """When the department works, in its own time zone; deadlines count in this time (remind)."""

    days: tuple[int, ...] = Field(default=(1, 2, 3, 4, 5), description="ISO weekdays: 1 Monday ... 7 Sunday")
    start: time = time(9, 0)
    end: time = time(18, 0)

    def model_post_init(self, __context: object) -> None:
        if not self.days or any(d < 1 or d > 7 for d in self.days):
            raise ValueError("days are ISO weekdays 1 (Monday) ... 7 (Sunday)")
        if self.start >= self.end:
            raise ValueError(f"working hours start {self.start} must be before end {self.end}")


class Department(Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str
    municipality: str | None = Field(default=None, description="None: the whole region")
    region: str | None = Field(
        default=None,
        description="for a region-wide department (no municipality): the gazetteer region it serves, so a "
        "ministry of one region does not get another region's incidents; None: everywhere",
    )
    categories: tuple[str, ...] = ()
    webhook_url: HttpUrl | None = None
    email: str | None = Field(default=None, pattern=EMAIL_PATTERN)
    phone: str | None = Field(default=None, description="for people; Otklik does not call")
    supervisor: Person | None = Field(default=None, description="who hears of overdue incidents first (remind)")
    timezone: str = "Europe/Moscow"
    working_hours: WorkingHours = WorkingHours()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Moscow)") from exc
        return value

    @property
    def channels(self) -> tuple[Channel, ...]:
        found = []
        if self.webhook_url is not None:
            found.append(Channel.WEBHOOK)
        if self.email is not None:
            found.append(Channel.EMAIL)
        return tuple(found)


class RoutingRule(Model):
    """(category, municipality or region, priority) -> departments. None matches anything; the most specific
    rule wins. A region (the municipality's gazetteer region) is less specific than a municipality."""

    category: str | None = None
    municipality: str | None = None
    region: str | None = None
    priority: Priority | None = None
    departments: tuple[str, ...] = Field(min_length=1)

    @property
    def specificity(self) -> float:
        named = sum(x is not None for x in (self.category, self.municipality, self.priority))
        return named + (0.5 if self.region is not None and self.municipality is None else 0.0)

    def matches(self, category: str, municipality: str | None, priority: Priority, region: str | None = None) -> bool:
        return (
            (self.category is None or self.category == category)
            and (self.municipality is None or self.municipality == municipality)
            and (self.region is None or self.region == region)
            and (self.priority is None or self.priority == priority)
        )


class NotificationStatus(StrEnum):
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # permanent: a 4xx answer, a rejected address


# Once sent, or failed for good, a notification stays so: a late "sending" (from a slow worker's release, or from a
# copy of the message that found it claimed by another) is older news and must not undo it.
FINAL_NOTIFICATION_STATUSES = frozenset({NotificationStatus.SENT, NotificationStatus.FAILED})


class Notification(Model):
    """One message to one department on one channel; ``attempts`` and ``last_error`` say how it went."""

    id: str
    incident_id: str
    department_id: str
    channel: Channel
    kind: str = Field(description="new_incident, reminder, ...")
    status: NotificationStatus
    attempts: int = 0
    last_error: str | None = None
    claimed_at: UtcDatetime | None = None
    sent_at: UtcDatetime | None = None


def utcnow() -> datetime:
    return datetime.now(UTC)
