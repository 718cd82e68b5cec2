"""The Telegram connector's real httpx code against the Bot API stand-in on loopback: every update a page holds
is a post, a named skip or a quarantine record, in the shapes Telegram really sends (albums, locations and
venues, text links, automatic forwards and their comments, edits, forum topics, anonymous admins, forwards,
private chats with the bot)."""

from __future__ import annotations

import json
import logging
import socket
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from otklik.standins.telegram import DEMO_UPDATES, TelegramStandIn, photo
from shared.adapters.politeness import Polite
from shared.adapters.telegram import TelegramApiError, TelegramConnector
from shared.contracts import PostFetchedV1
from shared.domain.errors import SourceAccessError, TransientError
from shared.domain.models import Geo, Post, ReplyTarget
from shared.ports import FetchResult, SkipReason
from shared.services.ingest import IngestService, PostIntake, WatchedSource
from shared.source_config import TelegramSource
from tests.fakes import MemoryCursors, MemoryHealth, MemoryMarkers, MemoryPublisher, MemoryQuarantine

pytestmark = pytest.mark.integration
TOKEN = "7100000002:AAtest-token_of_the-Otklik-test-bot"
SHAKHTY = {"id": -1001700000001, "title": "Подслушано Шахты", "username": "podslushano_shakhty", "type": "supergroup"}
KIROV_ONLINE = {"id": -1001700000002, "title": "Киров Онлайн", "username": "kirov_online", "type": "channel"}
LENINA = {"id": -1001700000003, "title": "Дом на Ленина 102 — чат жильцов", "type": "supergroup"}
DISCUSSION = {
    "id": -1001700000004,
    "title": "Киров Онлайн — обсуждение",
    "username": "kirov_online_chat",
    "type": "supergroup",
}
FORUM = {"id": -1001700000005, "title": "ЖК «Молодёжный» — жильцы", "type": "supergroup", "is_forum": True}
RESIDENT_CHAT = {"id": 6300000002, "first_name": "Олег", "username": "oleg_k", "type": "private"}
DEMO_CHATS = {
    "-1001700000001": "shakhty",
    "@kirov_online": "kirov",
    "-1001700000003": "kirov",
    "@kirov_online_chat": "kirov",
    "-1001700000005": "shakhty",
}
DEMO_SOURCE = {"chats": DEMO_CHATS, "private_chats": True, "private_chats_municipality": "kirov"}
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
# The demo feed's updates that are not posts of their own, and why.
DEMO_SKIPS = {
    731405121: SkipReason.SERVICE_MESSAGE,  # a member joined
    731405131: SkipReason.SERVICE_MESSAGE,  # a forum topic was created
    731405145: SkipReason.SERVICE_MESSAGE,  # /start in the private chat with the bot
    731405117: SkipReason.FOLDED,  # a bare location: the open manhole's place
    731405134: SkipReason.FOLDED,  # the album's second photo
    731405135: SkipReason.FOLDED,  # and third
    731405141: SkipReason.FOLDED,  # the channel post's automatic forward into its discussion group
    731405147: SkipReason.FOLDED,  # the resident's second photo to the bot
    731405148: SkipReason.FOLDED,  # and the location after it
    731405136: SkipReason.EMPTY,  # a sticker
    731405143: SkipReason.UNSUPPORTED,  # my_chat_member: the bot was added to a chat
    731405144: SkipReason.CHAT_NOT_CONFIGURED,  # a message in that chat
}
DEMO_REJECTED = {731405122}  # a message without chat


@pytest.fixture
def tg() -> Iterator[TelegramStandIn]:
    with TelegramStandIn(token=TOKEN) as server:
        yield server


@pytest.fixture
def bare() -> Iterator[TelegramStandIn]:
    """The stand-in with nothing queued: each test adds the updates it reads."""
    with TelegramStandIn(None, token=TOKEN) as server:
        yield server


def connector(
    tg: TelegramStandIn,
    token: str = TOKEN,
    waits: list[float] | None = None,
    attempts: int = 3,
    api_base: str | None = None,
    **source: Any,
) -> TelegramConnector:
    config = TelegramSource.model_validate({"id": "tg-test", "kind": "telegram", **DEMO_SOURCE, **source})
    polite = Polite(None, attempts=attempts, sleep=(waits if waits is not None else []).append)
    return TelegramConnector(config, httpx.Client(timeout=5), api_base or tg.api_base, token, polite)


def demo_updates() -> list[dict[str, Any]]:
    updates: list[dict[str, Any]] = json.loads(DEMO_UPDATES.read_text(encoding="utf-8"))["updates"]
    return updates


