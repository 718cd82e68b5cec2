"""Texts people read: the notification e-mail to a department (Russian), plain text and HTML.

The wording lives in Jinja2 templates beside the code (``shared/templates/email``); this module gathers the
facts once, so the plain and the HTML part always say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup, escape

from shared.domain.categories import PRIORITY_NAMES, category_name
from shared.domain.models import Department, Incident
from shared.ports import Delivery

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def _nl2br(value: str) -> Markup:
    """Escaped text with its line breaks kept: e-mail clients do not all honour white-space: pre-wrap."""
    return Markup("<br>\n").join(escape(line) for line in value.splitlines())


@cache
def environment() -> jinja2.Environment:
    """One per process: templates are compiled on first use and kept."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        # Template names end in .j2, so the HTML ones are recognised by "html.j2" as well.
        autoescape=jinja2.select_autoescape(["html", "html.j2"], default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["nl2br"] = _nl2br
    return env


def _local(moment: datetime, zone: ZoneInfo) -> str:
    """``23.11.2026 12:00 (Europe/Moscow, UTC+03:00)``: the department's own wall clock, and which one it is."""
    local = moment.astimezone(zone)
    offset = local.strftime("%z")
    return f"{local:%d.%m.%Y %H:%M} ({zone.key}, UTC{offset[:3]}:{offset[3:]})"


# What a notification is about, by its kind (services/remind.py, services/route.py): a subject prefix and the
# line that opens the letter. The incident's facts follow in every case.
_NOTICES: dict[str, tuple[str, str]] = {
    "reply.remind": ("Напоминание", "Напоминаем: срок ответа автору истекает {reply_due}, а ответ ещё не дан."),
    "reply.overdue": ("ПРОСРОЧЕНО", "Срок ответа автору истёк {reply_due}, ответ не дан."),
    "reply.supervisor": (
        "Эскалация",
        "Вы получаете это письмо как руководитель: ведомству направлено обращение, но автору не ответили в срок "
        "({reply_due}).",
    ),
    "reply.coordinator": (
        "Эскалация в ЦУР",
        "Ведомство не ответило автору в срок ({reply_due}); руководитель уведомлён.",
    ),
    "resolution.remind": ("Напоминание", "Напоминаем: срок решения вопроса истекает {resolve_due}."),
    "resolution.overdue": ("ПРОСРОЧЕНО", "Срок решения вопроса истёк {resolve_due}, обращение не закрыто."),
    "resolution.supervisor": (
        "Эскалация",
        "Вы получаете это письмо как руководитель: вопрос не решён в срок ({resolve_due}).",
    ),
    "resolution.coordinator": ("Эскалация в ЦУР", "Вопрос не решён в срок ({resolve_due}); руководитель уведомлён."),
    "reopened": (
        "Возобновлено",
        "Обращение было закрыто, но о проблеме снова сообщают жители (всего {residents}): она не решена.",
    ),
    "raised": (
        "Повышен приоритет",
        "О проблеме сообщили ещё раз (всего жителей: {residents}), и это опасно: приоритет повышен до критического.",
    ),
    "marked_dangerous": (
        "Отмечено как опасное",
        "Оператор ЦУР отметил обращение как опасное для людей: приоритет повышен до критического.",
    ),
    "edited_dangerous": (
        "Опасно",
        "Автор изменил текст обращения: по новому тексту это опасно для людей, приоритет повышен до критического.",
    ),
    "delivery_failed": (
        "Не доставлено",
        "Уведомление ведомству об этом обращении не доставлено по одному из каналов: проверьте адрес или webhook.",
    ),
}


def notice(delivery: Delivery, facts: dict[str, Any]) -> tuple[str, str] | None:
    for prefix, (subject, line) in _NOTICES.items():
        if delivery.kind == prefix or delivery.kind.startswith(prefix + "."):
            return subject, line.format(**facts)
    return None


def incident_subject(delivery: Delivery) -> str:
    c = delivery.incident.classification
    subject = f"{'СРОЧНО: ' if delivery.urgent else ''}Обращение жителя: {category_name(c.category)}"
    found = notice(delivery, incident_facts(delivery))
    if found is not None:
        subject = f"{found[0]}: {subject}"
    if c.municipality:
        subject += f" ({c.municipality})"
    return subject


def incident_facts(delivery: Delivery) -> dict[str, Any]:
    """Everything both templates may show, already in the words and the time zone the clerk reads."""
    incident, department = delivery.incident, delivery.department
    c = incident.classification
    zone = ZoneInfo(department.timezone)
    return {
        "department_name": department.name,
        "rerouted": delivery.kind.startswith("rerouted"),
        "urgent": delivery.urgent,
        "category": category_name(c.category),
        "priority": PRIORITY_NAMES.get(c.priority, str(c.priority)),
        "municipality": c.municipality or "не определён",
        "places": ", ".join(c.places),
        "published": _local(incident.post.published_at, zone),
        "reply_due": _local(incident.reply_due_at, zone) if incident.reply_due_at else "не установлен",
        "resolve_due": _local(incident.resolve_due_at, zone) if incident.resolve_due_at else "не установлен",
        "post_url": incident.post.url,
        # Only web links become links: a source could hand over anything, javascript: included.
        "post_href": incident.post.url if incident.post.url.startswith(("https://", "http://")) else None,
        "post_text": incident.post.text,
        "residents": incident.residents,
        # Other residents' posts about the same problem; as with post_href, only web links become links.
        "reports": [(r.url, r.url if r.url.startswith(("https://", "http://")) else None) for r in incident.reports],
        "incident_id": incident.id,
        "answer_url": delivery.answer_url,
    }


def incident_email(delivery: Delivery) -> RenderedEmail:
    facts = incident_facts(delivery)
    found = notice(delivery, facts)
    facts["notice"] = found[1] if found else None
    env = environment()
    return RenderedEmail(
        subject=incident_subject(delivery),
        text=env.get_template("email/incident.txt.j2").render(facts),
        html=env.get_template("email/incident.html.j2").render(facts),
    )


@dataclass(frozen=True)
class DigestLine:
    incident_id: str
    category: str
    municipality: str
    status: str
    due: str
    overdue: bool
    urgent: bool
    post_url: str
    excerpt: str
    answer_url: str | None


STATUS_NAMES = {"routed": "ждёт ответа", "acknowledged": "в работе", "answered": "дан ответ, не решено"}


def digest_email(department: Department, incidents: list[Incident], now: datetime, answer_url: Any) -> RenderedEmail:
    """The daily summary of a department's open incidents, overdue first, then by deadline."""
    zone = ZoneInfo(department.timezone)
    far = datetime.max.replace(tzinfo=UTC)

    def due_of(i: Incident) -> datetime | None:
        return i.resolve_due_at if i.status == "answered" else i.reply_due_at

    ordered = sorted(incidents, key=lambda i: (not _late(i, now), due_of(i) or far))
    lines = [
        DigestLine(
            incident_id=i.id,
            category=category_name(i.classification.category),
            municipality=i.classification.municipality or "—",
            status=STATUS_NAMES.get(i.status, str(i.status)),
            due=_local(due, zone) if (due := due_of(i)) else "—",
            overdue=_late(i, now),
            urgent=i.classification.danger or i.classification.priority == "critical",
            post_url=i.post.url,
            excerpt=(i.post.text[:200] + "…") if len(i.post.text) > 200 else i.post.text,
            answer_url=answer_url(i.id, department.id),
        )
        for i in ordered
    ]
    overdue = sum(1 for line in lines if line.overdue)
    facts = {
        "department_name": department.name,
        "date": f"{now.astimezone(zone):%d.%m.%Y}",
        "open": len(lines),
        "overdue": overdue,
        "lines": lines,
    }
    env = environment()
    subject = f"Сводка обращений на {facts['date']}: открыто {len(lines)}, просрочено {overdue}"
    return RenderedEmail(
        subject=subject,
        text=env.get_template("email/digest.txt.j2").render(facts),
        html=env.get_template("email/digest.html.j2").render(facts),
    )


def _late(incident: Incident, now: datetime) -> bool:
    due = incident.resolve_due_at if incident.status == "answered" else incident.reply_due_at
    return due is not None and due <= now
