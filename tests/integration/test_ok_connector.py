"""The OK group connector's real httpx code against the OK stand-in on loopback, which verifies request signatures
as OK does; and the signature itself, worked by hand from OK's documented recipe."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from otklik.standins.ok import (
    DEMO_ACCESS_TOKEN,
    DEMO_APPLICATION_KEY,
    DEMO_APPLICATION_SECRET_KEY,
    DEMO_OK_GROUP,
    OkStandIn,
)
from shared.adapters.ok import GROUP_FEED_METHOD, OkApiError, OkGroupConnector, ok_signature
from shared.adapters.politeness import Polite
from shared.domain.errors import SourceAccessError, TransientError
from shared.domain.models import Attachment
from shared.source_config import OkGroupSource

pytestmark = pytest.mark.integration
GID = "53038939046008"


@pytest.fixture
def ok() -> Iterator[OkStandIn]:
    with OkStandIn() as server:
        yield server


def connector(
    ok: OkStandIn,
    secret: str = DEMO_APPLICATION_SECRET_KEY,
    token: str = DEMO_ACCESS_TOKEN,
    waits: list[float] | None = None,
    **source: Any,
) -> OkGroupConnector:
    config = OkGroupSource.model_validate(
        {"id": "ok-test", "kind": "ok_group", "group_id": GID, "municipality": "kirov", **source}
    )
    polite = Polite(None, attempts=3, sleep=(waits if waits is not None else []).append)
    return OkGroupConnector(config, httpx.Client(timeout=5), ok.api_base, DEMO_APPLICATION_KEY, token, secret, polite)


def demo_topics() -> list[dict[str, Any]]:
    groups = json.loads(DEMO_OK_GROUP.read_text(encoding="utf-8"))["groups"]
    return list(next(g["topics"] for g in groups if g["gid"] == GID))


# --- the signature ----------------------------------------------------------------------------------------


def test_signature_worked_by_hand_from_the_documented_recipe() -> None:
    # apiok.ru/dev/methods: in a session, session_secret_key = md5(access_token + application_secret_key) in
    # lower case; drop session_key/access_token; sort the parameters by name; join "key=value" with nothing in
    # between; sig = md5(joined + session_secret_key) in lower case.
    token = "-s-84W-s3egarWUsbkq-IWTucuedzTKT8VUXIA.s4Xx8IW7"
    app_secret = "ABC123DEF456GHI789JKL123"
    params = {
        "method": "mediatopic.getTopics",
        "gid": "53038939046008",
        "application_key": "ABCDEFGHIGKLMNOPK",
        "format": "json",
        "count": "50",
        "fields": "media_topic.*",
        "access_token": token,  # never signed
    }
    step1 = hashlib.md5((token + app_secret).encode(), usedforsecurity=False).hexdigest().lower()
    step2 = (
        "application_key=ABCDEFGHIGKLMNOPK"
        "count=50"
        "fields=media_topic.*"
        "format=json"
        "gid=53038939046008"
        "method=mediatopic.getTopics"
    )
    expected = hashlib.md5((step2 + step1).encode(), usedforsecurity=False).hexdigest().lower()
    assert ok_signature(params, token, app_secret) == expected
    assert ok_signature({k: v for k, v in reversed(params.items())}, token, app_secret) == expected  # any order
    assert ok_signature({**params, "sig": "stale", "session_key": "x"}, token, app_secret) == expected
    assert ok_signature({**params, "count": "51"}, token, app_secret) != expected


def test_signature_matches_a_published_worked_example() -> None:
    # The aiookru documentation's server-server example (konstantintogoi.github.io/aiookru/api): events.get with
    # these keys; it gives the session secret and the sig, computed outside this code base.
    token = "-s-84W-s3egarWUsbkq-IWTucuedzTKT8VUXIA.s4Xx8IW7"
    params = {"application_key": "ABCDEFGHIGKLMNOPK", "format": "json", "method": "events.get"}
    assert (
        hashlib.md5((token + "ABC123DEF456GHI789JKL123").encode(), usedforsecurity=False).hexdigest()
        == "b1a2b89707a94624c43afae67d59274c"
    )
    assert ok_signature(params, token, "ABC123DEF456GHI789JKL123") == "232c8eb921951c4dba9b72606f9ddb4c"


def test_signature_without_a_session_uses_the_application_secret_key() -> None:
    params = {"application_key": "K", "format": "json", "method": "url.getInfo", "url": "https://ok.ru/group/1"}
    joined = "application_key=Kformat=jsonmethod=url.getInfourl=https://ok.ru/group/1"
    assert (
        ok_signature(params, "", "S3CR3T")
        == hashlib.md5((joined + "S3CR3T").encode(), usedforsecurity=False).hexdigest()
    )


# --- the connector against the stand-in -------------------------------------------------------------------


def test_first_fetch_returns_every_topic_oldest_first_normalised(ok: OkStandIn) -> None:
    result = connector(ok).fetch(None)
    topics = {t["id"]: t for t in demo_topics()}
    assert len(result.posts) == len(topics) == 6 and result.rejected == []
    created = [p.published_at for p in result.posts]
    assert created == sorted(created)
    for post in result.posts:
        topic = topics[post.post_id]
        assert post.source == "ok" and post.community == GID
        assert post.url == f"https://ok.ru/group/{GID}/topic/{post.post_id}"
        assert post.published_at == datetime.fromtimestamp(topic["created_ms"] / 1000, tz=UTC)
        assert post.published_at.utcoffset() == timedelta(0)
        assert post.text == topic["media"][0]["text"]
        assert post.source_id == "ok-test" and post.municipality_hint == "kirov"
    by_id = {p.post_id: p for p in result.posts}
    assert by_id["155321908760288"].author_id == "583319040026"  # "user:583319040026"
    assert by_id["155321908760001"].author_id == f"group:{GID}"  # the group posting as itself
    assert by_id["155321908760402"].attachments == (
        Attachment(kind="link", url="https://slobodskoy-adm.example/news/2026/11/gogolya"),
    )
    newest = max(t["created_ms"] for t in topics.values())
    assert result.cursor == {"last_created_ms": newest, "ids_at_last": ["155321908760455"]}

    [call] = ok.calls
    assert call["method"] == GROUP_FEED_METHOD and call["gid"] == GID and call["format"] == "json"
    assert call["application_key"] == DEMO_APPLICATION_KEY and len(call["sig"]) == 32


def test_second_fetch_is_empty_and_a_new_topic_is_the_only_one_returned(ok: OkStandIn) -> None:
    c = connector(ok)
    first = c.fetch(None)
    second = c.fetch(first.cursor)
    assert second.posts == [] and second.cursor == first.cursor

    newest = first.cursor["last_created_ms"]
    ok.add_topic(
        GID,
        {
            "id": "155321908760512",
            "created_ms": newest + 60_000,
            "author_ref": "user:590017252344",
            "media": [{"type": "text", "text": "Слободской: на ул. Красноармейской не горит ни один фонарь"}],
        },
    )
    third = c.fetch(second.cursor)
    assert [p.post_id for p in third.posts] == ["155321908760512"]
    assert third.cursor == {"last_created_ms": newest + 60_000, "ids_at_last": ["155321908760512"]}


def test_a_topic_in_the_same_millisecond_as_the_cursor_is_not_lost(ok: OkStandIn) -> None:
    c = connector(ok)
    first = c.fetch(None)
    same_ms = first.cursor["last_created_ms"]
    ok.add_topic(GID, {"id": "155321908760999", "created_ms": same_ms, "media": [{"type": "text", "text": "тоже"}]})
    again = c.fetch(first.cursor)
    assert [p.post_id for p in again.posts] == ["155321908760999"]
    assert again.cursor["ids_at_last"] == ["155321908760455", "155321908760999"]
    assert c.fetch(again.cursor).posts == []


def test_pages_follow_the_anchor_and_the_first_run_takes_the_configured_backfill(tmp_path: Path) -> None:
    base = 1_793_000_000_000
    topics = [
        {"id": str(1000 + i), "created_ms": base + i * 1000, "media": [{"type": "text", "text": f"пост {i}"}]}
        for i in range(120)
    ]
    data = tmp_path / "ok.json"
    data.write_text(json.dumps({"groups": [{"gid": GID, "topics": topics}]}), encoding="utf-8")
    with OkStandIn(data) as server:
        everything = connector(server, max_posts_first_run=500).fetch(None)
        calls = list(server.calls)
        server.calls.clear()
        some = connector(server, max_posts_first_run=30).fetch(None)
        one_page = list(server.calls)
    assert [p.post_id for p in everything.posts] == [str(1000 + i) for i in range(120)]
    assert len(calls) == 3 and "anchor" not in calls[0] and calls[1]["anchor"] and calls[2]["anchor"]
    assert [p.post_id for p in some.posts] == [str(1000 + i) for i in range(90, 120)]
    assert len(one_page) == 1


def test_unreadable_topics_are_rejected_with_a_reason_and_the_rest_kept(tmp_path: Path) -> None:
    topics = [
        {"id": "3", "created_ms": 1_793_000_003_000, "media": [{"type": "text", "text": "яма"}]},
        {"id": "2", "created_ms": "вчера", "media": [{"type": "text", "text": "сломанный"}]},
        {"id": "1", "created_ms": 1_793_000_001_000, "media": [{"type": "text", "text": "лужа"}]},
    ]
    data = tmp_path / "ok.json"
    data.write_text(json.dumps({"groups": [{"gid": GID, "topics": topics}]}, ensure_ascii=False), encoding="utf-8")
    with OkStandIn(data) as server:
        result = connector(server).fetch(None)
    assert [p.post_id for p in result.posts] == ["1", "3"]
    [rejected] = result.rejected
    assert rejected.key == f"{GID}_2" and "ValueError" in rejected.reason and "сломанный" in rejected.payload
    assert result.cursor["last_created_ms"] == 1_793_000_003_000


def test_a_wrong_secret_key_is_refused_by_the_signature_check_and_stops_the_source(ok: OkStandIn) -> None:
    wrong = "FEDCBA9876543210FEDCBA9876543210"
    with pytest.raises(SourceAccessError) as err:
        connector(ok, secret=wrong).fetch(None)
    assert "error 104" in str(err.value) and "PARAM_SIGNATURE" in str(err.value)
    assert "OTKLIK_OK_APPLICATION_SECRET_KEY" in err.value.action
    for secret in (wrong, DEMO_APPLICATION_SECRET_KEY, DEMO_ACCESS_TOKEN):
        assert secret not in str(err.value) and secret not in err.value.action
    assert len(ok.calls) == 1  # not retried
    assert all("access_token" not in c for c in ok.calls)


def test_an_expired_token_stops_the_source_with_what_to_do(ok: OkStandIn) -> None:
    with pytest.raises(SourceAccessError) as err:
        connector(ok, token="tkn1expired-token").fetch(None)
    assert "error 102" in str(err.value) and "OTKLIK_OK_ACCESS_TOKEN" in err.value.action
    assert "tkn1expired-token" not in str(err.value)


def test_an_unknown_group_stops_the_source(ok: OkStandIn) -> None:
    with pytest.raises(SourceAccessError, match="error 160") as err:
        connector(ok, group_id="1").fetch(None)
    assert "group_id" in err.value.action


def test_service_unavailable_and_flood_control_are_retried_then_succeed(ok: OkStandIn) -> None:
    waits: list[float] = []
    ok.fail_next(ok_error=2)  # SERVICE
    ok.fail_next(ok_error=8)  # FLOOD_BLOCKED
    result = connector(ok, waits=waits).fetch(None)
    assert len(result.posts) == 6
    assert len(waits) == 2 and all(0 <= w <= 60 for w in waits)


def test_http_5xx_is_retried_and_a_lasting_outage_is_transient(ok: OkStandIn) -> None:
    for _ in range(3):
        ok.fail_next(http_status=503)
    with pytest.raises(TransientError, match="HTTP 503"):
        connector(ok).fetch(None)
    ok.fail_next(http_status=502)
    assert len(connector(ok).fetch(None).posts) == 6


def test_other_errors_are_permanent(ok: OkStandIn) -> None:
    ok.fail_next(ok_error=100)
    with pytest.raises(OkApiError) as err:
        connector(ok).fetch(None)
    assert err.value.code == 100 and len(ok.calls) == 1