def demo_posts() -> list[dict[str, Any]]:
    """The demo feed's messages that are posts: those labelled with their ground truth, and the edits."""
    return [
        next(v for k, v in u.items() if k in {"message", "channel_post", "edited_message", "edited_channel_post"})
        for u in demo_updates()
        if "_label" in u or "edited_message" in u or "edited_channel_post" in u
    ]


def chat_of(update: dict[str, Any]) -> int | None:
    """The chat of a message update (None for other kinds, and for the broken message without one)."""
    message = next((v for k, v in update.items() if k.endswith(("message", "channel_post"))), None)
    return message["chat"]["id"] if message is not None and "chat" in message else None


def find(posts: list[Post], chat: dict[str, Any], message_id: int | str, edited: bool = False) -> Post:
    return next(
        p
        for p in posts
        if p.community == str(chat["id"]) and p.post_id == str(message_id) and (p.edited_at is not None) == edited
    )


def assert_accounted(tg: TelegramStandIn, *results: FetchResult) -> None:
    """Every update the stand-in served is a post (an album: its head), a skip or a quarantine record, once."""
    served = {u["update_id"] for u in tg.served}
    keys = [s.key for r in results for s in r.skipped] + [b.key for r in results for b in r.rejected]
    assert len(keys) == len(set(keys))
    assert len(served) == sum(len(r.posts) + len(r.rejected) + len(r.skipped) for r in results)


def read_all(tg: TelegramStandIn, c: TelegramConnector, cursor: dict[str, Any] | None = None) -> list[FetchResult]:
    """Fetch page by page as ingest does (the cursor of each page asks for the next) until nothing is left."""
    results = []
    while True:
        result = c.fetch(cursor)
        results.append(result)
        cursor = result.cursor
        if not result.more:
            return results


# --- the demo feed --------------------------------------------------------------------------------------------


def test_every_demo_update_is_a_post_a_named_skip_or_rejected(tg: TelegramStandIn) -> None:
    result = connector(tg).fetch(None)
    assert_accounted(tg, result)
    assert len(tg.served) == len(demo_updates()) == 37
    assert {int(s.key): s.reason for s in result.skipped} == DEMO_SKIPS
    assert {int(r.key) for r in result.rejected} == DEMO_REJECTED
    assert len(result.posts) == len(demo_posts()) == 24


def test_first_fetch_returns_every_post_oldest_first_normalised(tg: TelegramStandIn) -> None:
    result = connector(tg).fetch(None)
    messages = demo_posts()
    expected = [
        (str(m["chat"]["id"]), str(m["message_id"]), "edit_date" in m)
        for m in messages
        if not m.get("reply_to_message", {}).get("is_automatic_forward")
    ]
    comment = (str(KIROV_ONLINE["id"]), "12881_3002", False)  # a comment under a channel post: the channel's
    assert sorted((p.community, p.post_id, p.edited_at is not None) for p in result.posts) == sorted(
        [*expected, comment]
    )
    assert [p.published_at for p in result.posts] == sorted(p.published_at for p in result.posts)
    assert result.cursor == {"update_id": max(u["update_id"] for u in demo_updates())}
    for post in result.posts:
        assert post.source == "telegram" and post.source_id == "tg-test"
        assert post.published_at.utcoffset() == timedelta(0)
    shakhty = {str(SHAKHTY["id"]), str(FORUM["id"])}
    assert {p.community for p in result.posts if p.municipality_hint == "shakhty"} == shakhty
    for message in messages:
        if "entities" in message and any(e["type"] == "text_link" for e in message["entities"]):
            continue  # the URL joins the text: below
        post = next(
            p
            for p in result.posts
            if p.url.endswith(f"/{message['message_id']}") and (p.edited_at is not None) == ("edit_date" in message)
        )
        assert post.text == (message.get("text") or message["caption"])  # unchanged: emoji, links, line breaks
    first = tg.calls[0]
    assert first["method"] == "getUpdates" and "offset" not in first
    assert first["allowed_updates"] == ["message", "edited_message", "channel_post", "edited_channel_post"]
    assert first["limit"] == 100 and first["timeout"] == 0


def test_links_authors_attachments_and_replies_for_the_three_kinds_of_chat(tg: TelegramStandIn) -> None:
    posts = connector(tg).fetch(None).posts
    road = find(posts, SHAKHTY, 58231)  # a public supergroup: t.me/<username>/<id>
    assert road.url == "https://t.me/podslushano_shakhty/58231" and road.author_id == "5829301746"
    message = demo_posts()[0]
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
    assert not any(p.direct or p.reply_to for p in posts if not p.community.startswith("63"))


