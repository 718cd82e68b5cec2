"""Texts people read: the notification e-mail to a department (Russian), plain text and HTML.

The wording lives in Jinja2 templates beside the code (``shared/templates/email``); this module gathers the
facts once, so the plain and the HTML part always say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup, escape

from shared.domain.categories import PRIORITY_NAMES, category_name
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


def incident_subject(delivery: Delivery) -> str:
    c = delivery.incident.classification
    subject = f"{'СРОЧНО: ' if delivery.urgent else ''}Обращение жителя: {category_name(c.category)}"
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
        "post_url": incident.post.url,
        # Only web links become links: a source could hand over anything, javascript: included.
        "post_href": incident.post.url if incident.post.url.startswith(("https://", "http://")) else None,
        "post_text": incident.post.text,
        "incident_id": incident.id,
        "answer_url": delivery.answer_url,
    }


def incident_email(delivery: Delivery) -> RenderedEmail:
    facts = incident_facts(delivery)
    env = environment()
    return RenderedEmail(
        subject=incident_subject(delivery),
        text=env.get_template("email/incident.txt.j2").render(facts),
        html=env.get_template("email/incident.html.j2").render(facts),
    )
