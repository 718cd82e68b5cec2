"""The VK wall connector's real httpx code against the VK stand-in on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from otklik.standins.vk import DEMO_WALLS, VkStandIn
from shared.adapters.vk import VkApiError, VkClient, VkWallConnector
from shared.config import SourceConfig
from shared.domain.errors import TransientError

pytestmark = pytest.mark.integration
TOKEN = "test-token"
SHAKHTY = -210000001


@pytest.fixture
def vk() -> Iterator[VkStandIn]:
    with VkStandIn(token=TOKEN) as server:
        yield server  # type: ignore[misc]


def connector(vk: VkStandIn, token: str = TOKEN, **source: Any) -> VkWallConnector:
    config = SourceConfig.model_validate(
        {"id": "vk-test", "kind": "vk_wall", "owner_id": SHAKHTY, "municipality": "shakhty", **source}
    )
    return VkWallConnector(config, VkClient(httpx.Client(timeout=5), vk.api_base, token, "5.199"))


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


def test_bad_token_is_a_vk_error_5(vk: VkStandIn) -> None:
    with pytest.raises(VkApiError) as err:
        connector(vk, token="revoked").fetch(None)
    assert err.value.code == 5


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


def test_http_5xx_and_flood_control_are_transient_and_the_next_call_succeeds(vk: VkStandIn) -> None:
    c = connector(vk)
    vk.fail_next(vk_error=6)
    with pytest.raises(TransientError, match="error 6"):
        c.fetch(None)
    vk.fail_next(http_status=502)
    with pytest.raises(TransientError, match="HTTP 502"):
        c.fetch(None)
    assert len(c.fetch(None).posts) == len(demo_items(SHAKHTY))
