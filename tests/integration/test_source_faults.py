"""Source APIs answering garbage (issue 8): three sources in one ingest run, one of them broken, against the real
Firestore and Pub/Sub emulators and the VK, Telegram and OK stand-ins over loopback HTTP.

What must hold whatever a source answers: the run completes; the broken source's error is recorded with a reason
naming the problem; its cursor stays where it was and nothing of the broken page is published; an unreadable item
in an otherwise good page is quarantined with its reason while the rest is published; the other sources publish
everything and move on; once the source answers properly again, the next run publishes what was missed, once.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.cloud import firestore, pubsub_v1

from otklik.stack import topology
from otklik.standins.http import LoopbackServer
from otklik.standins.ok import DEMO_ACCESS_TOKEN, DEMO_APPLICATION_KEY, DEMO_APPLICATION_SECRET_KEY, OkStandIn
from otklik.standins.telegram import TelegramStandIn
from otklik.standins.vk import VkStandIn
from shared.adapters import answers
from shared.adapters.firestore import (
    PUBLISHED_POSTS,
    QUARANTINE,
    FirestoreCursors,
    FirestoreMarkers,
    FirestoreQuarantine,
    FirestoreSourceHealth,
)
from shared.adapters.ok import OkGroupConnector
from shared.adapters.politeness import Polite
from shared.adapters.pubsub import PubSubPublisher
from shared.adapters.telegram import TelegramConnector
from shared.adapters.vk import VkClient, VkSearchConnector, VkWallConnector
from shared.contracts import PostFetchedV1, decode
from shared.domain.models import utcnow
from shared.services.ingest import IngestService, PostIntake, SourceReport, WatchedSource
from shared.source_config import OkGroupSource, TelegramSource, VkSearchSource, VkWallSource

pytestmark = pytest.mark.integration

VK_TOKEN = "vk-test-token"
TG_TOKEN = "7100000003:AAfaults-test-token_of_the_Otklik_bot"
SHAKHTY = -210000001
GID = "53038939046008"
CHAT = {"id": -1001700000001, "title": "Подслушано Шахты", "username": "podslushano_shakhty", "type": "supergroup"}
T0 = 1795300000  # the stand-ins' posts are dated from here on
SOURCES = ("vk-wall", "tg", "ok")


def vk_item(post_id: Any, **fields: Any) -> dict[str, Any]:
    item = {"id": post_id, "owner_id": SHAKHTY, "from_id": 7, "date": T0 + _num(post_id), "text": f"пост {post_id}"}
    return {k: v for k, v in (item | fields).items() if v is not ...}  # ``...``: leave the field out


def ok_topic(topic_id: int, **fields: Any) -> dict[str, Any]:
    topic = {
        "id": str(topic_id),
        "created_ms": (T0 + topic_id) * 1000,
        "author_ref": "user:575662066926",
        "media": [{"type": "text", "text": f"тема {topic_id}"}],
    }
    return {k: v for k, v in (topic | fields).items() if v is not ...}


def tg_update(update_id: int, message: Any) -> dict[str, Any]:
    return {"update_id": update_id, "message": message}


def tg_message(message_id: int, **fields: Any) -> dict[str, Any]:
    message = {
        "message_id": message_id,
        "from": {"id": 6000000001, "is_bot": False, "first_name": "Житель"},
        "chat": CHAT,
        "date": T0 + 500 + message_id,
        "text": f"сообщение {message_id}",
    }
    return {k: v for k, v in (message | fields).items() if v is not ...}


def _num(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


@dataclass
class Rig:
    """The three stand-ins, the emulators' project, and an ingest service built as production builds it."""

    project: str
    db: firestore.Client
    topo: topology.Topology
    vk: VkStandIn
    tg: TelegramStandIn
    ok: OkStandIn
    publisher: pubsub_v1.PublisherClient
    subscriber: pubsub_v1.SubscriberClient
    http: httpx.Client
    next_vk_id: int = 4
    next_ok_id: int = 3
    new_tg_updates: list[int] = field(default_factory=list)

    def connectors(self) -> list[WatchedSource]:
        polite = Polite(None, attempts=2, sleep=lambda _: None)  # retried as in production, without the waiting
        http = self.http
        vk = VkClient(http, self.vk.api_base, VK_TOKEN, "5.199", polite)
        wall = VkWallSource(id="vk-wall", kind="vk_wall", owner_id=SHAKHTY, municipality="shakhty")
        tg = TelegramSource(id="tg", kind="telegram", chats={}, municipality="shakhty")
        ok = OkGroupSource(id="ok", kind="ok_group", group_id=GID, municipality="kirov")
        return [
            WatchedSource(VkWallConnector(wall, vk)),
            WatchedSource(TelegramConnector(tg, http, self.tg.api_base, TG_TOKEN, polite)),
            WatchedSource(
                OkGroupConnector(
                    ok,
                    http,
                    self.ok.api_base,
                    DEMO_APPLICATION_KEY,
                    DEMO_ACCESS_TOKEN,
                    DEMO_APPLICATION_SECRET_KEY,
                    polite,
                )
            ),
        ]

    def run(self) -> dict[str, SourceReport]:
        intake = PostIntake(
            FirestoreMarkers(self.db, PUBLISHED_POSTS),
            PubSubPublisher(self.publisher, self.project),
            self.topo.topics["posts"],
            utcnow,
        )
        service = IngestService(
            self.connectors(),
            FirestoreCursors(self.db),
            intake,
            FirestoreQuarantine(self.db),
            FirestoreSourceHealth(self.db),
            utcnow,
        )
        report = service.run()  # nothing may escape, whatever the sources answer
        return {r.source_id: r for r in report.sources}

    def cursors(self) -> dict[str, dict[str, Any] | None]:
        return {s: FirestoreCursors(self.db).get(s) for s in SOURCES}

    def health(self, source_id: str) -> dict[str, Any]:
        return FirestoreSourceHealth(self.db).get(source_id) or {}

    def quarantine(self) -> dict[str, dict[str, Any]]:
        return {snap.id: snap.to_dict() or {} for snap in self.db.collection(QUARANTINE).stream()}

    def new_posts(self) -> dict[str, set[str]]:
        """Two new posts on every source; their post ids by source."""
        vk_ids = [self.next_vk_id, self.next_vk_id + 1]
        for i in vk_ids:
            self.vk.add_post(SHAKHTY, vk_item(i))
        ok_ids = [self.next_ok_id, self.next_ok_id + 1]
        for i in ok_ids:
            self.ok.add_topic(GID, ok_topic(i))
        self.next_vk_id += 2
        self.next_ok_id += 2
        updates = [self.tg.add_message(CHAT, f"новое сообщение {n}") for n in (1, 2)]
        self.new_tg_updates = [u["update_id"] for u in updates]
        tg_ids = [str(u["message"]["message_id"]) for u in updates]
        return {"vk-wall": {str(i) for i in vk_ids}, "tg": set(tg_ids), "ok": {str(i) for i in ok_ids}}

    def pull(self, expected: int) -> Counter[tuple[str, str]]:
        """Every post on the posts topic as (source id, post id) with how many times it came: waits for
        ``expected`` messages, then makes sure no more are there."""
        sub = next(s.name for s in self.topo.subscriptions if s.topic == self.topo.topics["posts"])
        path = self.subscriber.subscription_path(self.project, sub)
        got: Counter[tuple[str, str]] = Counter()
        empty_pulls = 0
        while empty_pulls < (3 if sum(got.values()) >= expected else 50):
            with warnings.catch_warnings():  # return_immediately is deprecated, but the emulator honours it
                warnings.simplefilter("ignore")
                request = {"subscription": path, "max_messages": 100, "return_immediately": True}
                messages = self.subscriber.pull(request=request, timeout=10).received_messages
            if not messages:
                empty_pulls += 1
                continue
            empty_pulls = 0
            self.subscriber.acknowledge(request={"subscription": path, "ack_ids": [m.ack_id for m in messages]})
            for m in messages:
                post = decode(m.message.data, (PostFetchedV1,)).post  # type: ignore[attr-defined]
                got[(post.source_id, post.post_id)] += 1
        return got


