"""An author's edit against the Firestore emulator: classify's edit applied in a Firestore transaction (the edit's
versions read back equal), and the classify function's entry point receiving edits as CloudEvents, redelivered and
out of order, with route behind it for an edit that makes a routed complaint dangerous."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from functions_framework import create_app
from google.cloud import firestore, pubsub_v1

from otklik import REPO_ROOT
from otklik.stack import topology
from otklik.stack.local import DEMO_CONFIG, render_config
from otklik.standins.webhook import WebhookSink
from shared import bootstrap
from shared.adapters.firestore import FirestoreIncidents
from shared.contracts import PostFetchedV1
from shared.domain.edits import EDITED, EDITED_DANGEROUS
from shared.domain.models import Post
from shared.services.classify import ClassifyService
from tests.builders import T0, make_post
from tests.fakes import MemoryPublisher
from tests.unit.test_post_edits import CHATTER, MANHOLE, POTHOLE, POTHOLE_FIXED_TYPO, KeywordClassifier, edit

pytestmark = pytest.mark.integration
TOPO = topology.load()


class ManualClock:
    """The tests' time, moved by hand; the functions read it through the composition root."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


# --- the service on the real repository -------------------------------------------------------------------


def test_an_edit_is_applied_in_a_transaction_and_its_versions_read_back_equal(project_id: str) -> None:
    incidents = FirestoreIncidents(firestore.Client(project=project_id))
    clock = ManualClock()
    service = ClassifyService(KeywordClassifier(), incidents, MemoryPublisher(), "incidents", clock)
    service.handle(PostFetchedV1(post=make_post("1", POTHOLE), fetched_at=clock.now))

    newer, older = edit(POTHOLE_FIXED_TYPO, 20), edit("яма, первая правка", 10)
    for post in (newer, newer, older):  # redelivered, then an older edit late
        clock.now += timedelta(minutes=5)
        service.handle(PostFetchedV1(post=post, fetched_at=clock.now))

    stored = incidents.get(newer.incident_id)
    assert stored is not None
    assert stored.post.text == POTHOLE_FIXED_TYPO and stored.post.edited_at == newer.edited_at
    assert [(v.text, v.edited_at, v.shown) for v in stored.post_versions] == [(POTHOLE, None, True)]
    assert [e.kind for e in stored.events] == [EDITED] and stored.events[0].at == T0 + timedelta(minutes=5)
    assert stored == incidents.get(stored.id)  # what Firestore holds is the model, field for field


# --- the classify function's entry point --------------------------------------------------------------------


@pytest.fixture
def env(project_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    topology.create_on_emulator(TOPO, project_id)
    clock = ManualClock()
    monkeypatch.setattr(bootstrap, "clock", clock)
    with WebhookSink() as sink:
        config = render_config(
            DEMO_CONFIG, tmp_path / "config", {"WEBHOOK_SINK": sink.url, "FEEDS": "http://127.0.0.1:9"}
        )
        monkeypatch.setenv("OTKLIK_CONFIG_DIR", str(config))
        monkeypatch.setenv("OTKLIK_LOCAL_MODE", "true")
        secrets = {"shakhty-roads": "roads-signing-secret", "shakhty-edds": "edds-signing-secret"}
        monkeypatch.setenv("OTKLIK_WEBHOOK_SECRETS", json.dumps(secrets))
        sink.secrets.update(secrets)
        yield {"project": project_id, "db": firestore.Client(project=project_id), "sink": sink, "clock": clock}


def app(name: str) -> Any:
    return create_app(target=name, source=str(REPO_ROOT / "functions" / name / "main.py")).test_client()


def deliver(client: Any, data: bytes, message_id: str, at: datetime) -> None:
    """One Pub/Sub push of ``data``, as the subscription posts it to the function (a binary CloudEvent)."""
    event = CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": "//pubsub.googleapis.com/projects/p/topics/otklik-posts",
            "id": message_id,
        },
        {
            "message": {
                "data": base64.b64encode(data).decode(),
                "attributes": {},
                "messageId": message_id,
                "publishTime": at.isoformat(),
            },
            "subscription": "projects/p/subscriptions/otklik-posts-classify",
        },
    )
    headers, body = to_binary(event)
    assert client.post("/", headers=headers, data=body).status_code == 200


