"""The VK wall connector's real httpx code against the VK stand-in on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.cloud import firestore, pubsub_v1

from otklik.stack import topology
from otklik.standins.vk import DEMO_WALLS, VkStandIn
from shared.adapters.firestore import (
    PUBLISHED_POSTS,
    FirestoreCursors,
    FirestoreMarkers,
    FirestoreQuarantine,
    FirestoreSourceHealth,
)
from shared.adapters.politeness import Polite
from shared.adapters.pubsub import PubSubPublisher
from shared.adapters.vk import VkApiError, VkClient, VkWallConnector
from shared.contracts import PostFetchedV1, decode
from shared.domain.errors import SourceAccessError, TransientError
from shared.domain.models import utcnow
from shared.ports import SkipReason
from shared.services.ingest import IngestService, PostIntake, WatchedSource
from shared.source_config import VkWallSource

pytestmark = pytest.mark.integration
TOKEN = "test-token"
SHAKHTY = -210000001


@pytest.fixture
def vk() -> Iterator[VkStandIn]:
    with VkStandIn(token=TOKEN) as server:
        yield server  # type: ignore[misc]


def polite(waits: list[float] | None = None) -> Polite:
    return Polite(None, attempts=3, sleep=(waits if waits is not None else []).append)


def connector(vk: VkStandIn, token: str = TOKEN, waits: list[float] | None = None, **source: Any) -> VkWallConnector:
    config = VkWallSource.model_validate(
        {"id": "vk-test", "kind": "vk_wall", "owner_id": SHAKHTY, "municipality": "shakhty", **source}
    )
    return VkWallConnector(config, VkClient(httpx.Client(timeout=5), vk.api_base, token, "5.199", polite(waits)))


def demo_items(owner_id: int) -> list[dict[str, Any]]:
    walls = json.loads(DEMO_WALLS.read_text(encoding="utf-8"))["communities"]
    return next(c["items"] for c in walls if c["owner_id"] == owner_id)


def residents_items(owner_id: int) -> list[dict[str, Any]]:
    """The demo wall's posts but the advertisements marked as such (skipped by design)."""
    return [i for i in demo_items(owner_id) if not i.get("marked_as_ads")]


def accounted(vk: VkStandIn, result: Any) -> bool:
    """Every item the stand-in answered since ``vk.served`` was cleared is a post, a rejection or a named skip."""
    return len(vk.served) == len(result.posts) + len(result.rejected) + len(result.skipped)


def test_first_fetch_returns_every_post_oldest_first_normalised(vk: VkStandIn) -> None:
    result = connector(vk).fetch(None)
    items = demo_items(SHAKHTY)
    [ad] = [i for i in items if i.get("marked_as_ads")]  # the community's paid post, «Мебельный салон»
    assert [(s.key, s.reason) for s in result.skipped] == [(f"{SHAKHTY}_{ad['id']}", SkipReason.NOT_RESIDENT)]
    assert len(result.posts) == len(items) - 1 and accounted(vk, result)
    ids = [int(p.post_id) for p in result.posts]
    assert ids == sorted(ids)
    assert result.cursor == {"last_post_id": max(i["id"] for i in items), "edited": {"18873": 1795863600}}
    by_id = {i["id"]: i for i in items}
    for post in result.posts:
        item = by_id[int(post.post_id)]
        chain = [item, *item.get("copy_history", [])]
        if len(chain) == 1 and "place" not in item.get("geo", {}):
            assert post.text == item["text"]  # links and emoji intact
        assert post.text.startswith(item["text"])
        assert post.url == f"https://vk.com/wall{SHAKHTY}_{item['id']}"
        assert int(post.published_at.timestamp()) == item["date"]
        assert post.published_at.utcoffset() is not None and post.published_at.utcoffset().total_seconds() == 0
        assert post.municipality_hint == "shakhty" and post.source_id == "vk-test"
        assert (post.geo is not None) == bool(item.get("geo"))
        assert len(post.attachments) == sum(len(p.get("attachments", [])) for p in chain)
        assert post.author_id == str(item.get("signer_id") or item["from_id"])
        assert post.edited_at is None  # an edited post read for the first time is simply the post
    assert vk.calls[0]["v"] == "5.199"


