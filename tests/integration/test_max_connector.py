"""The MAX connector's real httpx code against the MAX Bot API stand-in on loopback, and the stand-in's payloads
against a third-party model of the official schema (the ``maxapi`` package's pydantic models)."""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from otklik.standins.max import DEMO_UPDATES, MaxStandIn, message_id, resident
from shared.adapters.max import MaxApiError, MaxConnector
from shared.adapters.politeness import Polite
from shared.contracts import PostFetchedV1
from shared.domain.errors import SourceAccessError, TransientError
from shared.domain.models import utcnow
from shared.ports import FetchResult, SkipReason
from shared.services.ingest import IngestService, PostIntake, WatchedSource
from shared.source_config import MaxSource
from tests.fakes import MemoryCursors, MemoryHealth, MemoryMarkers, MemoryPublisher, MemoryQuarantine

pytestmark = pytest.mark.integration
TOKEN = "test-max-bot-token-Zt81nQw3"
DIALOG = 183457620
HOUSE = -70411234567890
CHANNEL = -70422345678901
NOT_CONFIGURED = -70433456789012
DEMO_CHATS = {HOUSE: "shakhty", CHANNEL: "shakhty"}
T0 = 1795500000000  # ms, after the demo's updates


@pytest.fixture
def max_api() -> Iterator[MaxStandIn]:
    with MaxStandIn(token=TOKEN) as server:
        yield server


@pytest.fixture
def empty_api() -> Iterator[MaxStandIn]:
    with MaxStandIn(None, token=TOKEN) as server:
        yield server


def connector(
    api: MaxStandIn,
    token: str = TOKEN,
    waits: list[float] | None = None,
    attempts: int = 3,
    api_base: str | None = None,
    **source: Any,
) -> MaxConnector:
    config = MaxSource.model_validate(
        {"id": "max-test", "kind": "max", "chats": DEMO_CHATS, "private_chats_municipality": "kirov", **source}
    )
    polite = Polite(None, attempts=attempts, sleep=(waits if waits is not None else []).append)
    return MaxConnector(config, httpx.Client(timeout=5), api_base or api.api_base, token, polite)


def demo_updates() -> list[dict[str, Any]]:
    updates: list[dict[str, Any]] = json.loads(DEMO_UPDATES.read_text(encoding="utf-8"))["updates"]
    return updates


def accounted(result: FetchResult) -> int:
    return len(result.posts) + len(result.rejected) + len(result.skipped)


def by_mid(result: FetchResult, chat_id: int, seq: int, edited: bool = False) -> Any:
    mid = message_id(chat_id, seq)
    return next(p for p in result.posts if p.post_id == mid and (p.edited_at is not None) == edited)


# --- every update accounted for ---------------------------------------------------------------------------


def test_every_demo_update_is_a_post_a_skip_with_its_reason_or_quarantined(max_api: MaxStandIn) -> None:
    result = connector(max_api).fetch(None)
    assert accounted(result) == len(demo_updates()) == 10
    assert len(result.posts) == 6 and result.rejected == []
    assert Counter(s.reason for s in result.skipped) == {
        SkipReason.SERVICE_MESSAGE: 2,  # bot_started, user_added
        SkipReason.FOLDED: 1,  # the resident's location joined the complaint before it
        SkipReason.CHAT_NOT_CONFIGURED: 1,
    }
    assert [p.published_at for p in result.posts] == sorted(p.published_at for p in result.posts)
    assert {p.source for p in result.posts} == {"max"} and {p.source_id for p in result.posts} == {"max-test"}
    assert result.cursor == {"marker": len(demo_updates()) + 1} and not result.more


