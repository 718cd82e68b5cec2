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


def test_first_fetch_returns_every_post_oldest_first_normalised(vk: VkStandIn) -> None:
    result = connector(vk).fetch(None)
    items = demo_items(SHAKHTY)
    assert len(result.posts) == len(items)
    ids = [int(p.post_id) for p in result.posts]
    assert ids == sorted(ids)
    assert result.cursor == {"last_post_id": max(i["id"] for i in items)}
    by_id = {i["id"]: i for i in items}
    for post in result.posts:
        item = by_id[int(post.post_id)]
        assert post.text == item["text"]  # links and emoji intact
        assert post.url == f"https://vk.com/wall{SHAKHTY}_{item['id']}"
        assert int(post.published_at.timestamp()) == item["date"]
        assert post.published_at.utcoffset() is not None and post.published_at.utcoffset().total_seconds() == 0
        assert post.municipality_hint == "shakhty" and post.source_id == "vk-test"
        assert (post.geo is not None) == bool(item.get("geo"))
        assert len(post.attachments) == len(item.get("attachments", []))
    assert vk.calls[0]["v"] == "5.199"


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
    assert again.cursor == {"last_post_id": newest + 1}


def test_first_fetch_takes_at_most_the_configured_backfill(vk: VkStandIn) -> None:
    result = connector(vk, max_posts_first_run=5).fetch(None)
    assert len(result.posts) == 5
    newest = max(i["id"] for i in demo_items(SHAKHTY))
    assert result.posts[-1].post_id == str(newest)


def test_community_by_short_name(vk: VkStandIn) -> None:
    result = connector(vk, owner_id=None, domain="kirov_incident").fetch(None)
    assert len(result.posts) == len(demo_items(-210000002))


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
    assert len(c.fetch(None).posts) == len(demo_items(SHAKHTY))
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
