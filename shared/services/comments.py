"""What Otklik writes under an author's post (VK): a department's answer, signed, or the follow-up question.
Plain text, no templates: the ingest-side VK adapter imports it, and ingest does not ship Jinja2."""

from __future__ import annotations

from shared.ports import Delivery

FOLLOWUP_QUESTION = (
    "Здравствуйте! Ранее мы ответили на ваше обращение. Подскажите, пожалуйста, проблема решена? "
    "Напишите в ответ на этот комментарий «да» или «нет»."
)


def comment_text(delivery: Delivery) -> str:
    """What the community writes under the author's post: a department's answer, signed, or the follow-up
    question (``answer.<n>``, ``followup.<n>``)."""
    kind = delivery.kind
    if kind.startswith("followup"):
        return FOLLOWUP_QUESTION
    if kind.startswith("answer."):
        index = int(kind.split(".")[1])
        answer = delivery.incident.answers[index]
        return f"{answer.text}\n\n— {delivery.department.name}"
    raise ValueError(f"no comment text for a {kind!r} notification")