def test_the_demo_walls_other_shapes_are_read_whole(vk: VkStandIn) -> None:
    posts = {p.post_id: p for p in connector(vk).fetch(None).posts}
    video, link, doc = posts["18867"].attachments[0], posts["18856"].attachments[0], posts["18841"].attachments[0]
    assert (video.kind, video.url) == ("video", "https://vk.com/video498230114_456239117")
    assert (link.kind, link.url) == ("link", "https://www.change.org/p/osveshchenie-pereulka-cherenkova")
    assert (doc.kind, doc.url) == ("doc", "https://vk.com/doc366120985_670118244")
    place = posts["18832"]  # geo.place: the name and address the author marked on the map join the text
    assert place.text.endswith("\n\nМесто: ТЦ «Центральный», ул. Советская, 154")
    assert place.geo is not None and (place.geo.lat, place.geo.lon) == (47.7118, 40.2149)
    signed = posts["18824"]  # the community published a resident's post, signed
    assert signed.author_id == "588120334" and signed.community == str(SHAKHTY)
    repost = posts["18879"]
    assert repost.text.startswith("Жители пос. Артём просят помочь 👇") and "течёт крыша" in repost.text
    assert repost.repost_of is not None and repost.repost_of.url == "https://vk.com/wall604417211_2231"
    assert repost.repost_of.author_id == "604417211" and repost.attachments[0].kind == "photo"


def test_cursor_fetches_only_newer_posts_even_with_an_old_pinned_post(vk: VkStandIn) -> None:
    c = connector(vk)
    first = c.fetch(None)
    assert c.fetch(first.cursor).posts == []
    newest = first.cursor["last_post_id"]
    vk.add_post(
        SHAKHTY,
        {
            "id": newest + 1,
            "owner_id": SHAKHTY,
            "from_id": 5,
            "date": 1795900000,
            "text": "Снова яма на Советской",
            "post_type": "post",
        },
    )
    again = c.fetch(first.cursor)
    assert [p.post_id for p in again.posts] == [str(newest + 1)]
    assert again.cursor == {**first.cursor, "last_post_id": newest + 1}


def test_first_fetch_takes_at_most_the_configured_backfill(vk: VkStandIn) -> None:
    result = connector(vk, max_posts_first_run=5).fetch(None)
    assert len(result.posts) == 5
    newest = max(i["id"] for i in demo_items(SHAKHTY))
    assert result.posts[-1].post_id == str(newest)
    # The rest of the page is older than the first run's window: counted, not read.
    assert [s.reason for s in result.skipped] == [SkipReason.OLD] * (len(demo_items(SHAKHTY)) - 5)
    assert accounted(vk, result)


def test_community_by_short_name(vk: VkStandIn) -> None:
    result = connector(vk, owner_id=None, domain="kirov_incident").fetch(None)
    assert len(result.posts) == len(residents_items(-210000002))


def test_pages_through_walls_longer_than_one_page(tmp_path: Path) -> None:
    items = [
        {"id": i, "owner_id": SHAKHTY, "from_id": 7, "date": 1795300000 + i, "text": f"пост {i}"}
        for i in range(250, 0, -1)
    ]
    walls = tmp_path / "walls.json"
    walls.write_text(json.dumps({"communities": [{"owner_id": SHAKHTY, "items": items}]}), encoding="utf-8")
    with VkStandIn(walls, token=TOKEN) as vk:
        result = connector(vk, max_posts_first_run=1000).fetch(None)  # type: ignore[arg-type]
        assert [p.post_id for p in result.posts] == [str(i) for i in range(1, 251)]
        assert [c["offset"] for c in vk.calls] == ["0", "100", "200"]  # type: ignore[attr-defined]


def test_bad_token_stops_the_source_with_what_to_do(vk: VkStandIn) -> None:
    with pytest.raises(SourceAccessError) as err:
        connector(vk, token="revoked").fetch(None)
    assert "error 5" in str(err.value) and "OTKLIK_VK_TOKEN" in err.value.action
    assert "revoked" not in str(err.value)


def test_unknown_wall_is_an_error_not_an_empty_wall(vk: VkStandIn) -> None:
    with pytest.raises(VkApiError) as err:
        connector(vk, owner_id=-999).fetch(None)
    assert err.value.code == 100


