"""What the VK stand-in serves, and the demo's VK data, read by third-party models generated from VK's own API
schema (PyPI ``vkbottle-types``, API 5.199): the stand-in answers in VK's shapes, not in the ones the connectors
happen to expect.

A model ignores fields it does not know, so each payload is also checked the other way: every key it has must be
one the schema names (``unknown_keys``), else a misspelt or invented field would pass unnoticed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from vkbottle_types.events import bot_events
from vkbottle_types.objects import WallWallComment, WallWallpostFull
from vkbottle_types.responses.newsfeed import NewsfeedSearchExtendedResponse
from vkbottle_types.responses.wall import WallCreateCommentResponse, WallGetCommentsResponse, WallGetResponse

from otklik.standins.vk import (
    DEMO_COMMENTS,
    DEMO_SEARCH_EXTRA,
    DEMO_WALLS,
    VkStandIn,
    _strip,
    demo_callback_events,
)
from otklik.standins.webhook import WebhookSink
from shared.adapters.politeness import Polite
from shared.adapters.vk import VkClient, VkSearchConnector, VkWallConnector
from shared.source_config import VkSearchSource, VkWallSource

pytestmark = pytest.mark.integration
TOKEN = "shape-token"
# Keys VK documents (dev.vk.com) that the generated schema leaves out.
DOCUMENTED_EXTRAS = {
    "geo.place",  # a wall post's geo: "place — описание места (если оно добавлено)"
    "web_view_token",  # photos in answers since 5.131
    "v",  # a Callback API event's API version: "v — версия API, для которой сформировано событие"
}
EVENT_MODELS: dict[str, type[BaseModel]] = {
    "message_new": bot_events.MessageNew,
    "wall_post_new": bot_events.WallPostNew,
    "wall_repost": bot_events.WallRepost,
    "wall_reply_new": bot_events.WallReplyNew,
    "wall_reply_edit": bot_events.WallReplyEdit,
    "group_join": bot_events.GroupJoin,
}
RESPONSE_MODELS: dict[str, type[BaseModel]] = {
    "wall.get": WallGetResponse,
    "wall.getComments": WallGetCommentsResponse,
    "newsfeed.search": NewsfeedSearchExtendedResponse,  # the schema has no model of the plain answer: a subset
    "wall.createComment": WallCreateCommentResponse,
}


def unknown_keys(model: BaseModel, raw: Any, path: str = "") -> list[str]:
    """Keys of ``raw`` that ``model`` (validated from it) does not know, as dotted paths, recursively."""
    if not isinstance(raw, dict):
        return []
    known = {(f.alias or name): name for name, f in type(model).model_fields.items()}
    found = []
    for key, value in raw.items():
        where = f"{path}.{key}" if path else key
        if key not in known:
            if not any(where == d or where.endswith("." + d) for d in DOCUMENTED_EXTRAS):
                found.append(where)
            continue
        found += _unknown_in(getattr(model, known[key]), value, where)
    return found


def _unknown_in(field: Any, value: Any, where: str) -> list[str]:
    if isinstance(field, BaseModel):
        return unknown_keys(field, value, where)
    if isinstance(field, list) and isinstance(value, list):
        return [
            k for i, (f, v) in enumerate(zip(field, value, strict=False)) for k in _unknown_in(f, v, f"{where}[{i}]")
        ]
    return []


def assert_vk_shape(model_type: type[BaseModel], raw: Any) -> None:
    model = model_type.model_validate(raw)  # raises, naming the field, if a required one is missing or mistyped
    assert unknown_keys(model, raw) == [], f"{model_type.__name__}: keys VK's schema does not have"


def comments_and_replies(comments: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for comment in comments:
        yield comment
        yield from (comment.get("thread") or {}).get("items", [])


def test_the_demo_walls_posts_and_comments_are_vk_objects() -> None:
    for community in json.loads(DEMO_WALLS.read_text(encoding="utf-8"))["communities"]:
        items = _strip(community["items"])
        assert_vk_shape(WallGetResponse, {"response": {"count": len(items), "items": items}})
        for item in items:
            assert_vk_shape(WallWallpostFull, item)
    for item in _strip(json.loads(DEMO_SEARCH_EXTRA.read_text(encoding="utf-8"))["items"]):
        assert_vk_shape(WallWallpostFull, item)
    for posts in json.loads(DEMO_COMMENTS.read_text(encoding="utf-8"))["comments"].values():
        for comments in posts.values():
            for comment in comments_and_replies(_strip(comments)):
                assert_vk_shape(WallWallComment, comment)


def test_the_demo_callback_events_are_vk_events() -> None:
    events = demo_callback_events()
    assert {e["type"] for e in events} >= {"message_new", "wall_reply_new", "wall_reply_edit"}
    for event in events:
        body = {**event, "group_id": 210000001, "v": "5.199", "secret": "s"}
        assert_vk_shape(EVENT_MODELS[event["type"]], body)


@pytest.fixture
def recorded() -> Iterator[tuple[VkStandIn, list[tuple[str, Any]]]]:
    """The demo stand-in and every (method, answer) it gave the connectors' real httpx client."""
    answers: list[tuple[str, Any]] = []

    def keep(response: httpx.Response) -> None:
        response.read()
        answers.append((response.request.url.path.removeprefix("/method/"), response.json()))

    with VkStandIn.demo(TOKEN) as vk:
        vk.reply_token = None  # type: ignore[attr-defined]
        http = httpx.Client(timeout=5, event_hooks={"response": [keep]})
        vk.client = VkClient(http, vk.api_base, TOKEN, "5.199", Polite(None, attempts=1))  # type: ignore[attr-defined]
        yield vk, answers  # type: ignore[misc]


