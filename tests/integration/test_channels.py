"""The webhook and e-mail channels against a real HTTP server and a real SMTP server on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
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


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with WebhookSink() as server:
        yield server  # type: ignore[misc]


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
    sender = WebhookSender(httpx.Client(timeout=5), allow_private=True)
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


@pytest.mark.parametrize("status", [500, 503, 429])
def test_webhook_server_errors_and_429_are_worth_retrying(sink: WebhookSink, status: int) -> None:
    sink.fail_next(1, status)
    sender = WebhookSender(httpx.Client(timeout=5), allow_private=True)
    with pytest.raises(TransientError):
        sender.send(delivery(f"{sink.url}/h"))
    sender.send(delivery(f"{sink.url}/h"))
    assert [r.answered for r in sink.received] == [status, 200]


@pytest.mark.parametrize("status", [400, 404, 410])
def test_webhook_client_errors_are_permanent(sink: WebhookSink, status: int) -> None:
    sink.fail_next(1, status)
    with pytest.raises(PermanentError, match=str(status)):
        WebhookSender(httpx.Client(timeout=5), allow_private=True).send(delivery(f"{sink.url}/h"))


def test_webhook_timeout_and_refused_connection_are_transient(sink: WebhookSink) -> None:
    sink.fail_next(1, 200, delay=1.5)
    sender = WebhookSender(httpx.Client(timeout=0.5), allow_private=True)
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
    d = delivery(email="roads@shakhty.example")
    SmtpSender(settings_for(smtp)).send(d)
    [message] = smtp.messages
    assert message["To"] == "roads@shakhty.example"
    assert message["Subject"].startswith("СРОЧНО: Обращение жителя: Дороги")
    body = message.get_content()
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
    WebhookSender(httpx.Client(timeout=5), allow_private=True).send(delivery(f"{sink.url}/h"))
    jsonschema.validate(sink.received[0].json, schema)
