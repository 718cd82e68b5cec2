"""The push functions (vk_callback, inbox) in functions-framework's own app, against the emulators."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app
from google.cloud import firestore, pubsub_v1

from otklik import REPO_ROOT
from otklik.stack import topology
from shared.domain.ids import incident_id_for

pytestmark = [
    pytest.mark.integration,
    # the emulators honour it; the test needs "nothing there" answered at once
    pytest.mark.filterwarnings("ignore:The return_immediately flag is deprecated"),
]
SECRET = "callback-secret-for-tests"
INBOX_TOKEN = "inbox-token-for-tests"
SOURCES = """
sources:
  - id: vk-callback-shakhty
    kind: vk_callback
    group_id: 210000001
    confirmation_code: "5e8c1d2a"
    municipality: shakhty
  - {id: city-portal, kind: inbox, municipality: kirov}
"""
POST = {
    "id": 9001,
    "owner_id": -210000001,
    "from_id": 55,
    "date": 1795800000,
    "post_type": "post",
    "text": "Открытый люк на Советской, 12 — дети ходят рядом!",
}
COMMENT = {
    "id": 9002,
    "owner_id": -210000001,
    "post_id": 9001,
    "from_id": 56,
    "date": 1795800100,
    "text": "И фонарь рядом не горит",
    "parents_stack": [],
}


@pytest.fixture
def env(project_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    topology.create_on_emulator(topology.load(), project_id)
    (tmp_path / "sources.yaml").write_text(SOURCES, encoding="utf-8")
    (tmp_path / "departments.yaml").write_text((REPO_ROOT / "config" / "departments.yaml").read_text("utf-8"))
    monkeypatch.setenv("OTKLIK_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("OTKLIK_VK_CALLBACK_SECRET", SECRET)
    monkeypatch.setenv("OTKLIK_INBOX_TOKEN", INBOX_TOKEN)
    yield {"project": project_id, "db": firestore.Client(project=project_id)}


def app(name: str) -> Any:
    return create_app(target=name, source=str(REPO_ROOT / "functions" / name / "main.py")).test_client()


def posts_on_topic(project: str) -> list[dict[str, Any]]:
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(project, "otklik-posts-classify")
    # return_immediately: an empty topic answers at once instead of holding the pull open until its deadline
    got = subscriber.pull(
        request={"subscription": path, "max_messages": 50, "return_immediately": True}, timeout=10
    ).received_messages
    if got:
        subscriber.acknowledge(request={"subscription": path, "ack_ids": [m.ack_id for m in got]})
    return [json.loads(m.message.data)["post"] for m in got]


def event(kind: str, obj: Any = None, event_id: str = "e1", secret: str = SECRET, group: int = 210000001) -> Any:
    return {"type": kind, "group_id": group, "event_id": event_id, "v": "5.199", "object": obj, "secret": secret}


def test_confirmation_answers_the_configured_code(env: dict[str, Any]) -> None:
    response = app("vk_callback").post("/", json={"type": "confirmation", "group_id": 210000001})
    assert response.status_code == 200 and response.get_data(as_text=True) == "5e8c1d2a"


def test_new_post_and_comment_are_published_once_however_often_vk_repeats(env: dict[str, Any]) -> None:
    client = app("vk_callback")
    for _ in range(3):
        assert client.post("/", json=event("wall_post_new", POST, "ev-post")).get_data(as_text=True) == "ok"
    # the same post again under a new event id (VK resends after a timeout): still once
    assert client.post("/", json=event("wall_post_new", POST, "ev-post-2")).get_data(as_text=True) == "ok"
    assert client.post("/", json=event("wall_reply_new", COMMENT, "ev-reply")).get_data(as_text=True) == "ok"
    posts = posts_on_topic(env["project"])
    assert sorted(p["post_id"] for p in posts) == ["9001", "9001_9002"]
    comment = next(p for p in posts if p["post_id"] == "9001_9002")
    assert comment["parent_post_id"] == "9001" and comment["url"] == "https://vk.com/wall-210000001_9001?reply=9002"
    assert all(p["municipality_hint"] == "shakhty" and p["source_id"] == "vk-callback-shakhty" for p in posts)


@pytest.mark.parametrize(("secret", "group"), [("wrong", 210000001), (SECRET, 999)])
def test_wrong_secret_or_unknown_community_is_refused(env: dict[str, Any], secret: str, group: int) -> None:
    response = app("vk_callback").post("/", json=event("wall_post_new", POST, "ev-x", secret, group))
    assert response.status_code == 403
    assert posts_on_topic(env["project"]) == []


def test_an_unreadable_object_is_quarantined_and_answered_ok(env: dict[str, Any]) -> None:
    response = app("vk_callback").post("/", json=event("wall_post_new", {"id": "x"}, "ev-bad"))
    assert response.get_data(as_text=True) == "ok"
    [doc] = [d.to_dict() for d in env["db"].collection("quarantine").stream()]
    assert "unreadable wall_post_new" in doc["reason"] and SECRET not in doc["payload"]


def test_other_event_types_are_acknowledged_and_ignored(env: dict[str, Any]) -> None:
    response = app("vk_callback").post("/", json=event("group_join", {"user_id": 5, "join_type": "join"}, "ev-join"))
    assert response.get_data(as_text=True) == "ok" and posts_on_topic(env["project"]) == []
    assert list(env["db"].collection("quarantine").stream()) == []  # skipped by design: logged, not quarantined


def test_a_comment_naming_its_wall_only_as_post_owner_id_and_a_message_to_the_community(env: dict[str, Any]) -> None:
    """As the Callback API documents them: wall_reply_new's object is a comment plus post_id and post_owner_id;
    message_new's is {message, client_info}."""
    client = app("vk_callback")
    reply = {k: v for k, v in COMMENT.items() if k != "owner_id"} | {"post_owner_id": -210000001}
    message = {
        "date": 1795800200,
        "from_id": 57,
        "id": 0,
        "out": 0,
        "version": 1,
        "peer_id": 57,
        "conversation_message_id": 12,
        "text": "Во дворе на Советской, 12 третий день не вывозят мусор",
        "attachments": [{"type": "photo", "photo": {"sizes": [{"width": 9, "height": 9, "url": "https://x/y.jpg"}]}}],
    }
    assert client.post("/", json=event("wall_reply_new", reply, "ev-reply")).get_data(as_text=True) == "ok"
    body = event("message_new", {"message": message, "client_info": {"keyboard": True}}, "ev-msg")
    assert client.post("/", json=body).get_data(as_text=True) == "ok"
    posts = {p["post_id"]: p for p in posts_on_topic(env["project"])}
    assert posts["9001_9002"]["community"] == "-210000001"
    direct = posts["msg57_12"]
    assert direct["direct"] is True and direct["reply_to"] == {
        "channel": "vk_message",
        "chat_id": "57",
        "message_id": "12",
    }
    assert direct["attachments"] == [{"kind": "photo", "url": "https://x/y.jpg"}]
    assert list(env["db"].collection("quarantine").stream()) == []