def test_the_demo_shapes_become_the_posts_they_are(tg: TelegramStandIn) -> None:
    posts = connector(tg).fetch(None).posts
    manhole = find(posts, SHAKHTY, 58233)  # the bare location its author sent as a reply, 4 minutes later
    assert manhole.geo == Geo(lat=47.712842, lon=40.209318)

    road_edit = find(posts, SHAKHTY, 58231, edited=True)
    assert road_edit.edited_at == datetime.fromtimestamp(1795600970, UTC) and "на своей приоре" in road_edit.text
    assert road_edit.published_at == find(posts, SHAKHTY, 58231).published_at
    assert road_edit.intake_key != find(posts, SHAKHTY, 58231).intake_key  # each version published once
    wires_edit = find(posts, KIROV_ONLINE, 12878, edited=True)  # edited_channel_post
    assert wires_edit.text.endswith("пока участок никто не огородил.") and wires_edit.edited_at is not None

    album = find(posts, SHAKHTY, 58241)
    assert [a.kind for a in album.attachments] == ["photo"] * 3 and album.text.startswith("Двор на Шахтной, 7")
    assert len({a.url for a in album.attachments}) == 3

    pothole = find(posts, LENINA, 4414)
    assert "вот она тут (https://yandex.ru/maps/?pt=49.6702,58.6047&z=18&l=map) — за неделю" in pothole.text

    chair = find(posts, LENINA, 4415)  # an anonymous admin: the chat itself, like a channel
    assert chair.author_id == str(LENINA["id"]) and chair.text.startswith("Уважаемые жильцы!")

    heating = find(posts, FORUM, 119)  # a forum topic's message "replies" to the topic, which is no parent
    assert heating.parent_post_id is None and heating.url == "https://t.me/c/1700000005/119"

    forward = find(posts, SHAKHTY, 58240)  # a channel post forwarded into the chat names its original
    assert forward.repost_of is not None
    assert (forward.repost_of.community, forward.repost_of.post_id) == ("-1001700000010", "2291")
    assert forward.repost_of.url == "https://t.me/shakhty_adm/2291" and forward.author_id == "4410293857"

    lights = find(posts, KIROV_ONLINE, 12881)
    comment = find(posts, KIROV_ONLINE, "12881_3002")  # the comment under it, in the discussion group
    assert comment.parent_post_id == "12881" and comment.author_id == "5021773619"
    assert comment.url == "https://t.me/kirov_online_chat/3002" and comment.municipality_hint == "kirov"
    assert sum(p.text == lights.text for p in posts) == 1  # the automatic forward is not a second post

    [direct] = [p for p in posts if p.direct]
    assert direct.reply_to == ReplyTarget(channel="telegram_chat", chat_id="6300000001", message_id="2")
    assert direct.community == "6300000001" and direct.author_id == "6300000001"
    assert direct.text.startswith("Здравствуйте! На Урицкого, 31") and len(direct.attachments) == 2
    assert direct.geo == Geo(lat=58.593812, lon=49.651377) and direct.municipality_hint == "kirov"


def test_the_demo_feed_through_ingest_adds_up(tg: TelegramStandIn) -> None:
    publisher = MemoryPublisher()
    intake = PostIntake(MemoryMarkers(), publisher, "posts", lambda: T0)
    service = IngestService(
        [WatchedSource(connector(tg))], MemoryCursors(), intake, MemoryQuarantine(), MemoryHealth(), lambda: T0
    )
    report = service.run()
    [rep] = report.sources
    assert report.accounted and rep.status == "ok"
    assert (rep.fetched, rep.published, rep.duplicates, rep.skipped, rep.quarantined) == (37, 24, 0, 12, 1)
    assert rep.skipped_by_reason == dict(Counter(r.value for r in DEMO_SKIPS.values()))


def test_a_malformed_update_is_rejected_with_a_reason_and_the_raw_json(tg: TelegramStandIn) -> None:
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
    assert again.posts == [] and again.rejected == [] and again.skipped == [] and again.cursor == first.cursor
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


def test_only_the_configured_chats_are_posts_and_the_others_are_skipped_as_not_configured(tg: TelegramStandIn) -> None:
    result = connector(tg, chats={"@PODSLUSHANO_shakhty": "shakhty"}, private_chats=None).fetch(None)
    assert result.posts and {p.community for p in result.posts} == {str(SHAKHTY["id"])}
    assert all(p.municipality_hint == "shakhty" for p in result.posts)
    assert result.cursor == {"update_id": max(u["update_id"] for u in demo_updates())}
    assert all(p.url.startswith("https://t.me/podslushano_shakhty/") for p in result.posts)
    other_chats = {u["update_id"] for u in demo_updates() if chat_of(u) not in (None, SHAKHTY["id"])}
    not_configured = {int(s.key) for s in result.skipped if s.reason is SkipReason.CHAT_NOT_CONFIGURED}
    assert not_configured == other_chats
    assert_accounted(tg, result)