@pytest.fixture
def rig(project_id: str, tmp_path: Path) -> Iterator[Rig]:
    walls = write_json(
        tmp_path / "walls.json", {"communities": [{"owner_id": SHAKHTY, "items": [vk_item(i) for i in (3, 2, 1)]}]}
    )
    groups = write_json(tmp_path / "ok.json", {"groups": [{"gid": GID, "topics": [ok_topic(1), ok_topic(2)]}]})
    topo = topology.load()
    topology.create_on_emulator(topo, project_id)
    with contextlib.ExitStack() as stack:
        vk = stack.enter_context(VkStandIn(walls, token=VK_TOKEN))
        tg = stack.enter_context(TelegramStandIn(None, token=TG_TOKEN))
        ok = stack.enter_context(OkStandIn(groups))
        for n in (1, 2):
            tg.add_message(CHAT, f"сообщение {n}")
        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        stack.callback(subscriber.close)
        http = stack.enter_context(httpx.Client(timeout=5))
        yield Rig(project_id, firestore.Client(project=project_id), topo, vk, tg, ok, publisher, subscriber, http)


def baseline(rig: Rig) -> dict[str, set[str]]:
    """A first run with every source healthy: what it published, by source."""
    reports = rig.run()
    assert {s: r.status for s, r in reports.items()} == dict.fromkeys(SOURCES, "ok")
    assert all(c is not None for c in rig.cursors().values())
    return {"vk-wall": {"1", "2", "3"}, "tg": {"1", "2"}, "ok": {"1", "2"}}