def inbox_post(client: Any, body: Any, token: str = INBOX_TOKEN) -> Any:
    return client.post("/", json=body, headers={"Authorization": f"Bearer {token}"})


def test_inbox_accepts_a_post_once_and_names_its_incident(env: dict[str, Any]) -> None:
    client = app("inbox")
    body = {
        "source_id": "city-portal",
        "post_id": "form-77",
        "text": "Нет отопления в доме на ул. Ленина, 5",
        "published_at": "2026-11-23T08:00:00+03:00",
        "attachments": ["https://portal.example/p.jpg"],
    }
    first = inbox_post(client, body)
    assert first.status_code == 202
    assert first.get_json() == {"incident_id": incident_id_for("inbox", "city-portal", "form-77"), "duplicate": False}
    assert inbox_post(client, body).get_json()["duplicate"] is True
    [post] = posts_on_topic(env["project"])
    assert post["municipality_hint"] == "kirov" and post["published_at"].startswith("2026-11-23T05:00:00")


def test_inbox_refuses_without_the_token(env: dict[str, Any]) -> None:
    assert inbox_post(app("inbox"), {"source_id": "city-portal"}, token="nope").status_code == 401
    assert app("inbox").post("/", json={}).status_code == 401


def test_inbox_says_what_is_wrong_and_keeps_the_bad_body(env: dict[str, Any]) -> None:
    response = inbox_post(app("inbox"), {"source_id": "city-portal", "text": "", "extra": 1})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert "post_id" in error and "text" in error and "extra" in error
    [doc] = [d.to_dict() for d in env["db"].collection("quarantine").stream()]
    assert doc["stage"] == "inbox" and "post_id" in doc["reason"]
    unknown = inbox_post(app("inbox"), {"source_id": "nope", "post_id": "1", "text": "яма"})
    assert unknown.status_code == 404
