"""Log hygiene: no secret and no citizen's text leaves through a log line or a stored error text.

Each test drives the real code path (connectors over httpx, the SMTP and webhook senders, the public functions'
services) against a small server on loopback or in-memory fakes, first checks that the secret really was used
(the server received it), then looks for it everywhere it could have gone: every log record at DEBUG (caplog),
the JSON lines shared/logs.py writes to stdout (capsys), source-health records, quarantine reasons, notification
errors and HTTP answers.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from shared import bootstrap, logs
from shared.adapters.email import SmtpSender
from shared.adapters.sources import SourceFactory
from shared.adapters.vk_callback import VkCallbackService
from shared.adapters.webhook import WebhookSender
from shared.answer_links import AnswerLinks
from shared.config import RoutingConfig, Settings
from shared.domain.errors import TransientError
from shared.domain.models import Channel, Department, IncidentStatus, NotificationStatus
from shared.entrypoints.answer_page import answer_page
from shared.entrypoints.department_api import DepartmentApi, HttpRequest
from shared.ports import Delivery
from shared.services import tokens
from shared.services.inbound import InboundHandler, InboundMessage
from shared.services.inbox import InboxService
from shared.services.ingest import IngestService, PostIntake
from shared.services.notify import Notifier
from shared.services.responses import ResponseService
from shared.services.routing import RuleDirectory
from shared.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from shared.source_config import (
    InboxSource,
    OkGroupSource,
    RssSource,
    SourceConfig,
    TelegramSource,
    VkCallbackSource,
    VkWallSource,
)
from tests.builders import T0, make_incident, shipped_deadlines
from tests.fakes import (
    MemoryCursors,
    MemoryHealth,
    MemoryIncidents,
    MemoryMarkers,
    MemoryNotifications,
    MemoryPublisher,
    MemoryQuarantine,
    MemoryTokens,
)

# Personal data that belongs in Firestore and in the departments' notifications, never in a log line.
POST_TEXT = "Яма у дома 5 на Садовой, звоните Ивану Петровичу Сидорову +7 900 123-45-67"
AUTHOR_NAME = "Иван Петрович Сидоров"
INCIDENT_TEXT = "На ул. Советской огромная яма!"  # tests/builders.py's post


def fresh(prefix: str = "") -> str:
    return prefix + secrets.token_hex(16)


# --- capturing every way out ------------------------------------------------------------------------------


class Captured:
    """caplog's records at DEBUG and the JSON lines on stdout, read as often as needed."""

    def __init__(self, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
        self.caplog = caplog
        self.capsys = capsys
        self.stdout = ""

    def json_lines(self) -> list[dict[str, Any]]:
        self.stdout += self.capsys.readouterr().out
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def text(self) -> str:
        """Everything written: formatted records with tracebacks, raw messages and arguments, the JSON lines."""
        lines = self.json_lines()  # parses: every line on stdout is one JSON object
        records = [f"{r.getMessage()} {r.args!r} {getattr(r, 'json_fields', '')}" for r in self.caplog.records]
        return "\n".join([self.caplog.text, *records, self.stdout, json.dumps(lines, ensure_ascii=False)])


class CurrentStdout:
    """Writes to whatever ``sys.stdout`` is at the time, as the JSON handler does in a function."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def out(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Iterator[Captured]:
    """shared/logs.py's JSON handler on the (captured) stdout, and caplog, both at DEBUG."""
    root = logging.getLogger()
    saved = [h for h in root.handlers if isinstance(h.formatter, logs.JsonFormatter)]
    for handler in saved:
        root.removeHandler(handler)
    level = root.level
    caplog.set_level(logging.DEBUG)  # first: it restores the level it finds, which must be the original one
    logs.configure("DEBUG")
    ours = [h for h in root.handlers if isinstance(h.formatter, logs.JsonFormatter)]
    for handler in ours:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(CurrentStdout())  # pytest swaps sys.stdout between setup and call
    yield Captured(caplog, capsys)
    for handler in ours:
        root.removeHandler(handler)
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(level)


def assert_nowhere(values: list[str], *places: str) -> None:
    for value in values:
        for place in places:
            assert value not in place, f"{value!r} leaked into: {place[:2000]}"


# --- a tiny HTTP server on loopback -----------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


# status, content type, body; None: close the connection without an answer
Reply = tuple[int, str, bytes] | None


class Stub:
    """Answers every request with ``answer(seen)``, and remembers what it received."""

    def __init__(self, answer: Callable[[Seen], Reply]) -> None:
        self.seen: list[Seen] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen = Seen(self.command, self.path, dict(self.headers), body)
                stub.seen.append(seen)
                reply = answer(seen)
                if reply is None:
                    self.close_connection = True  # the client sees the server disconnect without an answer
                    return
                status, content_type, payload = reply
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def as_json(status: int, body: Any) -> Reply:
    return status, "application/json", json.dumps(body, ensure_ascii=False).encode()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- ingest: VK, Telegram, OK, RSS through the real SourceFactory --------------------------------------------


@dataclass
class SourceSecrets:
    vk: str
    telegram: str
    ok_token: str
    ok_secret: str
    feed_key: str

    def all(self) -> list[str]:
        return [self.vk, self.telegram, self.ok_token, self.ok_secret, self.feed_key]


def source_api(s: SourceSecrets) -> Callable[[Seen], Reply]:
    """VK, the Bot API, OK and a news feed in one server; each refuses in its own way, some echoing secrets."""

    def answer(seen: Seen) -> Reply:
        form = {k: v[0] for k, v in parse_qs(seen.body.decode()).items()}
        if seen.path == "/method/wall.get":
            if form.get("owner_id") == "-1":  # a readable post full of personal data, and one without a date
                good = {"id": 10, "owner_id": -1, "from_id": 501, "date": 1_780_000_000, "text": POST_TEXT}
                broken = {"id": 11, "owner_id": -1, "from_id": 502, "text": POST_TEXT}
                return as_json(200, {"response": {"count": 2, "items": [good, broken]}})
            if form.get("owner_id") == "-2":  # a revoked token, with VK echoing it back (as a careless proxy might)
                msg = f"User authorization failed: invalid access_token {form.get('access_token')}"
                return as_json(200, {"error": {"error_code": 5, "error_msg": msg}})
            return None  # -3: the connection drops
        if seen.path.endswith("/getUpdates"):
            return as_json(401, {"ok": False, "error_code": 401, "description": f"Unauthorized {seen.path}"})
        if seen.path == "/fb.do":
            msg = f"PARAM_SESSION_EXPIRED : Session expired for {form.get('access_token')}"
            return as_json(200, {"error_code": 102, "error_msg": msg, "error_data": None})
        if seen.path.startswith("/feed.xml"):
            rss = (
                '<?xml version="1.0"?><rss version="2.0"><channel><title>Новости</title>'
                f"<item><guid>n1</guid><title>{POST_TEXT}</title><author>{AUTHOR_NAME}</author>"
                "<link>https://news.example/n1</link></item></channel></rss>"
            )
            return 200, "application/rss+xml", rss.encode()
        return as_json(404, {})

    return answer


def test_ingest_failures_leave_no_token_and_no_post_text_in_logs_health_or_quarantine(out: Captured) -> None:
    s = SourceSecrets(fresh("vk1.a."), f"71{secrets.randbelow(10**8):08d}:AA{fresh()}", fresh(), fresh(), fresh())
    stub = Stub(source_api(s))
    settings = Settings(
        vk_api_base=stub.url,
        vk_token=s.vk,
        vk_requests_per_second=1000,
        telegram_api_base=stub.url,
        telegram_bot_token=s.telegram,
        ok_api_base=stub.url,
        ok_application_key="CBAFAKEKEY",
        ok_access_token=s.ok_token,
        ok_application_secret_key=s.ok_secret,
        source_retry_attempts=2,
        source_backoff_seconds=0.01,
        source_backoff_max_seconds=0.01,
    )
    logs.hide(*settings.secret_values())  # what bootstrap.settings() does
    sources: list[SourceConfig] = [
        VkWallSource(kind="vk_wall", id="vk-posts", owner_id=-1),
        VkWallSource(kind="vk_wall", id="vk-revoked", owner_id=-2),
        VkWallSource(kind="vk_wall", id="vk-dropped", owner_id=-3),
        TelegramSource(kind="telegram", id="tg"),
        OkGroupSource(kind="ok_group", id="ok", group_id="123"),
        RssSource.model_validate({"kind": "rss", "id": "news", "url": f"{stub.url}/feed.xml?key={s.feed_key}"}),
    ]
    health, quarantine, publisher = MemoryHealth(), MemoryQuarantine(), MemoryPublisher()
    with httpx.Client(timeout=2) as http:
        service = IngestService(
            SourceFactory(settings, http).watched(sources),
            MemoryCursors(),
            PostIntake(MemoryMarkers(), publisher, "posts", lambda: T0),
            quarantine,
            health,
            lambda: T0,
        )
        report = service.run()
    stub.close()

    # The secrets were used: VK's and OK's tokens in the POST body (not the URL), the bot token in the path.
    vk_calls = [c for c in stub.seen if c.path.startswith("/method/")]
    assert vk_calls and all(s.vk in c.body.decode() and s.vk not in c.path for c in vk_calls)
    assert any(s.telegram in c.path for c in stub.seen)
    assert any(s.ok_token in c.body.decode() for c in stub.seen if c.path == "/fb.do")
    assert any(s.feed_key in c.path for c in stub.seen)
    # ... and everything went as a failure should: one post of each readable source, one quarantined.
    statuses = {r.source_id: r.status for r in report.sources}
    assert statuses == {
        "vk-posts": "ok",
        "vk-revoked": "stopped",
        "vk-dropped": "failing",
        "tg": "stopped",
        "ok": "stopped",
        "news": "ok",
    }
    assert len(publisher.published) == 2 and len(quarantine.items) == 1
    assert "access_token ***" in str(health.items["vk-revoked"]["error"])  # the echo was there, masked

    records = json.dumps([health.items, [vars(r) for r in report.sources]], ensure_ascii=False, default=str)
    reasons = json.dumps([q.reason for q in quarantine.items.values()], ensure_ascii=False)
    logged = out.text()
    assert "HTTP Request: POST" in logged and "/bot***/getUpdates" in logged  # httpx logged the URL, masked
    assert {"source vk-revoked stopped", "ingested source"} <= {line["message"][:25] for line in out.json_lines()}
    assert_nowhere(s.all(), logged, records, reasons)
    assert_nowhere([POST_TEXT, AUTHOR_NAME, "Садовой"], logged, records, reasons)


# --- the channels: e-mail and webhooks --------------------------------------------------------------------


class SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True  # the sender may leave its connection open: closing the server must not wait for it

    def __init__(self, address: tuple[str, int], handler: type[socketserver.BaseRequestHandler]) -> None:
        super().__init__(address, handler)
        self.lines: list[str] = []


class SmtpRefusingLogin(socketserver.StreamRequestHandler):
    """An SMTP server that offers AUTH PLAIN and refuses every login."""

    def handle(self) -> None:
        assert isinstance(self.server, SmtpServer)
        lines = self.server.lines

        def say(text: str) -> None:
            self.wfile.write(text.encode() + b"\r\n")

        say("220 stub ESMTP")
        for raw in self.rfile:
            line = raw.decode().rstrip("\r\n")
            lines.append(line)
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                say("250-stub")
                say("250 AUTH PLAIN")
            elif verb == "AUTH":
                say("535 5.7.8 Authentication credentials invalid")
            elif verb == "QUIT":
                say("221 bye")
                return
            else:
                say("502 not here")


def department(**kw: Any) -> Department:
    return Department.model_validate({"id": "roads", "name": "Дороги", "municipality": "shakhty", **kw})


def test_an_smtp_login_failure_names_neither_the_password_nor_the_letter(out: Captured) -> None:
    password = fresh()
    server = SmtpServer(("127.0.0.1", 0), SmtpRefusingLogin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = Settings(
        smtp_host="127.0.0.1",
        smtp_port=server.server_address[1],
        smtp_security="none",
        smtp_user="otklik@region.example",
        smtp_password=password,
        http_timeout_seconds=5,
    )
    logs.hide(*settings.secret_values())
    notifications = MemoryNotifications()
    notifier = Notifier(notifications, {Channel.EMAIL: SmtpSender(settings)}, lambda: T0, 60)
    delivery = Delivery(department(email="roads@shakhty.example"), make_incident("1", IncidentStatus.ROUTED), "")
    outcome = notifier.send(delivery, Channel.EMAIL)
    server.shutdown()
    server.server_close()

    [auth] = [line for line in server.lines if line.startswith("AUTH PLAIN ")]
    assert password in base64.b64decode(auth.split()[-1]).decode()  # the password was sent
    assert outcome.status is NotificationStatus.FAILED and "535" in (outcome.error or "")
    [stored] = notifications.items.values()
    plain_blob = auth.split()[-1]  # base64("\0user\0password"): what a chatty server could echo
    assert_nowhere([password, plain_blob, INCIDENT_TEXT], out.text(), stored.last_error or "", outcome.error or "")


def test_webhook_failures_name_no_url_credentials_no_signing_secret_and_no_post_text(out: Captured) -> None:
    signing_secret, query_token, password = fresh(), fresh(), fresh()
    replies: list[Reply] = [
        as_json(503, {}),
        (400, "text/plain", f"bad request to /hook?token={query_token}".encode()),  # a receiver echoing the URL
    ]
    stub = Stub(lambda seen: replies.pop(0))
    hook = f"http://hooks:{password}@127.0.0.1:{stub.url.rsplit(':', 1)[1]}/hook?token={query_token}"
    dead = f"http://127.0.0.1:{closed_port()}/hook?token={query_token}"
    sender = WebhookSender(httpx.Client(timeout=2), True, {"roads": signing_secret, "parks": signing_secret}, 1)
    logs.hide(signing_secret)  # bootstrap registers every department's webhook secret
    notifications = MemoryNotifications()
    notifier = Notifier(notifications, {Channel.WEBHOOK: sender}, lambda: T0, 60)
    incident = make_incident("1", IncidentStatus.ROUTED)
    to_roads = Delivery(department(webhook_url=hook), incident, "")
    to_parks = Delivery(department(id="parks", webhook_url=dead), incident, "")

    first = notifier.send(to_roads, Channel.WEBHOOK)  # 503: will retry
    second = notifier.send(to_roads, Channel.WEBHOOK)  # 400 with the URL echoed: failed for good
    third = notifier.send(to_parks, Channel.WEBHOOK)  # connection refused
    stub.close()

    # The request carried the query token, the password (as Basic auth) and a valid signature.
    seen = stub.seen[-1]
    assert seen.path == f"/hook?token={query_token}"
    assert password in base64.b64decode(seen.headers["Authorization"].split()[-1]).decode()
    verify(signing_secret, seen.headers[TIMESTAMP_HEADER], seen.headers[SIGNATURE_HEADER], seen.body, time.time())
    assert INCIDENT_TEXT in seen.body.decode()
    assert (first.status, second.status, third.status) == (
        NotificationStatus.SENDING,
        NotificationStatus.FAILED,
        NotificationStatus.SENDING,
    )
    assert "HTTP 503" in (first.error or "") and "ConnectError" in (third.error or "")
    errors = json.dumps([n.last_error for n in notifications.items.values()], ensure_ascii=False)
    logged = out.text()
    assert "token=***" in logged and "token=***" in errors  # the URL is still named, its token masked
    assert any(line["message"].endswith("HTTP 503") for line in out.json_lines())  # the JSON line was written
    assert_nowhere(
        [query_token, password, signing_secret, INCIDENT_TEXT],
        logged,
        errors,
        first.error or "",
        second.error or "",
        third.error or "",
    )


# --- the public functions: inbox, vk_callback, department_api --------------------------------------------


def intake() -> tuple[PostIntake, MemoryPublisher]:
    publisher = MemoryPublisher()
    return PostIntake(MemoryMarkers(), publisher, "posts", lambda: T0), publisher


def test_the_inbox_refuses_wrong_tokens_without_logging_them_or_the_post(out: Captured) -> None:
    token, wrong = fresh(), fresh()
    post_intake, publisher = intake()
    quarantine = MemoryQuarantine()
    inbox = InboxService({"portal": InboxSource(kind="inbox", id="portal")}, token, post_intake, quarantine, lambda: T0)
    body = {"source_id": "portal", "post_id": "p1", "text": POST_TEXT, "author_id": AUTHOR_NAME}

    assert inbox.handle(f"Bearer {wrong}", body).status == 401
    assert inbox.handle("Bearer секретный-токен", body).status == 401  # not a 500 from compare_digest
    assert inbox.handle(None, body).status == 401 and not publisher.published and not quarantine.items
    bad = inbox.handle(f"Bearer {token}", {**body, "published_at": "yesterday"})
    assert bad.status == 400 and POST_TEXT not in bad.body
    assert inbox.handle(f"Bearer {token}", body).status == 202 and len(publisher.published) == 1

    [kept] = quarantine.items.values()
    assert POST_TEXT in kept.payload  # the payload is the evidence, kept in Firestore; the reason says why only
    assert_nowhere([token, wrong, POST_TEXT, AUTHOR_NAME], out.text(), kept.reason)


def test_vk_callback_refuses_a_wrong_secret_and_logs_only_the_community(out: Captured) -> None:
    secret, wrong = fresh(), fresh()
    post_intake, publisher = intake()
    quarantine = MemoryQuarantine()
    community = VkCallbackSource(kind="vk_callback", id="vk-push", group_id=42, confirmation_code="abc123")
    service = VkCallbackService({42: community}, secret, post_intake, MemoryMarkers(), quarantine, lambda: T0)
    post = {"id": 7, "owner_id": -42, "from_id": 501, "date": 1_780_000_000, "text": POST_TEXT}
    event = {"type": "wall_post_new", "group_id": 42, "event_id": "e1", "object": post}

    assert service.handle({**event, "secret": wrong}).status == 403
    assert service.handle({**event, "secret": "секрет"}).status == 403  # not a 500
    assert "wrong secret for community 42" in out.text() and not publisher.published
    broken = {**event, "event_id": "e2", "secret": secret, "object": {k: v for k, v in post.items() if k != "date"}}
    assert service.handle(broken).status == 200 and len(quarantine.items) == 1
    assert service.handle({**event, "secret": secret}).status == 200 and len(publisher.published) == 1

    [kept] = quarantine.items.values()
    assert secret not in kept.payload
    assert_nowhere([secret, wrong, POST_TEXT], out.text(), kept.reason)


def test_department_api_refuses_bad_tokens_and_other_departments_silently(out: Captured) -> None:
    link_key = fresh()
    routing = RoutingConfig(
        departments=(
            Department(id="coordinator", name="ЦУР", email="cur@region.example"),
            department(categories=("roads",), email="roads@x.example"),
            department(id="parks", categories=("landscaping",), email="parks@x.example"),
        ),
        fallback="coordinator",
    )
    incidents = MemoryIncidents()
    incident = make_incident("1", IncidentStatus.ROUTED, department_ids=("roads",), routed_at=T0)
    incidents.create(incident)
    service = ResponseService(
        incidents, RuleDirectory(routing), MemoryPublisher(), "incidents", lambda: T0, shipped_deadlines()
    )
    store = MemoryTokens()
    roads, parks = tokens.issue(store, "roads", "test", T0), tokens.issue(store, "parks", "test", T0)
    assert set(store.items) == {tokens.digest(roads), tokens.digest(parks)}  # only digests are stored
    links = AnswerLinks("https://api.example", link_key, 14)
    logs.hide(link_key)
    api = DepartmentApi(service, store, links, answer_page)

    def get(path: str, authorization: str | None = None) -> tuple[int, str]:
        headers = {"Authorization": authorization} if authorization else {}
        answer = api.handle(HttpRequest("GET", path, headers, b"", {}))
        return answer.status, answer.body

    path = f"/incidents/{incident.id}"
    wrong = "otk_" + fresh()
    assert get(path, f"Bearer {wrong}")[0] == 401
    assert get(path, "Bearer секрет")[0] == 401
    assert get(path)[0] == 401
    status, body = get(path, f"Bearer {parks}")  # a valid token, another department's incident
    assert status == 403 and INCIDENT_TEXT not in body
    status, body = get(path, f"Bearer {roads}")
    assert status == 200 and INCIDENT_TEXT in body
    forged = AnswerLinks("https://api.example", fresh(), 14).token(incident.id, "roads")
    for link in (forged, links.token(incident.id, "parks")):
        status, body = get(f"/answer/{link}")
        assert status == 403 and INCIDENT_TEXT not in body
    assert get(f"/answer/{links.token(incident.id, 'roads')}")[0] == 200

    assert_nowhere([roads, parks, wrong, link_key, INCIDENT_TEXT], out.text())


# --- what the services record and the JSON lines ---------------------------------------------------------


def test_a_message_given_up_on_is_quarantined_and_logged_without_credentials(out: Captured) -> None:
    token, password = fresh(), fresh()
    quarantine = MemoryQuarantine()
    handler = InboundHandler("route", quarantine, lambda: T0, timedelta(hours=1))
    message = InboundMessage("m1", b"{}", publish_time=T0 - timedelta(hours=2))

    def process(_: InboundMessage) -> str:
        raise TransientError(f"webhook https://u:{password}@hooks.example/h?token={token}: HTTP 503")

    assert handler.handle(message, process).status == "quarantined"
    [kept] = quarantine.items.values()
    assert "token=***" in kept.reason and "https://***@hooks.example" in kept.reason
    lines = out.json_lines()
    assert any("exception" in line and "token=***" in line["exception"] for line in lines)
    assert_nowhere([token, password], kept.reason, json.dumps(lines))


def test_bootstrap_hides_every_configured_secret_from_the_json_lines(
    out: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {
        name: fresh()
        for name in (
            "VK_TOKEN",
            "VK_REPLY_TOKEN",
            "VK_CALLBACK_SECRET",
            "TELEGRAM_BOT_TOKEN",
            "OK_ACCESS_TOKEN",
            "OK_APPLICATION_SECRET_KEY",
            "INBOX_TOKEN",
            "SMTP_PASSWORD",
            "LINK_SIGNING_KEY",
        )
    }
    webhook_secret = fresh()
    for name, value in values.items():
        monkeypatch.setenv(f"OTKLIK_{name}", value)
    monkeypatch.setenv("OTKLIK_WEBHOOK_SECRETS", json.dumps({"roads": webhook_secret}))
    settings = bootstrap.settings()
    assert settings.smtp_password is not None and settings.smtp_password.get_secret_value() == values["SMTP_PASSWORD"]
    every = [*values.values(), webhook_secret]

    library = logging.getLogger("some.library")  # not ours: whatever logs, the JSON line is masked
    library.warning("connected with %s", " ".join(every), extra={"json_fields": {"request": {"key": every[0]}}})
    try:
        raise RuntimeError(f"auth failed for {every[-1]}")
    except RuntimeError:
        library.exception("request failed")
    lines = out.json_lines()
    assert [line["message"] for line in lines[-2:]] == [
        f"connected with {' '.join(['***'] * len(every))}",
        "request failed",
    ]
    assert lines[-2]["request"] == {"key": "***"} and "auth failed for ***" in lines[-1]["exception"]
    assert_nowhere(every, json.dumps(lines, ensure_ascii=False))


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "POST https://api.telegram.org/bot123456:AAsecret-part/getUpdates",
            "POST https://api.telegram.org/bot***/getUpdates",
        ),
        (
            "hook https://u:p4ss@h.example/x?token=abc&b=1: HTTP 500",
            "hook https://***@h.example/x?token=***&b=***: HTTP 500",
        ),
        ("Authorization: Bearer otk_Zx12abcdefghijklmnop", "Authorization: Bearer ***"),
        ("token otk_Zx12abcdefghijklmnop leaked", "token otk_*** leaked"),
        ("form v=5.199&access_token=vk1.a.abc123def456", "form v=5.199&access_token=***"),
        ("missing or wrong bearer token", "missing or wrong bearer token"),  # prose stays
        ("HTTP 404 for https://news.example/rss.xml.", "HTTP 404 for https://news.example/rss.xml."),  # no secret
    ],
)
def test_redact_masks_credentials_in_urls_headers_and_known_token_shapes(text: str, masked: str) -> None:
    assert logs.redact(text) == masked
