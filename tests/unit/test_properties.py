"""Property-based tests (hypothesis) of every parser of outside input and of the functions' entry points (issue 8).

Whatever arrives — a Pub/Sub body, an Eventarc CloudEvent, a VK / Telegram / OK / RSS item, a VK Callback or inbox
request, a department's API call or answer-page form, a signed link, a webhook signature, the webhook-secrets
variable — the code returns a valid object or raises its documented error. Never another exception, never a 5xx
for a bad request, and bad Pub/Sub messages and source items are never dropped silently: they end in the
quarantine with a reason that names the cause.

Parser -> property:
- ``contracts.decode``: any bytes or JSON -> a contract or ``PermanentError``; a truncated valid body -> "not UTF-8
  JSON"; one field of a valid message replaced, removed or added -> a valid model or an error naming the contract;
  valid messages round-trip and their attributes agree with the body.
- ``InboundHandler``: ``PermanentError`` -> one quarantine record with the reason and a lossless payload; other errors
  are raised for redelivery while the message is young and quarantined once older than ``max_retry_age``.
- classify and route CloudEvent functions (``functions/*/main.py`` as deployed; Firestore replaced by the in-memory
  fakes through ``bootstrap``): any event returns normally; a bad envelope or body is quarantined with the reason
  of the step that refused it; a valid message reaches the service (the real classifier for classify).
- VK wall, Telegram ``getUpdates``, OK ``mediatopic.getTopics`` and RSS connectors over ``httpx.MockTransport``:
  each broken item becomes a ``Rejected`` with a reason (quarantined by ingest), a good one a post; fetch never
  raises for a bad item. RSS: any body is a feed or ``PermanentError``.
- vk_callback and inbox functions (a Flask request into ``main.py``, services on fakes): no 5xx for any body or
  header; bad objects quarantined with the reason; valid posts published once.
- department_api (``DepartmentApi`` on fakes, answer page included): any method, path, header, body or form gets a
  status below 500, and a refused request changes nothing.
- ``AnswerLinks.read``, ``signing.verify``, ``webhook.parse_secrets``: only the documented error; round trips;
  the secrets' error never quotes a secret.

Lone UTF-16 surrogates (JSON ``"\\ud800"``, half an emoji) in a post's text become U+FFFD in the domain model
(``SourceText``), so such a post is stored and published, not refused: test_a_lone_surrogate_is_made_storable.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import flask
import httpx
import pytest
from cloudevents.http import CloudEvent
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared import bootstrap, signing
from shared.adapters.ok import OkGroupConnector
from shared.adapters.politeness import Polite
from shared.adapters.rss import RssConnector
from shared.adapters.telegram import TelegramConnector
from shared.adapters.vk import VkClient, VkWallConnector
from shared.adapters.vk_callback import VkCallbackService
from shared.adapters.webhook import parse_secrets
from shared.answer_links import AnswerLinks, InvalidLink, LinkGrant
from shared.classifier.russian import RussianClassifier
from shared.config import RoutingConfig
from shared.contracts import (
    CONTRACTS,
    Contract,
    InboxPostV1,
    IncidentAnsweredV1,
    IncidentClassifiedV1,
    PostFetchedV1,
    decode,
)
from shared.domain.errors import PermanentError, TransientError
from shared.domain.models import Attachment, Department, Geo, IncidentStatus, Post, Priority
from shared.entrypoints.answer_page import answer_page
from shared.entrypoints.department_api import DepartmentApi, HttpRequest, HttpResponse
from shared.entrypoints.pubsub_event import MESSAGE_PUBLISHED
from shared.entrypoints.triage_page import TriagePages
from shared.ports import FetchResult
from shared.services import tokens
from shared.services.classify import ClassifyService
from shared.services.inbound import InboundHandler, InboundMessage, MessageOutcome
from shared.services.inbox import InboxService
from shared.services.ingest import PostIntake
from shared.services.reports import Names, build_report
from shared.services.responses import ResponseService
from shared.services.routing import RuleDirectory
from shared.services.triage import TriageService
from shared.source_config import (
    InboxSource,
    OkGroupSource,
    RssSource,
    TelegramSource,
    VkCallbackSource,
    VkWallSource,
)
from tests.builders import T0, make_incident, make_post, shipped_deadlines
from tests.fakes import MemoryFeedback, MemoryIncidents, MemoryMarkers, MemoryPublisher, MemoryQuarantine, MemoryTokens

REPO = Path(__file__).resolve().parents[2]
MAX_RETRY_AGE = timedelta(hours=1)
# Classifier and feedparser work make single examples slow now and then: timing is not what these tests check.
FAST = settings(max_examples=60, deadline=None)
SLOW = settings(max_examples=25, deadline=None)

# --- strategies ---------------------------------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
NON_EMPTY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=20)
# What an HTTP header can carry: WSGI hands headers over as latin-1 text; CR and LF would end the header.
HEADER_TEXT = st.text(st.characters(max_codepoint=0xFF, exclude_characters="\r\n"), max_size=40)
# Values that break naive parsers: huge numbers, dates without a UTC time, a digit string over Python's int limit.
EDGE_VALUES = st.sampled_from(
    [
        0,
        -1,
        2**31,
        2**63,
        10**20,
        -(10**20),
        1e300,
        -0.0,
        "",
        " ",
        "null",
        "NaN",
        "1e999",
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
        "2026-11-23T09:00:00",
        "1" * 5_000,
        "я" * 20_001,
        "\x00",
        "🕳️" * 3,
    ]
)


def json_values(allow_infinity: bool = True) -> st.SearchStrategy[Any]:
    # Python's json reads NaN, Infinity and 1e400 (= inf), so a parsed body can hold them: floats() keeps them.
    numbers = st.integers() | st.floats(allow_infinity=allow_infinity)
    return st.recursive(
        st.none() | st.booleans() | numbers | TEXT | EDGE_VALUES,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
        max_leaves=12,
    )


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXT | EDGE_VALUES
JSON_VALUES = json_values()
UTC_TIMES = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=3)), timezone(timedelta(hours=-9, minutes=-30))]),
)
# Stack overflows and int-conversion limits are not JSON syntax errors: they need explicit examples.
DEEP_JSON = b"[" * 3_000
LONG_NUMBER = b"1" * 5_000


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key and list index inside ``value``, nested ones included."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key))


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any], values: st.SearchStrategy[Any] = JSON_VALUES) -> dict[str, Any]:
    """``valid`` with one field anywhere in it replaced by one of ``values``, removed, or one unknown key added."""
    obj = copy.deepcopy(valid)
    paths = list(_paths(obj))
    action = draw(st.sampled_from(["replace", "remove", "add"])) if paths else "add"
    if action == "add":
        containers = [()] + [p for p in paths if isinstance(_at(obj, p), dict)]
        _at(obj, draw(st.sampled_from(containers)))[draw(TEXT)] = draw(values)
        return obj
    path = draw(st.sampled_from(paths))
    parent = _at(obj, path[:-1])
    if action == "remove":
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(values)
    return obj


def _at(obj: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def as_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


@st.composite
def truncated(draw: st.DrawFn, data: bytes) -> bytes:
    return data[: draw(st.integers(0, len(data) - 1))]


# --- contracts.decode ---------------------------------------------------------------------------------------

GEO = st.builds(Geo, lat=st.floats(-90, 90), lon=st.floats(-180, 180))
POSTS = st.builds(
    Post,
    source=NON_EMPTY_TEXT,
    community=NON_EMPTY_TEXT,
    post_id=NON_EMPTY_TEXT,
    author_id=st.none() | TEXT,
    text=TEXT | st.just("я" * 20_001),
    published_at=UTC_TIMES,
    url=TEXT,
    geo=st.none() | GEO,
    attachments=st.lists(st.builds(Attachment, kind=TEXT, url=TEXT), max_size=3).map(tuple),
    parent_post_id=st.none() | TEXT,
    source_id=st.none() | TEXT,
    municipality_hint=st.none() | TEXT,
)
POST_FETCHED = st.builds(PostFetchedV1, post=POSTS, fetched_at=UTC_TIMES)
INCIDENT_CLASSIFIED = st.builds(
    IncidentClassifiedV1,
    incident_id=TEXT,
    category=TEXT,
    priority=st.sampled_from(Priority),
    danger=st.booleans(),
    municipality=st.none() | TEXT,
    classified_at=UTC_TIMES,
)
INCIDENT_ANSWERED = st.builds(
    IncidentAnsweredV1, incident_id=TEXT, answer_index=st.integers(0, 2**63), answered_at=UTC_TIMES
)
CONSUMED_CONTRACTS = POST_FETCHED | INCIDENT_CLASSIFIED | INCIDENT_ANSWERED

VALID_POST_FETCHED = json.loads(
    PostFetchedV1(
        post=make_post(
            geo=Geo(lat=47.7, lon=40.2),
            attachments=(Attachment(kind="photo", url="https://sun.userapi.test/yama.jpg"),),
            parent_post_id="7",
        ),
        fetched_at=T0,
    ).to_bytes()
)
VALID_ANSWERED = json.loads(IncidentAnsweredV1(incident_id="i-1", answer_index=0, answered_at=T0).to_bytes())


# What decode says when it refuses a body: every refusal must be one of these, so the quarantine names the cause.
BODY_REASONS = (
    "message body is not UTF-8 JSON",
    "message body is a JSON",
    "unexpected message schema",
    " is invalid: ",
)


def decoded_or_refused(data: bytes, expected: tuple[type[Contract], ...]) -> Contract | PermanentError:
    """decode's result, or its PermanentError; any other exception fails the test."""
    try:
        return decode(data, expected)
    except PermanentError as exc:
        assert str(exc).strip(), "a refusal must say why"
        return exc