def test_every_answer_the_stand_in_gives_the_connectors_is_vk_shaped(
    recorded: tuple[VkStandIn, list[tuple[str, Any]]],
) -> None:
    vk, answers = recorded
    client: VkClient = vk.client  # type: ignore[attr-defined]
    for owner_id in (-210000001, -210000002):
        wall = VkWallSource(id="w", kind="vk_wall", owner_id=owner_id, comments=True)
        VkWallConnector(wall, client).fetch(None)
    search = VkSearchSource(id="s", kind="vk_search", query="яма дорога Шахты", first_run_hours=24 * 365)
    VkSearchConnector(search, client).fetch(None)
    # An item a test adds with only the fields it needs is served as VK would send it.
    vk.add_post(-210000001, {"id": 19999, "owner_id": -210000001, "from_id": 5, "date": 1795900000, "text": "яма"})
    VkWallConnector(VkWallSource(id="w", kind="vk_wall", owner_id=-210000001), client).fetch(None)
    client.call("wall.createComment", owner_id=-210000001, post_id=18876, message="Передали в администрацию")
    methods = {method for method, _ in answers}
    assert methods == set(RESPONSE_MODELS)
    comments = [c for m, a in answers if m == "wall.getComments" for c in a["response"]["items"]]
    threads = [c["thread"] for c in comments if "thread" in c]  # replies read with comment_id have none
    assert max(t["count"] for t in threads) > 10 and all(len(t["items"]) <= 10 for t in threads)
    for method, answer in answers:
        assert "error" not in answer, answer
        assert_vk_shape(RESPONSE_MODELS[method], answer)
        for item in answer["response"].get("items", []):
            assert_vk_shape(WallWallComment if method == "wall.getComments" else WallWallpostFull, item)


def test_the_callback_events_the_stand_in_pushes_are_vk_events() -> None:
    with WebhookSink() as sink, VkStandIn.demo(TOKEN) as vk:
        for event in demo_callback_events():
            vk.push_event(sink.url, event["type"], 210000001, "secret", event["object"], event["event_id"])
        received = [json.loads(r.body) for r in sink.received]
    assert len(received) == len(demo_callback_events())
    for body in received:
        assert_vk_shape(EVENT_MODELS[body["type"]], body)


def test_the_check_catches_a_shape_vk_does_not_send() -> None:
    post = {"inner_type": "wall_wallpost", "id": 1, "owner_id": -1, "from_id": 5, "date": 1795900000, "text": "яма"}
    assert_vk_shape(WallWallpostFull, post)
    with pytest.raises(AssertionError, match="keys VK's schema does not have"):
        assert_vk_shape(WallWallpostFull, {**post, "attachments": [{"type": "photo", "photo": None, "foto": {}}]})
    with pytest.raises(ValueError, match="can_like"):  # likes as the demo had them before: without can_like
        assert_vk_shape(WallWallpostFull, {**post, "likes": {"count": 3}})