def test_every_chat_when_none_is_configured(tg: TelegramStandIn) -> None:
    result = connector(tg, chats={}, private_chats=None, private_chats_municipality=None, municipality="kirov").fetch(
        None
    )
    assert len(result.posts) == len(demo_posts()) + 1  # and the chat nobody configured, with its advertisement
    assert {p.municipality_hint for p in result.posts} == {"kirov"}
    assert any(p.direct for p in result.posts)  # private chats too, when every chat is taken
    assert_accounted(tg, result)


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
            intake = PostIntake(markers, publisher, "posts", lambda: T0)
            source = WatchedSource(connector(tg))
            return IngestService([source], cursors, intake, MemoryQuarantine(), MemoryHealth(), lambda: T0).run()

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
    assert len(result.posts) == len(demo_posts()) and len(tg.calls) == 2


def test_5xx_is_retried_and_a_server_that_keeps_failing_is_transient(tg: TelegramStandIn) -> None:
    waits: list[float] = []
    tg.fail_next(status=502)
    assert len(connector(tg, waits=waits).fetch(None).posts) == len(demo_posts())
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


# --- albums ----------------------------------------------------------------------------------------------------


def test_an_album_is_one_post_with_every_photo_and_the_caption_of_whichever_item_has_it(bare: TelegramStandIn) -> None:
    items = bare.add_album(
        SHAKHTY, ["a1", "a2", "a3"], caption="Ливнёвка на Садовой забита, вода до колена", caption_on=1
    )
    result = connector(bare).fetch(None)
    [post] = result.posts
    head = items[1]["message"]
    assert post.post_id == str(head["message_id"]) and post.text == head["caption"]  # an edit of the caption: same post
    assert [a.url for a in post.attachments] == [f"tg-file:{photo(n)[-1]['file_id']}" for n in ("a1", "a2", "a3")]
    assert post.published_at == datetime.fromtimestamp(head["date"], UTC)
    assert sorted(int(s.key) for s in result.skipped) == [items[0]["update_id"], items[2]["update_id"]]
    assert {s.reason for s in result.skipped} == {SkipReason.FOLDED}
    assert_accounted(bare, result)


def test_a_photo_without_a_caption_is_a_post_and_so_is_an_album_without_one(bare: TelegramStandIn) -> None:
    single = bare.add_message(LENINA, None, photo=photo("lonely"))
    bare.add_album(LENINA, ["b1", "b2"])
    result = connector(bare).fetch(None)
    lonely, album = result.posts
    assert lonely.text == "" and [a.url for a in lonely.attachments] == [f"tg-file:{photo('lonely')[-1]['file_id']}"]
    assert lonely.post_id == str(single["message"]["message_id"])
    assert album.text == "" and len(album.attachments) == 2
    assert_accounted(bare, result)


def test_an_album_straddling_two_pages_is_held_whole_for_the_next_page(tmp_path: Path) -> None:
    with TelegramStandIn(many_updates(tmp_path, 97), token=TOKEN) as tg:
        album = tg.add_album(SHAKHTY, ["s1", "s2", "s3", "s4", "s5"], caption="Упал светофор на Победы")
        tg.add_message(SHAKHTY, "и ещё одно сообщение после альбома")
        c = connector(tg)
        first = c.fetch(None)
        assert len(tg.served) == 100 and first.more  # the page ends inside the album: items 1-3 of 5
        assert [p.post_id for p in first.posts] == [str(i) for i in range(1, 98)]
        assert first.cursor == {"update_id": 1097} and first.skipped == []
        assert tg.pending()[97:100] == [u["update_id"] for u in album[:3]]  # not confirmed: they come again
        second = c.fetch(first.cursor)
        [whole, after] = second.posts
        assert whole.text == "Упал светофор на Победы" and len(whole.attachments) == 5
        assert whole.post_id == str(album[0]["message"]["message_id"]) and after.text.startswith("и ещё")
        assert len(second.skipped) == 4 and not second.more
        assert_accounted(tg, first, second)


def test_an_album_straddling_pages_is_published_once_with_every_photo_through_ingest(tmp_path: Path) -> None:
    with TelegramStandIn(many_updates(tmp_path, 98), token=TOKEN) as tg:
        tg.add_album(SHAKHTY, ["i1", "i2", "i3", "i4"], caption="Три дня нет воды на Мечникова")
        publisher, cursors = MemoryPublisher(), MemoryCursors()
        intake = PostIntake(MemoryMarkers(), publisher, "posts", lambda: T0)
        service = IngestService(
            [WatchedSource(connector(tg))], cursors, intake, MemoryQuarantine(), MemoryHealth(), lambda: T0
        )
        [rep] = service.run().sources
        posts = [m.post for m in publisher.on("posts") if isinstance(m, PostFetchedV1)]
        assert len(posts) == 99 and len({p.intake_key for p in posts}) == 99
        assert len(posts[-1].attachments) == 4 and posts[-1].text == "Три дня нет воды на Мечникова"
        assert (rep.fetched, rep.published, rep.skipped, rep.skipped_by_reason) == (102, 99, 3, {"folded": 3})
        assert tg.pending() == [] or cursors.get("tg-test") == {"update_id": max(tg.pending())}


