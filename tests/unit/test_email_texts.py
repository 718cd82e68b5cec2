"""The notification e-mail a department clerk reads: subject, plain text and HTML say the same facts."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage

import pytest

from shared.adapters.email import build_message
from shared.domain.models import Classification, Department, Priority
from shared.ports import Delivery
from shared.services.texts import incident_email
from tests.builders import T0, make_incident, make_post

ANSWER = "https://api.region.example/answer?t=abc.def&i=vk-1"


def department(timezone: str = "Europe/Moscow") -> Department:
    return Department(
        id="shakhty-roads", name="Отдел дорожного хозяйства", email="roads@shakhty.example", timezone=timezone
    )


def delivery(
    text: str = "На ул. Советской огромная яма!",
    *,
    kind: str = "new_incident",
    urgent: bool = False,
    answer_url: str | None = None,
    timezone: str = "Europe/Moscow",
) -> Delivery:
    incident = make_incident(
        "7",
        post=make_post("7", text=text),
        classification=Classification(
            category="roads",
            is_complaint=True,
            priority=Priority.CRITICAL if urgent else Priority.NORMAL,
            municipality="shakhty",
            places=("ул. Советская", "пос. Артём"),
            confidence=0.9,
            classifier="test",
        ),
        reply_due_at=T0 + timedelta(hours=4),
    )
    return Delivery(
        department(timezone), incident, f"{incident.id}.shakhty-roads.email.{kind}", kind, urgent, answer_url
    )


def test_subject_names_category_and_municipality_and_is_marked_urgent_only_when_urgent() -> None:
    assert incident_email(delivery()).subject == "Обращение жителя: Дороги (shakhty)"
    assert incident_email(delivery(urgent=True)).subject == "СРОЧНО: Обращение жителя: Дороги (shakhty)"


def test_both_parts_carry_the_same_facts() -> None:
    d = delivery(answer_url=ANSWER)
    mail = incident_email(d)
    for part in (mail.text, mail.html):
        assert "Отдел дорожного хозяйства" in part
        assert "Дороги" in part and "обычный" in part and "shakhty" in part
        assert "ул. Советская, пос. Артём" in part
        assert d.incident.post.url in part and d.incident.id in part
        assert "На ул. Советской огромная яма!" in part
        assert "без пароля" in part and "Не пересылайте" in part
    assert "&amp;" in mail.html and ANSWER.replace("&", "&amp;") in mail.html  # the link, escaped as HTML wants
    assert ANSWER in mail.text
    assert '<a href="' + ANSWER.replace("&", "&amp;") + '"' in mail.html
    assert ">Ответить</a>" in mail.html


def test_without_an_answer_link_there_is_no_answer_section() -> None:
    mail = incident_email(delivery())
    assert "Ответить</a>" not in mail.html and "без пароля" not in mail.html and "без пароля" not in mail.text


def test_post_text_is_escaped_in_html_and_kept_verbatim_in_text() -> None:
    evil = 'Яма <script>alert("x")</script> & <b>лужа</b>\nвторая строка'
    mail = incident_email(delivery(evil))
    assert "<script>" not in mail.html and "<b>лужа" not in mail.html
    assert (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;лужа&lt;/b&gt;<br>\nвторая строка" in mail.html
    )
    assert evil in mail.text


def test_a_post_link_that_is_not_a_web_link_is_not_made_clickable() -> None:
    d = delivery()
    bad = d.incident.model_copy(update={"post": make_post("7", url="javascript:alert(1)")})
    html = incident_email(Delivery(d.department, bad, d.event_id)).html
    assert "javascript:alert(1)" in html and 'href="javascript' not in html


def test_rerouted_incident_opens_differently() -> None:
    new = incident_email(delivery())
    rerouted = incident_email(delivery(kind="rerouted.1"))
    for part in (rerouted.text, rerouted.html):
        assert "перенаправлено" in part
    assert "перенаправлено" not in new.text and "перенаправлено" not in new.html
    assert "В ваш адрес (Отдел дорожного хозяйства) направлено обращение" in new.text


def test_times_are_in_the_department_time_zone() -> None:
    # T0 is 09:00 UTC; the deadline four hours later.
    moscow = incident_email(delivery()).text
    assert "Опубликовано: 23.11.2026 12:00 (Europe/Moscow, UTC+03:00)" in moscow
    assert "Ответить автору до: 23.11.2026 16:00 (Europe/Moscow, UTC+03:00)" in moscow
    yekaterinburg = incident_email(delivery(timezone="Asia/Yekaterinburg"))
    for part in (yekaterinburg.text, yekaterinburg.html):
        assert "23.11.2026 14:00 (Asia/Yekaterinburg, UTC+05:00)" in part
        assert "23.11.2026 18:00 (Asia/Yekaterinburg, UTC+05:00)" in part


def test_urgent_incident_is_flagged_in_the_body_too() -> None:
    mail = incident_email(delivery(urgent=True))
    assert mail.text.startswith("СРОЧНОЕ ОБРАЩЕНИЕ")
    assert "СРОЧНОЕ ОБРАЩЕНИЕ" in mail.html and "КРИТИЧЕСКИЙ" in mail.html
    assert "СРОЧНОЕ ОБРАЩЕНИЕ" not in incident_email(delivery()).text


def test_html_loads_nothing_from_outside() -> None:
    html = incident_email(delivery(answer_url=ANSWER)).html
    assert "<img" not in html and "<link" not in html and "<script" not in html and "url(" not in html


def parts(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_mime_message_is_multipart_alternative_with_stable_id_and_urgency_headers() -> None:
    d = delivery(urgent=True, answer_url=ANSWER)
    message = build_message(d, "Отклик <otklik@region.example>")
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["To"] == "roads@shakhty.example"
    assert message["From"] == "Отклик <otklik@region.example>"
    assert message["Subject"] == "СРОЧНО: Обращение жителя: Дороги (shakhty)"
    assert message["Message-ID"] == f"<{d.event_id}@otklik>"
    assert build_message(d, "otklik@region.example")["Message-ID"] == message["Message-ID"]
    assert message["Importance"] == "high" and message["X-Priority"] == "1"
    text, html = parts(message)
    assert text == incident_email(d).text and html == incident_email(d).html
    assert message.as_bytes().isascii()  # 7-bit clean for any relay
    calm = build_message(delivery(), "otklik@region.example")
    assert calm["Importance"] is None and calm["X-Priority"] is None


@pytest.mark.parametrize(
    ("kind", "subject_prefix", "line"),
    [
        ("reply.remind.r0", "Напоминание: ", "срок ответа автору истекает 23.11.2026"),
        ("reply.overdue.r0", "ПРОСРОЧЕНО: ", "Срок ответа автору истёк 23.11.2026"),
        ("reply.supervisor.r1", "Эскалация: ", "как руководитель"),
        ("reply.coordinator.r0", "Эскалация в ЦУР: ", "руководитель уведомлён"),
        ("delivery_failed.shakhty-roads.webhook", "Не доставлено: ", "не доставлено по одному из каналов"),
    ],
)
def test_reminders_and_escalations_say_what_they_are_about(kind: str, subject_prefix: str, line: str) -> None:
    mail = incident_email(delivery(kind=kind))
    assert mail.subject.startswith(subject_prefix + "Обращение жителя: Дороги")
    assert line in mail.text and line in mail.html
    assert "На ул. Советской огромная яма!" in mail.text  # the facts follow, as in the first notice