def test_a_private_dialog_is_a_direct_post_with_its_photos_its_place_and_where_to_answer(max_api: MaxStandIn) -> None:
    result = connector(max_api).fetch(None)
    complaint = by_mid(result, DIALOG, 1)
    demo = demo_updates()[1]["message"]
    assert complaint.direct and complaint.text == demo["body"]["text"]
    assert complaint.reply_to is not None
    assert (complaint.reply_to.channel, complaint.reply_to.chat_id, complaint.reply_to.message_id) == (
        "max_chat",
        str(DIALOG),
        message_id(DIALOG, 1),
    )
    assert [(a.kind, a.url) for a in complaint.attachments] == [
        ("photo", a["payload"]["url"]) for a in demo["body"]["attachments"]
    ]
    assert complaint.geo is not None and (complaint.geo.lat, complaint.geo.lon) == (58.5967, 49.6601)
    assert complaint.author_id == "4127733" and complaint.municipality_hint == "kirov"
    assert complaint.url == f"max://chat/{DIALOG}/{message_id(DIALOG, 1)}"  # dialogs have no public link
    assert complaint.published_at == datetime.fromtimestamp(demo["timestamp"] / 1000, tz=UTC)


def test_house_chat_and_channel_posts_are_public_with_replies_links_and_the_channel_as_author(
    max_api: MaxStandIn,
) -> None:
    result = connector(max_api).fetch(None)
    roof = by_mid(result, HOUSE, 2)
    assert not roof.direct and roof.reply_to is None and roof.municipality_hint == "shakhty"
    assert roof.author_id == "4127801" and [a.kind for a in roof.attachments] == ["photo"]
    reply = by_mid(result, HOUSE, 3)
    assert reply.parent_post_id == roof.post_id
    notice = by_mid(result, CHANNEL, 418)
    assert notice.author_id == str(CHANNEL) and notice.url == "https://max.ru/uk_severny_shakhty/AAAAAAAAAaI"
    assert notice.text.endswith("\nhttps://uk-severny.example/news/otklyuchenie-vody-14-noyabrya")  # behind «на сайте»
    forward = by_mid(result, HOUSE, 4)
    assert forward.text.startswith("А горячую воду когда дадут?") and "отключено холодное водоснабжение" in forward.text
    assert forward.repost_of is None  # the neighbour's own words: a post of its own, quoting the notice


def test_an_edit_is_a_later_version_of_the_same_post(max_api: MaxStandIn) -> None:
    result = connector(max_api).fetch(None)
    original, edit = by_mid(result, HOUSE, 2), by_mid(result, HOUSE, 2, edited=True)
    edited = next(u for u in demo_updates() if u["update_type"] == "message_edited")
    assert edit.incident_id == original.incident_id and edit.intake_key != original.intake_key
    assert edit.text == edited["message"]["body"]["text"] and "№ 1542" in edit.text
    assert edit.published_at == original.published_at
    assert edit.edited_at == datetime.fromtimestamp(edited["timestamp"] / 1000, tz=UTC)
    assert result.posts.index(edit) > result.posts.index(original)


def test_chats_not_configured_and_dialogs_when_turned_off_are_skipped(max_api: MaxStandIn) -> None:
    result = connector(max_api, private_chats=False, chats={CHANNEL: None}, municipality="shakhty").fetch(None)
    assert {p.community for p in result.posts} == {str(CHANNEL)}
    assert {p.municipality_hint for p in result.posts} == {"shakhty"}  # null in chats: the source's
    assert accounted(result) == len(demo_updates())
    # The dialog's two messages, the house chat's four (the edit too) and the chat nobody configured.
    assert Counter(s.reason for s in result.skipped)[SkipReason.CHAT_NOT_CONFIGURED] == 7


# --- the marker --------------------------------------------------------------------------------------------


def test_the_marker_commits_only_when_asked_with_and_nothing_before_publishing(max_api: MaxStandIn) -> None:
    c = connector(max_api)
    first = c.fetch(None)
    assert len(max_api.pending()) == len(demo_updates())  # nothing committed yet
    assert [p.post_id for p in c.fetch(None).posts] == [p.post_id for p in first.posts]  # a crash before publishing
    again = c.fetch(first.cursor)
    assert again.posts == again.skipped == again.rejected == [] and again.cursor == first.cursor
    assert max_api.pending() == []
    assert [call.get("marker") for call in max_api.calls] == [None, None, str(first.cursor["marker"])]
    added = max_api.add_message(HOUSE, "chat", "Во дворе снова прорвало трубу, течёт кипяток", timestamp=T0)
    newer = c.fetch(first.cursor)
    assert [p.post_id for p in newer.posts] == [added["message"]["body"]["mid"]]
    assert newer.cursor == {"marker": first.cursor["marker"] + 1}