# --- a broken answer: the whole page is refused -----------------------------------------------------------------

HUGE_TEXT = "я" * 100_000  # 200 kB of UTF-8 a post: 100 of them, a page VK could send, is over 16 MiB


def tg_page(count: int) -> bytes:
    updates = [tg_update(9000 + i, tg_message(9000 + i)) for i in range(count)]
    return json.dumps({"ok": True, "result": updates}).encode()


def vk_page(items: list[Any]) -> bytes:
    return json.dumps({"response": {"count": len(items), "items": items}}, ensure_ascii=False).encode()


# (case, faulty source, the stand-in's method, body (or what makes it), inject() options, what the error must say)
BROKEN: list[tuple[str, str, str, str | Callable[[], bytes], dict[str, Any], str]] = [
    ("vk-items-not-a-list", "vk-wall", "wall.get", '{"response": {"count": 3, "items": "oops"}}', {}, "items is str"),
    ("vk-truncated", "vk-wall", "wall.get", '{"response": {"count": 3, "items": [{"id"', {}, "not JSON"),
    (
        "vk-proxy-html-with-200",
        "vk-wall",
        "wall.get",
        "<html>502 Bad Gateway</html>",
        {"content_type": "text/html"},
        "not JSON",
    ),
    (
        "vk-transfer-cut-short",
        "vk-wall",
        "wall.get",
        lambda: vk_page([vk_item(90)]),
        {"cut": True},
        "RemoteProtocolError",
    ),
    (
        "vk-page-of-5000",
        "vk-wall",
        "wall.get",
        lambda: vk_page([vk_item(i) for i in range(5100, 100, -1)]),
        {},
        "5000 items in a page of at most 100",
    ),
    (
        "vk-20-MB-page",
        "vk-wall",
        "wall.get",
        lambda: vk_page([vk_item(i, text=HUGE_TEXT) for i in range(200, 100, -1)]),
        {},
        "more than the 16,777,216 accepted",
    ),
    ("tg-proxy-html-with-200", "tg", "getUpdates", "<html>502 Bad Gateway</html>", {}, "not JSON"),
    ("tg-result-not-a-list", "tg", "getUpdates", '{"ok": true, "result": "oops"}', {}, "result is str, not a list"),
    ("tg-neither-ok-nor-error", "tg", "getUpdates", '{"ok": "yes"}', {}, "neither a result nor an error"),
    ("tg-page-of-5000", "tg", "getUpdates", lambda: tg_page(5000), {}, "5000 updates in a page of at most 100"),
    ("ok-topics-not-a-list", "ok", "mediatopic.getTopics", '{"media_topics": "oops"}', {}, "media_topics is str"),
    ("ok-proxy-html-with-200", "ok", "mediatopic.getTopics", "<html>502</html>", {}, "not JSON"),
]


