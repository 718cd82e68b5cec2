"""The operator's triage pages and the reports endpoint, served by the ``department_api`` function.

    GET  /triage/login, POST /triage/login     the coordinator's API token, once; a signed session cookie after
    POST /triage/logout
    GET  /triage                               the queue: ?category= &municipality= &priority= &status= &overdue=1
    GET  /triage/incidents/<id>                 its posts (the first and every report), history, actions
    POST /triage/incidents/<id>/<action>        correct | danger (dangerous=yes|no) | not_complaint | merge | split
    GET  /triage/report                         ?from=YYYY-MM-DD &to= &municipality= &format=html|md|csv|json
    GET  /reports                               the same report for machines: Authorization: Bearer <coordinator>

Plain server-rendered pages (shared/templates/pages), no JavaScript, the answer page's headers (no caching, no
framing, forms only to itself). The session is a cookie (HttpOnly, SameSite=Strict, Secure unless local) signed
with the link signing key under its own salt, valid for :data:`SESSION_SECONDS`; every form carries a token
derived from the session, so a form from elsewhere is refused even if a browser sent the cookie.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.http import dump_cookie, parse_cookie

from shared.domain.categories import CATEGORY_NAMES, PRIORITY_NAMES, category_name
from shared.domain.models import Incident, IncidentStatus, Priority
from shared.entrypoints.answer_page import EVENT_NAMES, HTML, PAGE_HEADERS, STATUS_NAMES, environment
from shared.entrypoints.department_api import HttpRequest, HttpResponse, json_response
from shared.services import tokens
from shared.services.report_render import FORMATS, render
from shared.services.reports import REPORT_ZONE, Names, Report
from shared.services.responses import ActionError, Actor
from shared.services.triage import QUEUE_STATUSES, QueueFilter, TriageService, is_overdue

SESSION_COOKIE = "otklik_triage"
SESSION_SECONDS = 12 * 3600
SESSION_SALT = "otklik.triage-session.v1"
CSRF_SALT = "otklik.triage-form.v1"
MOSCOW = REPORT_ZONE
CONTENT_TYPES = {
    "html": HTML,
    "md": "text/markdown; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json; charset=utf-8",
}
ACTIONS = ("correct", "danger", "not_complaint", "merge", "split")
DONE = {
    "correct": "Классификация исправлена; если ответственный сменился, обращение перенаправлено.",
    "dangerous": "Отмечено как опасное: приоритет критический, ответственные и дежурная служба извещаются срочно. "
    "Пример сохранён для обучения классификатора.",
    "not_dangerous": "Отмечено как неопасное: приоритет снижен, без перенаправления. Пример сохранён для обучения "
    "классификатора.",
    "not_complaint": "Отмечено как не обращение; пример сохранён для обучения классификатора.",
    "merge": "Обращения объединены.",
    "split": "Сообщение выделено в отдельное обращение и направлено ответственным.",
}
DANGER_VERDICTS = {"yes": True, "no": False}
OPEN = (IncidentStatus.NEW, IncidentStatus.ROUTED, IncidentStatus.ACKNOWLEDGED, IncidentStatus.ANSWERED)

ReportBuilder = Callable[[datetime, datetime, str | None], Report]


@dataclass(frozen=True)
class Session:
    department_id: str
    nonce: str


class TriagePages:
    def __init__(
        self,
        triage: TriageService,
        token_store: tokens.TokenStore,
        signing_key: str,
        build_report: ReportBuilder,
        names: Callable[[], Names],
        secure_cookie: bool = True,
    ) -> None:
        self.triage = triage
        self.token_store = token_store
        self.sessions = URLSafeTimedSerializer(signing_key, salt=SESSION_SALT)
        self.forms = URLSafeTimedSerializer(signing_key, salt=CSRF_SALT)
        self.build_report = build_report
        self.names = names
        self.secure_cookie = secure_cookie

    # --- dispatch --------------------------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpResponse:
        path = request.path.rstrip("/") or "/"
        if path == "/reports":
            return self._machine_report(request)
        if path == "/triage/login":
            return self._login(request)
        if path == "/triage/logout" and request.method == "POST":
            return _redirect("/triage/login", cookie=self._cookie("", 0))
        session = self._session(request)
        if session is None:
            return _redirect("/triage/login")
        try:
            actor = self.triage.operator(session.department_id)
        except ActionError as exc:
            return self._page(403, "message.html.j2", title="Нет доступа", text=str(exc))
        parts = path.split("/")  # "", "triage", ...
        if path == "/triage" and request.method == "GET":
            return self._queue(request)
        if path == "/triage/report" and request.method == "GET":
            return self._report(request.query, browser=True)
        if len(parts) == 4 and parts[2] == "incidents" and request.method == "GET":
            done = DONE.get(request.query.get("done", ""))
            return self._incident(parts[3], session, done=done)
        if len(parts) == 5 and parts[2] == "incidents" and request.method == "POST":
            return self._act(actor, session, parts[3], parts[4], request.form)
        return self._page(404, "message.html.j2", title="Страница не найдена", text=f"Нет страницы {path}.")

    # --- session ---------------------------------------------------------------------------------------

    def _login(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return self._page(200, "triage_login.html.j2", error=None)
        department = tokens.department_of(self.token_store, f"Bearer {request.form.get('token', '').strip()}")
        if department is None:
            return self._page(401, "triage_login.html.j2", error="Токен не подходит.")
        try:
            self.triage.operator(department)
        except ActionError:
            return self._page(403, "triage_login.html.j2", error="Этот токен не координатора региона.")
        value = str(self.sessions.dumps([department, secrets.token_urlsafe(16)]))
        return _redirect("/triage", cookie=self._cookie(value, SESSION_SECONDS))

    def _session(self, request: HttpRequest) -> Session | None:
        raw = parse_cookie(_header(request.headers, "Cookie") or "").get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data = self.sessions.loads(raw, max_age=SESSION_SECONDS)
        except BadSignature:
            return None
        if not (isinstance(data, list) and len(data) == 2 and all(isinstance(x, str) for x in data)):
            return None
        return Session(data[0], data[1])

    def _csrf(self, session: Session) -> str:
        return str(self.forms.dumps(session.nonce))

    def _csrf_ok(self, session: Session, value: str | None) -> bool:
        try:
            return bool(value) and self.forms.loads(value or "", max_age=SESSION_SECONDS) == session.nonce
        except BadSignature:
            return False

    def _cookie(self, value: str, max_age: int) -> str:
        return str(
            dump_cookie(
                SESSION_COOKIE,
                value,
                max_age=max_age,
                path="/",
                httponly=True,
                secure=self.secure_cookie,
                samesite="Strict",
            )
        )

    # --- pages -----------------------------------------------------------------------------------------

    def _queue(self, request: HttpRequest) -> HttpResponse:
        q = request.query
        wanted = QueueFilter(
            category=q.get("category") or None,
            municipality=q.get("municipality") or None,
            priority=q.get("priority") or None,
            status=q.get("status") or None,
            overdue=q.get("overdue") == "1",
        )
        now = self.triage.clock()
        names = self.names()  # once per page: in production it reads the directory from Firestore
        rows = [self._row(i, now, names) for i in self.triage.queue(wanted)]
        return self._page(
            200,
            "triage_queue.html.j2",
            rows=rows,
            filters=q,
            categories=sorted(CATEGORY_NAMES.items(), key=lambda kv: kv[1]),
            municipalities=sorted(names.municipalities.items(), key=lambda kv: kv[1]),
            priorities=list(PRIORITY_NAMES.items()),
            statuses=[(s.value, STATUS_NAMES[s]) for s in QUEUE_STATUSES],
            report_from=(now.astimezone(MOSCOW).date() - timedelta(days=7)).isoformat(),
            report_to=(now.astimezone(MOSCOW).date() + timedelta(days=1)).isoformat(),
        )

    def _row(self, i: Incident, now: datetime, names: Names) -> dict[str, Any]:
        c = i.classification
        return {
            "id": i.id,
            "critical": c.priority is Priority.CRITICAL or c.danger,
            "priority": PRIORITY_NAMES.get(c.priority, str(c.priority)),
            "category": category_name(c.category),
            "municipality": names.municipalities.get(c.municipality or "", c.municipality or "—"),
            "status": STATUS_NAMES.get(i.status, str(i.status)),
            "overdue": is_overdue(i, now),
            "residents": i.residents,
            "created": _local(i.created_at),
            "excerpt": (i.post.text[:140] + "…") if len(i.post.text) > 140 else i.post.text,
            "departments": ", ".join(i.department_ids) or "—",
        }

    def _incident(self, incident_id: str, session: Session, **notice: Any) -> HttpResponse:
        try:
            incident = self.triage.incident(incident_id)
        except ActionError as exc:
            return self._page(exc.status, "message.html.j2", title="Нет такого обращения", text=str(exc))
        reports = []
        for r in incident.reports:
            merged = self.triage.incidents.get(r.incident_id)
            reports.append(
                {
                    "id": r.incident_id,
                    "url": r.url,
                    "href": _href(r.url),
                    "source": r.source,
                    "published": _local(r.published_at),
                    "action": r.action,
                    "text": merged.post.text if merged is not None else "",
                    "splittable": merged is not None and merged.status is IncidentStatus.MERGED,
                }
            )
        c = incident.classification
        history = [
            {"at": _local(h.at), "what": STATUS_NAMES.get(h.status, str(h.status)), "who": h.actor, "note": h.note}
            for h in incident.status_history
        ] + [
            {"at": _local(e.at), "what": EVENT_NAMES.get(e.kind, e.kind), "who": e.actor, "note": e.note}
            for e in incident.events
        ]
        history.sort(key=lambda h: h["at"])
        names = self.names()
        return self._page(
            notice.pop("status", 200),
            "triage_incident.html.j2",
            i=incident,
            status_name=STATUS_NAMES.get(incident.status, str(incident.status)),
            category=category_name(c.category),
            priority=PRIORITY_NAMES.get(c.priority, str(c.priority)),
            critical=c.priority is Priority.CRITICAL,
            confidence=f"{round(c.confidence * 100)} %",
            evidence=list(c.evidence),
            corrected=any(line.startswith("operator:") for line in c.evidence),
            municipality=names.municipalities.get(c.municipality or "", c.municipality or "не определён"),
            post_href=_href(incident.post.url),
            published=_local(incident.post.published_at),
            reply_due=_local(incident.reply_due_at) if incident.reply_due_at else "—",
            reports=reports,
            history=history,
            categories=sorted(CATEGORY_NAMES.items(), key=lambda kv: kv[1]),
            municipalities=sorted(names.municipalities.items(), key=lambda kv: kv[1]),
            csrf=self._csrf(session),
            can_split=incident.status is IncidentStatus.MERGED,
            can_dismiss=incident.status in (IncidentStatus.NEW, IncidentStatus.ROUTED),
            can_mark_danger=incident.status in OPEN,
            done=notice.get("done"),
            error=notice.get("error"),
        )

    def _act(self, actor: Actor, session: Session, incident_id: str, action: str, form: dict[str, str]) -> HttpResponse:
        if not self._csrf_ok(session, form.get("csrf")):
            return self._page(403, "message.html.j2", title="Форма устарела", text="Обновите страницу и повторите.")
        if action not in ACTIONS:
            return self._page(404, "message.html.j2", title="Нет такого действия", text=action)
        t, done = self.triage, action
        try:
            if action == "correct":
                t.correct(
                    actor,
                    incident_id,
                    form.get("category") or None,
                    form.get("municipality") or None,
                    form.get("reason", ""),
                )
                target = incident_id
            elif action == "danger":
                dangerous = DANGER_VERDICTS.get(form.get("dangerous", ""))
                if dangerous is None:
                    raise ActionError("выберите: опасно или не опасно")
                t.mark_danger(actor, incident_id, dangerous, form.get("reason", ""))
                target, done = incident_id, "dangerous" if dangerous else "not_dangerous"
            elif action == "not_complaint":
                t.not_a_complaint(actor, incident_id, form.get("reason", ""))
                target = incident_id
            elif action == "merge":
                into = (form.get("into") or "").strip()
                if not into:
                    raise ActionError("укажите номер обращения, с которым объединить")
                target = t.merge(actor, incident_id, into).id
            else:
                target = t.split(actor, form.get("report") or incident_id).id
        except ActionError as exc:
            return self._incident(incident_id, session, status=exc.status, error=str(exc))
        return _redirect(f"/triage/incidents/{target}?" + urlencode({"done": done}))

    def _report(self, query: dict[str, str], browser: bool) -> HttpResponse:
        fmt = query.get("format", "html" if browser else "json")
        try:
            start_day = date.fromisoformat(query.get("from", ""))
            end_day = date.fromisoformat(query.get("to", ""))
            if fmt not in FORMATS:
                raise ValueError(f"format: one of {', '.join(FORMATS)}")
            if end_day <= start_day:
                raise ValueError("'to' must be after 'from' (the day after the period's last day)")
        except ValueError as exc:
            text = f"from and to are dates YYYY-MM-DD; {exc}"
            if browser:
                return self._page(400, "message.html.j2", title="Неверный период", text=text)
            return json_response(400, {"error": text})
        start = datetime.combine(start_day, datetime.min.time(), MOSCOW).astimezone(UTC)
        end = datetime.combine(end_day, datetime.min.time(), MOSCOW).astimezone(UTC)
        report = self.build_report(start, end, query.get("municipality") or None)
        headers = PAGE_HEADERS if fmt == "html" else (("Cache-Control", "no-store"),)
        return HttpResponse(200, render(report, fmt), CONTENT_TYPES[fmt], headers)

    def _machine_report(self, request: HttpRequest) -> HttpResponse:
        department = tokens.department_of(self.token_store, _header(request.headers, "Authorization"))
        if department is None:
            return HttpResponse(
                401,
                '{"error": "send Authorization: Bearer <the coordinator\'s token>"}',
                headers=(("WWW-Authenticate", 'Bearer realm="otklik"'),),
            )
        try:
            self.triage.operator(department)
        except ActionError as exc:
            return json_response(403, {"error": str(exc)})
        return self._report(request.query, browser=False)

    def _page(self, status: int, template: str, **facts: Any) -> HttpResponse:
        body = environment().get_template(template).render(**facts)
        return HttpResponse(status, body, HTML, PAGE_HEADERS)


def _redirect(location: str, cookie: str | None = None) -> HttpResponse:
    headers = (("Location", location), *((("Set-Cookie", cookie),) if cookie else ()))
    return HttpResponse(303, "", HTML, PAGE_HEADERS + headers)


def _header(headers: dict[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _href(url: str) -> str | None:
    return url if url.startswith(("https://", "http://")) else None


def _local(moment: datetime) -> str:
    return f"{moment.astimezone(MOSCOW):%d.%m.%Y %H:%M}"
