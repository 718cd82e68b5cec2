"""The VK Callback API door on in-memory fakes, with the demo's events in API 5.199's shapes: what each event
becomes, and that nothing is lost without a trace."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from otklik.standins.vk import demo_callback_events
from shared.adapters.vk_callback import VkCallbackService
from shared.contracts import PostFetchedV1
from shared.domain.models import Post, ReplyTarget
from shared.services.ingest import PostIntake
from shared.source_config import VkCallbackSource
from tests.builders import T0
from tests.fakes import MemoryMarkers, MemoryPublisher, MemoryQuarantine

GROUP = 210000001
SECRET = "callback-secret"
EVENTS = {e["event_id"]: e for e in demo_callback_events()}


class Door:
    def __init__(self) -> None:
        self.publisher = MemoryPublisher()
        self.quarantine = MemoryQuarantine()
        self.now = T0
        community = VkCallbackSource(
            id="vk-cb", kind="vk_callback", group_id=GROUP, confirmation_code="c0de", municipality="shakhty"
        )
        intake = PostIntake(MemoryMarkers(), self.publisher, "posts", lambda: self.now)
        self.service = VkCallbackService(
            {GROUP: community}, SECRET, intake, MemoryMarkers(), self.quarantine, lambda: self.now
        )

    def push(self, kind: str, obj: Any, event_id: str = "ev") -> str:
        body = {"type": kind, "group_id": GROUP, "event_id": event_id, "v": "5.199", "object": obj, "secret": SECRET}
        answer = self.service.handle(body)
        assert answer.status == 200
        return answer.body

    def posts(self) -> list[Post]:
        return [m.post for m in self.publisher.on("posts") if isinstance(m, PostFetchedV1)]


def demo(event_id: str) -> tuple[str, Any]:
    event = EVENTS[event_id]
    return event["type"], event["object"]


def test_a_residents_message_to_the_community_is_a_post_written_to_the_city() -> None:
    door = Door()
    assert door.push(*demo("demo-vk-message-1")) == "ok"
    [post] = door.posts()
    assert (post.source, post.community, post.post_id, post.author_id) == (
        "vk",
        "210000001",
        "msg640219874_57",
        "640219874",
    )
    assert post.direct and post.reply_to == ReplyTarget(channel="vk_message", chat_id="640219874", message_id="57")
    assert post.text.startswith("Здравствуйте! Возле подъезда дома на ул. Ионова, 12 открытый")
    assert [a.url for a in post.attachments] == [
        "https://sun9-12.userapi.com/impg/Msg640219874/hatch.jpg?size=1280x960"
    ]
    assert post.geo is not None and (post.geo.lat, post.geo.lon) == (47.7146, 40.2079)
    assert post.source_id == "vk-cb" and post.municipality_hint == "shakhty" and post.edited_at is None


def test_a_message_in_a_chat_forwards_and_its_later_edit() -> None:
    door = Door()
    forwarded = {"date": 1795900000, "from_id": 77, "text": "У нас в доме нет света", "conversation_message_id": 3}
    message = {"date": 1795905000, "from_id": 55, "id": 0, "peer_id": 2000000004, "conversation_message_id": 9,
               "out": 0, "version": 1, "text": "Пересылаю от соседки", "fwd_messages": [forwarded]}  # fmt: skip
    door.push("message_new", {"message": message, "client_info": {}}, "m1")
    door.push("message_edit", {**message, "text": "Пересылаю от соседки, дом 5", "update_time": 1795905300}, "m2")
    first, edit = door.posts()
    assert first.text == "Пересылаю от соседки\n\nУ нас в доме нет света" and not first.direct  # a group chat
    assert edit.post_id == first.post_id and edit.text.startswith("Пересылаю от соседки, дом 5")
    assert edit.edited_at is not None and int(edit.edited_at.timestamp()) == 1795905300


def test_a_comment_naming_its_wall_as_post_owner_id_and_its_edit() -> None:
    door = Door()
    door.push(*demo("demo-vk-reply-1"), event_id="r1")
    door.now = T0 + timedelta(minutes=5)
    door.push(*demo("demo-vk-reply-1-edit"), event_id="r2")
    comment, edit = door.posts()
    assert (comment.community, comment.post_id, comment.parent_post_id) == ("-210000001", "18876_18961", "18876")
    assert comment.url == "https://vk.com/wall-210000001_18876?reply=18961" and comment.edited_at is None
    assert edit.post_id == comment.post_id and edit.text.endswith("по правой полосе")
    assert edit.edited_at == door.now  # a comment does not say when it was edited: when VK told us
    assert door.quarantine.items == {}


def test_a_repost_and_a_post_edit_are_read_like_wall_posts() -> None:
    door = Door()
    original = {"id": 5, "owner_id": 604417211, "from_id": 604417211, "date": 1795900000, "text": "Течёт крыша"}
    repost = {
        "id": 77,
        "owner_id": 320011,
        "from_id": 320011,
        "date": 1795900100,
        "text": "",
        "copy_history": [original],
    }
    door.push("wall_repost", repost, "p1")
    post = {"id": 9, "owner_id": -GROUP, "from_id": 5, "date": 1795900000, "text": "Яма, дом 5", "edited": 1795900600}
    door.push("wall_post_edit", post, "p2")
    shared, edit = door.posts()
    assert shared.repost_of is not None and shared.repost_of.post_id == "5" and shared.text == "Течёт крыша"
    assert edit.edited_at is not None and int(edit.edited_at.timestamp()) == 1795900600


@pytest.mark.parametrize(
    ("kind", "obj", "reason"),
    [
        ("group_join", {"user_id": 1, "join_type": "join"}, "вид обновления не читается"),
        ("like_add", {"liker_id": 1, "object_type": "post", "object_id": 5}, "вид обновления не читается"),
        ("message_new", {"message": {"date": 1795900000, "from_id": 5, "peer_id": 5, "conversation_message_id": 2,
                                     "text": "", "attachments": [{"type": "sticker", "sticker": {}}]}},
         "пустое сообщение"),
        ("message_new", {"message": {"date": 1795900000, "from_id": 5, "peer_id": 2000000001, "text": "",
                                     "conversation_message_id": 3, "action": {"type": "chat_invite_user"}}},
         "служебное сообщение"),
        ("wall_post_new", {"id": 4, "owner_id": -GROUP, "from_id": -GROUP, "date": 1795900000, "text": "Скидки",
                           "marked_as_ads": 1}, "не от жителя"),
    ],
)  # fmt: skip
def test_what_is_not_a_residents_words_is_answered_ok_and_logged_with_its_reason(
    kind: str, obj: Any, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    door = Door()
    with caplog.at_level(logging.INFO, logger="shared.adapters.vk_callback"):
        assert door.push(kind, obj) == "ok"
    assert door.posts() == [] and door.quarantine.items == {}
    assert [r.getMessage() for r in caplog.records] == [f"Callback API event {kind} skipped: {reason}"]


def test_an_unreadable_message_is_quarantined_with_its_reason() -> None:
    door = Door()
    assert door.push("message_new", {"message": {"text": "нет отопления"}}, "bad") == "ok"
    [record] = door.quarantine.items.values()
    assert record.reason.startswith("unreadable message_new object: KeyError") and SECRET not in record.payload