def test_one_fetch_reads_one_full_page_and_says_more(empty_api: MaxStandIn) -> None:
    for i in range(250):
        empty_api.add_message(DIALOG, "dialog", f"Жалоба номер {i}", timestamp=T0 + i * 1000)
    c = connector(empty_api)
    first = c.fetch(None)
    assert len(first.posts) == 100 and first.more and first.cursor == {"marker": 101}
    assert len(empty_api.pending()) == 250
    second = c.fetch(first.cursor)
    assert len(second.posts) == 100 and second.more and len(empty_api.pending()) == 150
    third = c.fetch(second.cursor)
    assert len(third.posts) == 50 and not third.more and third.cursor == {"marker": 251}
    params = empty_api.calls[0]
    assert params["limit"] == "100" and params["timeout"] == "0" and "message_created" in params["types"].split(",")


def test_ingest_publishes_each_page_before_committing_it_and_counts_every_update(empty_api: MaxStandIn) -> None:
    for i in range(150):
        empty_api.add_message(HOUSE, "chat", f"Течёт крыша, сообщение {i}", timestamp=T0 + i * 1000)
    empty_api.add_update(
        {"update_type": "bot_added", "timestamp": T0 + 10**6, "chat_id": HOUSE, "user": resident(), "is_channel": False}
    )
    publisher, cursors = MemoryPublisher(), MemoryCursors()
    intake = PostIntake(MemoryMarkers(), publisher, "posts", utcnow)
    source = WatchedSource(connector(empty_api))
    service = IngestService([source], cursors, intake, MemoryQuarantine(), MemoryHealth(), utcnow)
    [report] = service.run().sources
    assert report.status == "ok" and report.fetched == 151 and report.published == 150
    assert report.skipped_by_reason == {"service_message": 1}
    assert report.fetched == report.published + report.duplicates + report.skipped + report.quarantined
    published = [m.post.text for m in publisher.on("posts") if isinstance(m, PostFetchedV1)]
    assert published == [f"Течёт крыша, сообщение {i}" for i in range(150)]
    assert cursors.get("max-test") == {"marker": 152}


# --- shapes ------------------------------------------------------------------------------------------------


def test_unreadable_updates_are_quarantined_with_the_reason_and_the_raw_json(empty_api: MaxStandIn) -> None:
    voice = empty_api.add_update({"update_type": "message_created", "timestamp": T0, "user_locale": "ru"})
    far = empty_api.add_message(
        DIALOG, "dialog", "Яма тут", attachments=[{"type": "location", "latitude": 91.0, "longitude": 49.6}]
    )
    nameless = {"timestamp": T0 + 1}
    empty_api.inject("updates", json.dumps({"updates": [voice, far, nameless], "marker": 4}))  # not MAX's own
    result = connector(empty_api).fetch(None)
    assert result.posts == [] and accounted(result) == 3
    reasons = {r.key: r.reason for r in result.rejected}
    assert "message_created without message" in next(r for k, r in reasons.items() if k.startswith("message_created."))
    assert "latitude" in reasons[f"message_created.{far['message']['body']['mid']}"]
    assert any("without update_type" in r for r in reasons.values())
    assert {json.dumps(json.loads(r.payload), sort_keys=True) for r in result.rejected} == {
        json.dumps(u, sort_keys=True) for u in (voice, far, nameless)
    }
    assert len(set(reasons)) == 3  # each its own quarantine record