def test_unreadable_items_are_rejected_with_a_reason_and_the_rest_kept(tmp_path: Path) -> None:
    items = [
        {"id": 3, "owner_id": SHAKHTY, "date": 1795300003, "text": "яма"},
        {"id": 2, "owner_id": SHAKHTY, "date": "not a time", "text": "сломанный"},
        {"id": 1, "owner_id": SHAKHTY, "date": 1795300001, "text": "лужа"},
    ]
    walls = tmp_path / "walls.json"
    walls.write_text(json.dumps({"communities": [{"owner_id": SHAKHTY, "items": items}]}), encoding="utf-8")
    with VkStandIn(walls, token=TOKEN) as vk:
        result = connector(vk).fetch(None)  # type: ignore[arg-type]
    assert [p.post_id for p in result.posts] == ["1", "3"]
    assert len(result.rejected) == 1
    assert "ValueError" in result.rejected[0].reason and '"сломанный"' in result.rejected[0].payload
    assert result.cursor == {"last_post_id": 3}


def test_flood_control_and_http_5xx_are_retried_with_backoff_then_succeed(vk: VkStandIn) -> None:
    waits: list[float] = []
    c = connector(vk, waits=waits)
    vk.fail_next(vk_error=6)
    vk.fail_next(http_status=502)
    assert len(c.fetch(None).posts) == len(residents_items(SHAKHTY))
    assert len(waits) == 2 and all(0 <= w <= 60 for w in waits)


def test_a_source_that_keeps_failing_raises_transient_after_the_last_try(vk: VkStandIn) -> None:
    for _ in range(3):
        vk.fail_next(vk_error=10)
    with pytest.raises(TransientError, match="error 10"):
        connector(vk).fetch(None)


@pytest.mark.parametrize("code", [15, 18, 203])
def test_no_access_errors_stop_the_source(vk: VkStandIn, code: int) -> None:
    vk.fail_next(vk_error=code)
    with pytest.raises(SourceAccessError, match=f"error {code}"):
        connector(vk).fetch(None)


def test_the_request_rate_limit_keeps_a_strict_server_happy(tmp_path: Path) -> None:
    from shared.adapters.politeness import RateLimit

    items = [
        {"id": i, "owner_id": SHAKHTY, "from_id": 7, "date": 1795300000 + i, "text": f"пост {i}"}
        for i in range(450, 0, -1)
    ]
    walls = tmp_path / "walls.json"
    walls.write_text(json.dumps({"communities": [{"owner_id": SHAKHTY, "items": items}]}), encoding="utf-8")
    with VkStandIn(walls, token=TOKEN, max_requests_per_second=3) as vk:
        config = VkWallSource(id="vk-test", kind="vk_wall", owner_id=SHAKHTY, max_posts_first_run=1000)
        client = VkClient(httpx.Client(timeout=5), vk.api_base, TOKEN, "5.199", Polite(RateLimit(3), attempts=1))
        result = VkWallConnector(config, client).fetch(None)  # five pages, more than 3 per second
    assert len(result.posts) == 450


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def comments_rig(tmp_path: Path) -> VkStandIn:
    posts = [
        {
            "id": i,
            "owner_id": SHAKHTY,
            "from_id": 7,
            "date": 1795300000 + i,
            "text": f"пост {i}",
            "comments": {"count": 0},
        }
        for i in (3, 2, 1)
    ]
    comments = {
        str(SHAKHTY): {
            "2": [
                {
                    "id": 10,
                    "owner_id": SHAKHTY,
                    "post_id": 2,
                    "from_id": 8,
                    "date": 1795300100,
                    "text": "у нас тоже яма",
                    "thread": {
                        "count": 1,
                        "items": [
                            {
                                "id": 12,
                                "owner_id": SHAKHTY,
                                "post_id": 2,
                                "from_id": 9,
                                "date": 1795300300,
                                "text": "и свет не горит",
                                "parents_stack": [10],
                            }
                        ],
                    },
                },
                {
                    "id": 11,
                    "owner_id": SHAKHTY,
                    "post_id": 2,
                    "from_id": 0,
                    "date": 1795300200,
                    "text": "",
                    "deleted": True,
                },
            ]
        }
    }
    walls = write_json(tmp_path / "walls.json", {"communities": [{"owner_id": SHAKHTY, "items": posts}]})
    return VkStandIn(walls, TOKEN, write_json(tmp_path / "comments.json", {"comments": comments}))