def test_a_full_page_that_is_one_album_to_its_end_is_not_held_forever(tmp_path: Path) -> None:
    """The cut never leaves a page empty: an album reaching from the page's first update to its last is read as
    it is (it cannot be longer than ten items, so this takes a broken or hostile feed)."""
    updates = [
        {
            "update_id": 1 + i,
            "message": {
                "message_id": 1 + i,
                "from": {"id": 7, "is_bot": False, "first_name": "Житель"},
                "chat": SHAKHTY,
                "date": 1795300000,
                "media_group_id": "1387000000001",
                "photo": photo(f"p{i}"),
            },
        }
        for i in range(100)
    ]
    feed = tmp_path / "album.json"
    feed.write_text(json.dumps({"updates": updates}), encoding="utf-8")
    with TelegramStandIn(feed, token=TOKEN) as tg:
        result = connector(tg).fetch(None)
        assert len(result.posts) == 1 and len(result.posts[0].attachments) == 100 and result.more
        assert result.cursor == {"update_id": 100}


# --- places ----------------------------------------------------------------------------------------------------


def test_a_location_after_its_senders_post_is_that_posts_place_and_otherwise_a_post_of_its_own(
    bare: TelegramStandIn,
) -> None:
    other = {"id": 6000000077, "is_bot": False, "first_name": "Соседка"}
    text = bare.add_message(SHAKHTY, "Прорыв трубы, вода хлещет на дорогу")
    bare.add_message(SHAKHTY, None, location={"latitude": 47.7101, "longitude": 40.2155})  # 60 s later: its place
    bare.add_message(SHAKHTY, None, location={"latitude": 47.7, "longitude": 40.2}, **{"from": other})
    late = bare.add_message(SHAKHTY, "Опять яма у школы", date=1795310000)
    far = bare.add_message(SHAKHTY, None, location={"latitude": 47.72, "longitude": 40.23}, date=1795310000 + 3600)
    result = connector(bare).fetch(None)
    pipe, neighbour, school, alone = result.posts
    assert pipe.post_id == str(text["message"]["message_id"]) and pipe.geo == Geo(lat=47.7101, lon=40.2155)
    assert neighbour.text == "" and neighbour.geo == Geo(lat=47.7, lon=40.2)  # someone else's: a post of its own
    assert school.post_id == str(late["message"]["message_id"]) and school.geo is None  # an hour later: not its
    assert alone.post_id == str(far["message"]["message_id"]) and alone.geo == Geo(lat=47.72, lon=40.23)
    assert [s.reason for s in result.skipped] == [SkipReason.FOLDED]
    assert_accounted(bare, result)


def test_a_venue_gives_geo_and_its_title_and_address_as_text(bare: TelegramStandIn) -> None:
    venue = {
        "location": {"latitude": 58.6035, "longitude": 49.668},
        "title": "Остановка «Филармония»",
        "address": "ул. Московская, 34, Киров",
        "foursquare_id": "4c8f5b6a7a0b0000",
    }
    bare.add_message(LENINA, "На остановке разбито стекло, осколки по всей лавке")
    bare.add_message(LENINA, None, venue=venue, location=venue["location"])  # the place of the post before it
    bare.add_message(LENINA, None, venue=venue, location=venue["location"], date=1795390000)
    result = connector(bare).fetch(None)
    glass, alone = result.posts
    place = "Место: Остановка «Филармония», ул. Московская, 34, Киров"
    assert glass.text == f"На остановке разбито стекло, осколки по всей лавке\n{place}"
    assert glass.geo == Geo(lat=58.6035, lon=49.668)
    assert alone.text == place and alone.geo == glass.geo
    assert_accounted(bare, result)


# --- text links ------------------------------------------------------------------------------------------------


