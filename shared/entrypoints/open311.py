"""HTTP layer of the ``open311`` function: incidents as an Open311 GeoReport v2 read API, open to anyone.

    GET /services.json                  the categories as services
    GET /requests.json                  service requests: service_request_id, service_code, start_date,
                                        end_date, status (open, closed; comma-separated), page, page_size
    GET /requests/<id>.json             one service request, as a one-element array (as the spec has it)

The ``.json`` suffix may be left out; XML (the spec's other format) is not provided. ``jurisdiction_id`` is
accepted and ignored: one deployment serves one jurisdiction. What is published, and what never is:
shared/services/open311.py. The document of this API: docs/open311.openapi.yaml.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from shared.domain.models import IncidentStatus
from shared.services.open311 import (
    DEFAULT_WINDOW,
    GEOREPORT_STATUSES,
    MAX_PAGE_SIZE,
    PUBLISHED_STATUSES,
    Open311Reader,
    QueryError,
    RequestQuery,
    services,
)

log = logging.getLogger(__name__)

MAX_IDS = 100  # service_request_id=a,b,c...: one read each
# Open data: any site may read it, and a CDN or browser may keep an answer five minutes.
OPEN_HEADERS = (("Access-Control-Allow-Origin", "*"), ("X-Content-Type-Options", "nosniff"))
CACHED = (("Cache-Control", "public, max-age=300"),)
NOT_CACHED = (("Cache-Control", "no-store"),)


@dataclass(frozen=True)
class Open311Request:
    method: str
    path: str
    args: dict[str, str]  # the query string; of a repeated parameter, the first value


@dataclass(frozen=True)
class Open311Response:
    status: int
    body: str
    headers: tuple[tuple[str, str], ...]
    content_type: str = "application/json; charset=utf-8"


def _answer(status: int, body: Any, extra: tuple[tuple[str, str], ...] = ()) -> Open311Response:
    cache = NOT_CACHED if status >= 500 else CACHED
    return Open311Response(status, json.dumps(body, ensure_ascii=False), OPEN_HEADERS + cache + extra)


def error(status: int, description: str, extra: tuple[tuple[str, str], ...] = ()) -> Open311Response:
    """The spec's error format: an array of {code, description}."""
    return _answer(status, [{"code": status, "description": description}], extra)


class Open311Api:
    def __init__(self, reader: Open311Reader, clock: Callable[[], datetime]) -> None:
        self.reader = reader
        self.clock = clock

    def handle(self, request: Open311Request) -> Open311Response:
        if request.method == "OPTIONS":  # a CORS preflight: GET is all there is
            return Open311Response(204, "", (*OPEN_HEADERS, *CACHED, ("Access-Control-Allow-Methods", "GET")))
        if request.method not in ("GET", "HEAD"):
            return error(405, "the Open311 API of Otklik is read-only: use GET", (("Allow", "GET, HEAD"),))
        try:
            return self._route(request)
        except QueryError as exc:
            return error(400, str(exc))
        except Exception:
            log.exception("open311: could not answer %s", request.path)
            return error(503, "the incidents cannot be read just now; try again later")

    def _route(self, request: Open311Request) -> Open311Response:
        parts = [p for p in request.path.split("/") if p]
        if parts:
            last, dot, suffix = parts[-1].rpartition(".")
            if dot and suffix.lower() == "xml":
                raise QueryError("only the JSON format is provided: ask for .json")
            if dot and suffix.lower() == "json":
                parts[-1] = last
        if parts == ["services"]:
            return _answer(200, services())
        if parts == ["requests"]:
            return self._requests(request.args)
        if len(parts) == 2 and parts[0] == "requests":
            found = self.reader.request(parts[1])
            if found is None:
                return error(404, f"no service request {parts[1]!r}")
            return _answer(200, [found])
        return error(404, "not found: GET services.json, requests.json or requests/<id>.json")

    def _requests(self, args: dict[str, str]) -> Open311Response:
        ids = _list(args.get("service_request_id"))
        if ids:  # the spec: other parameters are then ignored
            if len(ids) > MAX_IDS:
                raise QueryError(f"at most {MAX_IDS} service_request_id values at once")
            found = [r for r in map(self.reader.request, dict.fromkeys(ids)) if r is not None]
            return _answer(200, found)
        return _answer(200, self.reader.requests(self.query(args)))

    def query(self, args: dict[str, str]) -> RequestQuery:
        start, end = _datetime(args, "start_date"), _datetime(args, "end_date")
        if end is None:
            end = min(start + DEFAULT_WINDOW, self.clock()) if start else self.clock()
        start = start or end - DEFAULT_WINDOW
        codes = _list(args.get("service_code"))
        return RequestQuery(
            start=start,
            end=end,
            statuses=_statuses(args.get("status")),
            service_codes=frozenset(codes) if codes else None,
            page=_integer(args, "page", 1),
            page_size=_integer(args, "page_size", MAX_PAGE_SIZE),
        )


def _list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _statuses(value: str | None) -> tuple[IncidentStatus, ...]:
    wanted = _list(value)
    unknown = [s for s in wanted if s.lower() not in GEOREPORT_STATUSES]
    if unknown:
        raise QueryError(f"status must be open, closed or both (comma-separated), not {', '.join(unknown)}")
    if not wanted:
        return PUBLISHED_STATUSES
    return tuple(s for name in dict.fromkeys(w.lower() for w in wanted) for s in GEOREPORT_STATUSES[name])


def _integer(args: dict[str, str], name: str, default: int) -> int:
    raw = args.get(name, "").strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise QueryError(f"{name} must be a whole number")
    return int(raw)


def _datetime(args: dict[str, str], name: str) -> datetime | None:
    """W3C date-time as the spec wants (time zone included); a bare date or a time without a zone is read as
    UTC rather than refused, as many clients send them."""
    raw = args.get(name, "").strip()
    if not raw:
        return None
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), time(0), tzinfo=UTC)
        value = datetime.fromisoformat(raw.replace(" ", "+"))  # an unencoded "+03:00" arrives as " 03:00"
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise QueryError(f"{name} {raw!r} is not a date-time such as 2026-11-23T09:00:00Z") from exc
