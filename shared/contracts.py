"""Versioned messages between functions.

Every message on a topic is a JSON object whose ``schema`` names its contract and ``version`` its version; the
same two values travel as Pub/Sub attributes, so a consumer can refuse a message it does not understand before
parsing it. A breaking change adds a new ``...V2`` model beside the old one; consumers accept both while
producers move over. JSON Schema for each is generated into ``docs/schemas/`` by ``make schemas``.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.domain.categories import category_name
from shared.domain.errors import PermanentError
from shared.domain.models import Department, Geo, Incident, Post, Priority, UtcDatetime


class Contract(BaseModel):
    # ``schema`` is a BaseModel attribute, so the field is ``schema_`` with the alias ``schema`` on the wire.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True)
    SCHEMA: ClassVar[str]
    VERSION: ClassVar[int]

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")

    def attributes(self) -> dict[str, str]:
        return {"schema": self.SCHEMA, "version": str(self.VERSION)}


class PostFetchedV1(Contract):
    """ingest -> classify: one post as fetched from a source."""

    SCHEMA: ClassVar[str] = "otklik.post.fetched"
    VERSION: ClassVar[int] = 1
    schema_: Literal["otklik.post.fetched"] = Field(default="otklik.post.fetched", alias="schema")
    version: Literal[1] = 1
    post: Post
    fetched_at: UtcDatetime


class IncidentClassifiedV1(Contract):
    """classify -> route: an incident stored in Firestore and ready to be routed. Firestore stays the source of
    truth; the message carries what routing needs so a consumer can filter without a read."""

    SCHEMA: ClassVar[str] = "otklik.incident.classified"
    VERSION: ClassVar[int] = 1
    schema_: Literal["otklik.incident.classified"] = Field(default="otklik.incident.classified", alias="schema")
    version: Literal[1] = 1
    incident_id: str
    category: str
    priority: Priority
    danger: bool
    municipality: str | None
    classified_at: UtcDatetime


def incident_classified(incident: Incident) -> IncidentClassifiedV1:
    """The hand-off of a stored incident to route: after classifying, and again whenever it must be routed anew
    (re-routed, reopened, still undelivered). ``classified_at`` stays the incident's creation."""
    c = incident.classification
    return IncidentClassifiedV1(
        incident_id=incident.id,
        category=c.category,
        priority=c.priority,
        danger=c.danger,
        municipality=c.municipality,
        classified_at=incident.created_at,
    )


class IncidentAnsweredV1(Contract):
    """department_api -> route: a department answered; route posts the answer under the author's post where the
    network allows it (VK), once."""

    SCHEMA: ClassVar[str] = "otklik.incident.answered"
    VERSION: ClassVar[int] = 1
    schema_: Literal["otklik.incident.answered"] = Field(default="otklik.incident.answered", alias="schema")
    version: Literal[1] = 1
    incident_id: str
    answer_index: int = Field(ge=0, description="which of the incident's answers")
    answered_at: UtcDatetime


