"""The answer page: the signed link in the notification e-mail opens one incident for one department, with no
password, and lets a clerk take it into work, answer the author, mark it solved or hand it back as "not ours".

A plain server-rendered Russian page (Jinja2 templates in ``shared/templates/pages``), no JavaScript and no
external resources. The signed token in the URL is the credential: forms post back to that same URL, and every
form carries a ``request_key`` made at render time so a double submit does not answer twice. A successful POST
answers 303 See Other back to the page (post/redirect/get); the confirmation line travels in a short-lived
cookie bound to the token, since the handler sees the path and the form but not the query string.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from werkzeug.http import dump_cookie, parse_cookie

from shared.answer_links import AnswerLinks, InvalidLink, LinkGrant
from shared.domain.categories import PRIORITY_NAMES, category_name
from shared.domain.models import Incident, IncidentStatus, Priority
from shared.entrypoints.department_api import HttpRequest, HttpResponse
from shared.services.responses import (
    AccessDenied,
    ActionError,
    ActionRefused,
    Actor,
    NoSuchIncident,
    ResponseService,
)

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "pages"
VIA = "answer-page"
ACTIONS = ("acknowledge", "answer", "resolve", "reassign")
DONE_COOKIE = "otklik_answer_done"
DONE_COOKIE_SECONDS = 300
MAX_ANSWER_CHARS = 4000  # Answer.text's limit
HTML = "text/html; charset=utf-8"
MOSCOW = ZoneInfo("Europe/Moscow")

# The URL is a credential: never cached, never sent on as a Referer, never framed; the page needs nothing but
# its own inline styles and posts its forms only to itself.
PAGE_HEADERS: tuple[tuple[str, str], ...] = (
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"),
    ("X-Content-Type-Options", "nosniff"),
)

S = IncidentStatus
STATUS_NAMES: dict[str, str] = {
    S.NEW: "новое",
    S.ROUTED: "направлено в ведомство, ждёт ответа",
    S.ACKNOWLEDGED: "взято в работу",
    S.ANSWERED: "дан ответ",
    S.CLOSED: "решено, закрыто",
    S.REJECTED: "отклонено",
    S.IRRELEVANT: "не обращение",
    S.MERGED: "объединено с другим обращением о той же проблеме",
}
EVENT_NAMES: dict[str, str] = {
    "answer": "ещё один ответ",
    "overdue": "срок ответа просрочен",
    "corrected": "классификация исправлена",
    "delivery_failed": "уведомление не доставлено",
    "edited": "автор изменил текст",
}
DONE_MESSAGES: dict[str, str] = {
    "acknowledge": "Готово: обращение взято в работу.",
    "answer": "Готово: ответ сохранён.",
    "resolve": "Готово: обращение отмечено как решённое.",
    "reassign": "Готово: обращение передано координатору региона.",
}
LINK_INVALID = (
    "Ссылка недействительна или срок её действия истёк. "
    "Попросите координатора региона прислать новую ссылку на это обращение."
)


@cache
def environment() -> Environment:
    """The templates, loaded once per process."""
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def answer_page(service: ResponseService, links: AnswerLinks, request: HttpRequest, token: str) -> HttpResponse:
    try:
        grant = links.read(token)
    except InvalidLink:
        return message_page(403, "Ссылка не работает", LINK_INVALID)
    page = _Page(service, grant, token)
    return page.post(request.form) if request.method == "POST" else page.get(request)


def message_page(status: int, title: str, text: str, extra: tuple[tuple[str, str], ...] = ()) -> HttpResponse:
    body = environment().get_template("message.html.j2").render(title=title, text=text)
    return HttpResponse(status, body, HTML, PAGE_HEADERS + extra)


@dataclass(frozen=True)
class _Page:
    service: ResponseService
    grant: LinkGrant
    token: str

    # --- GET -------------------------------------------------------------------------------------------

    def get(self, request: HttpRequest) -> HttpResponse:
        cookie = parse_cookie(_header(request.headers, "Cookie") or "").get(DONE_COOKIE)
        done = self._done_from(cookie)
        # A confirmation is shown once: the cookie is cleared by the page that shows it.
        clear = (("Set-Cookie", _done_cookie("", 0)),) if cookie is not None else ()
        try:
            actor = self.service.actor(self.grant.department_id, via=VIA)
        except ActionError as exc:
            return self._refused(exc, clear)
        try:
            incident = self.service.view(actor, self.grant.incident_id)
        except AccessDenied as exc:
            if self._handed_over(actor):
                return self._handed_over_page(done, clear)
            return self._refused(exc, clear)
        except ActionError as exc:
            return self._refused(exc, clear)
        return self._render(200, actor, incident, done=done, extra=clear)

    # --- POST ------------------------------------------------------------------------------------------

    def post(self, form: dict[str, str]) -> HttpResponse:
        try:
            actor = self.service.actor(self.grant.department_id, via=VIA)
        except ActionError as exc:
            return self._refused(exc)
        action = form.get("action", "")
        key = form.get("request_key", "").strip()
        if not key:
            return self._render_error(actor, 400, "Форма устарела: обновите страницу и отправьте ещё раз.", form)
        if action not in ACTIONS:
            return self._render_error(actor, 400, "Неизвестное действие: обновите страницу.", form)
        try:
            self._perform(actor, action, form, key)
        except AccessDenied as exc:
            if action == "reassign" and self._handed_over(actor):
                return self._see_other(action)  # the same "not ours" again (a double click)
            return self._render_error(actor, exc.status, _russian(exc, action), form)
        except ActionError as exc:
            return self._render_error(actor, exc.status, _russian(exc, action), form)
        return self._see_other(action)

    def _perform(self, actor: Actor, action: str, form: dict[str, str], key: str) -> None:
        s, incident_id = self.service, self.grant.incident_id
        if action == "acknowledge":
            s.acknowledge(actor, incident_id)
        elif action == "answer":
            text = _answer_text(form, required=True)
            interim = form.get("interim", "") in ("1", "on", "true", "yes")
            promised_by = self._promised_by(form.get("promised_by", ""), interim)
            s.answer(actor, incident_id, text, interim=interim, promised_by=promised_by, request_key=key)
        elif action == "resolve":
            s.resolve(actor, incident_id, _answer_text(form, required=False) or None, request_key=key)
        else:
            reason = form.get("reason", "").strip()
            if not reason:
                raise ActionError("Напишите, почему обращение не относится к вашему ведомству.")
            s.reassign(actor, incident_id, reason)  # to the coordinator, who knows whose it is

    def _promised_by(self, raw: str, interim: bool) -> date | None:
        raw = raw.strip()
        if not interim:
            if raw:
                raise ActionError(
                    "Срок полного ответа указывают для промежуточного ответа: отметьте «Промежуточный ответ»."
                )
            return None
        if not raw:
            raise ActionError("Для промежуточного ответа укажите срок полного ответа.")
        try:
            promised = date.fromisoformat(raw)
        except ValueError as exc:
            raise ActionError("Срок полного ответа — дата в виде ГГГГ-ММ-ДД.") from exc
        if promised < self._today():
            raise ActionError("Срок полного ответа не может быть в прошлом.")
        return promised

    def _see_other(self, action: str) -> HttpResponse:
        # Relative: the function may be served under a path prefix (…/department_api/answer/<token>).
        headers = (
            ("Location", f"./{self.token}?done={action}"),
            ("Set-Cookie", _done_cookie(f"{action}.{_tag(self.token)}", DONE_COOKIE_SECONDS)),
        )
        return HttpResponse(303, "", HTML, PAGE_HEADERS + headers)

    # --- rendering -------------------------------------------------------------------------------------

    def _render(
        self,
        status: int,
        actor: Actor,
        incident: Incident,
        *,
        done: str | None = None,
        error: str | None = None,
        values: dict[str, str] | None = None,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> HttpResponse:
        directory = self.service.directory
        department = directory.department(actor.department_id)
        tz = _zone(department.timezone if department else None)
        coordinator = directory.department(directory.fallback)
        c = incident.classification
        post = incident.post
        open_ = incident.status in (S.ROUTED, S.ACKNOWLEDGED, S.ANSWERED)
        context: dict[str, Any] = {
            "token": self.token,
            "department_id": actor.department_id,
            "department_name": department.name if department else actor.department_id,
            "coordinator_name": coordinator.name if coordinator else directory.fallback,
            "incident_id": incident.id,
            "status": incident.status.value,
            "status_name": STATUS_NAMES.get(incident.status, incident.status.value),
            "post_text": post.text,
            "post_url": post.url if post.url.startswith(("https://", "http://")) else None,
            "post_url_text": post.url,
            "source": post.source,
            "published": _local(post.published_at, tz),
            "residents": incident.residents,
            # Other residents' posts about the same problem (grouping); only web links become links.
            "reports": [
                (r.url, r.url if r.url.startswith(("https://", "http://")) else None) for r in incident.reports
            ],
            "category": category_name(c.category),
            "priority": PRIORITY_NAMES.get(c.priority.value, c.priority.value),
            "critical": c.priority is Priority.CRITICAL or c.danger,
            "municipality": c.municipality or "",
            "places": ", ".join(c.places),
            "reply_due": _local(incident.reply_due_at, tz) if incident.reply_due_at else None,
            "overdue": incident.overdue and incident.first_reply_at is None,
            "first_reply": _local(incident.first_reply_at, tz) if incident.first_reply_at else None,
            "history": _history(incident, tz),
            "answers": [
                {
                    "at": _local(a.at, tz),
                    "text": a.text,
                    "department": a.department_id,
                    "interim": a.interim,
                    "promised_by": a.promised_by.strftime("%d.%m.%Y") if a.promised_by else None,
                }
                for a in incident.answers
            ],
            "can": {
                "acknowledge": incident.status is S.ROUTED,
                "answer": open_,
                "resolve": open_,
                "reassign": open_ and not actor.coordinator,
            },
            "keys": {a: uuid.uuid4().hex for a in ACTIONS},
            "today": self._today().isoformat(),
            "done": DONE_MESSAGES.get(done or ""),
            "error": error,
            "values": values or {},
        }
        body = environment().get_template("answer.html.j2").render(context)
        return HttpResponse(status, body, HTML, PAGE_HEADERS + extra)

    def _render_error(self, actor: Actor, status: int, error: str, form: dict[str, str]) -> HttpResponse:
        """The page again with the error above the forms and what the clerk typed kept in them."""
        try:
            incident = self.service.view(actor, self.grant.incident_id)
        except ActionError as exc:
            return self._refused(exc)
        return self._render(status, actor, incident, error=error, values=form)

    def _refused(self, exc: ActionError, extra: tuple[tuple[str, str], ...] = ()) -> HttpResponse:
        if isinstance(exc, NoSuchIncident):
            text = "Обращение не найдено: возможно, оно удалено. Обратитесь к координатору региона."
            return message_page(exc.status, "Обращение не найдено", text, extra)
        if isinstance(exc, AccessDenied):
            text = (
                "Это обращение сейчас не направлено вашему ведомству (его передали другому) "
                "или ведомства больше нет в справочнике. Обратитесь к координатору региона."
            )
            return message_page(exc.status, "Нет доступа", text, extra)
        return message_page(exc.status, "Не получилось", _russian(exc, ""), extra)

    def _handed_over(self, actor: Actor) -> bool:
        """This department said "not ours" and the incident went on: the link has done its work."""
        incident = self.service.incidents.get(self.grant.incident_id)
        if incident is None or actor.department_id in incident.department_ids:
            return False
        mark = f"reassigned by {actor.department_id} "
        return any(h.actor == actor.name and h.note.startswith(mark) for h in incident.status_history)

    def _handed_over_page(self, done: str | None, extra: tuple[tuple[str, str], ...]) -> HttpResponse:
        text = (
            "Ваше ведомство передало это обращение координатору региона. По этой ссылке больше ничего делать не нужно."
        )
        title = DONE_MESSAGES["reassign"] if done == "reassign" else "Обращение передано"
        return message_page(200, title, text, extra)

    def _done_from(self, cookie: str | None) -> str | None:
        if not cookie or "." not in cookie:
            return None
        action, tag = cookie.rsplit(".", 1)
        return action if action in ACTIONS and tag == _tag(self.token) else None

    def _today(self) -> date:
        department = self.service.directory.department(self.grant.department_id)
        return self.service.clock().astimezone(_zone(department.timezone if department else None)).date()


# --- helpers ---------------------------------------------------------------------------------------------


def _answer_text(form: dict[str, str], required: bool) -> str:
    text = form.get("text", "").strip()
    if required and not text:
        raise ActionError("Напишите текст ответа.")
    if len(text) > MAX_ANSWER_CHARS:
        raise ActionError(f"Ответ длиннее {MAX_ANSWER_CHARS} знаков: сократите его.")
    return text


def _russian(exc: ActionError, action: str) -> str:
    """The service speaks English to the API's programs; a clerk reads Russian."""
    if isinstance(exc, NoSuchIncident):
        return "Обращение не найдено."
    if isinstance(exc, AccessDenied):
        return "Нет доступа: обращение сейчас не направлено вашему ведомству."
    if isinstance(exc, ActionRefused):
        if action == "resolve":
            return "Сначала ответьте автору (или напишите ответ в поле «Решено»), потом отмечайте обращение решённым."
        return "Это действие невозможно: обращение уже закрыто или отклонено."
    if type(exc) is ActionError and _is_russian(str(exc)):
        return str(exc)  # the page's own checks above
    return f"Не получилось выполнить действие ({exc})."