@FAST
@given(data=st.binary(max_size=300) | JSON_VALUES.map(as_json))
@example(data=DEEP_JSON)
@example(data=LONG_NUMBER)
@example(data=b'{"schema": "otklik.post.fetched", "version": 1, "post": NaN}')
def test_decode_takes_any_bytes_and_refuses_with_a_permanent_error(data: bytes) -> None:
    result = decoded_or_refused(data, CONTRACTS)
    if isinstance(result, PermanentError):
        assert any(phrase in str(result) for phrase in BODY_REASONS), result


@FAST
@given(obj=mutated(VALID_POST_FETCHED) | mutated(VALID_ANSWERED))
@example(obj={**VALID_ANSWERED, "answered_at": "0001-01-01T00:00:00+05:00"})
@example(obj={**VALID_ANSWERED, "answered_at": "9999-12-31T23:59:59-05:00"})
def test_a_message_with_one_field_broken_is_valid_or_refused_naming_the_contract(obj: dict[str, Any]) -> None:
    result = decoded_or_refused(as_json(obj), CONTRACTS)
    if isinstance(result, PermanentError):
        reason = str(result)
        assert reason.startswith(f"{obj.get('schema')} v{obj.get('version')} is invalid: ") or reason.startswith(
            "unexpected message schema"
        ), reason
    else:
        # Accepted only if it is what the contract itself validates to (an unknown key is never accepted).
        assert result == type(result).model_validate(obj)


@FAST
@given(message=CONSUMED_CONTRACTS, data=st.data())
def test_a_truncated_message_is_refused_as_not_json(message: Contract, data: st.DataObject) -> None:
    body = data.draw(truncated(message.to_bytes()))
    result = decoded_or_refused(body, CONTRACTS)
    assert isinstance(result, PermanentError)
    assert "not UTF-8 JSON" in str(result)


@FAST
@given(message=CONSUMED_CONTRACTS)
def test_valid_messages_round_trip_and_their_attributes_match_the_body(message: Contract) -> None:
    body = message.to_bytes()
    assert decode(body, CONTRACTS) == message
    wire = json.loads(body)
    assert message.attributes() == {"schema": wire["schema"], "version": str(wire["version"])}


@FAST
@given(version=st.sampled_from([True, 1.0, "1", 0, 2, None]) | JSON_VALUES.filter(lambda v: v != 1))
def test_only_the_integer_version_is_accepted(version: Any) -> None:
    result = decoded_or_refused(as_json({**VALID_ANSWERED, "version": version}), CONTRACTS)
    assert isinstance(result, PermanentError)
    assert str(result).startswith("unexpected message schema 'otklik.incident.answered' version")


# --- InboundHandler -----------------------------------------------------------------------------------------


def make_handler(stage: str = "classify") -> tuple[InboundHandler, MemoryQuarantine]:
    quarantine = MemoryQuarantine()
    return InboundHandler(stage, quarantine, lambda: T0, MAX_RETRY_AGE), quarantine


def raising(exc: Exception) -> Callable[[Any], str]:
    def process(message: Any) -> str:
        raise exc

    return process


def payload_bytes(payload: str) -> bytes:
    """The message body as the quarantine record keeps it: UTF-8 text, or ``base64:`` for binary bodies."""
    if payload.startswith("base64:"):
        return base64.b64decode(payload.removeprefix("base64:"))
    return payload.encode("utf-8")


@FAST
@given(
    data=st.binary(max_size=200) | TEXT.map(str.encode),
    message_id=TEXT,
    attributes=st.dictionaries(TEXT, TEXT, max_size=3),
    reason=NON_EMPTY_TEXT.filter(str.strip),
)
def test_a_permanent_error_is_quarantined_with_its_reason_and_the_whole_payload(
    data: bytes, message_id: str, attributes: dict[str, str], reason: str
) -> None:
    handler, quarantine = make_handler()
    message = InboundMessage(message_id, data, attributes, T0)

    outcome = handler.handle(message, raising(PermanentError(reason)))

    assert outcome == MessageOutcome("quarantined", reason)
    [record] = quarantine.items.values()
    assert (record.stage, record.reason, record.attributes) == ("classify", reason, attributes)
    assert payload_bytes(record.payload) == data