def test_text_link_urls_are_kept_in_the_text_counting_utf16_code_units(bare: TelegramStandIn) -> None:
    text = "😡🚧 Яма тут, а схема объезда здесь. Смотрите https://shakhty.example/objezd"
    entities = [
        # «тут» is the 8th character but the 10th UTF-16 code unit: each of the two emoji takes two.
        {"offset": 9, "length": 3, "type": "text_link", "url": "https://yandex.ru/maps/-/CDa7VW"},
        {"offset": 30, "length": 5, "type": "text_link", "url": "https://shakhty.example/objezd"},
        {"offset": 46, "length": 30, "type": "url"},
        {"offset": 46, "length": 30, "type": "text_link", "url": "https://shakhty.example/objezd"},  # shows its URL
        {"offset": 400, "length": 3, "type": "text_link", "url": "https://outside.example"},  # beyond the text
    ]
    bare.add_message(SHAKHTY, text, entities=entities)
    bare.add_message(
        SHAKHTY,
        None,
        photo=photo("map"),
        caption="⚠️ Провал вот тут",
        caption_entities=[
            {"offset": 14, "length": 3, "type": "text_link", "url": "https://yandex.ru/maps/?pt=40.21,47.71"}
        ],
    )
    link, caption = connector(bare).fetch(None).posts
    assert link.text == (
        "😡🚧 Яма тут (https://yandex.ru/maps/-/CDa7VW), а схема объезда здесь (https://shakhty.example/objezd). "
        "Смотрите https://shakhty.example/objezd"
    )
    assert caption.text == "⚠️ Провал вот тут (https://yandex.ru/maps/?pt=40.21,47.71)"


# --- channels and their discussion groups ----------------------------------------------------------------------


def test_an_automatic_forward_is_folded_and_the_comments_under_it_attach_to_the_channel_post(
    bare: TelegramStandIn,
) -> None:
    post = bare.add_message(KIROV_ONLINE, "На Воровского прорвало теплотрассу, пар валит из-под асфальта")
    copy = bare.add_automatic_forward(post, DISCUSSION)
    comment = bare.add_comment(copy, "Там уже провалилась машина, будьте осторожны")
    bare.add_message(DISCUSSION, "Какая машина?", reply_to_message=comment["message"], message_thread_id=1)
    result = connector(bare).fetch(None)
    channel_post, under, nested = result.posts
    assert channel_post.community == str(KIROV_ONLINE["id"]) and channel_post.post_id == str(
        post["channel_post"]["message_id"]
    )
    assert (under.community, under.parent_post_id) == (str(KIROV_ONLINE["id"]), channel_post.post_id)
    assert under.post_id == f"{channel_post.post_id}_{comment['message']['message_id']}"
    assert under.url == f"https://t.me/kirov_online_chat/{comment['message']['message_id']}"
    assert under.municipality_hint == "kirov"  # the discussion group's
    # A reply to a comment stays in the group: the payload does not say which channel post its thread is under.
    assert (nested.community, nested.parent_post_id) == (str(DISCUSSION["id"]), str(comment["message"]["message_id"]))
    assert [(int(s.key), s.reason) for s in result.skipped] == [(copy["update_id"], SkipReason.FOLDED)]
    assert_accounted(bare, result)


def test_comments_under_an_automatic_forward_in_the_older_shape_attach_too(bare: TelegramStandIn) -> None:
    """Before Bot API 7.0 the copy named its post with forward_from_chat and forward_from_message_id."""
    legacy = {
        "message_id": 3100,
        "from": {"id": 777000, "is_bot": False, "first_name": "Telegram"},
        "sender_chat": KIROV_ONLINE,
        "chat": DISCUSSION,
        "date": 1795300000,
        "forward_from_chat": KIROV_ONLINE,
        "forward_from_message_id": 12990,
        "forward_date": 1795299998,
        "is_automatic_forward": True,
        "text": "Новость",
    }
    bare.add_update({"message": legacy})
    bare.add_message(DISCUSSION, "А у нас на Ленина так же", reply_to_message=legacy, message_thread_id=3100)
    [comment] = connector(bare).fetch(None).posts
    assert (comment.community, comment.post_id, comment.parent_post_id) == ("-1001700000002", "12990_3101", "12990")


def test_a_forwarded_channel_post_is_published_once_with_its_original(bare: TelegramStandIn) -> None:
    original = bare.add_message(KIROV_ONLINE, "Отключение отопления на Карла Маркса, 20 до 18:00")
    origin = {"type": "channel", "chat": KIROV_ONLINE, "message_id": original["channel_post"]["message_id"], "date": 1}
    forward = bare.add_message(LENINA, original["channel_post"]["text"], forward_origin=origin)
    from_user = {"type": "user", "sender_user": {"id": 42, "is_bot": False, "first_name": "Ира"}, "date": 1}
    bare.add_message(LENINA, "Пересылаю: у нас тоже холодно", forward_origin=from_user)
    posts = connector(bare).fetch(None).posts
    assert posts[1].repost_of is not None and posts[1].intake_key == posts[0].intake_key
    assert posts[1].post_id == str(forward["message"]["message_id"]) and posts[2].repost_of is None
    publisher = MemoryPublisher()
    assert PostIntake(MemoryMarkers(), publisher, "posts", lambda: T0).publish(posts) == (2, 1)