def test_comments_and_thread_replies_become_posts_with_their_parent(tmp_path: Path) -> None:
    with comments_rig(tmp_path) as vk:
        c = connector(vk, comments=True)  # type: ignore[arg-type]
        first = c.fetch(None)
        comments = [p for p in first.posts if p.parent_post_id]
        assert [p.post_id for p in comments] == ["2_10", "2_12"]  # the deleted one is not a post
        assert [(s.key, s.reason) for s in first.skipped] == [(f"{SHAKHTY}_2_11", SkipReason.EMPTY)]
        assert comments[0].url == f"https://vk.com/wall{SHAKHTY}_2?reply=10" and comments[0].author_id == "8"
        assert first.cursor["comments"]["2"] == {"last_id": 12, "count": 3}
        calls = len(vk.calls)  # type: ignore[attr-defined]
        assert c.fetch(first.cursor).posts == []
        # nothing changed: one wall.get, no wall.getComments
        assert [x["method"] for x in vk.calls[calls:]] == ["wall.get"]  # type: ignore[attr-defined]
        vk.add_comment(
            {
                "id": 13,
                "owner_id": SHAKHTY,
                "post_id": 2,
                "from_id": 5,
                "date": 1795300400,  # type: ignore[attr-defined]
                "text": "уже неделю так",
            }
        )
        again = c.fetch(first.cursor)
        assert [p.post_id for p in again.posts] == ["2_13"]


def search_rig(tmp_path: Path) -> VkStandIn:
    wall = [
        {
            "id": 5,
            "owner_id": SHAKHTY,
            "from_id": 7,
            "date": 1795300005,
            "text": "Яма на дороге у школы",
            "geo": {"type": "point", "coordinates": "47.71 40.21"},
        }
    ]
    extra = [
        {
            "id": 77,
            "owner_id": 501,
            "from_id": 501,
            "date": 1795300050,
            "text": "Опять яма на Советской",
            "geo": {"type": "point", "coordinates": "47.70 40.22"},
        },
        {
            "id": 78,
            "owner_id": -600,
            "from_id": -600,
            "date": 1795300060,
            "text": "яма в Кирове",
            "geo": {"type": "point", "coordinates": "58.60 49.66"},
        },
        {"id": 79, "owner_id": 502, "from_id": 502, "date": 1795300070, "text": "котики"},
    ]
    walls = write_json(tmp_path / "walls.json", {"communities": [{"owner_id": SHAKHTY, "items": wall}]})
    return VkStandIn(walls, TOKEN, search_extra_file=write_json(tmp_path / "extra.json", {"items": extra}))


def test_search_finds_posts_near_a_place_pages_by_next_from_and_moves_its_start_time(tmp_path: Path) -> None:
    from shared.adapters.vk import VkSearchConnector
    from shared.source_config import VkSearchSource

    with search_rig(tmp_path) as vk:
        config = VkSearchSource(
            id="vk-search", kind="vk_search", query="яма", latitude=47.709, longitude=40.216, municipality="shakhty"
        )
        client = VkClient(httpx.Client(timeout=5), vk.api_base, TOKEN, "5.199", polite())  # type: ignore[attr-defined]
        search = VkSearchConnector(config, client, clock=lambda: datetime.fromtimestamp(1795310000, UTC))
        first = search.fetch(None)
        assert [(p.community, p.post_id) for p in first.posts] == [(str(SHAKHTY), "5"), ("501", "77")]
        assert first.cursor == {"start_time": 1795300051}
        assert search.fetch(first.cursor).posts == []
        first_call = vk.calls[0]  # type: ignore[attr-defined]
        assert first_call["method"] == "newsfeed.search" and first_call["q"] == "яма"
        assert int(first_call["start_time"]) == 1795310000 - 24 * 3600


def test_search_follows_next_from_across_pages(tmp_path: Path) -> None:
    from shared.adapters import vk as vk_module
    from shared.adapters.vk import VkSearchConnector
    from shared.source_config import VkSearchSource

    extra = [
        {"id": i, "owner_id": 900 + i, "from_id": 900 + i, "date": 1795300000 + i, "text": f"яма {i}"}
        for i in range(1, 451)
    ]
    walls = write_json(tmp_path / "walls.json", {"communities": [{"owner_id": SHAKHTY, "items": []}]})
    with VkStandIn(walls, TOKEN, search_extra_file=write_json(tmp_path / "x.json", {"items": extra})) as vk:
        config = VkSearchSource(id="s", kind="vk_search", query="яма", first_run_hours=10_000)
        client = VkClient(httpx.Client(timeout=5), vk.api_base, TOKEN, "5.199", polite())  # type: ignore[attr-defined]
        result = VkSearchConnector(config, client).fetch(None)
        assert len(result.posts) == 450 and vk_module.SEARCH_PAGE_SIZE == 200
        assert [c.get("start_from") for c in vk.calls] == [None, "200", "400"]  # type: ignore[attr-defined]


