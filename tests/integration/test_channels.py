"""The webhook and e-mail channels against a real HTTP server and a real SMTP server on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import jsonschema
import pytest

from otklik.standins.smtp import SmtpSink
from otklik.standins.webhook import WebhookSink
from shared.adapters.email import SmtpSender
from shared.adapters.webhook import WebhookSender, check_target
from shared.config import Settings
from shared.domain.errors import PermanentError, TransientError
from shared.domain.models import Department, Priority
from shared.ports import Delivery
from tests.builders import make_incident

pytestmark = pytest.mark.integration


SECRET = "shakhty-roads-signing-secret"


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    # The sink checks signatures by the path's last part, as a department's receiver would with its own key.
    with WebhookSink({"h": SECRET, "roads": SECRET}) as server:
        yield server  # type: ignore[misc]


def webhook_sender(timeout: float = 5, attempts: int = 1, secret: str | None = SECRET) -> WebhookSender:
    secrets = {"shakhty-roads": secret} if secret else {}
    return WebhookSender(httpx.Client(timeout=timeout), True, secrets, attempts, backoff_seconds=0.01)


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        yield server


def delivery(url: str = "http://127.0.0.1:1/x", email: str | None = None) -> Delivery:
    department = Department(
        id="shakhty-roads",
        name="Отдел дорожного хозяйства",
        municipality="shakhty",
        webhook_url=url,
        email=email,
    )  # type: ignore[arg-type]
    incident = make_incident("7", priority=Priority.CRITICAL, category="roads")
    return Delivery(department=department, incident=incident, event_id=f"{incident.id}.shakhty-roads.webhook.new")


def test_webhook_posts_versioned_json_with_an_idempotency_key(sink: WebhookSink) -> None:
    sender = webhook_sender()
    d = delivery(f"{sink.url}/hooks/roads")
    sender.send(d)
    [received] = sink.received
    assert received.path == "/hooks/roads"
    assert received.headers["otklik-event-id"] == d.event_id
    assert received.headers["content-type"].startswith("application/json")
    body = received.json
    assert body["schema"] == "otklik.webhook.incident" and body["version"] == 1
    assert body["incident_id"] == d.incident.id and body["category_name"] == "Дороги"
    assert body["priority"] == "critical"
    assert body["post"]["text"] == d.incident.post.text
    assert received.signature_valid, received.signature_error


def test_webhook_is_signed_per_attempt_and_marked_urgent_when_dangerous(sink: WebhookSink) -> None:
    d = delivery(f"{sink.url}/hooks/roads")
    urgent = Delivery(d.department, d.incident, d.event_id, kind="new_incident", urgent=True, answer_url="https://a/x")
    webhook_sender().send(urgent)
    [received] = sink.received
    assert received.signature_valid and received.headers["otklik-urgent"] == "1"
    assert received.json["urgent"] is True and received.json["answer_url"] == "https://a/x"


def test_a_department_without_a_signing_secret_gets_nothing_unsigned(sink: WebhookSink) -> None:
    with pytest.raises(PermanentError, match="no webhook signing secret"):
        webhook_sender(secret=None).send(delivery(f"{sink.url}/h"))
    assert sink.received == []


def test_a_blip_is_ridden_out_by_quick_retries_within_one_delivery(sink: WebhookSink) -> None:
    sink.fail_next(2, 503)
    webhook_sender(attempts=3).send(delivery(f"{sink.url}/h"))
    assert [r.answered for r in sink.received] == [503, 503, 200]
    assert all(r.signature_valid for r in sink.received)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_webhook_server_errors_and_429_are_worth_retrying(sink: WebhookSink, status: int) -> None:
    sink.fail_next(1, status)
    sender = webhook_sender()
    with pytest.raises(TransientError):
        sender.send(delivery(f"{sink.url}/h"))
    sender.send(delivery(f"{sink.url}/h"))
    assert [r.answered for r in sink.received] == [status, 200]


@pytest.mark.parametrize("status", [400, 404, 410])
def test_webhook_client_errors_are_permanent(sink: WebhookSink, status: int) -> None:
    sink.fail_next(1, status)
    with pytest.raises(PermanentError, match=str(status)):
        webhook_sender().send(delivery(f"{sink.url}/h"))


def test_webhook_timeout_and_refused_connection_are_transient(sink: WebhookSink) -> None:
    sink.fail_next(1, 200, delay=1.5)
    sender = webhook_sender(timeout=0.5)
    with pytest.raises(TransientError, match="Timeout"):
        sender.send(delivery(f"{sink.url}/h"))
    with pytest.raises(TransientError, match="ConnectError"):
        sender.send(delivery("http://127.0.0.1:9/closed"))


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.org/x",
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://169.254.169.254/computeMetadata/v1/",
        "https://[::1]/x",
    ],
)
def test_outside_local_mode_only_public_https_targets_are_allowed(url: str) -> None:
    with pytest.raises(PermanentError):
        check_target(url, allow_private=False)


def settings_for(smtp: SmtpSink) -> Settings:
    return Settings(smtp_host=smtp.host, smtp_port=smtp.port, smtp_security="none", mail_from="otklik@region.example")


def test_email_goes_out_in_russian_with_the_post_link_and_deadline(smtp: SmtpSink) -> None:
    d = replace(delivery(email="roads@shakhty.example"), urgent=True)
    SmtpSender(settings_for(smtp)).send(d)
    [message] = smtp.messages
    assert message["To"] == "roads@shakhty.example"
    assert message["Subject"].startswith("СРОЧНО: Обращение жителя: Дороги")
    assert message.get_content_type() == "multipart/alternative" and message["X-Priority"] == "1"
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    for body in (text.get_content(), html.get_content()):
        assert d.incident.post.url in body and d.incident.post.text in body and d.incident.id in body
    assert message["Message-ID"].strip() == f"<{d.event_id}@otklik>"


def test_refused_recipient_is_permanent_and_a_dead_server_transient(smtp: SmtpSink) -> None:
    smtp.refuse("nobody@shakhty.example")
    with pytest.raises(PermanentError, match="refused"):
        SmtpSender(settings_for(smtp)).send(delivery(email="nobody@shakhty.example"))
    dead = Settings(smtp_host="127.0.0.1", smtp_port=9, smtp_security="none")
    with pytest.raises(TransientError):
        SmtpSender(dead).send(delivery(email="roads@shakhty.example"))


def test_webhook_body_matches_the_published_json_schema(sink: WebhookSink, repo_root: Path) -> None:
    schema = json.loads((repo_root / "docs" / "schemas" / "otklik.webhook.incident.v1.json").read_text())
    webhook_sender().send(delivery(f"{sink.url}/h"))
    jsonschema.validate(sink.received[0].json, schema)