@FAST
@given(
    published_ago=st.none() | st.timedeltas(min_value=timedelta(days=-2), max_value=timedelta(days=400)),
    error=st.sampled_from([TransientError("Firestore busy"), RuntimeError("bug"), OverflowError("too big")]),
)
def test_other_errors_are_retried_while_young_and_quarantined_once_too_old(
    published_ago: timedelta | None, error: Exception
) -> None:
    handler, quarantine = make_handler()
    message = InboundMessage("m-1", b"{}", {}, None if published_ago is None else T0 - published_ago)
    if published_ago is None or published_ago <= MAX_RETRY_AGE:
        with pytest.raises(type(error)):
            handler.handle(message, raising(error))
        assert quarantine.items == {}
    else:
        outcome = handler.handle(message, raising(error))
        assert outcome.status == "quarantined"
        [record] = quarantine.items.values()
        assert record.reason.startswith("still failing after ")
        assert f"{type(error).__name__}: {error}" in record.reason


# --- the classify and route CloudEvent functions --------------------------------------------------------------

ENVELOPE_REASONS = (
    "unexpected event type",
    "event data is not JSON",
    "no Pub/Sub 'message' object",
    "message attributes are",
    "message data is not base64",
)


@cache
def function_module(name: str) -> ModuleType:
    """``functions/<name>/main.py`` exactly as deployed (every function's module is called ``main``)."""
    spec = importlib.util.spec_from_file_location(f"otklik_function_{name}", REPO / "functions" / name / "main.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def classifier() -> RussianClassifier:
    return RussianClassifier.load()


def cloud_event(data: Any, event_type: str = MESSAGE_PUBLISHED, event_id: str = "event-1") -> CloudEvent:
    attributes = {"id": event_id, "type": event_type, "source": "//pubsub.googleapis.com/projects/p/topics/t"}
    return CloudEvent(attributes, data)


def eventarc_data(body: bytes, **message: Any) -> dict[str, Any]:
    """The ``data`` of a ``messagePublished`` CloudEvent as Eventarc delivers it."""
    fields = {
        "data": base64.b64encode(body).decode("ascii"),
        "attributes": {"schema": "otklik.post.fetched", "version": "1"},
        "messageId": "9001",
        "publishTime": "2026-11-23T08:59:58.123Z",
    }
    return {"message": {**fields, **message}, "subscription": "projects/p/subscriptions/eventarc-classify"}


class ClassifyRig:
    """The classify function with the real classifier and service, Firestore and Pub/Sub replaced by fakes."""

    def __init__(self) -> None:
        self.quarantine = MemoryQuarantine()
        self.incidents = MemoryIncidents()
        self.handler = InboundHandler("classify", self.quarantine, lambda: T0, MAX_RETRY_AGE)
        self.service = ClassifyService(classifier(), self.incidents, MemoryPublisher(), "incidents", lambda: T0)

    def __call__(self, event: CloudEvent) -> None:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(bootstrap, "inbound", self._inbound)
            patch.setattr(bootstrap, "classify_service", lambda: self.service)
            # Raising here would make Pub/Sub redeliver: every property below needs it to return.
            function_module("classify").classify(event)

    def _inbound(self, stage: str) -> InboundHandler:
        assert stage == "classify"
        return self.handler

    def single_outcome(self) -> str:
        """Exactly one thing happened to the event: an incident, or one quarantine record."""
        assert len(self.incidents.items) + len(self.quarantine.items) == 1
        return "handled" if self.incidents.items else "quarantined"


EVENT_DATA = (
    JSON_VALUES
    | st.binary(max_size=100)
    | TEXT
    | mutated(eventarc_data(PostFetchedV1(post=make_post(), fetched_at=T0).to_bytes()))
)


@FAST
@given(data=EVENT_DATA)
@example(data=DEEP_JSON)
@example(data=DEEP_JSON.decode())
@example(data=LONG_NUMBER)
def test_classify_acknowledges_any_event_and_quarantines_a_bad_one_with_the_reason(data: Any) -> None:
    rig = ClassifyRig()
    rig(cloud_event(data))
    if rig.single_outcome() == "quarantined":
        [record] = rig.quarantine.items.values()
        assert record.stage == "classify" and record.id.startswith("classify.")
        assert any(phrase in record.reason for phrase in ENVELOPE_REASONS + BODY_REASONS), record.reason


@FAST
@given(
    body=(
        st.binary(max_size=100)
        | JSON_VALUES.map(as_json)
        | mutated(VALID_POST_FETCHED).map(as_json)
        | truncated(as_json(VALID_POST_FETCHED))
    ),
    attributes=st.dictionaries(TEXT, JSON_SCALARS, max_size=3),
    message_id=TEXT,
    publish_time=st.none() | TEXT | EDGE_VALUES | UTC_TIMES.map(datetime.isoformat),
)
@example(body=DEEP_JSON, attributes={}, message_id="m", publish_time=None)
def test_classify_quarantines_a_bad_body_with_its_payload_attributes_and_reason(
    body: bytes, attributes: dict[str, Any], message_id: str, publish_time: Any
) -> None:
    rig = ClassifyRig()
    data = eventarc_data(body, attributes=attributes, messageId=message_id, publishTime=publish_time)

    rig(cloud_event(data))

    if rig.single_outcome() == "handled":
        [incident] = rig.incidents.items.values()
        assert incident.id == PostFetchedV1.model_validate_json(body).post.incident_id
        return
    [record] = rig.quarantine.items.values()
    assert any(phrase in record.reason for phrase in BODY_REASONS), record.reason
    assert payload_bytes(record.payload) == body
    assert record.attributes == {str(k): str(v) for k, v in attributes.items()}
    assert record.id == f"classify.{message_id or 'event-1'}"


@SLOW
@given(message=POST_FETCHED)
def test_classify_handles_any_valid_post_whatever_its_text(message: PostFetchedV1) -> None:
    rig = ClassifyRig()
    rig(cloud_event(eventarc_data(message.to_bytes())))
    assert rig.single_outcome() == "handled"
    [incident] = rig.incidents.items.values()
    assert incident.post == message.post


@FAST
@given(event_type=TEXT.filter(lambda t: t != MESSAGE_PUBLISHED), event_id=NON_EMPTY_TEXT, data=EVENT_DATA)
def test_an_event_of_another_type_is_quarantined_under_its_event_id(event_type: str, event_id: str, data: Any) -> None:
    rig = ClassifyRig()
    rig(cloud_event(data, event_type=event_type, event_id=event_id))
    assert rig.single_outcome() == "quarantined"
    assert rig.quarantine.items[f"classify.{event_id}"].reason.startswith("unexpected event type")


class RecordingRoute:
    """Stands in for RouteService: the route function's business is not what is tested here, its input is."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.seen: list[Contract] = []
        self.fail = fail

    def handle(self, message: IncidentClassifiedV1) -> str:
        return self._record(message)

    def handle_answered(self, message: IncidentAnsweredV1) -> str:
        return self._record(message)

    def _record(self, message: Contract) -> str:
        if self.fail is not None:
            raise self.fail
        self.seen.append(message)
        return "routed"


@contextmanager
def route_function(route: RecordingRoute) -> Iterator[tuple[Callable[[CloudEvent], None], MemoryQuarantine]]:
    handler, quarantine = make_handler("route")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bootstrap, "inbound", lambda stage: handler)
        patch.setattr(bootstrap, "route_service", lambda: route)
        yield function_module("route").route, quarantine


@FAST
@given(message=CONSUMED_CONTRACTS, encode=st.sampled_from(["object", "text", "bytes"]))
def test_route_takes_its_own_contracts_and_quarantines_the_others(message: Contract, encode: str) -> None:
    data: Any = eventarc_data(message.to_bytes(), attributes=message.attributes())
    # functions-framework hands the data over parsed, or as text / bytes when the request was not typed as JSON.
    data = {"object": data, "text": json.dumps(data), "bytes": as_json(data)}[encode]
    route = RecordingRoute()
    with route_function(route) as (function, quarantine):
        function(cloud_event(data))
    if isinstance(message, IncidentClassifiedV1 | IncidentAnsweredV1):
        assert (route.seen, quarantine.items) == ([message], {})
    else:
        assert route.seen == []
        [record] = quarantine.items.values()
        assert record.reason.startswith("unexpected message schema 'otklik.post.fetched' version 1")


@FAST
@given(published_ago=st.none() | st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)))
def test_route_retries_a_failing_message_until_it_is_too_old(published_ago: timedelta | None) -> None:
    message = IncidentClassifiedV1(
        incident_id="i-1", category="roads", priority=Priority.NORMAL, danger=False, municipality=None, classified_at=T0
    )
    publish_time = None if published_ago is None else (T0 - published_ago).isoformat().replace("+00:00", "Z")
    event = cloud_event(eventarc_data(message.to_bytes(), publishTime=publish_time))
    with route_function(RecordingRoute(fail=TransientError("Firestore busy"))) as (function, quarantine):
        if published_ago is None or published_ago <= MAX_RETRY_AGE:
            with pytest.raises(TransientError):
                function(event)
            assert quarantine.items == {}
        else:
            function(event)
            [record] = quarantine.items.values()
            assert "TransientError: Firestore busy" in record.reason


# --- source connectors: item parsers --------------------------------------------------------------------------


def mock_client(content: bytes, content_type: str = "application/json") -> httpx.Client:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=content, headers={"Content-Type": content_type})

    return httpx.Client(transport=httpx.MockTransport(answer))


def polite() -> Polite:
    return Polite(None, attempts=1, sleep=lambda seconds: None)


def assert_accounted(result: FetchResult, expected: int, reason_prefix: str | tuple[str, ...]) -> None:
    """Every item the source returned is a post or a rejected item with a reason: none vanished."""
    assert len(result.posts) + len(result.rejected) == expected
    for bad in result.rejected:
        assert bad.reason.startswith(reason_prefix), bad.reason
        assert bad.key and bad.payload


VK_PHOTO = {
    "type": "photo",
    "photo": {
        "sizes": [
            {"width": 130, "height": 87, "url": "https://sun.userapi.test/s.jpg"},
            {"width": 1280, "height": 853, "url": "https://sun.userapi.test/x.jpg"},
        ]
    },
}
VK_POST = {
    "id": 4821,
    "owner_id": -210000001,
    "from_id": -210000001,
    "signer_id": 1001,
    "date": 1795424400,
    "text": "На ул. Советской огромная яма!",
    "geo": {"type": "point", "coordinates": "47.7091 40.2144"},
    "attachments": [
        VK_PHOTO,
        {"type": "link", "link": {"url": "https://shakhty.test/news/1"}},
        {"type": "video", "video": {"owner_id": -210000001, "id": 456}},
    ],
}
VK_COMMENT = {
    "id": 77,
    "owner_id": -210000001,
    "post_id": 4821,
    "from_id": 1001,
    "date": 1795424500,
    "text": "Когда засыплют?",
    "attachments": [VK_PHOTO],
}


def vk_wall_fetch(items: list[Any], ascii_only: bool = False) -> FetchResult:
    """``ascii_only``: the body as VK may send it, every non-ASCII character a \\u escape (half an emoji too)."""
    config = VkWallSource.model_validate(
        {"id": "vk-test", "kind": "vk_wall", "owner_id": -210000001, "municipality": "shakhty"}
    )
    page = {"response": {"count": len(items), "items": items}}
    http = mock_client(json.dumps(page).encode() if ascii_only else as_json(page))
    return VkWallConnector(config, VkClient(http, "https://api.vk.test", "vk-token", "5.199", polite())).fetch(None)


@FAST
@given(item=mutated(VK_POST, JSON_VALUES))
@example(item={**VK_POST, "date": 10**20})
@example(item={**VK_POST, "geo": "47.7 40.2"})
@example(item={**VK_POST, "attachments": [1]})
def test_a_broken_vk_post_is_rejected_with_a_reason_and_the_fetch_goes_on(item: dict[str, Any]) -> None:
    result = vk_wall_fetch([item])
    assert_accounted(result, 1, "unreadable VK item: ")


# --- Telegram

TG_UPDATE = {
    "update_id": 500,
    "message": {
        "message_id": 42,
        "date": 1795424400,
        "chat": {"id": -1001700000001, "type": "supergroup", "username": "podslushano_shakhty", "title": "Шахты"},
        "from": {"id": 1001, "is_bot": False, "first_name": "Ира"},
        "text": "Во дворе прорвало трубу",
        "reply_to_message": {"message_id": 41},
        "location": {"latitude": 47.7, "longitude": 40.2},
        "photo": [{"file_id": "AgAD1", "width": 90, "height": 90}, {"file_id": "AgAD2", "width": 1280, "height": 960}],
        "document": {"file_id": "BQAD"},
    },
}


def must_become_post_or_rejected(update: Any) -> bool:
    """What the connector may not skip: anything that is not an update, and a message with text. (Other update
    kinds and messages without text — joins, stickers — are skipped by design.)"""
    if not isinstance(update, dict) or type(update.get("update_id")) is not int:
        return True
    message = update.get("message", update.get("channel_post"))
    if message is None:
        return False
    if not isinstance(message, dict):
        return True
    sender = message.get("from")
    if isinstance(sender, dict) and sender.get("is_bot") is True and "sender_chat" not in message:
        return False  # another bot's message: skipped as not a resident's
    text = message.get("text", message.get("caption"))
    return isinstance(text, str) and bool(text.strip())


@FAST
@given(updates=st.lists(mutated(TG_UPDATE) | JSON_VALUES, max_size=4))
@example(updates=[{**TG_UPDATE, "message": {**TG_UPDATE["message"], "date": 10**20}}])
def test_telegram_updates_become_posts_or_rejected_items_never_an_error(updates: list[Any]) -> None:
    config = TelegramSource.model_validate({"id": "tg-test", "kind": "telegram", "municipality": "shakhty"})
    http = mock_client(as_json({"ok": True, "result": updates}))
    result = TelegramConnector(config, http, "https://api.telegram.test", "7100:token", polite()).fetch(None)

    assert len(result.posts) + len(result.rejected) >= sum(must_become_post_or_rejected(u) for u in updates)
    assert len(result.posts) + len(result.rejected) <= len(updates)
    assert len(result.posts) + len(result.rejected) + len(result.skipped) == len(updates)  # each accounted for
    for bad in result.rejected:
        assert bad.reason.startswith("unreadable Telegram update: "), bad.reason
    # The cursor moves past every update with an id, read or not: a broken one is not fetched forever.
    ids = [u["update_id"] for u in updates if isinstance(u, dict) and type(u.get("update_id")) is int]
    assert result.cursor == ({"update_id": max(ids)} if ids else {})


# --- OK

OK_TOPIC = {
    "id": "155000000001",
    "created_ms": 1795424400123,
    "author_ref": "user:575662066926",
    "media": [
        {"type": "text", "text": "Не вывозят мусор"},
        {"type": "text", "text_tokens": [{"text": "третью "}, {"text": "неделю"}]},
        {"type": "link", "url": "https://ok.ru/x"},
        {"type": "poll", "question": "Когда вывезут?"},
    ],
}


@FAST
@given(topic=mutated(OK_TOPIC, JSON_VALUES))
@example(topic={**OK_TOPIC, "created_ms": 10**20})
@example(topic={**OK_TOPIC, "media": ["text"]})
def test_a_broken_ok_topic_is_rejected_with_a_reason_and_the_fetch_goes_on(topic: dict[str, Any]) -> None:
    assert_accounted(ok_fetch([topic]), 1, "unreadable OK topic: ")


def ok_fetch(topics: list[Any]) -> FetchResult:
    config = OkGroupSource.model_validate({"id": "ok-test", "kind": "ok_group", "group_id": "53038939046008"})
    http = mock_client(as_json({"media_topics": topics, "has_more": False}))
    return OkGroupConnector(config, http, "https://api.ok.test", "app-key", "token", "secret", polite()).fetch(None)


# --- RSS

FEED_URL = "https://shakhty-vesti.test/rss.xml"
RSS_REASONS = ("unreadable feed entry: ", "feed entry has neither a link nor any text")
# feedparser warns whenever ``updated`` is read on an entry that has only ``published``; rss._entry_id does that.
QUIET_FEEDPARSER = pytest.mark.filterwarnings("ignore:To avoid breaking existing software:DeprecationWarning")
# Text XML 1.0 can carry (no control characters), so a generated item is well-formed and must be one entry.
XML_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Co")), max_size=30)
RSS_FIELDS = XML_TEXT | EDGE_VALUES.map(str).filter(lambda s: "\x00" not in s) | UTC_TIMES.map(datetime.isoformat)


def rss_connector(body: bytes) -> RssConnector:
    config = RssSource.model_validate({"id": "rss-test", "kind": "rss", "url": FEED_URL, "municipality": "shakhty"})
    return RssConnector(config, mock_client(body, "application/rss+xml"), polite(), clock=lambda: T0)


@st.composite
def rss_items(draw: st.DrawFn) -> bytes:
    """One RSS item whose fields are anything at all (escaped so the document stays well-formed)."""
    guid, title, link, description, pub_date, point, enclosure = (draw(RSS_FIELDS) for _ in range(7))
    item = (
        f"<item><guid>{escape(guid)}</guid><title>{escape(title)}</title><link>{escape(link)}</link>"
        f"<description>{escape(description)}</description><pubDate>{escape(pub_date)}</pubDate>"
        f"<georss:point>{escape(point)}</georss:point>"
        f"<enclosure url={quoteattr(enclosure)} type={quoteattr(draw(XML_TEXT))}/></item>"
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" xmlns:georss="http://www.georss.org/georss">'
        f"<channel><title>Шахтинские вести</title>{item}</channel></rss>"
    ).encode()


@st.composite
def truncated_feeds(draw: st.DrawFn) -> bytes:
    return draw(truncated(draw(rss_items())))


@QUIET_FEEDPARSER
@SLOW
@given(feed=rss_items())
def test_an_rss_item_with_any_field_values_is_a_post_or_rejected(feed: bytes) -> None:
    assert_accounted(rss_connector(feed).fetch(None), 1, RSS_REASONS)


@QUIET_FEEDPARSER
@SLOW
@given(body=st.binary(max_size=200) | XML_TEXT.map(str.encode) | truncated_feeds())
def test_any_rss_body_is_a_feed_or_a_permanent_error(body: bytes) -> None:
    try:
        result = rss_connector(body).fetch(None)
    except PermanentError as exc:
        assert str(exc).startswith(f"not an RSS/Atom feed: {FEED_URL}: ")
        return
    for bad in result.rejected:
        assert bad.reason.startswith(RSS_REASONS), bad.reason


# --- the vk_callback and inbox HTTP functions ------------------------------------------------------------------

FLASK = flask.Flask("otklik-properties")
GROUP_ID = 210000001
CALLBACK_SECRET = "vk-callback-secret"
INBOX_TOKEN = "inbox-token-1"
SERVER_ERROR = 500


def call_http_function(name: str, body: bytes, headers: dict[str, str] | None = None) -> flask.Response:
    function = getattr(function_module(name), name)
    with FLASK.test_request_context(
        "/", method="POST", data=body, headers=headers or {}, content_type="application/json"
    ):
        response: flask.Response = function(flask.request)
    return response


class CallbackRig:
    def __init__(self) -> None:
        self.publisher = MemoryPublisher()
        self.quarantine = MemoryQuarantine()
        community = VkCallbackSource(
            id="vk-cb", kind="vk_callback", group_id=GROUP_ID, confirmation_code="c0nf1rm", municipality="shakhty"
        )
        intake = PostIntake(MemoryMarkers(), self.publisher, "posts", lambda: T0)
        self.service = VkCallbackService(
            {GROUP_ID: community}, CALLBACK_SECRET, intake, MemoryMarkers(), self.quarantine, lambda: T0
        )

    def post(self, body: bytes) -> flask.Response:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(bootstrap, "vk_callback_service", lambda: self.service)
            return call_http_function("vk_callback", body)


def callback_event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": kind,
        "group_id": GROUP_ID,
        "secret": CALLBACK_SECRET,
        "event_id": "ev-1",
        "v": "5.199",
        "object": obj,
    }


@FAST
@given(
    body=(
        st.binary(max_size=100)
        | JSON_VALUES.map(as_json)
        | mutated(callback_event("wall_post_new", VK_POST), JSON_VALUES).map(as_json)
        | mutated({"type": "confirmation", "group_id": GROUP_ID}).map(as_json)
    )
)
@example(body=as_json({**callback_event("wall_post_new", VK_POST), "secret": "секрет"}))
def test_vk_callback_answers_any_body_without_a_server_error(body: bytes) -> None:
    response = CallbackRig().post(body)
    assert response.status_code in (200, 400, 403), response.get_data(as_text=True)


@FAST
@given(
    kind_and_object=st.sampled_from([("wall_post_new", VK_POST), ("wall_reply_new", VK_COMMENT)]).flatmap(
        lambda pair: st.tuples(st.just(pair[0]), mutated(pair[1], JSON_VALUES) | JSON_VALUES)
    )
)
@example(kind_and_object=("wall_post_new", {**VK_POST, "date": 10**20}))
@example(kind_and_object=("wall_reply_new", {**VK_COMMENT, "attachments": {"photo": 1}}))
def test_a_vk_callback_post_is_published_or_quarantined_with_the_reason(kind_and_object: tuple[str, Any]) -> None:
    kind, obj = kind_and_object
    rig = CallbackRig()

    response = rig.post(as_json(callback_event(kind, obj)))

    # VK gets "ok" either way: retrying the same garbage would not help, it is kept with its reason instead.
    assert (response.status_code, response.get_data(as_text=True)) == (200, "ok")
    assert len(rig.publisher.published) + len(rig.quarantine.items) == 1
    for record in rig.quarantine.items.values():
        assert record.reason.startswith(f"unreadable {kind} object: "), record.reason
        assert CALLBACK_SECRET not in record.payload


# 1e400 is valid JSON and reads as inf, and int(inf) raises OverflowError, not ValueError.
@pytest.mark.parametrize(
    "fetch",
    [
        pytest.param(lambda: vk_wall_fetch([{**VK_POST, "owner_id": float("inf")}]), id="vk-wall"),
        pytest.param(lambda: vk_wall_fetch([{**VK_POST, "id": float("inf")}]), id="vk-wall-id"),
        pytest.param(lambda: ok_fetch([{**OK_TOPIC, "created_ms": float("inf")}]), id="ok"),
    ],
)
def test_an_infinite_number_in_an_item_is_rejected_not_raised(fetch: Callable[[], FetchResult]) -> None:
    result = fetch()
    assert not result.posts
    [rejected] = result.rejected
    assert rejected.reason


def test_an_infinite_number_in_a_callback_event_is_quarantined_and_answered_ok() -> None:
    rig = CallbackRig()
    response = rig.post(as_json(callback_event("wall_post_new", {**VK_POST, "owner_id": float("inf")})))
    assert (response.status_code, response.get_data(as_text=True)) == (200, "ok")
    assert not rig.publisher.published
    [record] = rig.quarantine.items.values()
    assert record.reason.startswith("unreadable wall_post_new object: "), record.reason


INBOX_BODY = {
    "source_id": "portal",
    "post_id": "form-1",
    "text": "Во дворе дома 5 не горит фонарь",
    "published_at": "2026-11-23T09:00:00+03:00",
    "url": "https://portal.test/1",
    "author_id": "u1",
    "geo": {"lat": 47.7, "lon": 40.2},
    "attachments": ["https://portal.test/p.jpg"],
    "municipality": "shakhty",
}


class InboxRig:
    def __init__(self) -> None:
        self.publisher = MemoryPublisher()
        self.quarantine = MemoryQuarantine()
        source = InboxSource(id="portal", kind="inbox", municipality="shakhty")
        intake = PostIntake(MemoryMarkers(), self.publisher, "posts", lambda: T0)
        self.service = InboxService({"portal": source}, INBOX_TOKEN, intake, self.quarantine, lambda: T0)

    def post(self, body: bytes, authorization: str = f"Bearer {INBOX_TOKEN}") -> flask.Response:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(bootstrap, "inbox_service", lambda: self.service)
            return call_http_function("inbox", body, {"Authorization": authorization})


@FAST
@given(body=st.binary(max_size=100) | JSON_VALUES.map(as_json) | mutated(INBOX_BODY).map(as_json))
@example(body=as_json({**INBOX_BODY, "published_at": "0001-01-01T00:00:00+05:00"}))
@example(body=as_json({**INBOX_BODY, "text": "я" * 20_001}))
def test_inbox_answers_any_body_with_202_or_a_4xx_and_quarantines_the_bad_one(body: bytes) -> None:
    rig = InboxRig()

    response = rig.post(body)

    answer = json.loads(response.get_data())
    if response.status_code == 202:
        [(_, message)] = rig.publisher.published
        assert isinstance(message, PostFetchedV1) and message.post.incident_id == answer["incident_id"]
        assert rig.quarantine.items == {}
    elif response.status_code == 400:
        # The caller and the quarantine get the same reason, naming the field.
        [record] = rig.quarantine.items.values()
        assert record.reason == answer["error"] and record.stage == "inbox"
        assert rig.publisher.published == []
    else:
        assert response.status_code == 404 and answer["error"].startswith("no inbox source")


@FAST
@given(authorization=HEADER_TEXT | HEADER_TEXT.map(lambda t: f"Bearer {t}"))
@example(authorization="Bearer tökén")
def test_inbox_refuses_a_wrong_token_with_401(authorization: str) -> None:
    response = InboxRig().post(as_json(INBOX_BODY), authorization)
    right = authorization.removeprefix("Bearer ").strip() == INBOX_TOKEN
    assert response.status_code == (202 if right else 401)


@FAST
@given(
    post_id=st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=200),
    text=NON_EMPTY_TEXT,
    published_at=UTC_TIMES,
    geo=st.none() | GEO,
    attachments=st.lists(TEXT, max_size=3).map(tuple),
)
def test_a_valid_inbox_post_is_published_as_sent(
    post_id: str, text: str, published_at: datetime, geo: Geo | None, attachments: tuple[str, ...]
) -> None:
    item = InboxPostV1(
        source_id="portal", post_id=post_id, text=text, published_at=published_at, geo=geo, attachments=attachments
    )
    rig = InboxRig()

    response = rig.post(item.model_dump_json().encode())

    assert response.status_code == 202
    [(_, message)] = rig.publisher.published
    assert isinstance(message, PostFetchedV1)
    post = message.post
    assert (post.post_id, post.text, post.published_at, post.geo) == (post_id, text, published_at, geo)
    assert tuple(a.url for a in post.attachments) == attachments


@pytest.mark.parametrize("rig", [CallbackRig, InboxRig], ids=["vk_callback", "inbox"])
def test_a_deeply_nested_json_body_is_a_client_error(rig: Callable[[], CallbackRig | InboxRig]) -> None:
    assert rig().post(DEEP_JSON).status_code == 400


# --- department_api and the answer page -------------------------------------------------------------------------

COORDINATOR = Department(id="coordinator", name="ЦУР", email="cur@region.example")
ROADS = Department(id="roads", name="Дороги", municipality="shakhty", categories=("roads",), email="r@x.example")
PARKS = Department(id="parks", name="Парки", municipality="shakhty", categories=("landscaping",), email="p@x.example")
ROUTING = RoutingConfig(departments=(COORDINATOR, ROADS, PARKS), rules=(), fallback="coordinator")
ACTION_BODIES: dict[str, dict[str, Any]] = {
    "acknowledge": {},
    "answer": {"text": "Яму засыплем до пятницы.", "interim": True, "promised_by": "2026-12-01"},
    "resolve": {"text": "Засыпали."},
    "reassign": {"reason": "Не наше", "to_department": "parks"},
    "correct": {"category": "landscaping", "municipality": "shakhty", "reason": "ошибка классификатора"},
}


class ApiRig:
    """department_api on in-memory ports: one incident routed to roads."""

    def __init__(self) -> None:
        self.incidents = MemoryIncidents()
        self.publisher = MemoryPublisher()
        service = ResponseService(
            self.incidents, RuleDirectory(ROUTING), self.publisher, "incidents", lambda: T0, shipped_deadlines()
        )
        self.incident = make_incident("1", IncidentStatus.ROUTED, department_ids=("roads",), routed_at=T0)
        self.incidents.create(self.incident)
        store = MemoryTokens()
        self.tokens = {d.id: tokens.issue(store, d.id, "test", T0) for d in ROUTING.departments}
        self.links = AnswerLinks("https://api.otklik.test", "link-signing-key", 30)
        triage = TriageService(
            service, self.incidents, self.incidents, MemoryFeedback(), self.publisher, "incidents", lambda: T0
        )
        self.triage = TriagePages(
            triage,
            store,
            "link-signing-key",
            lambda start, end, municipality: build_report(self.incidents.items.values(), start, end, T0, municipality),
            Names,
            secure_cookie=False,
        )
        self.api = DepartmentApi(service, store, self.links, answer_page, self.triage.handle)

    def request(
        self,
        method: str,
        path: str,
        department: str | None = None,
        body: bytes = b"",
        form: dict[str, str] | None = None,
    ) -> HttpResponse:
        headers = {"Authorization": f"Bearer {self.tokens[department]}"} if department else {}
        return self.api.handle(HttpRequest(method, path, headers, body, form or {}))

    def unchanged(self) -> bool:
        return self.incidents.get(self.incident.id) == self.incident and self.publisher.published == []


def assert_client_status(rig: ApiRig, response: HttpResponse) -> None:
    """Below 500; a refusal says why (JSON API) and leaves the incident as it was."""
    assert response.status < SERVER_ERROR, response.body
    if response.status >= 400:
        assert rig.unchanged()
        if response.content_type.startswith("application/json"):
            assert json.loads(response.body)["error"]


ACTION_BODY_BYTES = st.sampled_from(sorted(ACTION_BODIES)).flatmap(
    lambda action: st.tuples(
        st.just(action),
        mutated(ACTION_BODIES[action]).map(as_json)
        | JSON_VALUES.map(as_json)
        | st.binary(max_size=60)
        | truncated(as_json(ACTION_BODIES[action])),
    )
)


@FAST
@given(action_and_body=ACTION_BODY_BYTES, department=st.sampled_from(["roads", "coordinator", "parks"]))
@example(action_and_body=("answer", DEEP_JSON), department="roads")
@example(action_and_body=("answer", LONG_NUMBER), department="roads")
@example(action_and_body=("answer", as_json({"text": "я" * 4_001})), department="roads")
@example(action_and_body=("reassign", as_json({"reason": "не наше", "to_department": ["parks"]})), department="roads")
@example(action_and_body=("correct", as_json({"category": ["roads"]})), department="coordinator")
def test_an_action_with_any_body_is_applied_or_refused_with_a_4xx(
    action_and_body: tuple[str, bytes], department: str
) -> None:
    action, body = action_and_body
    rig = ApiRig()
    response = rig.request("POST", f"/incidents/{rig.incident.id}/{action}", department, body)
    assert_client_status(rig, response)
    if response.status == 200:
        assert json.loads(response.body)["id"] == rig.incident.id


@FAST
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD"]) | HEADER_TEXT,
    path=st.sampled_from(["/incidents/{id}", "/incidents/{id}/answer", "/answer/{token}", "/"]) | TEXT,
    authorization=st.none() | HEADER_TEXT,
    body=st.binary(max_size=40),
)
def test_any_request_gets_a_status_below_500(method: str, path: str, authorization: str | None, body: bytes) -> None:
    rig = ApiRig()
    path = path.replace("{id}", rig.incident.id).replace("{token}", rig.links.token(rig.incident.id, "roads"))
    headers = {} if authorization is None else {"Authorization": authorization}
    assert_client_status(rig, rig.api.handle(HttpRequest(method, path, headers, body, {})))


def triage_session(rig: ApiRig) -> tuple[str, str]:
    """The coordinator's session cookie and a form token of it, as the login and an incident page give them."""
    login = rig.api.handle(HttpRequest("POST", "/triage/login", {}, b"", {"token": rig.tokens["coordinator"]}))
    cookie = dict(login.headers)["Set-Cookie"].split(";")[0]
    page = rig.api.handle(HttpRequest("GET", f"/triage/incidents/{rig.incident.id}", {"Cookie": cookie}, b"", {}))
    return cookie, page.body.split('name="csrf" value="')[1].split('"')[0]


TRIAGE_FORM = st.fixed_dictionaries(
    {},
    optional={
        "csrf": TEXT | st.just("{csrf}"),
        "category": st.sampled_from(["roads", "landscaping", "no-such"]) | TEXT,
        "municipality": st.sampled_from(["shakhty", "kirov"]) | TEXT,
        "reason": TEXT,
        "into": st.sampled_from(["{id}", "missing"]) | TEXT,
        "report": st.sampled_from(["{id}", "missing"]) | TEXT,
    },
)


@FAST
@given(
    action=st.sampled_from(["correct", "not_complaint", "merge", "split"]) | TEXT,
    form=TRIAGE_FORM,
    query=st.dictionaries(
        st.sampled_from(["from", "to", "format", "municipality", "category", "priority", "status", "overdue"]),
        st.sampled_from(["2026-11-01", "2026-12-01", "html", "csv", "json", "md", "1", ""]) | TEXT,
        max_size=5,
    ),
    signed_in=st.booleans(),
)
@example(action="correct", form={"csrf": "{csrf}", "category": "landscaping"}, query={}, signed_in=True)
@example(action="merge", form={"csrf": "{csrf}", "into": "{id}"}, query={"format": "html"}, signed_in=True)
def test_any_triage_request_is_answered_below_500_and_a_refusal_changes_nothing(
    action: str, form: dict[str, str], query: dict[str, str], signed_in: bool
) -> None:
    rig = ApiRig()
    cookie, csrf = triage_session(rig)
    headers = {"Cookie": cookie} if signed_in else {}
    filled = {k: v.replace("{csrf}", csrf).replace("{id}", rig.incident.id) for k, v in form.items()}
    posted = rig.api.handle(
        HttpRequest("POST", f"/triage/incidents/{rig.incident.id}/{action}", headers, b"", filled, query)
    )
    assert posted.status < SERVER_ERROR, posted.body
    if posted.status >= 400 or not signed_in:
        assert rig.unchanged()
    after = (rig.incidents.get(rig.incident.id), list(rig.publisher.published))
    for path in ("/triage", "/triage/report", "/reports"):
        response = rig.api.handle(HttpRequest("GET", path, headers, b"", {}, query))
        assert response.status < SERVER_ERROR, response.body
        assert (rig.incidents.get(rig.incident.id), rig.publisher.published) == after  # reading changes nothing


PAGE_FORM = st.fixed_dictionaries(
    {"action": st.sampled_from(["acknowledge", "answer", "resolve", "reassign"]) | TEXT},
    optional={
        "request_key": TEXT,
        "text": TEXT | st.just("я" * 4_001),
        "interim": st.sampled_from(["1", "on", ""]) | TEXT,
        "promised_by": st.sampled_from(["2026-12-01", "2026-11-01", "9999-12-31", "0001-01-01"]) | TEXT,
        "reason": TEXT,
    },
)


@FAST
@given(form=PAGE_FORM, department=st.sampled_from(["roads", "coordinator", "parks", "nobody"]))
def test_the_answer_page_takes_any_form_without_a_server_error(form: dict[str, str], department: str) -> None:
    rig = ApiRig()
    token = rig.links.token(rig.incident.id, department)
    response = rig.request("POST", f"/answer/{token}", form=form)
    assert_client_status(rig, response)
    assert response.status in (303, 400, 403, 404, 409)


# --- signed links, webhook signatures, the webhook secrets variable ---------------------------------------------

LINKS = AnswerLinks("https://api.otklik.test", "link-signing-key", 30)
URL_SAFE = string.ascii_letters + string.digits + "-_."


@FAST
@given(token=TEXT | st.text(URL_SAFE, max_size=80))
def test_any_link_token_is_a_grant_or_an_invalid_link(token: str) -> None:
    try:
        grant = LINKS.read(token)
    except InvalidLink as exc:
        assert str(exc) in ("this link is not valid", "this link has expired: ask the coordinator for a new one")
    else:
        assert isinstance(grant, LinkGrant)


@FAST
@given(incident_id=TEXT, department_id=TEXT, data=st.data())
def test_a_link_round_trips_and_any_change_to_it_is_refused(
    incident_id: str, department_id: str, data: st.DataObject
) -> None:
    token = LINKS.token(incident_id, department_id)
    assert LINKS.read(token) == LinkGrant(incident_id, department_id)
    at = data.draw(st.integers(0, len(token) - 1))
    changed = token[:at] + data.draw(st.sampled_from(URL_SAFE).filter(lambda c: c != token[at])) + token[at + 1 :]
    try:
        grant = LINKS.read(changed)
    except InvalidLink:
        return
    # Base64's last character carries spare bits: changing only those leaves the same bytes, so the same grant.
    assert grant == LinkGrant(incident_id, department_id)


@FAST
@given(payload=JSON_VALUES)
def test_a_signed_link_of_the_wrong_shape_is_invalid(payload: Any) -> None:
    token = LINKS.serializer.dumps(payload)
    if isinstance(payload, list) and len(payload) == 2 and all(isinstance(x, str) for x in payload):
        assert LINKS.read(token) == LinkGrant(*payload)
    else:
        with pytest.raises(InvalidLink):
            LINKS.read(token)


@FAST
@given(
    secret=NON_EMPTY_TEXT,
    timestamp=st.integers(0, 2**40),
    body=st.binary(max_size=100),
    skew=st.integers(-signing.DEFAULT_TOLERANCE_SECONDS, signing.DEFAULT_TOLERANCE_SECONDS),
    other_body=st.binary(max_size=100),
)
def test_a_signature_verifies_within_the_window_and_only_for_its_body(
    secret: str, timestamp: int, body: bytes, skew: int, other_body: bytes
) -> None:
    signature = signing.sign(secret, timestamp, body)
    signing.verify(secret, str(timestamp), f"v1=stale, {signature}", body, now=timestamp + skew)
    if other_body != body:
        with pytest.raises(signing.InvalidSignature, match="does not match"):
            signing.verify(secret, str(timestamp), signature, other_body, now=timestamp + skew)


@FAST
@given(
    timestamp=st.none() | HEADER_TEXT | st.integers().map(str) | st.just("1" + "0" * 400),
    signature=st.none() | HEADER_TEXT | HEADER_TEXT.map(lambda t: f"v1={t}"),
    body=st.binary(max_size=50),
)
@example(timestamp="1" + "0" * 400, signature="v1=00", body=b"")
@example(timestamp="1795424400", signature="v1=é", body=b"")
def test_any_signature_headers_verify_or_raise_invalid_signature(
    timestamp: str | None, signature: str | None, body: bytes
) -> None:
    now = 1795424400.0
    try:
        signing.verify("department-secret", timestamp, signature, body, now=now)
    except signing.InvalidSignature as exc:
        assert str(exc)
    else:  # only the right HMAC can pass, and no generated header is one
        assert signature is not None and timestamp is not None
        assert signing.sign("department-secret", int(timestamp), body) in signature


SECRET_VALUES = st.text(string.ascii_letters + string.digits, min_size=12, max_size=30)


@FAST
@given(secrets=st.dictionaries(st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True), SECRET_VALUES, max_size=3))
def test_webhook_secrets_round_trip(secrets: dict[str, str]) -> None:
    assert parse_secrets(json.dumps(secrets)) == secrets