def _is_russian(text: str) -> bool:
    return any("а" <= ch.lower() <= "я" or ch in "ёЁ" for ch in text)


def _history(incident: Incident, tz: ZoneInfo) -> list[dict[str, str]]:
    rows: list[tuple[datetime, int, dict[str, str]]] = []
    for i, change in enumerate(incident.status_history):
        label = "Статус: " + STATUS_NAMES.get(change.status, change.status.value)
        rows.append((change.at, i, _row(change.at, label, change.actor, change.note, tz)))
    for i, event in enumerate(incident.events, start=len(rows)):
        label = EVENT_NAMES.get(event.kind.split(".")[0], event.kind)
        rows.append((event.at, i, _row(event.at, label[:1].upper() + label[1:], event.actor, event.note, tz)))
    return [row for _, _, row in sorted(rows, key=lambda r: (r[0], r[1]))]


def _row(at: datetime, label: str, actor: str, note: str, tz: ZoneInfo) -> dict[str, str]:
    return {"at": _local(at, tz), "label": label, "actor": actor, "note": _note(note, tz)}


NOTES: dict[str, str] = {"taken into work": "взято в работу", "answer": "ответ", "resolved": "решено"}
INTERIM_NOTE = re.compile(r"^interim answer, full answer promised by (\d{4}-\d{2}-\d{2})$")
REASSIGNED_NOTE = re.compile(r"^reassigned by (\S+) to (\S+): (.*)$", re.DOTALL)
OVERDUE_NOTE = re.compile(r"^no reply by (\S+)$")