# --- edits -----------------------------------------------------------------------------------------------------


def test_edits_are_the_same_post_with_edited_at_and_live_locations_and_album_photos_are_folded(
    bare: TelegramStandIn,
) -> None:
    message = bare.add_message(SHAKHTY, "Нет света на Ионова")
    bare.add_edit(message, edit_date=1795301000, text="Нет света на Ионова, 40 с утра")
    post = bare.add_message(KIROV_ONLINE, "Сугробы на Профсоюзной")
    bare.add_edit(post, edit_date=1795302000, text="Сугробы на Профсоюзной: дорогу чистят")
    live = bare.add_message(SHAKHTY, None, location={"latitude": 47.7, "longitude": 40.2, "live_period": 900})
    bare.add_edit(live, location={"latitude": 47.701, "longitude": 40.201, "live_period": 900})
    album = bare.add_album(SHAKHTY, ["e1", "e2"], caption="Свалка у гаражей")
    bare.add_edit(album[1], photo=photo("e3"))  # a photo replaced
    bare.add_edit(album[0], caption="Свалка у гаражей на Ленина")  # the caption corrected: the album's post
    result = connector(bare).fetch(None)
    edits = [p for p in result.posts if p.edited_at is not None]
    assert [(p.post_id, p.text, int(p.edited_at.timestamp())) for p in edits[:2]] == [  # type: ignore[union-attr]
        (str(message["message"]["message_id"]), "Нет света на Ионова, 40 с утра", 1795301000),
        (str(post["channel_post"]["message_id"]), "Сугробы на Профсоюзной: дорогу чистят", 1795302000),
    ]
    assert edits[2].post_id == str(album[0]["message"]["message_id"]) and edits[2].text == "Свалка у гаражей на Ленина"
    assert edits[0].published_at == datetime.fromtimestamp(message["message"]["date"], UTC)
    assert Counter(s.reason for s in result.skipped) == {SkipReason.FOLDED: 3}  # album item 2, the live move, the photo
    assert_accounted(bare, result)


# --- private chats with the bot, forum topics, anonymous admins --------------------------------------------------


def test_a_resident_writing_to_the_bot_is_a_direct_post_with_where_to_answer(bare: TelegramStandIn) -> None:
    bare.add_message(RESIDENT_CHAT, "/start", entities=[{"offset": 0, "length": 6, "type": "bot_command"}])
    items = bare.add_album(RESIDENT_CHAT, ["r1", "r2", "r3"], caption="Во дворе на Ленина, 5 открытый колодец!")
    bare.add_message(RESIDENT_CHAT, None, location={"latitude": 58.6, "longitude": 49.65})
    bare.add_message(RESIDENT_CHAT, "/help", entities=[{"offset": 0, "length": 5, "type": "bot_command"}])
    result = connector(bare, chats={"@kirov_online": "kirov"}, private_chats=True, municipality="kirov").fetch(None)
    [post] = result.posts
    head = items[0]["message"]
    assert post.direct and post.reply_to == ReplyTarget(
        channel="telegram_chat", chat_id=str(RESIDENT_CHAT["id"]), message_id=str(head["message_id"])
    )
    assert post.text == "Во дворе на Ленина, 5 открытый колодец!" and len(post.attachments) == 3
    assert post.geo == Geo(lat=58.6, lon=49.65) and post.municipality_hint == "kirov"
    assert post.author_id == str(RESIDENT_CHAT["id"]) and post.url == f"tg://chat/6300000002/{head['message_id']}"
    assert Counter(s.reason for s in result.skipped) == {SkipReason.SERVICE_MESSAGE: 2, SkipReason.FOLDED: 3}
    assert_accounted(bare, result)


def test_private_chats_are_taken_as_configured(bare: TelegramStandIn) -> None:
    bare.add_message(RESIDENT_CHAT, "Когда починят лифт на Ленина, 102?")
    cases: list[tuple[dict[str, Any], bool]] = [
        ({"chats": {"@kirov_online": "kirov"}, "private_chats": None}, False),  # chats listed: only those
        ({"chats": {}, "private_chats": None, "municipality": "kirov"}, True),  # every chat
        ({"chats": {}, "private_chats": False, "municipality": "kirov"}, False),
        ({"chats": {"@kirov_online": "kirov"}, "private_chats": True, "private_chats_municipality": None}, True),
    ]
    for source, taken in cases:
        result = connector(bare, **source).fetch(None)
        assert bool(result.posts) is taken, source
        if not taken:
            assert [s.reason for s in result.skipped] == [SkipReason.CHAT_NOT_CONFIGURED]
    municipality = connector(bare, private_chats_municipality="kirov", municipality="shakhty").fetch(None)
    assert municipality.posts[0].municipality_hint == "kirov"