def test_a_wall_failing_mid_batch_loses_no_post_and_publishes_none_twice(project_id: str, tmp_path: Path) -> None:
    """Page 2 of 3 fails past every retry: nothing is published and the cursor stays; the next run, with new
    posts meanwhile, publishes every post exactly once (through the real markers, cursors and Pub/Sub)."""
    items = [
        {"id": i, "owner_id": SHAKHTY, "from_id": 7, "date": 1795300000 + i, "text": f"пост {i}"}
        for i in range(250, 0, -1)
    ]
    walls = tmp_path / "walls.json"
    walls.write_text(json.dumps({"communities": [{"owner_id": SHAKHTY, "items": items}]}), encoding="utf-8")
    topo = topology.load()
    topology.create_on_emulator(topo, project_id)
    db = firestore.Client(project=project_id)
    with VkStandIn(walls, token=TOKEN) as vk:

        def run() -> Any:
            intake = PostIntake(
                FirestoreMarkers(db, PUBLISHED_POSTS),
                PubSubPublisher(pubsub_v1.PublisherClient(), project_id),
                topo.topics["posts"],
                utcnow,
            )
            source = WatchedSource(connector(vk, max_posts_first_run=1000))  # type: ignore[arg-type]
            service = IngestService(
                [source], FirestoreCursors(db), intake, FirestoreQuarantine(db), FirestoreSourceHealth(db), utcnow
            )
            [report] = service.run().sources
            return report

        vk.fail_next(http_status=502, after_calls=1, times=3)  # type: ignore[attr-defined]
        failed = run()
        assert failed.status == "failing" and failed.published == 0
        assert FirestoreCursors(db).get("vk-test") is None
        for i in (251, 252):
            vk.add_post(SHAKHTY, {"id": i, "owner_id": SHAKHTY, "from_id": 7, "date": 1795300000 + i, "text": "new"})  # type: ignore[attr-defined]
        done = run()
        assert done.status == "ok" and done.published == 252
        assert run().published == 0
    received = pull_posts(project_id, topo)
    assert sorted(int(p) for p in received) == list(range(1, 253))  # each post once


def pull_posts(project: str, topo: Any) -> list[str]:
    subscriber = pubsub_v1.SubscriberClient()
    sub = next(s.name for s in topo.subscriptions if s.topic == topo.topics["posts"])
    path = subscriber.subscription_path(project, sub)
    post_ids: list[str] = []
    for _ in range(30):
        got = subscriber.pull(request={"subscription": path, "max_messages": 100}, timeout=10).received_messages
        if not got:
            break
        subscriber.acknowledge(request={"subscription": path, "ack_ids": [m.ack_id for m in got]})
        post_ids += [decode(m.message.data, (PostFetchedV1,)).post.post_id for m in got]  # type: ignore[attr-defined]
    return post_ids


# --- every item accounted for --------------------------------------------------------------------------------


def test_every_item_vk_answers_is_a_post_a_rejection_or_a_named_skip_run_after_run() -> None:
    """The demo walls with their comments (a long thread, a deleted comment, an advertisement), read twice."""
    with VkStandIn.demo(TOKEN) as vk:
        for owner_id in (SHAKHTY, -210000002):
            c = connector(vk, owner_id=owner_id, comments=True)  # type: ignore[arg-type]
            vk.served.clear()  # type: ignore[attr-defined]
            first = c.fetch(None)
            assert accounted(vk, first) and first.posts  # type: ignore[arg-type]
            vk.served.clear()  # type: ignore[attr-defined]
            again = c.fetch(first.cursor)
            assert accounted(vk, again) and again.posts == []  # type: ignore[arg-type]
            assert {s.reason for s in again.skipped} == {SkipReason.SEEN}  # the wall's page, read before