def _note(note: str, tz: ZoneInfo) -> str:
    """The history's notes are written in English for logs and the API; the common ones read in Russian here."""
    if note in NOTES:
        return NOTES[note]
    if m := INTERIM_NOTE.match(note):
        return f"промежуточный ответ, полный обещан до {date.fromisoformat(m[1]):%d.%m.%Y}"
    if m := REASSIGNED_NOTE.match(note):
        return f"передано: {m[1]} → {m[2]}; причина: {m[3]}"
    if m := OVERDUE_NOTE.match(note):
        try:
            return f"нет ответа к {_local(datetime.fromisoformat(m[1]), tz)}"
        except ValueError:
            return note
    return note


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else MOSCOW
    except (ValueError, KeyError):
        return MOSCOW


def _local(at: datetime, tz: ZoneInfo) -> str:
    """23.11.2026 12:00 МСК, or МСК+2 in Yekaterinburg: how Russian offices name their time."""
    local = at.astimezone(tz)
    offset = (local.utcoffset() or timedelta()) - (at.astimezone(MOSCOW).utcoffset() or timedelta())
    minutes = int(offset.total_seconds() // 60)
    if minutes == 0:
        zone = "МСК"
    elif minutes % 60 == 0:
        zone = f"МСК{minutes // 60:+d}"
    else:
        zone = f"МСК{'+' if minutes > 0 else '-'}{abs(minutes) // 60}:{abs(minutes) % 60:02d}"
    return f"{local:%d.%m.%Y %H:%M} {zone}"


def _tag(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _done_cookie(value: str, max_age: int) -> str:
    # No Path: the browser scopes it to the folder of the page (…/answer), whatever prefix the function has.
    return dump_cookie(DONE_COOKIE, value, max_age=max_age, path=None, httponly=True, samesite="Strict")


def _header(headers: dict[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)
