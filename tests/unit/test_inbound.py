"""What every Pub/Sub-triggered function does with a message, and how the Eventarc CloudEvent is unwrapped."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from shared.domain.errors import PermanentError, TransientError
from shared.entrypoints.pubsub_event import MESSAGE_PUBLISHED, UnreadableEvent, inbound_from_cloudevent
from shared.services.inbound import InboundHandler, InboundMessage
from tests.builders import T0
from tests.fakes import MemoryQuarantine

MAX_RETRY_AGE = timedelta(hours=1)
BODY = b'{"schema": "otklik.post.fetched", "version": 1}'
ATTRIBUTES = {"schema": "otklik.post.fetched", "version": "1"}


def make_message(
    message_id: str = "m-1", data: bytes = BODY, published_ago: timedelta | None = timedelta(minutes=1)
) -> InboundMessage:
    publish_time = T0 - published_ago if published_ago is not None else None
    return InboundMessage(message_id=message_id, data=data, attributes=dict(ATTRIBUTES), publish_time=publish_time)


def make_handler() -> tuple[InboundHandler, MemoryQuarantine]:
    quarantine = MemoryQuarantine()
    return InboundHandler("classify", quarantine, lambda: T0, MAX_RETRY_AGE), quarantine


def failing_with(exc: Exception) -> Callable[[InboundMessage], str]:
    def process(message: InboundMessage) -> str:
        raise exc

    return process


def eventarc_data(
    data: str | None = None,
    message_id: str = "9001",
    publish_time: str = "2026-11-23T08:59:58.123Z",
    **message: Any,
) -> dict[str, Any]:
    """The ``data`` of a ``messagePublished`` CloudEvent as Eventarc delivers it."""
    body = base64.b64encode(BODY).decode("ascii") if data is None else data
    return {
        "message": {
            "data": body,
            "attributes": dict(ATTRIBUTES),
            "messageId": message_id,
            "publishTime": publish_time,
            **message,
        },
        "subscription": "projects/otklik-local/subscriptions/eventarc-classify",
    }


def unreadable(event_type: str, data: Any, event_id: str = "event-1") -> UnreadableEvent:
    with pytest.raises(UnreadableEvent) as raised:
        inbound_from_cloudevent(event_id, event_type, data)
    return raised.value


# --- InboundHandler -------------------------------------------------------------------------------------


def test_a_handled_message_is_acknowledged_with_the_detail() -> None:
    handler, quarantine = make_handler()
    outcome = handler.handle(make_message(), lambda m: f"did {m.message_id}")
    assert (outcome.status, outcome.detail) == ("handled", "did m-1")
    assert quarantine.items == {}


def test_a_permanent_error_quarantines_the_message_without_raising() -> None:
    handler, quarantine = make_handler()

    outcome = handler.handle(make_message(), failing_with(PermanentError("post: Field required")))

    assert (outcome.status, outcome.detail) == ("quarantined", "post: Field required")
    [record] = quarantine.items.values()
    assert record.stage == "classify"
    assert record.reason == "post: Field required"
    assert record.payload == BODY.decode("utf-8")
    assert record.attributes == ATTRIBUTES
    assert record.received_at == T0


def test_the_same_bad_message_twice_leaves_one_quarantine_record() -> None:
    handler, quarantine = make_handler()
    handler.handle(make_message("m-1"), failing_with(PermanentError("bad")))
    handler.handle(make_message("m-1"), failing_with(PermanentError("bad")))
    handler.handle(make_message("m-2"), failing_with(PermanentError("bad")))
    assert len(quarantine.items) == 2


def test_a_bad_message_without_an_id_is_recorded_by_its_content() -> None:
    handler, quarantine = make_handler()
    for data in (b"one", b"one", b"two"):
        handler.handle(make_message("", data), failing_with(PermanentError("bad")))
    assert len(quarantine.items) == 2
    assert all(key.startswith("classify.sha256-") for key in quarantine.items)


def test_a_binary_payload_is_kept_readable_as_base64() -> None:
    handler, quarantine = make_handler()
    handler.handle(make_message(data=b"\xff\xfe\x00"), failing_with(PermanentError("not UTF-8")))
    [record] = quarantine.items.values()
    assert record.payload == "base64:" + base64.b64encode(b"\xff\xfe\x00").decode("ascii")


@pytest.mark.parametrize("error", [TransientError("Firestore busy"), RuntimeError("bug"), KeyError("x")])
def test_other_errors_are_raised_for_redelivery_while_the_message_is_young(error: Exception) -> None:
    handler, quarantine = make_handler()
    with pytest.raises(type(error)):
        handler.handle(make_message(published_ago=MAX_RETRY_AGE), failing_with(error))
    assert quarantine.items == {}


def test_an_error_is_raised_when_the_publish_time_is_unknown() -> None:
    handler, quarantine = make_handler()
    with pytest.raises(TransientError):
        handler.handle(make_message(published_ago=None), failing_with(TransientError("busy")))
    assert quarantine.items == {}


def test_a_message_still_failing_after_max_retry_age_is_quarantined_with_the_reason() -> None:
    handler, quarantine = make_handler()
    message = make_message(published_ago=MAX_RETRY_AGE + timedelta(seconds=1))

    outcome = handler.handle(message, failing_with(TransientError("Firestore busy")))

    assert outcome.status == "quarantined"
    [record] = quarantine.items.values()
    assert "still failing after 1:00:01" in record.reason
    assert "TransientError: Firestore busy" in record.reason
    assert record.payload == BODY.decode("utf-8")


# --- inbound_from_cloudevent ----------------------------------------------------------------------------


def test_a_message_published_event_gives_the_pubsub_message() -> None:
    message = inbound_from_cloudevent("event-1", MESSAGE_PUBLISHED, eventarc_data())
    assert message.message_id == "9001"
    assert message.data == BODY
    assert message.attributes == ATTRIBUTES
    assert message.publish_time == T0 - timedelta(seconds=1, microseconds=877000)


@pytest.mark.parametrize("encode", [json.dumps, lambda d: json.dumps(d).encode("utf-8")], ids=["str", "bytes"])
def test_event_data_given_as_json_text_is_read_too(encode: Callable[[Any], Any]) -> None:
    message = inbound_from_cloudevent("event-1", MESSAGE_PUBLISHED, encode(eventarc_data()))
    assert (message.message_id, message.data) == ("9001", BODY)


def test_snake_case_message_fields_are_accepted() -> None:
    data = {
        "message": {
            "data": base64.b64encode(BODY).decode(),
            "message_id": "77",
            "publish_time": "2026-11-23T09:00:00Z",
        }
    }
    message = inbound_from_cloudevent("event-1", MESSAGE_PUBLISHED, data)
    assert (message.message_id, message.publish_time, message.attributes) == ("77", T0, {})


def test_the_event_id_stands_in_for_a_missing_message_id() -> None:
    data = eventarc_data()
    del data["message"]["messageId"]
    assert inbound_from_cloudevent("event-1", MESSAGE_PUBLISHED, data).message_id == "event-1"


def test_a_message_without_data_has_an_empty_body() -> None:
    data = eventarc_data()
    del data["message"]["data"]
    assert inbound_from_cloudevent("event-1", MESSAGE_PUBLISHED, data).data == b""


def test_bad_base64_is_unreadable_and_carries_what_could_be_read() -> None:
    error = unreadable(MESSAGE_PUBLISHED, eventarc_data(data="not base64!!"))
    assert isinstance(error, PermanentError)
    assert "not base64" in str(error)
    assert error.message.message_id == "9001"
    assert error.message.data == b"not base64!!"
    assert error.message.attributes == ATTRIBUTES
    assert error.message.publish_time is not None


def test_an_event_of_another_type_is_unreadable_and_keeps_its_data() -> None:
    data = eventarc_data()
    error = unreadable("google.cloud.storage.object.v1.finalized", data)
    assert "unexpected event type 'google.cloud.storage.object.v1.finalized'" in str(error)
    assert error.message.message_id == "event-1"
    assert json.loads(error.message.data) == data


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(["not", "a", "dict"], id="list"),
        pytest.param(42, id="number"),
        pytest.param(None, id="none"),
        pytest.param({"subscription": "projects/p/subscriptions/s"}, id="dict-without-message"),
        pytest.param({"message": "text"}, id="message-not-an-object"),
    ],
)
def test_data_without_a_message_object_is_unreadable_and_keeps_the_data(data: Any) -> None:
    error = unreadable(MESSAGE_PUBLISHED, data)
    assert "no Pub/Sub 'message' object" in str(error)
    assert error.message.message_id == "event-1"
    assert json.loads(error.message.data) == data


def test_data_text_that_is_not_json_is_unreadable_and_kept_as_it_came() -> None:
    error = unreadable(MESSAGE_PUBLISHED, "{truncated")
    assert "not JSON" in str(error)
    assert error.message.data == b"{truncated"


def test_an_unreadable_event_is_quarantined_through_the_handler_by_its_event_id() -> None:
    handler, quarantine = make_handler()
    error = unreadable("google.cloud.storage.object.v1.finalized", {"bucket": "b"}, event_id="event-7")
    handler.to_quarantine(error.message, str(error))
    handler.to_quarantine(error.message, str(error))
    assert list(quarantine.items) == ["classify.event-7"]


def test_event_data_bytes_that_are_not_utf8_are_unreadable() -> None:
    error = unreadable(MESSAGE_PUBLISHED, b"\x80\x81 not utf-8")
    assert error.message.data == b"\x80\x81 not utf-8"


def test_attributes_that_are_not_an_object_are_unreadable() -> None:
    unreadable(MESSAGE_PUBLISHED, eventarc_data(attributes=["schema", "otklik.post.fetched"]))


def test_publish_time_without_a_zone_does_not_break_the_retry_age() -> None:
    message = inbound_from_cloudevent("event-1", MESSAGE_PUBLISHED, eventarc_data(publish_time="2026-11-20T09:00:00"))
    handler, _ = make_handler()
    outcome = handler.handle(message, failing_with(TransientError("Firestore busy")))
    assert outcome.status == "quarantined"
