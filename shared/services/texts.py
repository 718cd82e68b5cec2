"""Texts people read: the notification e-mail to a department (Russian)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from shared.domain.categories import PRIORITY_NAMES, category_name
from shared.domain.models import Department, Incident, Priority


def incident_email(incident: Incident, department: Department) -> tuple[str, str]:
    c = incident.classification
    tz = ZoneInfo(department.timezone)
    urgent = "СРОЧНО: " if c.danger or c.priority is Priority.CRITICAL else ""
    subject = f"{urgent}Обращение жителя: {category_name(c.category)}"
    if c.municipality:
        subject += f" ({c.municipality})"
    due = incident.reply_due_at.astimezone(tz).strftime("%d.%m.%Y %H:%M") if incident.reply_due_at else "—"
    published = incident.post.published_at.astimezone(tz).strftime("%d.%m.%Y %H:%M")
    body = "\n".join(
        [
            f"Здравствуйте! В ваш адрес ({department.name}) направлено обращение жителя из социальной сети.",
            "",
            f"Категория: {category_name(c.category)}",
            f"Приоритет: {PRIORITY_NAMES.get(c.priority, c.priority)}",
            f"Муниципалитет: {c.municipality or 'не определён'}",
            f"Опубликовано: {published}",
            f"Ответить автору до: {due}",
            f"Ссылка на сообщение: {incident.post.url}",
            "",
            "Текст сообщения:",
            incident.post.text,
            "",
            f"Номер инцидента: {incident.id}",
            "Ответ автору публикуется комментарием официального представителя не позднее следующего дня.",
        ]
    )
    return subject, body
