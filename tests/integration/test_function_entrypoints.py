"""Each function's main.py under functions-framework's own app (``create_app(...).test_client()``), receiving
real CloudEvents / HTTP requests, with the real adapters against the emulators."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
from functions_framework import create_app
from google.cloud import firestore, pubsub_v1

from otklik import REPO_ROOT
from otklik.stack import topology
from otklik.stack.local import DEMO_CONFIG, render_config
from otklik.standins.vk import VkStandIn
from otklik.standins.webhook import WebhookSink
from shared.contracts import IncidentClassifiedV1, PostFetchedV1
from shared.domain.models import utcnow
from tests.builders import make_post

pytestmark = pytest.mark.integration
TOPO = topology.load()


def app(name: str) -> Any:
    return create_app(target=name, source=str(REPO_ROOT / "functions" / name / "main.py")).test_client()


def pubsub_event(
    data: bytes | str,
    message_id: str = "m-1",
    attributes: dict[str, str] | None = None,
    raw_data: str | None = None,
) -> CloudEvent:
    encoded = (
        raw_data
        if raw_data is not None
        else base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()
    )
    return CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": "//pubsub.googleapis.com/projects/p/topics/otklik-posts",
            "id": message_id,
        },
        {
            "message": {
                "data": encoded,
                "attributes": attributes or {},
                "messageId": message_id,
                "publishTime": utcnow().isoformat(),
            },
            "subscription": "projects/p/subscriptions/otklik-posts-classify",
        },
    )


def post_event(client: Any, event: CloudEvent, structured: bool = False) -> Any:
    headers, body = to_structured(event) if structured else to_binary(event)
    return client.post("/", headers=headers, data=body)


VK_WALLS_ONLY = """
sources:
  - {id: vk-shakhty-live, kind: vk_wall, owner_id: -210000001, municipality: shakhty}
  - {id: vk-kirov-incident, kind: vk_wall, domain: kirov_incident, municipality: kirov}
