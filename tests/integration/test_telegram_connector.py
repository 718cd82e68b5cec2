"""The Telegram connector's real httpx code against the Bot API stand-in on loopback."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from otklik.standins.telegram import DEMO_UPDATES, TelegramStandIn
from shared.adapters.politeness import Polite
from shared.adapters.telegram import TelegramApiError, TelegramConnector
from shared.contracts import PostFetchedV1
from shared.domain.errors import SourceAccessError, TransientError
from shared.domain.models import utcnow
from shared.services.ingest import IngestService, PostIntake, WatchedSource
from shared.source_config import TelegramSource
from tests.fakes import MemoryCursors, MemoryHealth, MemoryMarkers, MemoryPublisher, MemoryQuarantine

pytestmark = pytest.mark.integration
TOKEN = "7100000002:AAtest-token_of_the-Otklik-test-bot"
SHAKHTY = {"id": -1001700000001, "title": "Подслушано Шахты", "username": "podslushano_shakhty", "type": "supergroup"}
KIROV_ONLINE = {"id": -1001700000002, "title": "Киров Онлайн", "username": "kirov_online", "type": "channel"}
LENINA = {"id": -1001700000003, "title": "Дом на Ленина 102 — чат жильцов", "type": "supergroup"}
DEMO_CHATS = {"-1001700000001": "shakhty", "@kirov_online": "kirov", "-1001700000003": "kirov"}


@pytest.fixture
def tg() -> Iterator[TelegramStandIn]:
    with TelegramStandIn(token=TOKEN) as server:
        yield server


def connector(
    tg: TelegramStandIn,
    token: str = TOKEN,
    waits: list[float] | None = None,
    attempts: int = 3,
    api_base: str | None = None,
    **source: Any,
) -> TelegramConnector:
    config = TelegramSource.model_validate({"id": "tg-test", "kind": "telegram", "chats": DEMO_CHATS, **source})
    polite = Polite(None, attempts=attempts, sleep=(waits if waits is not None else []).append)
    return TelegramConnector(config, httpx.Client(timeout=5), api_base or tg.api_base, token, polite)


def demo_updates() -> list[dict[str, Any]]:
    updates: list[dict[str, Any]] = json.loads(DEMO_UPDATES.read_text(encoding="utf-8"))["updates"]
    return updates


def demo_messages() -> list[dict[str, Any]]:
    """The messages the demo feed holds that are posts: new messages and channel posts with a chat and text."""
    found = []
    for update in demo_updates():
        message = update.get("message") or update.get("channel_post")
        if message and "chat" in message and (message.get("text") or message.get("caption")):
            found.append(message)
    return found


def find(result_posts: list[Any], chat: dict[str, Any], message_id: int) -> Any:
    return next(p for p in result_posts if p.community == str(chat["id"]) and p.post_id == str(message_id))


def test_first_fetch_returns_every_message_oldest_first_normalised(tg: TelegramStandIn) -> None:
    result = connector(tg).fetch(None)
    messages = demo_messages()
    assert [(p.community, p.post_id) for p in result.posts] == [
        (str(m["chat"]["id"]), str(m["message_id"])) for m in messages
    ]
    assert [p.published_at for p in result.posts] == sorted(p.published_at for p in result.posts)
    assert result.cursor == {"update_id": max(u["update_id"] for u in demo_updates())}
    for post, message in zip(result.posts, messages, strict=True):
        assert post.source == "telegram" and post.source_id == "tg-test"
        assert post.text == (message.get("text") or message["caption"])  # unchanged: emoji, links, line breaks
        assert int(post.published_at.timestamp()) == message["date"]
        assert post.published_at.utcoffset() is not None and post.published_at.utcoffset().total_seconds() == 0
        assert post.municipality_hint == ("shakhty" if message["chat"]["id"] == SHAKHTY["id"] else "kirov")
    first = tg.calls[0]
    assert first["method"] == "getUpdates" and "offset" not in first
    assert first["allowed_updates"] == ["message", "channel_post"] and first["limit"] == 100 and first["timeout"] == 0


def test_links_authors_attachments_and_replies_for_the_three_kinds_of_chat(tg: TelegramStandIn) -> None:
    posts = connector(tg).fetch(None).posts
    road = find(posts, SHAKHTY, 58231)  # a public supergroup: t.me/<username>/<id>
    assert road.url == "https://t.me/podslushano_shakhty/58231" and road.author_id == "5829301746"
    message = demo_messages()[0]
    largest = max(message["photo"], key=lambda s: s["width"] * s["height"])
    assert road.attachments[0].kind == "photo" and road.attachments[0].url == f"tg-file:{largest['file_id']}"
    assert len(road.attachments) == 1

    weather = find(posts, KIROV_ONLINE, 12877)  # a public channel: the channel is the author
    assert weather.url == "https://t.me/kirov_online/12877" and weather.author_id == "-1001700000002"
    assert "https://kirov-online.example/pogoda" in weather.text and weather.text.startswith("❄️")

    lift = find(posts, LENINA, 4410)  # a private supergroup: t.me/c/<id without -100>/<id>
    assert lift.url == "https://t.me/c/1700000003/4410" and lift.parent_post_id is None
    reply = find(posts, LENINA, 4411)
    assert reply.parent_post_id == "4410" and reply.url == "https://t.me/c/1700000003/4411"

    kinds = {a.kind for p in posts for a in p.attachments}
    assert kinds == {"photo", "video", "document"}
    assert all(a.url.startswith("tg-file:") for p in posts for a in p.attachments)


def test_service_messages_edits_and_bare_locations_are_not_posts_but_move_the_cursor(tg: TelegramStandIn) -> None:
    updates = demo_updates()
    result = connector(tg).fetch(None)
    edited = next(u for u in updates if "edited_message" in u)
    joined = next(u for u in updates if "new_chat_members" in u.get("message", {}))
    location = next(u for u in updates if "location" in u.get("message", {}))
    ids = {(p.community, p.post_id) for p in result.posts}
    assert len(ids) == len(result.posts)  # the edit did not add the road post twice
    for update in (joined, location):
        assert (str(update["message"]["chat"]["id"]), str(update["message"]["message_id"])) not in ids
    assert result.cursor["update_id"] >= max(edited["update_id"], joined["update_id"], location["update_id"])


def test_the_malformed_update_is_rejected_with_a_reason_and_the_raw_json(tg: TelegramStandIn) -> None:
    result = connector(tg).fetch(None)
    bad = next(u for u in demo_updates() if "message" in u and "chat" not in u["message"])
    assert len(result.rejected) == 1
    rejected = result.rejected[0]
    assert rejected.key == str(bad["update_id"]) and "without chat" in rejected.reason
    assert json.loads(rejected.payload) == {k: v for k, v in bad.items() if not k.startswith("_")}
    assert "Садовой" in rejected.payload  # Cyrillic kept readable


def test_a_fetch_with_the_cursor_confirms_the_updates_and_returns_nothing_new(tg: TelegramStandIn) -> None:
    c = connector(tg)
    all_ids = [u["update_id"] for u in demo_updates()]
    first = c.fetch(None)
    assert tg.pending() == all_ids  # no offset asked: nothing confirmed yet
    again = c.fetch(first.cursor)
    assert again.posts == [] and again.rejected == [] and again.cursor == first.cursor
    assert tg.calls[-1]["offset"] == max(all_ids) + 1
    assert tg.pending() == []  # Telegram forgot them: the cursor must be stored only after publishing


def test_without_the_stored_cursor_the_same_updates_come_again(tg: TelegramStandIn) -> None:
    c = connector(tg)
    first = c.fetch(None)
    assert [p.post_id for p in c.fetch(None).posts] == [p.post_id for p in first.posts]  # a crash before publishing


def test_a_new_message_appears_and_only_it_is_returned(tg: TelegramStandIn) -> None:
    c = connector(tg)
    cursor = c.fetch(None).cursor
    c.fetch(cursor)
    added = tg.add_message(
        SHAKHTY, "Снова яма на Советской у рынка, уже третья за неделю 😤 https://t.me/podslushano_shakhty"
    )
    result = c.fetch(cursor)
    assert [(p.community, p.post_id, p.text) for p in result.posts] == [
        (str(SHAKHTY["id"]), str(added["message"]["message_id"]), added["message"]["text"])
    ]
    assert result.cursor == {"update_id": added["update_id"]}
    assert c.fetch(result.cursor).posts == []


def test_location_becomes_geo_and_a_photo_without_caption_is_skipped(tg: TelegramStandIn) -> None:
    c = connector(tg)
    cursor = c.fetch(None).cursor
    tg.add_message(
        LENINA, None, photo=[{"file_id": "AgAC-no-caption", "file_unique_id": "u1", "width": 90, "height": 90}]
    )
    with_geo = tg.add_message(LENINA, "Вот тут яма", location={"latitude": 58.6035, "longitude": 49.668})
    result = c.fetch(cursor)
    assert [p.post_id for p in result.posts] == [str(with_geo["message"]["message_id"])]
    geo = result.posts[0].geo
    assert geo is not None and (geo.lat, geo.lon) == (58.6035, 49.668)


def test_basic_groups_and_private_chats_get_a_tg_address_and_the_source_municipality(tg: TelegramStandIn) -> None:
    c = connector(tg, chats={}, municipality="kirov")
    cursor = c.fetch(None).cursor
    group = tg.add_message({"id": -4012345678, "title": "Соседи", "type": "group"}, "Опять нет воды")
    private = tg.add_message(
        {"id": 5829301746, "first_name": "Денис", "username": "den", "type": "private"}, "Здравствуйте"
    )
    posts = c.fetch(cursor).posts
    assert [p.url for p in posts] == [
        f"tg://chat/-4012345678/{group['message']['message_id']}",
        f"tg://chat/5829301746/{private['message']['message_id']}",
    ]
    assert {p.municipality_hint for p in posts} == {"kirov"}


def test_only_the_configured_chats_are_posts_and_the_others_still_move_the_cursor(tg: TelegramStandIn) -> None:
    result = connector(tg, chats={"@PODSLUSHANO_shakhty": "shakhty"}).fetch(None)
    assert result.posts and {p.community for p in result.posts} == {str(SHAKHTY["id"])}
    assert all(p.municipality_hint == "shakhty" for p in result.posts)
    assert result.cursor == {"update_id": max(u["update_id"] for u in demo_updates())}
    assert all(p.url.startswith("https://t.me/podslushano_shakhty/") for p in result.posts)


def test_every_chat_when_none_is_configured(tg: TelegramStandIn) -> None:
    result = connector(tg, chats={}, municipality="kirov").fetch(None)
    assert len(result.posts) == len(demo_messages())
    assert {p.municipality_hint for p in result.posts} == {"kirov"}


def many_updates(tmp_path: Path, count: int) -> Path:
    updates = [
        {
            "update_id": 1000 + i,
            "message": {
                "message_id": i,
                "from": {"id": 7, "is_bot": False, "first_name": "Житель"},
                "chat": SHAKHTY,
                "date": 1795300000 + i,
                "text": f"сообщение {i}",
            },
        }
        for i in range(1, count + 1)
    ]
    feed = tmp_path / "updates.json"
    feed.write_text(json.dumps({"updates": updates}, ensure_ascii=False), encoding="utf-8")
    return feed


def test_one_fetch_reads_one_page_and_confirms_nothing_it_returns(tmp_path: Path) -> None:
    with TelegramStandIn(many_updates(tmp_path, 250), token=TOKEN) as tg:
        tg_connector = connector(tg)
        first = tg_connector.fetch(None)
        assert [p.post_id for p in first.posts] == [str(i) for i in range(1, 101)] and first.more
        assert first.cursor == {"update_id": 1100}
        assert tg.pending() == list(range(1001, 1251))  # still on Telegram: nothing published yet
        second = tg_connector.fetch(first.cursor)  # asking from the cursor confirms the first page
        assert [p.post_id for p in second.posts] == [str(i) for i in range(101, 201)] and second.more
        assert tg.pending() == list(range(1101, 1251))
        third = tg_connector.fetch(second.cursor)
        assert len(third.posts) == 50 and not third.more and third.cursor == {"update_id": 1250}
        assert [c.get("offset") for c in tg.calls] == [None, 1101, 1201]


class FailingOnce(MemoryPublisher):
    """Pub/Sub refusing the n-th publish call once: a crash between fetching a page and publishing it."""

    def __init__(self, fail_on_call: int) -> None:
        super().__init__()
        self.calls, self.fail_on_call = 0, fail_on_call

    def publish(self, topic: str, messages: Any) -> list[str]:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise TransientError("Pub/Sub unavailable")
        return super().publish(topic, messages)


def test_ingest_pages_until_the_end_and_a_failed_publish_loses_nothing(tmp_path: Path) -> None:
    with TelegramStandIn(many_updates(tmp_path, 250), token=TOKEN) as tg:
        publisher, cursors, markers = FailingOnce(fail_on_call=2), MemoryCursors(), MemoryMarkers()

        def run() -> Any:
            intake = PostIntake(markers, publisher, "posts", utcnow)
            source = WatchedSource(connector(tg))
            return IngestService([source], cursors, intake, MemoryQuarantine(), MemoryHealth(), utcnow).run()

        [failed] = run().sources
        assert failed.status == "failing" and failed.published == 100
        assert cursors.get("tg-test") == {"update_id": 1100}
        assert tg.pending() == list(range(1101, 1251))  # the unpublished second page is still on Telegram
        [done] = run().sources
        assert done.status == "ok" and done.published == 150
        published = [m.post.post_id for m in publisher.on("posts") if isinstance(m, PostFetchedV1)]
        assert published == [str(i) for i in range(1, 251)]  # each once, in order
        assert cursors.get("tg-test") == {"update_id": 1250}


def test_429_is_retried_after_exactly_the_wait_telegram_asked_for(tg: TelegramStandIn) -> None:
    waits: list[float] = []
    tg.fail_next(status=429, retry_after=7)
    result = connector(tg, waits=waits).fetch(None)
    assert waits == [7.0]
    assert len(result.posts) == len(demo_messages()) and len(tg.calls) == 2


def test_5xx_is_retried_and_a_server_that_keeps_failing_is_transient(tg: TelegramStandIn) -> None:
    waits: list[float] = []
    tg.fail_next(status=502)
    assert len(connector(tg, waits=waits).fetch(None).posts) == len(demo_messages())
    assert len(waits) == 1 and 0 <= waits[0] <= 60
    for _ in range(3):
        tg.fail_next(status=500)
    with pytest.raises(TransientError, match="error 500"):
        connector(tg).fetch(None)


def test_an_unreachable_api_is_transient_and_names_no_token(tg: TelegramStandIn) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    with pytest.raises(TransientError) as err:
        connector(tg, api_base=f"http://127.0.0.1:{port}", attempts=2).fetch(None)
    assert "ConnectError" in str(err.value) and TOKEN not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__  # httpx's error carries the URL


def test_a_wrong_token_stops_the_source_and_the_token_is_nowhere(
    tg: TelegramStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "7100000002:AAwrong-secret-revoked-yesterday"
    with caplog.at_level(logging.INFO, logger="httpx"), pytest.raises(SourceAccessError) as err:
        connector(tg, token=wrong).fetch(None)
    assert "error 401" in str(err.value) and "Unauthorized" in str(err.value)
    assert "OTKLIK_TELEGRAM_BOT_TOKEN" in err.value.action and "@BotFather" in err.value.action
    assert wrong not in str(err.value) and wrong not in err.value.action
    assert "getUpdates" in caplog.text and wrong not in caplog.text  # httpx logs the URL; the token is redacted
    assert len(tg.calls) == 1  # not retried


def test_a_kicked_bot_stops_the_source_with_what_to_do(tg: TelegramStandIn) -> None:
    tg.kick()
    with pytest.raises(SourceAccessError) as err:
        connector(tg).fetch(None)
    assert "error 403" in str(err.value) and "kicked" in str(err.value)
    assert "add the bot back" in err.value.action


def test_another_poller_or_a_webhook_stops_the_source(tg: TelegramStandIn) -> None:
    tg.fail_next(status=409)
    with pytest.raises(SourceAccessError) as err:
        connector(tg).fetch(None)
    assert "Conflict" in str(err.value) and "deleteWebhook" in err.value.action


def test_other_client_errors_are_permanent(tg: TelegramStandIn) -> None:
    tg.fail_next(status=400)
    with pytest.raises(TelegramApiError) as err:
        connector(tg).fetch(None)
    assert err.value.code == 400 and len(tg.calls) == 1


def test_the_stand_in_honours_limit_negative_offset_and_allowed_updates(tg: TelegramStandIn) -> None:
    ids = tg.pending()
    with httpx.Client(base_url=f"{tg.api_base}/bot{TOKEN}") as http:
        page = http.get("/getUpdates", params={"limit": "3"}).json()
        assert page["ok"] is True and [u["update_id"] for u in page["result"]] == ids[:3]
        assert len(http.post("/getUpdates", json={"limit": 500}).json()["result"]) == min(len(ids), 100)
        http.post("/getUpdates", data={"offset": "-2", "allowed_updates": '["message"]'})
        assert tg.pending() == ids[-2:]
        assert tg.add_message(SHAKHTY, "в чат") is not None
        with pytest.raises(ValueError, match="allowed_updates"):
            tg.add_message(KIROV_ONLINE, "в канал")  # channel_post is no longer asked for: Telegram drops it
        missing = http.post("/getNothing", json={})
        assert missing.status_code == 404 and missing.json() == {
            "ok": False,
            "error_code": 404,
            "description": "Not Found",
        }
        assert http.get("/getMe").json()["result"]["is_bot"] is True