@FAST
@given(secret=SECRET_VALUES, data=st.data())
def test_broken_webhook_secrets_are_refused_without_quoting_the_secret(secret: str, data: st.DataObject) -> None:
    valid = json.dumps({"roads": secret})
    raw = data.draw(
        truncated(valid.encode()).filter(bool).map(bytes.decode)
        | st.just(json.dumps([secret]))
        | st.just(json.dumps({"roads": [secret]}))
        | st.just(valid.replace('"roads"', "roads"))
    )
    with pytest.raises(ValueError, match="OTKLIK_WEBHOOK_SECRETS") as raised:
        parse_secrets(raw)
    assert secret not in str(raised.value)


@FAST
@given(raw=st.none() | TEXT | JSON_VALUES.map(json.dumps))
def test_any_webhook_secrets_value_is_a_mapping_or_a_value_error(raw: str | None) -> None:
    try:
        parsed = parse_secrets(raw)
    except ValueError as exc:
        assert str(exc).startswith("OTKLIK_WEBHOOK_SECRETS")
    else:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.items())


def test_a_lone_surrogate_is_made_storable() -> None:
    item = {
        **VK_POST,
        "text": "Яма \ud83d у школы",
        "attachments": [{"type": "link", "link": {"url": "https://x.ru/\udc00"}}],
    }
    [post] = vk_wall_fetch([item], ascii_only=True).posts
    assert post.text == "Яма \ufffd у школы"
    message = PostFetchedV1(post=post, fetched_at=T0)
    assert decode(message.to_bytes(), (PostFetchedV1,)) == message  # serialisable for Pub/Sub, and back