@pytest.mark.parametrize(
    ("faulty", "method", "body", "options", "reason"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN]
)
def test_a_broken_answer_fails_only_its_source_and_the_next_run_catches_up(
    rig: Rig, faulty: str, method: str, body: str | Callable[[], bytes], options: dict[str, Any], reason: str
) -> None:
    published = baseline(rig)
    before = rig.cursors()
    new = rig.new_posts()
    stand_in: LoopbackServer = {"vk-wall": rig.vk, "tg": rig.tg, "ok": rig.ok}[faulty]
    # Every request, retries included, gets the broken answer until it is cleared.
    stand_in.inject(method, body if isinstance(body, str) else body(), times=None, **options)

    reports = rig.run()

    broken = reports[faulty]
    assert broken.status == "failing" and reason in (broken.error or "")
    assert broken.published == 0 and broken.quarantined == 0
    health = rig.health(faulty)
    assert health["status"] == "failing" and reason in health["error"] and health["consecutive_failures"] == 1
    assert stand_in.faults_served  # the broken answer was really what the connector read
    after = rig.cursors()
    assert after[faulty] == before[faulty]  # nothing skipped: the next run asks from the same place
    if faulty == "tg":
        assert set(rig.new_tg_updates) <= set(rig.tg.pending())  # nor confirmed to Telegram
    for healthy in set(SOURCES) - {faulty}:
        assert reports[healthy].status == "ok" and reports[healthy].published == 2
        assert rig.health(healthy)["status"] == "ok"
        assert after[healthy] != before[healthy]
    assert rig.quarantine() == {}

    stand_in.clear_faults()  # the API answers properly again
    recovered = rig.run()
    assert recovered[faulty].status == "ok" and recovered[faulty].published == 2
    assert rig.health(faulty)["status"] == "ok" and rig.health(faulty)["consecutive_failures"] == 0
    assert rig.cursors()[faulty] != before[faulty]
    again = rig.run()
    assert all(r.status == "ok" and r.published == 0 for r in again.values())

    everything = {(s, p) for s in SOURCES for p in published[s] | new[s]}
    received = rig.pull(len(everything))
    assert set(received) == everything  # no post of the broken page (ids 90, 101-5100, 9000-9099) got through
    assert set(received.values()) == {1}  # and each post exactly once


# --- unreadable items in a good page: quarantined, the rest published ---------------------------------------------