"""


@pytest.fixture
def env(project_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    topology.create_on_emulator(TOPO, project_id)
    with WebhookSink() as sink:
        values = {"WEBHOOK_SINK": sink.url, "FEEDS": "http://127.0.0.1:9"}
        config = render_config(DEMO_CONFIG, tmp_path / "config", values)
        # The entry points are exercised with the VK walls alone (one stand-in); every other kind of source
        # has its own connector test and the e2e run.
        (config / "sources.yaml").write_text(VK_WALLS_ONLY, encoding="utf-8")
        monkeypatch.setenv("OTKLIK_CONFIG_DIR", str(config))
        monkeypatch.setenv("OTKLIK_LOCAL_MODE", "true")
        secrets = {"shakhty-roads": "roads-signing-secret", "shakhty-edds": "edds-signing-secret"}
        monkeypatch.setenv("OTKLIK_WEBHOOK_SECRETS", json.dumps(secrets))
        sink.secrets.update(secrets)
        yield {"project": project_id, "db": firestore.Client(project=project_id), "sink": sink}


def pull_all(project: str, subscription: str) -> list[Any]:
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(project, subscription)
    got = subscriber.pull(request={"subscription": path, "max_messages": 50}, timeout=10).received_messages
    if got:
        subscriber.acknowledge(request={"subscription": path, "ack_ids": [m.ack_id for m in got]})
    return list(got)


@pytest.mark.parametrize("structured", [False, True], ids=["binary", "structured"])
def test_classify_stores_the_incident_and_hands_it_to_route(env: dict[str, Any], structured: bool) -> None:
    post = make_post("501", "Открытый люк у остановки на пр. Победы Революции, ребёнок чуть не упал!")
    message = PostFetchedV1(post=post, fetched_at=utcnow())
    response = post_event(
        app("classify"), pubsub_event(message.to_bytes(), attributes=message.attributes()), structured
    )
    assert response.status_code == 200
    doc = env["db"].collection("incidents").document(post.incident_id).get().to_dict()
    assert doc["status"] == "new" and doc["classification"]["priority"] == "critical"
    [handed] = pull_all(env["project"], "otklik-incidents-route")
    assert json.loads(handed.message.data)["incident_id"] == post.incident_id


def test_classify_quarantines_malformed_messages_and_acknowledges_them(env: dict[str, Any]) -> None:
    client = app("classify")
    bad = [
        pubsub_event(b"\xff\xfe not utf-8", "bad-1"),
        pubsub_event('{"schema": "otklik.post.fetched", "version": 1, "post": {"text": 5}}', "bad-2"),
        pubsub_event('{"schema": "something.else", "version": 9}', "bad-3"),
        pubsub_event("", "bad-4", raw_data="%%% not base64 %%%"),
    ]
    for event in bad:
        assert post_event(client, event).status_code == 200
        assert post_event(client, event).status_code == 200  # redelivered: still one record
    docs = {d.id: d.to_dict() for d in env["db"].collection("quarantine").stream()}
    assert sorted(docs) == ["classify.bad-1", "classify.bad-2", "classify.bad-3", "classify.bad-4"]
    assert "not UTF-8" in docs["classify.bad-1"]["reason"]
    assert "post.text" in docs["classify.bad-2"]["reason"]
    assert "something.else" in docs["classify.bad-3"]["reason"]
    assert "base64" in docs["classify.bad-4"]["reason"]
    assert list(env["db"].collection("incidents").stream()) == []


def test_a_non_pubsub_event_is_quarantined_not_retried(env: dict[str, Any]) -> None:
    event = CloudEvent(
        {"type": "google.cloud.storage.object.v1.finalized", "source": "//storage", "id": "s-1"},
        {"bucket": "b", "name": "n"},
    )
    assert post_event(app("route"), event).status_code == 200
    [doc] = [d.to_dict() for d in env["db"].collection("quarantine").stream()]
    assert "unexpected event type" in doc["reason"]


def test_route_notifies_once_however_often_the_event_is_delivered(env: dict[str, Any]) -> None:
    post = make_post("777", "Уже неделю огромная яма на дороге по ул. Советской, машины бьют колёса")
    classify_message = PostFetchedV1(post=post, fetched_at=utcnow())
    assert post_event(app("classify"), pubsub_event(classify_message.to_bytes())).status_code == 200
    [handed] = pull_all(env["project"], "otklik-incidents-route")
    route = app("route")
    event = pubsub_event(handed.message.data, "route-1", dict(handed.message.attributes))
    for _ in range(3):
        assert post_event(route, event).status_code == 200
    doc = env["db"].collection("incidents").document(post.incident_id).get().to_dict()
    assert doc["status"] == "routed" and doc["department_ids"] == ["shakhty-roads"]
    assert [r.path for r in env["sink"].received] == ["/hooks/shakhty-roads"]
    assert env["sink"].received[0].signature_valid


def test_route_asks_for_redelivery_while_the_webhook_is_down(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTKLIK_WEBHOOK_ATTEMPTS", "1")  # no quick retry: the outage outlasts it
    post = make_post("778", "Яма на дороге у школы №5, опять лужа по колено")
    assert (
        post_event(app("classify"), pubsub_event(PostFetchedV1(post=post, fetched_at=utcnow()).to_bytes())).status_code
        == 200
    )
    [handed] = pull_all(env["project"], "otklik-incidents-route")
    event = pubsub_event(handed.message.data, "route-2")
    env["sink"].fail_next(1, 503)
    route = app("route")
    assert post_event(route, event).status_code == 500  # Pub/Sub will redeliver
    assert post_event(route, event).status_code == 200
    assert [r.answered for r in env["sink"].received] == [503, 200]


def test_route_quarantines_an_incident_that_does_not_exist(env: dict[str, Any]) -> None:
    message = IncidentClassifiedV1(
        incident_id="nope",
        category="roads",
        priority="normal",
        danger=False,
        municipality="shakhty",
        classified_at=utcnow(),
    )
    assert post_event(app("route"), pubsub_event(message.to_bytes(), "r-x")).status_code == 200
    [doc] = [d.to_dict() for d in env["db"].collection("quarantine").stream()]
    assert "does not exist" in doc["reason"]


def test_ingest_publishes_new_posts_and_moves_the_cursor(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    with VkStandIn(token="t") as vk:
        monkeypatch.setenv("OTKLIK_VK_API_BASE", vk.url)  # type: ignore[attr-defined]
        monkeypatch.setenv("OTKLIK_VK_TOKEN", "t")
        client = app("ingest")
        first = client.post("/").get_json()
        residents = [item for _, item in vk.all_posts() if not item.get("marked_as_ads")]  # type: ignore[attr-defined]
        assert first["published"] == len(residents)  # a community's advertisement is skipped by name
        assert all(s["error"] is None for s in first["sources"])
        assert client.post("/").get_json()["published"] == 0
        cursors = {d.id: d.to_dict()["cursor"] for d in env["db"].collection("source_cursors").stream()}
        assert set(cursors) == {"vk-shakhty-live", "vk-kirov-incident"}
    assert client.get("/").status_code == 405


def test_ingest_reports_a_revoked_token_per_source_and_keeps_the_cursor(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with VkStandIn(token="right") as vk:
        monkeypatch.setenv("OTKLIK_VK_API_BASE", vk.url)  # type: ignore[attr-defined]
        monkeypatch.setenv("OTKLIK_VK_TOKEN", "revoked")
        report = app("ingest").post("/").get_json()
    assert report["published"] == 0
    assert all("error 5" in s["error"] and s["status"] == "stopped" for s in report["sources"])
    assert all("OTKLIK_VK_TOKEN" in s["action"] for s in report["sources"])
    assert list(env["db"].collection("source_cursors").stream()) == []


def test_remind_flags_overdue_with_a_driven_clock_only_in_local_mode(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    post = make_post("900", "Третий день нет горячей воды в доме на ул. Ленина, УК не отвечает")
    assert (
        post_event(app("classify"), pubsub_event(PostFetchedV1(post=post, fetched_at=utcnow()).to_bytes())).status_code
        == 200
    )
    [handed] = pull_all(env["project"], "otklik-incidents-route")
    assert post_event(app("route"), pubsub_event(handed.message.data, "r-9")).status_code == 200
    remind = app("remind")
    assert remind.post("/").get_json()["flagged"] == []
    later = (utcnow() + timedelta(days=10)).isoformat()  # past the first reply's 9 working hours, any weekday
    assert remind.post("/", json={"now": later}).get_json()["flagged"] == [post.incident_id]
    assert remind.post("/", json={"now": later}).get_json()["flagged"] == []
    doc = env["db"].collection("incidents").document(post.incident_id).get().to_dict()
    # (This environment has no SMTP server: the e-mail channel's failure is an event of its own.)
    # One run climbed the whole first-reply ladder: reminder, overdue, supervisor, coordinator.
    kinds = [e["kind"] for e in doc["events"] if e["kind"] != "delivery_failed"]
    assert doc["overdue"] is True and kinds[:2] == ["reminder", "overdue"] and kinds.count("overdue") == 1
    monkeypatch.setenv("OTKLIK_LOCAL_MODE", "false")
    from shared import bootstrap

    bootstrap.reset()
    refused = app("remind").post("/", json={"now": later})
    assert refused.status_code == 400 and "OTKLIK_LOCAL_MODE" in refused.get_json()["error"]


def test_a_pubsub_push_subscription_body_reaches_classify_as_the_same_cloudevent(env: dict[str, Any]) -> None:
    # In production our own push subscriptions (infra/terraform/pubsub.tf) POST Pub/Sub's push body, not a
    # CloudEvent; functions-framework converts it. The message id is the event id, so replays stay idempotent.
    post = make_post("777", "Во дворе на ул. Шевченко открытый колодец, дети бегают рядом")
    message = PostFetchedV1(post=post, fetched_at=utcnow())
    push = {
        "message": {
            "data": base64.b64encode(message.to_bytes()).decode(),
            "messageId": "push-777",
            "publishTime": "2026-11-23T09:00:00Z",
            "attributes": message.attributes(),
        },
        "subscription": f"projects/{env['project']}/subscriptions/otklik-posts-classify",
    }
    classify = app("classify")
    assert classify.post("/", json=push).status_code == 200
    assert classify.post("/", json=push).status_code == 200  # Pub/Sub redelivers: nothing new happens
    doc = env["db"].collection("incidents").document(post.incident_id).get().to_dict()
    assert doc["post"]["text"] == post.text and doc["status"] in ("new", "irrelevant")
    handed = pull_all(env["project"], "otklik-incidents-route")
    # A complaint still waiting for route is handed over on every delivery (route dedupes); chatter never is.
    assert len(handed) == (2 if doc["status"] == "new" else 0)
    assert all(h.message.attributes["schema"] == "otklik.incident.classified" for h in handed)