def test_advertisements_deleted_and_empty_items_are_skipped_by_name(tmp_path: Path) -> None:
    poll = {"type": "poll", "poll": {"id": 1, "question": "Как вам?"}}
    sticker = {"type": "sticker", "sticker": {"sticker_id": 9}}
    posts = [
        {"id": 4, "owner_id": SHAKHTY, "from_id": SHAKHTY, "date": 1795300004, "text": "Скидки!", "marked_as_ads": 1},
        {"id": 3, "owner_id": SHAKHTY, "from_id": 7, "date": 1795300003, "text": "", "attachments": [poll]},
        {"id": 2, "owner_id": SHAKHTY, "from_id": 7, "date": 1795300002, "text": "яма", "comments": {"count": 2}},
        {"id": 1, "owner_id": SHAKHTY, "from_id": 7, "date": 1795300001, "text": "", "is_deleted": True},
    ]
    comments = {
        str(SHAKHTY): {
            "2": [
                {"id": 5, "owner_id": SHAKHTY, "post_id": 2, "from_id": 8, "date": 1795300100, "text": "",
                 "attachments": [sticker]},
                {"id": 6, "owner_id": SHAKHTY, "post_id": 2, "from_id": 0, "date": 1795300101, "text": "",
                 "deleted": True},
            ]
        }
    }  # fmt: skip
    walls = write_json(tmp_path / "walls.json", {"communities": [{"owner_id": SHAKHTY, "items": posts}]})
    with VkStandIn(walls, TOKEN, write_json(tmp_path / "comments.json", {"comments": comments})) as vk:
        result = connector(vk, comments=True).fetch(None)  # type: ignore[arg-type]
        assert accounted(vk, result)  # type: ignore[arg-type]
    assert [p.post_id for p in result.posts] == ["2"]
    assert sorted((s.key, s.reason.russian) for s in result.skipped) == [
        (f"{SHAKHTY}_1", "пустое сообщение"),  # deleted
        (f"{SHAKHTY}_2_5", "пустое сообщение"),  # a sticker
        (f"{SHAKHTY}_2_6", "пустое сообщение"),  # deleted comment
        (f"{SHAKHTY}_3", "пустое сообщение"),  # a poll only
        (f"{SHAKHTY}_4", "не от жителя"),  # the community's advertisement
    ]


# --- reply threads longer than VK embeds ---------------------------------------------------------------------


def reply(reply_id: int, thread: int, text: str = "и у нас") -> dict[str, Any]:
    return {
        "id": reply_id,
        "owner_id": SHAKHTY,
        "post_id": 1,
        "from_id": 1000 + reply_id,
        "date": 1795300000 + reply_id,
        "text": f"{text} {reply_id}",
        "parents_stack": [thread],
        "reply_to_comment": thread,
    }


def thread_rig(tmp_path: Path, replies: int) -> VkStandIn:
    post = {"id": 1, "owner_id": SHAKHTY, "from_id": 7, "date": 1795300000, "text": "Нет воды", "comments": {}}
    long_thread = {"id": 10, "owner_id": SHAKHTY, "post_id": 1, "from_id": 8, "date": 1795300010, "text": "Где вода?"}
    long_thread["thread"] = {"count": replies, "items": [reply(100 + n, 10) for n in range(replies)]}
    short = {"id": 11, "owner_id": SHAKHTY, "post_id": 1, "from_id": 9, "date": 1795300011, "text": "Третий день"}
    short["thread"] = {"count": 2, "items": [reply(50, 11), reply(51, 11)]}
    comments = {str(SHAKHTY): {"1": [long_thread, short]}}
    walls = write_json(tmp_path / "walls.json", {"communities": [{"owner_id": SHAKHTY, "items": [post]}]})
    return VkStandIn(walls, TOKEN, write_json(tmp_path / "comments.json", {"comments": comments}))