def test_unreadable_items_are_quarantined_with_their_reason_and_the_rest_of_the_page_is_published(rig: Rig) -> None:
    published = baseline(rig)
    before = rig.cursors()
    for item in [
        vk_item(4),
        vk_item("5"),  # a number in a string: read as the number (VK's ids are numbers; int() reads it)
        vk_item("six"),
        vk_item(7, text=12345),
        vk_item(8, date=...),
        vk_item(9, geo="здесь", attachments="oops"),  # unusable extras are left out, the post is kept
        vk_item(10, date=10**20),
        vk_item(11),
        "not an object",  # last: the stand-in's add_post looks at the top item
    ]:
        rig.vk.add_post(SHAKHTY, item)  # type: ignore[arg-type]
    for update in [
        tg_update(101, tg_message(101)),
        tg_update(102, tg_message(102, text=12345)),
        tg_update(103, tg_message(103, date=...)),
        tg_update(104, "not an object"),
        tg_update(105, tg_message(105, chat={**CHAT, "id": str(CHAT["id"])})),  # an id in a string
        tg_update(106, tg_message(106)),
    ]:
        rig.tg.add_update(update)
    for topic in [
        ok_topic(3),
        ok_topic(4, media="oops"),
        ok_topic(5, created_ms=...),
        ok_topic(6, media=[{"type": "text", "text": {"ru": "не строка"}}]),
        ok_topic(7),
    ]:
        rig.ok.add_topic(GID, topic)

    reports = rig.run()

    assert {s: (r.status, r.published, r.quarantined) for s, r in reports.items()} == {
        "vk-wall": ("ok", 4, 5),
        "tg": ("ok", 2, 4),
        "ok": ("ok", 2, 3),
    }
    reasons = {key.removeprefix("ingest."): doc["reason"] for key, doc in rig.quarantine().items()}
    expected_reasons = {
        f"vk-wall.{SHAKHTY}_six": "'six' do not name a post",
        f"vk-wall.{SHAKHTY}_7": "text is int, not a string",
        f"vk-wall.{SHAKHTY}_8": "KeyError: 'date'",
        f"vk-wall.{SHAKHTY}_10": "out of range",
        "tg.102": "text is int, not a string",
        "tg.103": "without an integer date",
        "tg.104": "the message is not an object",
        "tg.105": "chat has no integer id",
        f"ok.{GID}_4": "media is not a list of objects",
        f"ok.{GID}_5": "KeyError: 'created_ms'",
        f"ok.{GID}_6": "text is dict, not a string",
    }
    for key, reason in expected_reasons.items():
        assert reason in reasons.pop(key), key
    [(key, reason)] = reasons.items()  # the one that is not an object, named by its content
    assert key.startswith("vk-wall.item-") and "the item is str, not an object" in reason
    assert all(doc["stage"] == "ingest" and doc["payload"] for doc in rig.quarantine().values())

    after = rig.cursors()
    assert after["vk-wall"] == {"last_post_id": 11} and after["ok"]["last_created_ms"] == (T0 + 7) * 1000
    assert after["tg"] == {"update_id": 106} and rig.tg.pending() == list(range(101, 107))
    assert rig.run()["vk-wall"].published == 0
    assert rig.tg.pending() == []  # the next fetch confirmed what was published or quarantined
    assert before != after

    good = {"vk-wall": {"4", "5", "9", "11"}, "tg": {"101", "106"}, "ok": {"3", "7"}}
    everything = {(s, p) for s in SOURCES for p in published[s] | good[s]}
    received = rig.pull(len(everything))
    assert set(received) == everything and set(received.values()) == {1}


# --- connector level: an unreadable item must not pass for one already seen ----------------------------------------


def connector_polite() -> Polite:
    return Polite(None, attempts=1)


def test_an_item_without_a_usable_id_on_a_full_page_does_not_end_the_paging(tmp_path: Path) -> None:
    """Before the fix, the wall stopped paging at an id it could not read (as if it were at or below the cursor),
    stored the newest id as the cursor, and the posts on the next pages were never fetched."""
    items: list[Any] = [vk_item(i) for i in range(300, 0, -1)]
    items.insert(5, vk_item("x"))
    walls = write_json(tmp_path / "walls.json", {"communities": [{"owner_id": SHAKHTY, "items": items}]})
    with VkStandIn(walls, token=VK_TOKEN) as vk:
        client = VkClient(httpx.Client(timeout=5), vk.api_base, VK_TOKEN, "5.199", connector_polite())
        wall = VkWallConnector(VkWallSource(id="vk-wall", kind="vk_wall", owner_id=SHAKHTY), client)
        result = wall.fetch({"last_post_id": 10})
        offsets = [c["offset"] for c in vk.calls]
    assert [int(p.post_id) for p in result.posts] == list(range(11, 301))
    [rejected] = result.rejected
    assert "'x' do not name a post" in rejected.reason
    assert result.cursor == {"last_post_id": 300} and offsets == ["0", "100", "200"]