def test_bots_stickers_callbacks_and_deletions_are_skipped_by_name(empty_api: MaxStandIn) -> None:
    bot = {"user_id": 9000001, "first_name": "Отклик", "is_bot": True}
    empty_api.add_message(DIALOG, "dialog", "Спасибо, обращение принято", sender=bot)
    sticker = {
        "type": "sticker",
        "payload": {"url": "https://i.oneme.ru/s/1", "code": "2a1b"},
        "width": 128,
        "height": 128,
    }
    empty_api.add_message(HOUSE, "chat", None, attachments=[sticker])
    empty_api.add_update(
        {
            "update_type": "message_removed",
            "timestamp": T0,
            "message_id": message_id(HOUSE, 1),
            "chat_id": HOUSE,
            "user_id": 4127801,
        }
    )
    empty_api.add_update(
        {"update_type": "bot_removed", "timestamp": T0, "chat_id": HOUSE, "user": resident(), "is_channel": False}
    )
    # message_removed is not asked for (types): the stand-in, like MAX, does not serve it.
    result = connector(empty_api).fetch(None)
    assert result.posts == [] and [s.reason for s in result.skipped] == [
        SkipReason.NOT_RESIDENT,
        SkipReason.EMPTY,
        SkipReason.SERVICE_MESSAGE,
    ]
    callback = {"update_type": "message_callback", "timestamp": T0, "callback": {"callback_id": "c1"}}
    empty_api.inject("updates", json.dumps({"updates": [callback], "marker": 9}))  # not asked for, and yet it came
    unasked = connector(empty_api).fetch(None)
    assert [s.reason for s in unasked.skipped] == [SkipReason.UNSUPPORTED] and unasked.cursor == {"marker": 9}


def test_a_bare_forward_is_the_original_seen_again_and_a_forward_to_the_bot_is_the_residents_own(
    empty_api: MaxStandIn,
) -> None:
    original = {"mid": message_id(CHANNEL, 7), "seq": 7, "text": "Отключение воды 14 ноября"}
    link = {"type": "forward", "chat_id": CHANNEL, "message": original}
    empty_api.add_message(HOUSE, "chat", None, link=link, timestamp=T0)
    to_bot = empty_api.add_message(DIALOG, "dialog", None, link=link, timestamp=T0 + 1000)
    house, dialog = connector(empty_api).fetch(None).posts
    assert house.text == original["text"] and house.repost_of is not None
    assert (house.repost_of.community, house.repost_of.post_id, house.repost_of.author_id) == (
        str(CHANNEL),
        original["mid"],
        str(CHANNEL),
    )
    assert house.intake_key == house.repost_of.incident_id  # published once, however often it is forwarded
    assert dialog.repost_of is None and dialog.reply_to is not None
    assert dialog.reply_to.message_id == to_bot["message"]["body"]["mid"]


def test_files_videos_and_pieces_sent_before_the_words_join_the_dialog_message(empty_api: MaxStandIn) -> None:
    video = {
        "type": "video",
        "payload": {"url": "https://vd.oneme.ru/v/1", "token": "vt1"},
        "width": 720,
        "height": 1280,
    }
    empty_api.add_message(DIALOG, "dialog", "", attachments=[video], timestamp=T0)
    empty_api.add_message(
        DIALOG,
        "dialog",
        None,
        attachments=[{"type": "location", "latitude": 47.7085, "longitude": 40.2159}],
        timestamp=T0 + 20_000,
    )
    doc = {
        "type": "file",
        "payload": {"url": "https://fd.oneme.ru/f/2", "token": "ft2"},
        "filename": "акт.pdf",
        "size": 20480,
    }
    words = empty_api.add_message(DIALOG, "dialog", "Вот видео и акт осмотра", attachments=[doc], timestamp=T0 + 60_000)
    late = empty_api.add_message(
        DIALOG,
        "dialog",
        None,
        attachments=[{"type": "image", "payload": {"photo_id": 3, "token": "t", "url": "https://i.oneme.ru/3"}}],
        timestamp=T0 + 20 * 60_000,
    )
    result = connector(empty_api).fetch(None)
    joined, alone = result.posts
    assert joined.post_id == words["message"]["body"]["mid"]
    assert [(a.kind, a.url) for a in joined.attachments] == [
        ("file", "https://fd.oneme.ru/f/2"),
        ("video", "https://vd.oneme.ru/v/1"),
    ]
    assert joined.geo is not None and joined.geo.lat == 47.7085
    assert alone.post_id == late["message"]["body"]["mid"] and alone.text == ""  # 20 minutes later: its own post
    assert [s.reason for s in result.skipped] == [SkipReason.FOLDED, SkipReason.FOLDED]