def classify(env: dict[str, Any], post: Post, message_id: str) -> None:
    message = PostFetchedV1(post=post, fetched_at=env["clock"].now)
    deliver(env["classify"], message.to_bytes(), message_id, env["clock"].now)


def handed_to_route(project: str) -> list[Any]:
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(project, "otklik-incidents-route")
    got = subscriber.pull(request={"subscription": path, "max_messages": 50}, timeout=10).received_messages
    if got:
        subscriber.acknowledge(request={"subscription": path, "ack_ids": [m.ack_id for m in got]})
    return list(got)


def stored(env: dict[str, Any], post: Post) -> dict[str, Any]:
    doc: dict[str, Any] = env["db"].collection("incidents").document(post.incident_id).get().to_dict()
    return doc


def test_edits_reach_the_stored_incident_once_and_in_order_through_the_function(env: dict[str, Any]) -> None:
    env["classify"] = app("classify")
    chatter = make_post("601", CHATTER)
    classify(env, chatter, "m-1")
    assert stored(env, chatter)["status"] == "irrelevant" and handed_to_route(env["project"]) == []

    # The author rewrites the greeting into a complaint; Pub/Sub delivers that edit twice, then an older one.
    complaint = edit(POTHOLE, 30, post_id="601")
    older = edit(CHATTER + "!", 10, post_id="601")
    env["clock"].now += timedelta(minutes=31)
    classify(env, complaint, "m-2")
    classify(env, complaint, "m-2")
    classify(env, older, "m-3")

    doc = stored(env, chatter)
    assert doc["status"] == "new" and doc["post"]["text"] == POTHOLE
    assert [v["text"] for v in doc["post_versions"]] == [CHATTER]
    assert [e["kind"] for e in doc["events"]] == [EDITED]
    assert [c["status"] for c in doc["status_history"]] == ["new", "irrelevant", "new"]
    handed = handed_to_route(env["project"])
    assert {json.loads(m.message.data)["incident_id"] for m in handed} == {chatter.incident_id}


def test_a_dangerous_edit_of_a_routed_complaint_reaches_the_duty_service(env: dict[str, Any]) -> None:
    env["classify"] = app("classify")
    route = app("route")
    pothole = make_post("602", "Уже неделю огромная яма на дороге по ул. Советской, машины бьют колёса")
    classify(env, pothole, "m-1")
    [handed] = handed_to_route(env["project"])
    deliver(route, handed.message.data, "r-1", env["clock"].now)
    assert stored(env, pothole)["department_ids"] == ["shakhty-roads"]

    env["clock"].now += timedelta(hours=2)
    dangerous = edit(f"{pothole.text}. {MANHOLE}", 110, post_id="602")
    classify(env, dangerous, "m-2")
    classify(env, dangerous, "m-2")  # redelivered: the same round, not another
    for i, message in enumerate(handed_to_route(env["project"])):
        deliver(route, message.message.data, f"r-2-{i}", env["clock"].now)

    doc = stored(env, pothole)
    assert doc["routing_reason"] == EDITED_DANGEROUS and doc["routing_round"] == 1
    assert doc["classification"]["priority"] == "critical" and doc["post"]["text"] == dangerous.text
    assert "shakhty-edds" in doc["department_ids"]
    # Both hooks at once (the test's configuration has no mail sender: e-mail fails, as the history records).
    assert (doc["delivery"]["shakhty-roads/webhook"], doc["delivery"]["shakhty-edds/webhook"]) == ("sent", "sent")
    kinds = [(r.path, json.loads(r.body)["kind"]) for r in env["sink"].received]
    assert kinds[0] == ("/hooks/shakhty-roads", "new_incident")
    assert sorted(kinds[1:]) == [
        ("/hooks/shakhty-edds", "edited_dangerous.1"),
        ("/hooks/shakhty-roads", "edited_dangerous.1"),
    ]
    assert all(json.loads(r.body)["post"]["text"] == dangerous.text for r in env["sink"].received[1:])
