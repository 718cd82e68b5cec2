"""HTTP layer of the ``department_api`` function: the departments' JSON API (Bearer token per department) and
the answer page reached by a signed link from the notification e-mail.

    GET  /incidents/<id>                  the incident as the department sees it
    POST /incidents/<id>/acknowledge      taken into work
    POST /incidents/<id>/answer           {"text", "interim"?, "promised_by"?: "YYYY-MM-DD"}; Idempotency-Key header
    POST /incidents/<id>/resolve          {"text"?}
    POST /incidents/<id>/reassign         {"reason", "to_department"?}
    POST /incidents/<id>/correct          coordinator only: {"category"?, "municipality"?, "reason"?}
    GET|POST /answer/<signed token>       the answer page (shared/entrypoints/answer_page.py)
    /triage..., GET /reports              the coordinator's pages and reports (shared/entrypoints/triage_page.py)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule

from shared.answer_links import AnswerLinks
from shared.domain.categories import category_name
from shared.domain.models import Incident
from shared.services import tokens
from shared.services.responses import ActionError, ResponseService

log = logging.getLogger(__name__)

ROUTES = Map(
    [
        Rule("/incidents/<incident_id>", methods=["GET"], endpoint="view"),
        Rule("/incidents/<incident_id>/<action>", methods=["POST"], endpoint="act"),
        Rule("/answer/<token>", methods=["GET", "POST"], endpoint="page"),
    ]
)
ACTIONS = ("acknowledge", "answer", "resolve", "reassign", "correct")


@dataclass(frozen=True)
class HttpRequest:
    """What the handler needs of a request (flask's Request in the function, anything in tests)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    form: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: str
    content_type: str = "application/json; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


def json_response(status: int, body: Any) -> HttpResponse:
    return HttpResponse(status, json.dumps(body, ensure_ascii=False, default=str))


PageHandler = Callable[[ResponseService, AnswerLinks, HttpRequest, str], HttpResponse]


class DepartmentApi:
    def __init__(
        self,
        service: ResponseService,
        token_store: tokens.TokenStore,
        links: AnswerLinks | None,
        page: PageHandler | None,
        triage: Callable[[HttpRequest], HttpResponse] | None = None,
    ) -> None:
        self.triage = triage  # the operator's pages and /reports (shared/entrypoints/triage_page.py)
        self.service = service
        self.token_store = token_store
        self.links = links
        self.page = page

    def handle(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/reports" or request.path.startswith("/triage"):
            if self.triage is None:
                return json_response(404, {"error": "triage and reports need OTKLIK_LINK_SIGNING_KEY"})
            return self.triage(request)
        try:
            endpoint, args = ROUTES.bind("localhost").match(request.path, method=request.method)
        except HTTPException as exc:
            return json_response(exc.code or 404, {"error": exc.description})
        if endpoint == "page":
            if self.links is None or self.page is None:
                return json_response(404, {"error": "answer links are not configured (OTKLIK_LINK_SIGNING_KEY)"})
            return self.page(self.service, self.links, request, args["token"])
        department = tokens.department_of(self.token_store, _header(request.headers, "Authorization"))
        if department is None:
            return HttpResponse(
                401,
                json.dumps({"error": "send Authorization: Bearer <the department's token>"}),
                headers=(("WWW-Authenticate", 'Bearer realm="otklik"'),),
            )
        try:
            actor = self.service.actor(department)
            if endpoint == "view":
                return json_response(200, incident_view(self.service.view(actor, args["incident_id"])))
            return json_response(200, incident_view(self._act(actor, args["incident_id"], args["action"], request)))
        except ActionError as exc:
            return json_response(exc.status, {"error": str(exc)})

    def _act(self, actor: Any, incident_id: str, action: str, request: HttpRequest) -> Incident:
        if action not in ACTIONS:
            raise ActionError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
        body = _json_body(request.body)
        s = self.service
        key = _header(request.headers, "Idempotency-Key")
        if action == "acknowledge":
            return s.acknowledge(actor, incident_id)
        if action == "answer":
            return s.answer(
                actor,
                incident_id,
                _required_text(body, "text"),
                interim=bool(body.get("interim", False)),
                promised_by=_date(body.get("promised_by")),
                request_key=key,
            )
        if action == "resolve":
            return s.resolve(actor, incident_id, _text(body, "text"), request_key=key)
        if action == "reassign":
            return s.reassign(actor, incident_id, _required_text(body, "reason"), _text(body, "to_department"))
        # Strings or nothing: a list here would reach the directory's lookups and the stored classification.
        return s.correct(
            actor, incident_id, _text(body, "category"), _text(body, "municipality"), _text(body, "reason") or ""
        )


def incident_view(incident: Incident) -> dict[str, Any]:
    """The incident as a department sees it: no author id (the link leads to the post for who needs it)."""
    c = incident.classification
    return {
        "id": incident.id,
        "status": incident.status,
        "category": c.category,
        "category_name": category_name(c.category),
        "priority": c.priority,
        "danger": c.danger,
        "municipality": c.municipality,
        "places": list(c.places),
        "departments": list(incident.department_ids),
        "routed_at": incident.routed_at,
        "reply_due_at": incident.reply_due_at,
        "first_reply_at": incident.first_reply_at,
        "resolved_at": incident.resolved_at,
        "undelivered": incident.undelivered,
        "delivery": incident.delivery,
        "post": {
            "source": incident.post.source,
            "url": incident.post.url,
            "text": incident.post.text,
            "published_at": incident.post.published_at,
        },
        "answers": [a.model_dump(mode="json", exclude={"request_key"}) for a in incident.answers],
        "history": [h.model_dump(mode="json") for h in incident.status_history],
        "events": [e.model_dump(mode="json") for e in incident.events],
    }


def _header(headers: dict[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _json_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, too long an integer, too deep
        raise ActionError(f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ActionError("the body must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise ActionError(f"{name!r} must be a string")
    return value


def _required_text(body: dict[str, Any], name: str) -> str:
    value = _text(body, name)
    if not value or not value.strip():
        raise ActionError(f"{name!r} must be a non-empty string")
    return value


def _date(value: Any) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ActionError(f"promised_by {value!r} is not a date (YYYY-MM-DD)") from exc