def test_forum_topics_and_anonymous_admins(bare: TelegramStandIn) -> None:
    root = bare.add_message(
        FORUM,
        None,
        message_thread_id=200,
        is_topic_message=True,
        forum_topic_created={"name": "Парковка", "icon_color": 7322096},
    )["message"]
    in_topic = bare.add_message(
        FORUM,
        "Машины опять заставили пожарный проезд",
        message_thread_id=root["message_id"],
        is_topic_message=True,
        reply_to_message=root,
    )["message"]
    bare.add_message(
        FORUM,
        "Вызывайте ГИБДД",
        message_thread_id=root["message_id"],
        is_topic_message=True,
        reply_to_message=in_topic,
    )
    anon = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
    bare.add_message(FORUM, "Напоминаем: проезд должен быть свободен", sender_chat=FORUM, **{"from": anon})
    bare.add_message(FORUM, None, pinned_message=in_topic)
    result = connector(bare).fetch(None)
    topic, reply, admin = result.posts
    assert topic.parent_post_id is None and reply.parent_post_id == str(in_topic["message_id"])
    assert admin.author_id == str(FORUM["id"]) and admin.municipality_hint == "shakhty"
    assert Counter(s.reason for s in result.skipped) == {SkipReason.SERVICE_MESSAGE: 2}
    assert_accounted(bare, result)


# --- what is not a post ------------------------------------------------------------------------------------------


def test_updates_not_read_and_messages_without_words_are_skipped_with_their_reason(bare: TelegramStandIn) -> None:
    bare.allowed_updates = {"message", "poll", "message_reaction", "chat_member", "callback_query"}  # queued before
    bare.add_update(
        {
            "poll": {
                "id": "5123",
                "question": "Когда уберут снег?",
                "options": [{"text": "завтра", "voter_count": 1}, {"text": "никогда", "voter_count": 7}],
                "total_voter_count": 8,
                "is_closed": False,
                "is_anonymous": True,
                "type": "regular",
                "allows_multiple_answers": False,
            }
        }
    )
    bare.add_update(
        {
            "message_reaction": {
                "chat": SHAKHTY,
                "message_id": 5,
                "user": {"id": 42, "is_bot": False, "first_name": "Ира"},
                "date": 1795300000,
                "old_reaction": [],
                "new_reaction": [{"type": "emoji", "emoji": "👍"}],
            }
        }
    )
    bare.add_update(
        {
            "chat_member": {
                "chat": SHAKHTY,
                "from": {"id": 42, "is_bot": False, "first_name": "Ира"},
                "date": 1795300000,
                "old_chat_member": {"user": {"id": 42, "is_bot": False, "first_name": "Ира"}, "status": "left"},
                "new_chat_member": {"user": {"id": 42, "is_bot": False, "first_name": "Ира"}, "status": "member"},
            }
        }
    )
    sticker = {
        "file_id": "CAACAgI",
        "file_unique_id": "AgAD",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    }
    bare.add_message(SHAKHTY, None, sticker=sticker)
    bare.add_message(SHAKHTY, "   ")
    bare.add_message(SHAKHTY, None, dice={"emoji": "🎲", "value": 4})
    bare.add_message(
        SHAKHTY,
        None,
        poll={
            "id": "77",
            "question": "Кто за шлагбаум?",
            "options": [{"text": "за", "voter_count": 0}],
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": True,
            "type": "regular",
            "allows_multiple_answers": False,
        },
    )
    bare.add_message(SHAKHTY, None, left_chat_member={"id": 42, "is_bot": False, "first_name": "Ира"})
    bare.add_message(SHAKHTY, None, new_chat_title="Подслушано Шахты 2.0")
    moderator = {"id": 5999999999, "is_bot": True, "first_name": "Модератор", "username": "shakhty_mod_bot"}
    bare.add_message(SHAKHTY, "Пользователь предупреждён за мат", **{"from": moderator})
    result = connector(bare).fetch(None)
    assert result.posts == [] and result.rejected == []
    assert [s.reason for s in result.skipped] == [
        SkipReason.UNSUPPORTED,
        SkipReason.UNSUPPORTED,
        SkipReason.UNSUPPORTED,
        SkipReason.EMPTY,
        SkipReason.EMPTY,
        SkipReason.EMPTY,
        SkipReason.UNSUPPORTED,
        SkipReason.SERVICE_MESSAGE,
        SkipReason.SERVICE_MESSAGE,
        SkipReason.NOT_RESIDENT,
    ]
    assert_accounted(bare, result)
    assert bare.allowed_updates == {"message", "edited_message", "channel_post", "edited_channel_post"}