def test_a_thread_longer_than_ten_replies_is_read_whole_with_comment_id_and_pages(tmp_path: Path) -> None:
    with thread_rig(tmp_path, replies=130) as vk:
        c = connector(vk, comments=True)  # type: ignore[arg-type]
        vk.served.clear()  # type: ignore[attr-defined]
        first = c.fetch(None)
        thread_calls = [x for x in vk.calls if x.get("comment_id")]  # type: ignore[attr-defined]
    replies = {p.post_id for p in first.posts if p.parent_post_id and int(p.post_id.split("_")[1]) >= 100}
    assert replies == {f"1_{100 + n}" for n in range(130)}  # the 10 VK embeds and the 120 after them
    assert {"1_10", "1_11", "1_50", "1_51"} <= {p.post_id for p in first.posts}
    assert len({p.post_id for p in first.posts}) == len(first.posts)  # none twice
    # Only the long thread is read on, in pages; VK's 10 embedded replies are answered again there: counted.
    assert [(x["comment_id"], x["offset"], x["count"]) for x in thread_calls] == [
        ("10", "0", "100"),
        ("10", "100", "100"),
    ]
    assert [s.reason for s in first.skipped] == [SkipReason.SEEN] * 10 and accounted(vk, first)  # type: ignore[arg-type]
    assert first.cursor["comments"]["1"] == {"last_id": 229, "count": 134, "threads": {"10": 130}}


def test_replies_that_arrive_later_in_a_long_thread_are_read_once_by_a_later_run(tmp_path: Path) -> None:
    with thread_rig(tmp_path, replies=12) as vk:
        c = connector(vk, comments=True)  # type: ignore[arg-type]
        first = c.fetch(None)
        assert len([p for p in first.posts if p.parent_post_id]) == 2 + 12 + 2
        for n in (300, 301, 302):
            vk.add_comment(reply(n, 10, "до сих пор нет"))  # type: ignore[attr-defined]
        vk.add_comment(reply(303, 11, "и тут"))  # type: ignore[attr-defined]
        vk.served.clear()  # type: ignore[attr-defined]
        calls = len(vk.calls)  # type: ignore[attr-defined]
        later = c.fetch(first.cursor)
        assert [p.post_id for p in later.posts] == ["1_300", "1_301", "1_302", "1_303"]
        assert accounted(vk, later)  # type: ignore[arg-type]
        assert later.cursor["comments"]["1"]["threads"] == {"10": 15}
        again = c.fetch(later.cursor)
        assert again.posts == []
        assert [x["method"] for x in vk.calls[calls:]].count("wall.get") == 2  # type: ignore[attr-defined]


def test_the_stand_in_embeds_at_most_ten_replies_and_counts_the_thread(tmp_path: Path) -> None:
    with thread_rig(tmp_path, replies=25) as vk:
        params = {"owner_id": SHAKHTY, "post_id": 1, "thread_items_count": 50, "v": "5.199", "access_token": TOKEN}
        top = httpx.post(f"{vk.api_base}/method/wall.getComments", data=params).json()["response"]  # type: ignore[attr-defined]
        [long_thread, short] = top["items"]
        assert long_thread["thread"]["count"] == 25 and len(long_thread["thread"]["items"]) == 10
        assert short["thread"]["count"] == 2 and len(short["thread"]["items"]) == 2
        assert (top["count"], top["current_level_count"]) == (29, 2)
        rest = {**params, "comment_id": 10, "offset": 20, "count": 100, "sort": "desc"}
        page = httpx.post(f"{vk.api_base}/method/wall.getComments", data=rest).json()["response"]  # type: ignore[attr-defined]
        assert page["count"] == 25 and [r["id"] for r in page["items"]] == [104, 103, 102, 101, 100]


# --- reposts ---------------------------------------------------------------------------------------------


ORIGINAL = {
    "id": 2231,
    "owner_id": 604417211,
    "from_id": 604417211,
    "date": 1795300000,
    "text": "Течёт крыша над пятым этажом, ул. Ленина, 14",
    "attachments": [{"type": "photo", "photo": {"sizes": [{"width": 10, "height": 10, "url": "https://x/roof.jpg"}]}}],
}


def repost(post_id: int, history: list[dict[str, Any]], text: str = "Помогите жителям 👇") -> dict[str, Any]:
    return {"id": post_id, "owner_id": SHAKHTY, "from_id": SHAKHTY, "date": 1795300500, "text": text,
            "copy_history": history}  # fmt: skip