# --- errors ------------------------------------------------------------------------------------------------


def test_the_token_goes_in_the_authorization_header_and_a_wrong_one_stops_the_source(max_api: MaxStandIn) -> None:
    connector(max_api).fetch(None)
    assert max_api.calls[0]["authorized"] and all(TOKEN not in json.dumps(c) for c in max_api.calls)
    wrong = "revoked-max-token-Qq77"
    with pytest.raises(SourceAccessError) as err:
        connector(max_api, token=wrong).fetch(None)
    assert "401" in str(err.value) and "verify.token" in str(err.value)
    assert "OTKLIK_MAX_BOT_TOKEN" in err.value.action and wrong not in str(err.value) + err.value.action
    assert len(max_api.calls) == 2  # not retried


def test_a_blocked_bot_a_webhook_and_a_wrong_address_stop_the_source_with_what_to_do(max_api: MaxStandIn) -> None:
    max_api.subscribe("https://otklik.example/max")
    with pytest.raises(SourceAccessError) as err:
        connector(max_api).fetch(None)
    assert "405" in str(err.value) and "DELETE /subscriptions" in err.value.action
    max_api.block()
    with pytest.raises(SourceAccessError) as err:
        connector(max_api).fetch(None)
    assert "403" in str(err.value) and "business.max.ru" in err.value.action
    with pytest.raises(SourceAccessError) as err:
        connector(max_api, api_base=f"{max_api.api_base}/v2").fetch(None)
    assert "OTKLIK_MAX_API_BASE" in err.value.action


def test_429_waits_as_asked_and_5xx_is_retried_until_it_gives_up(max_api: MaxStandIn) -> None:
    waits: list[float] = []
    max_api.fail_next(429, retry_after=4)
    max_api.fail_next(503)
    assert len(connector(max_api, waits=waits).fetch(None).posts) == 6
    assert waits[0] == 4.0 and len(waits) == 2 and 0 <= waits[1] <= 60
    for _ in range(3):
        max_api.fail_next(500)
    with pytest.raises(TransientError, match="HTTP 500"):
        connector(max_api).fetch(None)


def test_broken_answers_are_transient_or_permanent_as_retrying_could_help(max_api: MaxStandIn) -> None:
    max_api.inject("updates", "<html>502 Bad Gateway</html>", status=200, content_type="text/html", times=3)
    with pytest.raises(TransientError, match="not a JSON object"):
        connector(max_api).fetch(None)
    max_api.inject("updates", json.dumps({"updates": {"0": {}}, "marker": 3}))
    with pytest.raises(MaxApiError, match="not a list"):
        connector(max_api).fetch(None)
    max_api.fail_next(400)
    with pytest.raises(MaxApiError, match="HTTP 400"):
        connector(max_api).fetch(None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransientError, match="ConnectError"):
        connector(max_api, api_base=f"http://127.0.0.1:{port}", attempts=2).fetch(None)


def test_the_stand_in_honours_limit_types_marker_and_refuses_bad_parameters(max_api: MaxStandIn) -> None:
    headers = {"Authorization": TOKEN}
    with httpx.Client(base_url=max_api.api_base, headers=headers) as http:
        page = http.get("/updates", params={"limit": 3, "timeout": 0}).json()
        assert len(page["updates"]) == 3 and page["marker"] == 4
        edits = http.get("/updates", params={"types": "message_edited", "timeout": 0}).json()
        assert [u["update_type"] for u in edits["updates"]] == ["message_edited"]
        assert http.get("/updates", params={"limit": 1001}).status_code == 400
        assert http.get("/updates", params={"timeout": 91}).status_code == 400
        assert (
            http.get("/updates", params={"marker": page["marker"], "timeout": 0}).json()["updates"][0]
            == (max_api.pending()[0])
        )
        assert len(max_api.pending()) == len(demo_updates()) - 3
        assert http.get("/me").json()["is_bot"] is True
        assert http.get("/updates", headers={"Authorization": "nope"}).json()["code"] == "verify.token"


