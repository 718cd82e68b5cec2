"""Versioned messages: round trips, attributes, and why a body that cannot be read is refused."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from shared.contracts import (
    CONTRACTS,
    Contract,
    IncidentClassifiedV1,
    PostFetchedV1,
    WebhookIncidentV1,
    decode,
    json_schemas,
    webhook_payload,
)
from shared.domain.errors import PermanentError
from shared.domain.models import Attachment, Department, Priority
from tests.builders import T0, make_incident, make_post

ALL = (PostFetchedV1, IncidentClassifiedV1, WebhookIncidentV1)


def make_post_fetched() -> PostFetchedV1:
    post = make_post("7", attachments=(Attachment(kind="photo", url="https://sun9.userapi.com/p.jpg"),))
    return PostFetchedV1(post=post, fetched_at=T0 + timedelta(minutes=1))


def make_incident_classified() -> IncidentClassifiedV1:
    return IncidentClassifiedV1(
        incident_id=make_post("7").incident_id,
        category="roads",
        priority=Priority.CRITICAL,
        danger=True,
        municipality="shakhty",
        classified_at=T0,
    )


def make_webhook_incident() -> WebhookIncidentV1:
    incident = make_incident("7", reply_due_at=T0 + timedelta(hours=4), routed_at=T0)
    department = Department(id="shakhty-roads", name="Дороги", webhook_url="https://hooks.example/roads")
    return webhook_payload(incident, department, event_id=f"{incident.id}.shakhty-roads.webhook.new_incident")


def body_of(message: Contract, **changes: Any) -> bytes:
    """The message as JSON, with top-level keys replaced (a value of ``...`` removes the key)."""
    obj = json.loads(message.to_bytes())
    for key, value in changes.items():
        if value is ...:
            obj.pop(key)
        else:
            obj[key] = value
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def refusal(data: bytes, expected: tuple[type[Contract], ...] = ALL) -> str:
    with pytest.raises(PermanentError) as raised:
        decode(data, expected)
    return str(raised.value)


# --- round trips ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [make_post_fetched, make_incident_classified, make_webhook_incident])
def test_message_survives_to_bytes_and_decode(build: Any) -> None:
    message = build()
    decoded = decode(message.to_bytes(), (type(message),))
    assert decoded == message
    assert type(decoded) is type(message)


@pytest.mark.parametrize("build", [make_post_fetched, make_incident_classified, make_webhook_incident])
def test_decode_picks_the_contract_named_by_the_body_among_several(build: Any) -> None:
    message = build()
    assert type(decode(message.to_bytes(), ALL)) is type(message)


@pytest.mark.parametrize("build", [make_post_fetched, make_incident_classified, make_webhook_incident])
def test_body_names_schema_and_version_with_their_wire_names(build: Any) -> None:
    message = build()
    obj = json.loads(message.to_bytes())
    assert obj["schema"] == message.SCHEMA
    assert obj["version"] == message.VERSION
    assert "schema_" not in obj


def test_body_is_utf8_json_with_cyrillic_text_intact() -> None:
    message = make_post_fetched()
    assert json.loads(message.to_bytes().decode("utf-8"))["post"]["text"] == message.post.text


def test_webhook_payload_carries_what_a_department_needs() -> None:
    payload = make_webhook_incident()
    assert payload.category_name == "Дороги"
    assert payload.reply_due_at == T0 + timedelta(hours=4)
    assert payload.post.url == "https://vk.com/wall-210000001_7"
    assert payload.event_id.endswith(".shakhty-roads.webhook.new_incident")


# --- attributes and schemas -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "schema"),
    [
        (make_post_fetched, "otklik.post.fetched"),
        (make_incident_classified, "otklik.incident.classified"),
        (make_webhook_incident, "otklik.webhook.incident"),
    ],
)
def test_attributes_carry_schema_and_version_as_strings(build: Any, schema: str) -> None:
    assert build().attributes() == {"schema": schema, "version": "1"}


def test_json_schemas_are_named_by_schema_and_version() -> None:
    schemas = json_schemas()
    assert set(schemas) == {
        "otklik.post.fetched.v1.json",
        "otklik.incident.classified.v1.json",
        "otklik.incident.answered.v1.json",
        "otklik.webhook.incident.v1.json",
        "otklik.inbox.post.v1.json",  # an HTTP body, not a Pub/Sub message: no schema field of its own
    }
    assert len(schemas) == len(CONTRACTS) + 1


def test_json_schemas_use_the_wire_name_of_the_schema_field() -> None:
    for name, schema in json_schemas().items():
        if name.startswith("otklik.inbox."):
            continue
        assert "schema" in schema["properties"], name
        assert "schema_" not in schema["properties"], name


# --- refusals -------------------------------------------------------------------------------------------


def test_non_utf8_body_is_refused_as_not_utf8_json() -> None:
    assert "not UTF-8 JSON" in refusal(b"\xff\xfe\x00{")


def test_invalid_json_is_refused_as_not_utf8_json() -> None:
    assert "not UTF-8 JSON" in refusal(b'{"schema": "otklik.post.fetched", ')


def test_json_array_is_refused_saying_an_object_was_expected() -> None:
    reason = refusal(json.dumps([json.loads(make_post_fetched().to_bytes())]).encode())
    assert "JSON list" in reason and "expected an object" in reason


@pytest.mark.parametrize("body", [b'"text"', b"42", b"null"])
def test_other_json_values_are_refused_too(body: bytes) -> None:
    assert "expected an object" in refusal(body)


def test_unknown_schema_is_refused_naming_it_and_what_the_consumer_takes() -> None:
    reason = refusal(body_of(make_post_fetched(), schema="otklik.post.deleted"), (PostFetchedV1,))
    assert "'otklik.post.deleted'" in reason
    assert "otklik.post.fetched v1" in reason


def test_body_without_schema_is_refused() -> None:
    reason = refusal(body_of(make_post_fetched(), schema=..., version=...), (PostFetchedV1,))
    assert "unexpected message schema None" in reason


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_wrong_version_is_refused_naming_it(version: object) -> None:
    reason = refusal(body_of(make_post_fetched(), version=version), (PostFetchedV1,))
    assert f"version {version!r}" in reason


def test_a_contract_this_consumer_does_not_take_is_refused() -> None:
    reason = refusal(make_incident_classified().to_bytes(), (PostFetchedV1,))
    assert "'otklik.incident.classified'" in reason
    assert "this consumer takes otklik.post.fetched v1" in reason


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (make_post_fetched, "post"),
        (make_post_fetched, "fetched_at"),
        (make_incident_classified, "incident_id"),
        (make_incident_classified, "priority"),
        (make_webhook_incident, "event_id"),
    ],
)
def test_missing_field_is_refused_naming_the_field(build: Any, field: str) -> None:
    message = build()
    reason = refusal(body_of(message, **{field: ...}), (type(message),))
    assert f"{message.SCHEMA} v1 is invalid" in reason
    assert f"{field}: Field required" in reason


def test_missing_nested_field_is_refused_with_its_path() -> None:
    obj = json.loads(make_post_fetched().to_bytes())
    del obj["post"]["text"]
    assert "post.text: Field required" in refusal(json.dumps(obj).encode(), (PostFetchedV1,))


def test_unknown_field_is_refused() -> None:
    reason = refusal(body_of(make_incident_classified(), assignee="ivanov"), (IncidentClassifiedV1,))
    assert "assignee" in reason


def test_naive_time_in_a_message_is_refused() -> None:
    reason = refusal(body_of(make_incident_classified(), classified_at="2026-11-23T09:00:00"))
    assert "classified_at" in reason


def test_refusal_summarises_many_errors() -> None:
    data = json.dumps({"schema": "otklik.webhook.incident", "version": 1}).encode()
    reason = refusal(data, (WebhookIncidentV1,))
    assert reason.count("Field required") == 5
    assert "more)" in reason