class WebhookPost(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    source: str
    url: str
    text: str
    published_at: UtcDatetime
    attachments: tuple[str, ...] = ()


class WebhookIncidentV1(Contract):
    """route -> a department's webhook: an incident the department must answer."""

    SCHEMA: ClassVar[str] = "otklik.webhook.incident"
    VERSION: ClassVar[int] = 1
    schema_: Literal["otklik.webhook.incident"] = Field(default="otklik.webhook.incident", alias="schema")
    version: Literal[1] = 1
    event_id: str = Field(description="idempotency key: the same notification always has the same id")
    kind: str = Field(
        default="new_incident",
        description="new_incident; rerouted.N (re-routed), reopened.N (reported again after it was resolved), "
        "raised.N (priority raised to critical by another report)",
    )
    urgent: bool = Field(default=False, description="a dangerous incident: act at once")
    incident_id: str
    department_id: str
    category: str
    category_name: str
    priority: Priority
    danger: bool
    municipality: str | None
    places: tuple[str, ...] = Field(default=(), description="place names found in the text")
    routed_at: UtcDatetime | None
    reply_due_at: UtcDatetime | None
    answer_url: str | None = Field(default=None, description="signed link to the answer page (do not forward)")
    residents: int = Field(default=1, description="how many different residents reported this problem")
    reports: tuple[str, ...] = Field(default=(), description="links to the other residents' posts about it")
    post: WebhookPost


def webhook_payload(
    incident: Incident,
    department: Department,
    event_id: str,
    kind: str = "new_incident",
    urgent: bool = False,
    answer_url: str | None = None,
) -> WebhookIncidentV1:
    c = incident.classification
    return WebhookIncidentV1(
        event_id=event_id,
        kind=kind,
        urgent=urgent,
        incident_id=incident.id,
        department_id=department.id,
        category=c.category,
        category_name=category_name(c.category),
        priority=c.priority,
        danger=c.danger,
        municipality=c.municipality,
        places=c.places,
        answer_url=answer_url,
        residents=incident.residents,
        reports=tuple(r.url for r in incident.reports),
        routed_at=incident.routed_at,
        reply_due_at=incident.reply_due_at,
        post=WebhookPost(
            source=incident.post.source,
            url=incident.post.url,
            text=incident.post.text,
            published_at=incident.post.published_at,
            attachments=tuple(a.url for a in incident.post.attachments),
        ),
    )


class InboxPostV1(BaseModel):
    """What another system POSTs to the inbox function (``docs/schemas/otklik.inbox.post.v1.json``). Not a Pub/Sub
    message: the body of an HTTP request, so no schema/version fields; the version is in the schema's name."""

    SCHEMA: ClassVar[str] = "otklik.inbox.post"
    VERSION: ClassVar[int] = 1

    model_config = ConfigDict(extra="forbid", frozen=True)
    source_id: str = Field(description="an inbox source configured in sources.yaml")
    post_id: str = Field(min_length=1, max_length=200, description="the sender's own id: a resend is not a new post")
    text: str = Field(min_length=1, max_length=20_000)
    published_at: UtcDatetime | None = Field(default=None, description="default: when it arrives")
    url: str | None = Field(default=None, description="where a person can read it")
    author_id: str | None = None
    geo: Geo | None = None
    attachments: tuple[str, ...] = Field(default=(), description="URLs of photos or documents")
    municipality: str | None = Field(default=None, description="if the sender knows it")


CONTRACTS: tuple[type[Contract], ...] = (PostFetchedV1, IncidentClassifiedV1, IncidentAnsweredV1, WebhookIncidentV1)


def decode(data: bytes, expected: tuple[type[Contract], ...]) -> Contract:
    """Parse a message body into one of the ``expected`` contracts, or raise PermanentError saying why not."""
    try:
        obj: Any = json.loads(data.decode("utf-8"))
    # ValueError: also an integer over Python's digit limit; RecursionError: arrays nested thousands deep.
    except (ValueError, RecursionError) as exc:
        raise PermanentError(f"message body is not UTF-8 JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise PermanentError(f"message body is a JSON {type(obj).__name__}, expected an object")
    schema, version = obj.get("schema"), obj.get("version")
    for contract in expected:
        # type() check: JSON true and 1.0 are not version 1
        if schema == contract.SCHEMA and type(version) is int and version == contract.VERSION:
            try:
                return contract.model_validate(obj)
            except ValidationError as exc:
                raise PermanentError(f"{schema} v{version} is invalid: {_short(exc)}") from exc
    known = ", ".join(f"{c.SCHEMA} v{c.VERSION}" for c in expected)
    raise PermanentError(f"unexpected message schema {schema!r} version {version!r}; this consumer takes {known}")


def _short(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema of each contract, for docs/schemas/."""
    bodies: tuple[type[Contract] | type[InboxPostV1], ...] = (*CONTRACTS, InboxPostV1)
    return {f"{c.SCHEMA}.v{c.VERSION}.json": c.model_json_schema(by_alias=True) for c in bodies}