def test_a_repost_carries_the_reposters_and_the_originals_words_attachments_and_author(tmp_path: Path) -> None:
    middle = {"id": 77, "owner_id": -555, "from_id": -555, "date": 1795300100, "text": "Репост из соседнего паблика"}
    flat = repost(3, [middle, ORIGINAL])  # a repost of a repost, as VK lists it
    nested = repost(2, [{**middle, "copy_history": [ORIGINAL]}], text="")  # the chain nested
    only = repost(1, [ORIGINAL], text="")
    walls = write_json(tmp_path / "walls.json", {"communities": [{"owner_id": SHAKHTY, "items": [flat, nested, only]}]})
    with VkStandIn(walls, TOKEN) as vk:
        posts = {p.post_id: p for p in connector(vk).fetch(None).posts}  # type: ignore[arg-type]
    assert posts["3"].text == "Помогите жителям 👇\n\nРепост из соседнего паблика\n\n" + ORIGINAL["text"]
    assert posts["1"].text == ORIGINAL["text"] and [a.url for a in posts["1"].attachments] == ["https://x/roof.jpg"]
    for post in posts.values():  # the innermost original, however the chain is written
        assert post.repost_of is not None and post.author_id == str(SHAKHTY)
        assert (post.repost_of.community, post.repost_of.post_id, post.repost_of.author_id) == (
            "604417211", "2231", "604417211")  # fmt: skip
        assert post.repost_of.url == "https://vk.com/wall604417211_2231"
        assert post.url == f"https://vk.com/wall{SHAKHTY}_{post.post_id}"  # where it was seen
        assert post.intake_key == post.repost_of.incident_id


def test_the_original_and_its_repost_on_another_wall_are_published_once(tmp_path: Path) -> None:
    """A neighbourhood community's post, reposted by the city's public: one post reaches classify."""
    from tests.fakes import MemoryCursors, MemoryHealth, MemoryMarkers, MemoryPublisher, MemoryQuarantine

    original = {**ORIGINAL, "owner_id": -777, "signer_id": 604417211}
    neighbours = {"owner_id": -777, "items": [original]}
    community = {"owner_id": SHAKHTY, "items": [repost(9, [original])]}
    walls = write_json(tmp_path / "walls.json", {"communities": [neighbours, community]})
    publisher = MemoryPublisher()
    intake = PostIntake(MemoryMarkers(), publisher, "posts", utcnow)
    with VkStandIn(walls, TOKEN) as vk:
        sources = [
            WatchedSource(connector(vk, id="vk-neighbours", owner_id=-777)),  # type: ignore[arg-type]
            WatchedSource(connector(vk, id="vk-community")),  # type: ignore[arg-type]
        ]
        run = IngestService(sources, MemoryCursors(), intake, MemoryQuarantine(), MemoryHealth(), utcnow).run()
    assert [(s.source_id, s.published, s.duplicates) for s in run.sources] == [
        ("vk-neighbours", 1, 0),
        ("vk-community", 0, 1),
    ]
    assert run.accounted
    [message] = publisher.on("posts")
    assert message.post.incident_id == message.post.intake_key  # the original, from its own wall


# --- edits ---------------------------------------------------------------------------------------------------


def test_a_known_post_edited_later_is_read_again_as_its_new_version(tmp_path: Path) -> None:
    posts = [
        {"id": 2, "owner_id": SHAKHTY, "from_id": 7, "date": 1795300002, "text": "Яма", "edited": 1795300050},
        {"id": 1, "owner_id": SHAKHTY, "from_id": 7, "date": 1795300001, "text": "Лужа"},
    ]
    walls = write_json(tmp_path / "walls.json", {"communities": [{"owner_id": SHAKHTY, "items": posts}]})
    with VkStandIn(walls, TOKEN) as vk:
        c = connector(vk)  # type: ignore[arg-type]
        first = c.fetch(None)
        assert all(p.edited_at is None for p in first.posts) and first.cursor["edited"] == {"2": 1795300050}
        assert c.fetch(first.cursor).posts == []
        wall = vk.walls[SHAKHTY]["items"]  # type: ignore[attr-defined]
        wall[1] |= {"text": "Лужа во дворе дома 5 по ул. Ленина", "edited": 1795300900}
        vk.served.clear()  # type: ignore[attr-defined]
        edited = c.fetch(first.cursor)
        assert accounted(vk, edited)  # type: ignore[arg-type]
        [post] = edited.posts
        assert (post.post_id, post.text) == ("1", "Лужа во дворе дома 5 по ул. Ленина")
        assert post.edited_at is not None and int(post.edited_at.timestamp()) == 1795300900
        assert post.intake_key == f"{post.incident_id}.edit.1795300900"
        assert edited.cursor["edited"] == {"2": 1795300050, "1": 1795300900}
        assert c.fetch(edited.cursor).posts == []  # that edit is read once