# --- the stand-in speaks the official schema ---------------------------------------------------------------


def _unknown_fields(model: Any, payload: Any, where: str = "") -> list[str]:
    """Keys of ``payload`` the validated ``model`` has no field for: maxapi ignores extra keys, so a misspelt
    field name would pass validation unseen."""
    if isinstance(model, list) and isinstance(payload, list):
        return [f for m, p in zip(model, payload, strict=True) for f in _unknown_fields(m, p, where)]
    if not isinstance(model, BaseModel) or not isinstance(payload, dict):
        return []
    fields = type(model).model_fields
    names = {info.alias or name: name for name, info in fields.items()}
    found = []
    for key, value in payload.items():
        if key not in names:
            found.append(f"{where}{key}")
        else:
            found += _unknown_fields(getattr(model, names[key]), value, f"{where}{key}.")
    return found


def served_payloads(api: MaxStandIn) -> list[dict[str, Any]]:
    with httpx.Client(base_url=api.api_base, headers={"Authorization": api.token}) as http:
        answer = http.get("/updates", params={"timeout": 0, "limit": 1000})
    body: dict[str, Any] = answer.json()
    return [body]


def test_every_payload_the_stand_in_serves_validates_against_maxapis_model_of_the_schema(empty_api: MaxStandIn) -> None:
    maxapi_updates = pytest.importorskip("maxapi.types.updates")
    getted = pytest.importorskip("maxapi.methods.types.getted_updates")
    for update in demo_updates():
        empty_api.add_update(update)
    # ... and the shapes the tests above build with add_message.
    empty_api.add_message(
        HOUSE,
        "chat",
        "Ответ",
        link={"type": "reply", "chat_id": HOUSE, "message": {"mid": message_id(HOUSE, 2), "seq": 2, "text": "x"}},
    )
    empty_api.add_message(CHANNEL, "channel", "Новость", url="https://max.ru/uk/AAAAAAAAAAE")
    empty_api.add_message(
        DIALOG, "dialog", None, attachments=[{"type": "location", "latitude": 47.7, "longitude": 40.2}]
    )
    [page] = served_payloads(empty_api)
    assert set(page) == {"updates", "marker"} and isinstance(page["marker"], int)
    assert len(page["updates"]) == len(demo_updates()) + 3
    for update in page["updates"]:
        model = maxapi_updates.UpdateUnionAdapter.validate_python(update)
        assert model.update_type == update["update_type"]
        assert _unknown_fields(model, update) == [], update
    assert getted is not None  # the module maxapi's own poller reads this answer with
    with httpx.Client(base_url=empty_api.api_base) as http:
        error = http.get("/updates").json()
    assert set(error) == {"code", "message"}  # the schema's Error


def test_the_demo_file_has_the_shapes_the_issue_asks_for() -> None:
    updates = demo_updates()
    kinds = Counter(u["update_type"] for u in updates)
    assert kinds["message_edited"] == 1 and kinds["bot_started"] == 1 and kinds["user_added"] == 1
    messages = [u["message"] for u in updates if "message" in u]
    dialog = [m for m in messages if m["recipient"]["chat_type"] == "dialog"]
    attachment_types = Counter(a["type"] for m in dialog for a in m["body"].get("attachments") or [])
    assert attachment_types == {"image": 2, "location": 1}
    assert any("крыша" in m["body"]["text"] for m in messages if m["recipient"]["chat_id"] == HOUSE)
    assert Path(DEMO_UPDATES).name == "max_updates.json"
