"""The e-mail channel over the Amazon SES API, against moto's real HTTP server on loopback."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3  # type: ignore[import-untyped]
import httpx
import pytest

from shared.adapters.email import SesSender, SmtpSender, mail_sender
from shared.config import Settings
from shared.domain.errors import PermanentError, TransientError
from shared.domain.models import Department, Priority
from shared.ports import Delivery
from tests.builders import make_incident, make_post

pytestmark = pytest.mark.integration

REGION = "eu-central-1"
ANSWER = "https://api.region.example/answer?t=signed&i=1"


@pytest.fixture(scope="module")
def ses_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


def settings(ses_url: str, mail_from: str) -> Settings:
    return Settings(
        mail_provider="ses", ses_region=REGION, ses_endpoint_url=ses_url, mail_from=mail_from, http_timeout_seconds=5
    )


def verify(ses_url: str, identity: str) -> None:
    boto3.client("sesv2", region_name=REGION, endpoint_url=ses_url).create_email_identity(EmailIdentity=identity)


def delivery(post_id: str, *, urgent: bool = True) -> Delivery:
    department = Department(id="shakhty-roads", name="Отдел дорожного хозяйства", email="roads@shakhty.example")
    incident = make_incident(
        post_id,
        priority=Priority.CRITICAL,
        post=make_post(post_id, text="Открытый люк <script>alert(1)</script> у школы №5"),
    )
    event_id = f"{incident.id}.shakhty-roads.email.new_incident"
    return Delivery(department, incident, event_id, "new_incident", urgent, ANSWER)


def stored(ses_url: str, message_id: str) -> list[dict[str, Any]]:
    """What moto keeps of the raw messages sent with this Message-ID (its store is shared by the process)."""
    raw = httpx.get(f"{ses_url}/moto-api/data.json", timeout=5).raise_for_status().json()["ses"]["RawMessage"]
    return [
        m
        for m in raw
        if email.message_from_string(m["raw_data"], policy=email.policy.default)["Message-ID"].strip() == message_id
    ]


def test_incident_email_is_sent_through_ses_as_one_multipart_message(ses_url: str) -> None:
    verify(ses_url, "region.example")  # the whole domain, as production verifies it
    d = delivery("ses-1")
    sender = mail_sender(settings(ses_url, "Отклик <otklik@region.example>"))
    assert isinstance(sender, SesSender)
    sender.send(d)

    [kept] = stored(ses_url, f"<{d.event_id}@otklik>")
    assert kept["source"] == "Отклик <otklik@region.example>"
    assert "roads@shakhty.example" in kept["destinations"]
    message = email.message_from_string(kept["raw_data"], policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == "СРОЧНО: Обращение жителя: Дороги (shakhty)"
    assert message["To"] == "roads@shakhty.example"
    assert message["Message-ID"].strip() == f"<{d.event_id}@otklik>"  # a long one is folded onto its own line
    assert message["Importance"] == "high" and message["X-Priority"] == "1"
    assert message.get_content_type() == "multipart/alternative"
    text_part, html_part = message.get_body(("plain",)), message.get_body(("html",))
    assert text_part is not None and html_part is not None
    text, html = text_part.get_content(), html_part.get_content()
    assert "Открытый люк <script>alert(1)</script> у школы №5" in text
    assert "Открытый люк &lt;script&gt;alert(1)&lt;/script&gt; у школы №5" in html and "<script>" not in html
    for part in (text, html):
        assert d.incident.post.url in part and d.incident.id in part and "без пароля" in part
    assert ANSWER in text and ANSWER.replace("&", "&amp;") in html


def test_a_resend_carries_the_same_message_id(ses_url: str) -> None:
    verify(ses_url, "otklik@region.example")
    d = delivery("ses-2", urgent=False)
    sender = SesSender(settings(ses_url, "otklik@region.example"))
    sender.send(d)
    sender.send(d)
    kept = stored(ses_url, f"<{d.event_id}@otklik>")
    assert len(kept) == 2
    assert all("X-Priority" not in m["raw_data"] for m in kept)


def test_unverified_sender_is_refused_for_good(ses_url: str) -> None:
    d = delivery("ses-3")
    with pytest.raises(PermanentError, match="MessageRejected"):
        SesSender(settings(ses_url, "someone@unverified.example")).send(d)
    assert stored(ses_url, f"<{d.event_id}@otklik>") == []


def test_department_without_email_is_permanent(ses_url: str) -> None:
    d = delivery("ses-4")
    nobody = Delivery(d.department.model_copy(update={"email": None}), d.incident, d.event_id)
    with pytest.raises(PermanentError, match="no email"):
        SesSender(settings(ses_url, "otklik@region.example")).send(nobody)


def test_unreachable_endpoint_is_worth_retrying() -> None:
    dead = Settings(
        mail_provider="ses", ses_region=REGION, ses_endpoint_url="http://127.0.0.1:9", http_timeout_seconds=2
    )
    with pytest.raises(TransientError, match="EndpointConnectionError"):
        SesSender(dead).send(delivery("ses-5"))


def test_factory_picks_the_configured_provider() -> None:
    assert mail_sender(Settings(mail_provider="smtp")) is None
    assert isinstance(mail_sender(Settings(mail_provider="smtp", smtp_host="127.0.0.1")), SmtpSender)
    assert isinstance(mail_sender(Settings(mail_provider="ses")), SesSender)


class _Failing(BaseHTTPRequestHandler):
    """An SES endpoint that answers every call with one error, as AWS words it (restJson: x-amzn-ErrorType)."""

    answer: tuple[int, str] = (503, "ServiceUnavailable")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, code = self.answer
        body = json.dumps({"message": f"{code} from the stand-in"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-ErrorType", code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (503, "ServiceUnavailable", TransientError),
        (500, "InternalFailure", TransientError),
        (429, "TooManyRequestsException", TransientError),
        (400, "BadRequestException", PermanentError),
        (400, "MailFromDomainNotVerifiedException", PermanentError),
        (403, "AccessDeniedException", PermanentError),
    ],
)
def test_ses_errors_are_sorted_into_retry_and_give_up(status: int, code: str, error: type[Exception]) -> None:
    handler = type("Handler", (_Failing,), {"answer": (status, code)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(error, match=code):
            SesSender(settings(endpoint, "otklik@region.example")).send(delivery("ses-6"))
    finally:
        server.shutdown()
        server.server_close()
