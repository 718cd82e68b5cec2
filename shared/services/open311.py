"""Incidents as Open311 GeoReport v2 service requests: what the public ``open311`` API publishes, and how.

An incident is a resident's post; the feed says *what* the problem is, *where* (at settlement level), *who* is
responsible and *how* it went, never *who* wrote it. The mapping reduces every incident the same way:

- only complaints are published (``is_complaint`` and a status other than irrelevant); dangerous ones too, as
  they came from public posts and residents have the strongest interest in seeing them handled;
- no post text, author id or name, post URL, attachment or geotag leaves this module (``service_request``
  builds the dict field by field from an allow-list; tests/unit/test_open311.py enforces a denylist);
- ``status_notes`` is the department's latest answer, which is public anyway (it is posted under the resident's
  post), with a salutation that may carry the author's name, and any echo of the post, cut out.

The public request id is the incident id. It is derived from the post's network ids, so whoever crawls the
public community can link a request back to its post; but so can the category, place and time of any honest
feed. What this API guarantees is that the feed itself carries no personal data; the post stays where its
author published it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from shared.domain.categories import CATEGORY_NAMES, category_name
from shared.domain.models import Incident, IncidentStatus
from shared.services.paging import by_created_at
from shared.yaml_data import load_yaml

S = IncidentStatus
# Everything a resident complained about, whatever became of it. IRRELEVANT is chatter, not a request.
PUBLISHED_STATUSES: tuple[IncidentStatus, ...] = (S.NEW, S.ROUTED, S.ACKNOWLEDGED, S.ANSWERED, S.CLOSED, S.REJECTED)
# GeoReport knows open and closed only. Answered stays open: the author may still say it is not fixed.
CLOSED_STATUSES: tuple[IncidentStatus, ...] = (S.CLOSED, S.REJECTED)
OPEN_STATUSES: tuple[IncidentStatus, ...] = tuple(s for s in PUBLISHED_STATUSES if s not in CLOSED_STATUSES)
GEOREPORT_STATUSES = {"open": OPEN_STATUSES, "closed": CLOSED_STATUSES}

# The fields of a published request and of a service, in the spec's order (docs/open311.openapi.yaml names them).
REQUEST_FIELDS = (
    "service_request_id",
    "status",
    "status_notes",
    "service_code",
    "service_name",
    "agency_responsible",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "lat",
    "long",
    "media_url",
)
SERVICE_FIELDS = ("service_code", "service_name", "description", "metadata", "type", "keywords", "group")
SERVICE_GROUP = "Обращения жителей"

DEFAULT_WINDOW = timedelta(days=90)  # the spec: without dates the last 90 days, and never a longer span
MAX_PAGE_SIZE = 1000  # the spec's recommended default (and our ceiling) of results per answer
MAX_DEPTH = 10_000  # page * page_size beyond this: a client narrows the dates instead of paging this deep
BATCH = 250  # incidents read from the store per query while scanning
COORDINATE_DECIMALS = 2  # ~1 km: the settlement, never a yard or a house
MAX_NOTE_CHARS = 2000

# "Уважаемая Мария Ивановна!" / "Здравствуйте, Иван!": a department's answer often begins with the author's name.
_SALUTATION = re.compile(
    r"^\s*(?:уважаем\w*|здравствуйте|добрый\s+(?:день|вечер)|доброе\s+утро)[^!\n.]{0,80}[!\n.]\s*", re.IGNORECASE
)
_MIN_ECHO_CHARS = {"author_id": 4, "url": 8, "text": 20}  # shorter values also occur in text by chance


@dataclass(frozen=True)
class Settlement:
    """A municipality as the feed shows it: its name and its centre (the gazetteer's), and the names of its
    settlements and city districts that may appear in an address."""

    name: str
    lat: float
    long: float
    places: frozenset[str] = field(default_factory=frozenset)


def load_settlements(folder: Path) -> dict[str, Settlement]:
    """Municipality id -> Settlement, straight from the gazetteers' YAML (no morphology is loaded)."""
    found: dict[str, Settlement] = {}
    for path in sorted(folder.glob("*.yaml")):
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
        for raw in data.get("municipalities") or []:
            names = [*(raw.get("settlements") or []), *(raw.get("districts") or [])]
            found[str(raw["id"])] = Settlement(
                name=str(raw["name"]),
                lat=float(raw["center"][0]),
                long=float(raw["center"][1]),
                places=frozenset(str(n.get("name", "")) if isinstance(n, dict) else str(n) for n in names) - {""},
            )
    return found


def is_published(incident: Incident) -> bool:
    return incident.classification.is_complaint and incident.status in PUBLISHED_STATUSES


def georeport_status(status: IncidentStatus) -> str:
    return "closed" if status in CLOSED_STATUSES else "open"


def services() -> list[dict[str, Any]]:
    """GET services: one service per category. No attributes to fill in (metadata false): nobody files requests
    here, they come from social networks."""
    return [
        {
            "service_code": code,
            "service_name": name,
            "description": f"Жалобы жителей в социальных сетях по теме «{name}»",
            "metadata": False,
            "type": "realtime",
            "keywords": "",
            "group": SERVICE_GROUP,
        }
        for code, name in CATEGORY_NAMES.items()
    ]


def service_request(
    incident: Incident, department_name: Callable[[str], str | None], settlements: dict[str, Settlement]
) -> dict[str, Any]:
    """The incident as a GeoReport ServiceRequest, built only from fields that say nothing about its author."""
    c = incident.classification
    settlement = settlements.get(c.municipality or "")
    agencies = [n for n in map(department_name, incident.department_ids) if n]
    return {
        "service_request_id": incident.id,
        "status": georeport_status(incident.status),
        "status_notes": status_notes(incident),
        "service_code": c.category,
        "service_name": category_name(c.category),
        "agency_responsible": "; ".join(agencies) or None,
        # When Otklik registered the request (not when the post was written): the same instant start_date and
        # end_date filter on, so what a client asks for and what it reads agree.
        "requested_datetime": w3_datetime(incident.created_at),
        "updated_datetime": w3_datetime(incident.updated_at),
        "expected_datetime": w3_datetime(incident.resolve_due_at) if incident.resolve_due_at else None,
        "address": address(settlement, c.places),
        # The municipality's centre from the gazetteer, rounded. Never post.geo: a geotag is where the author
        # stood, which is often their home.
        "lat": round(settlement.lat, COORDINATE_DECIMALS) if settlement else None,
        "long": round(settlement.long, COORDINATE_DECIMALS) if settlement else None,
        # Always null: residents' photos show faces, car plates and the inside of homes.
        "media_url": None,
    }


def address(settlement: Settlement | None, places: Sequence[str]) -> str | None:
    """The municipality and the gazetteer's settlements or city districts the post named. Names the classifier
    merely read off the text ("д. 5" may be a house) are left out: only known places are published."""
    if settlement is None:
        return None
    known = [p for p in dict.fromkeys(places) if p in settlement.places and p != settlement.name]
    return ", ".join([settlement.name, *known])


def status_notes(incident: Incident) -> str | None:
    """The latest answer's text without a salutation or anything the post itself said."""
    if not incident.answers:
        return None
    text = _SALUTATION.sub("", max(incident.answers, key=lambda a: a.at).text)
    post = incident.post
    for kind, value in (("text", post.text.strip()), ("url", post.url), ("author_id", post.author_id or "")):
        if len(value) >= _MIN_ECHO_CHARS[kind]:
            text = text.replace(value, "[…]")
    return text.strip()[:MAX_NOTE_CHARS] or None


def w3_datetime(value: datetime) -> str:
    """ISO 8601 in UTC with a Z, to the second, as the spec's examples."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- reading ---------------------------------------------------------------------------------------------


class IncidentRange(Protocol):
    def created_in_range_page(
        self, statuses: Sequence[IncidentStatus], start: datetime, end: datetime, limit: int
    ) -> list[Incident]:
        """Incidents in ``statuses`` created at ``start`` or later and before ``end``, oldest first."""

    def get(self, incident_id: str) -> Incident | None: ...


class QueryError(ValueError):
    """A request the API cannot answer as asked: HTTP 400 with this text."""


@dataclass(frozen=True)
class RequestQuery:
    start: datetime
    end: datetime
    statuses: tuple[IncidentStatus, ...] = PUBLISHED_STATUSES
    service_codes: frozenset[str] | None = None  # None: every service
    page: int = 1
    page_size: int = MAX_PAGE_SIZE

    def __post_init__(self) -> None:
        if self.start >= self.end:
            raise QueryError("start_date must be before end_date")
        if self.end - self.start > DEFAULT_WINDOW:
            raise QueryError(f"start_date to end_date may span at most {DEFAULT_WINDOW.days} days")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise QueryError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        if self.page < 1:
            raise QueryError("page must be 1 or more")
        if self.page * self.page_size > MAX_DEPTH:
            raise QueryError(f"pages end after {MAX_DEPTH} requests: narrow start_date and end_date instead")


class Open311Reader:
    def __init__(
        self,
        incidents: IncidentRange,
        department_name: Callable[[str], str | None],
        settlements: dict[str, Settlement],
    ) -> None:
        self.incidents = incidents
        self.department_name = department_name
        self.settlements = settlements

    def request(self, request_id: str) -> dict[str, Any] | None:
        incident = self.incidents.get(request_id)
        if incident is None or not is_published(incident):
            return None  # an irrelevant post is not a request: as unknown as a made-up id
        return self._public(incident)

    def requests(self, query: RequestQuery) -> list[dict[str, Any]]:
        skip = (query.page - 1) * query.page_size
        found: list[dict[str, Any]] = []
        for n, incident in enumerate(self._matching(query)):
            if n >= skip:
                found.append(self._public(incident))
                if len(found) == query.page_size:
                    break
        return found

    def _public(self, incident: Incident) -> dict[str, Any]:
        return service_request(incident, self.department_name, self.settlements)

    def _matching(self, query: RequestQuery) -> Iterator[Incident]:
        for incident in self._scan(query):
            wanted = query.service_codes is None or incident.classification.category in query.service_codes
            if wanted and is_published(incident):
                yield incident

    def _scan(self, query: RequestQuery) -> Iterator[Incident]:
        """Every incident of the window, oldest first, reading the store a batch at a time."""

        def read(start: datetime | None, limit: int) -> list[Incident]:
            return self.incidents.created_in_range_page(query.statuses, start or query.start, query.end, limit)

        return by_created_at(read, query.start, BATCH)