def test_an_ok_topic_with_an_unreadable_time_at_a_page_end_does_not_end_the_paging(tmp_path: Path) -> None:
    groups = write_json(
        tmp_path / "ok.json", {"groups": [{"gid": GID, "topics": [ok_topic(i) for i in range(1, 101)]}]}
    )
    with OkStandIn(groups) as ok:
        # Page 1 (50 topics, the last one's created_ms unreadable) says there is more; page 2 is the stand-in's own.
        first = [ok_topic(i) for i in range(100, 51, -1)] + [ok_topic(1000, created_ms="вчера")]
        anchor = base64.urlsafe_b64encode(b"49").decode()
        ok.inject("mediatopic.getTopics", json.dumps({"media_topics": first, "anchor": anchor, "has_more": True}))
        config = OkGroupSource(id="ok", kind="ok_group", group_id=GID)
        connector = OkGroupConnector(
            config,
            httpx.Client(timeout=5),
            ok.api_base,
            DEMO_APPLICATION_KEY,
            DEMO_ACCESS_TOKEN,
            DEMO_APPLICATION_SECRET_KEY,
            connector_polite(),
        )
        result = connector.fetch({"last_created_ms": (T0 + 10) * 1000, "ids_at_last": ["10"]})
    assert [int(p.post_id) for p in result.posts] == list(range(11, 101))
    [rejected] = result.rejected
    assert rejected.key == f"{GID}_1000" and "ValueError" in rejected.reason


def test_a_search_result_with_a_garbage_date_does_not_move_start_time_past_every_post_to_come(tmp_path: Path) -> None:
    walls = write_json(tmp_path / "walls.json", {"communities": [{"owner_id": SHAKHTY, "items": []}]})
    with VkStandIn(walls, token=VK_TOKEN) as vk:
        page = {"items": [vk_item(1, text="яма"), vk_item(2, text="яма", date=10**20)], "count": 2}
        vk.inject("newsfeed.search", json.dumps({"response": page}))
        client = VkClient(httpx.Client(timeout=5), vk.api_base, VK_TOKEN, "5.199", connector_polite())
        search = VkSearchConnector(VkSearchSource(id="s", kind="vk_search", query="яма"), client)
        result = search.fetch({"start_time": T0 - 100})
    assert [p.post_id for p in result.posts] == ["1"] and len(result.rejected) == 1
    assert result.cursor == {"start_time": T0 + 2}  # not 10**20 + 1


def test_an_answer_without_a_length_is_read_no_further_than_the_limit() -> None:
    """A body streamed without Content-Length (chunked) is cut off at the limit, not read to its end."""
    sent: list[int] = []

    def endless() -> Iterator[bytes]:
        for _ in range(10_000):
            sent.append(1)
            yield b"x" * 1024

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless())

    with httpx.Client(transport=httpx.MockTransport(handler)) as http, pytest.raises(answers.AnswerTooLarge) as err:
        answers.send(http, "POST", "http://vk.invalid/method/wall.get", what="VK wall.get", limit=64 * 1024)
    assert "VK wall.get" in str(err.value) and len(sent) <= 65


def test_an_answer_dripping_slowly_is_given_up_on_after_the_answer_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each chunk comes within the read timeout, so only a deadline on the whole answer ends it."""
    monkeypatch.setattr(answers, "MAX_ANSWER_SECONDS", 0.3)
    sent: list[int] = []

    def drip() -> Iterator[bytes]:
        for _ in range(100):
            sent.append(1)
            time.sleep(0.02)
            yield b"x"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=drip())

    with httpx.Client(transport=httpx.MockTransport(handler)) as http, pytest.raises(httpx.ReadTimeout) as err:
        answers.send(http, "POST", "http://vk.invalid/method/wall.get", what="VK wall.get")
    assert "VK wall.get" in str(err.value) and len(sent) < 40
