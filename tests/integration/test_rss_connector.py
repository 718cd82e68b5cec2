"""The RSS/Atom connector's real httpx + feedparser code against the feed stand-in on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from otklik.standins.rss import DEMO_FEEDS, FeedStandIn
from shared.adapters import answers
from shared.adapters.politeness import Polite
from shared.adapters.rss import SEEN_LIMIT, RssConnector
from shared.domain.errors import PermanentError, SourceAccessError, TransientError
from shared.domain.models import Attachment, Geo
from shared.source_config import RssSource

pytestmark = pytest.mark.integration
SHAKHTY = "shakhty_news.xml"
KIROV = "kirov_portal.atom"
FETCHED_AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def feeds() -> Iterator[FeedStandIn]:
    with FeedStandIn() as server:
        yield server


def connector(
    url: str,
    waits: list[float] | None = None,
    statuses: list[int] | None = None,
    attempts: int = 3,
) -> RssConnector:
    config = RssSource.model_validate({"id": "rss-test", "kind": "rss", "url": url, "municipality": "shakhty"})
    hooks: dict[str, list[Any]] = {}
    if statuses is not None:
        hooks["response"] = [lambda response: statuses.append(response.status_code)]
    http = httpx.Client(timeout=5, event_hooks=hooks)
    polite = Polite(None, attempts=attempts, sleep=(waits if waits is not None else []).append)
    return RssConnector(config, http, polite, clock=lambda: FETCHED_AT)


def rss(items: str) -> str:
    return f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>{items}</channel></rss>'


def test_rss_feed_is_normalised_oldest_first(feeds: FeedStandIn) -> None:
    url = feeds.feed_url(SHAKHTY)
    result = connector(url).fetch(None)
    assert len(result.posts) == 6 and result.rejected == []
    times = [p.published_at for p in result.posts]
    assert times == sorted(times)
    for post in result.posts:
        assert post.source == "rss" and post.community == url and post.source_id == "rss-test"
        assert post.municipality_hint == "shakhty"
        assert post.published_at.utcoffset() == timedelta(0)
        assert post.url.startswith("https://shakhty-vesti.example/news/2026/11/")
    by_id = {p.post_id: p for p in result.posts}

    artem = by_id["shakhty-vesti-48213"]  # a resident complaint published as news, HTML paragraphs
    assert artem.text.startswith("Жители пос. Артём жалуются на отсутствие воды третьи сутки\n\nВ редакцию обратились")
    assert "<p>" not in artem.text and "«Набираем воду в колонке" in artem.text
    assert artem.published_at == datetime(2026, 11, 12, 6, 40, tzinfo=UTC)  # 09:40 +0300
    assert artem.url == "https://shakhty-vesti.example/news/2026/11/12/artem-voda"
    assert artem.author_id == "Редакция"

    lights = by_id["shakhty-vesti-48070"]  # HTML with a list, a link and a script
    assert "не горят 7 фонарей от дома 12 до школы № 5;\nдети возвращаются" in lights.text
    assert "странице обращений (https://shakhty-vesti.example/obrashchenie)" in lights.text
    assert "trackView" not in lights.text and "<" not in lights.text

    pit = by_id["shakhty-vesti-48161"]  # the item with an image enclosure
    assert pit.attachments == (
        Attachment(kind="image", url="https://shakhty-vesti.example/uploads/2026/11/yama-gorsad.jpg"),
    )
    assert all(p.attachments == () for p in result.posts if p is not pit)
    assert all(p.geo is None for p in result.posts)


def test_atom_feed_is_normalised_with_geo_and_enclosures(feeds: FeedStandIn) -> None:
    result = connector(feeds.feed_url(KIROV)).fetch(None)
    assert len(result.posts) == 5
    assert [p.published_at for p in result.posts] == sorted(p.published_at for p in result.posts)
    by_id = {p.post_id: p for p in result.posts}

    tree = by_id["tag:kirov-portal.example,2026:obrashchenie-5521"]
    assert tree.geo == Geo(lat=58.5966, lon=49.6601)  # georss:point is "lat lon"
    assert tree.text.startswith("Обращение: упало дерево на провода на ул. Ленина, 102\n\nНочью после ветра")
    assert tree.published_at == datetime(2026, 11, 12, 8, 5, tzinfo=UTC)
    assert tree.url == "https://kirov-portal.example/obrashcheniya/2026/11/12/5521"
    assert tree.author_id == "Марина С."
    assert sum(p.geo is not None for p in result.posts) == 1

    answer = by_id["tag:kirov-portal.example,2026:news-3310"]  # updated later than published: published wins
    assert answer.published_at == datetime(2026, 11, 11, 13, 20, tzinfo=UTC)
    rubbish = by_id["tag:kirov-portal.example,2026:obrashchenie-5498"]  # a type="text" summary stays as written
    assert rubbish.text.endswith("Региональный оператор на звонки не отвечает.")
    winter = by_id["tag:kirov-portal.example,2026:news-3275"]
    assert winter.attachments == (
        Attachment(kind="image", url="https://kirov-portal.example/media/2026/11/tekhnika.jpg"),
    )


def test_second_fetch_is_conditional_gets_304_and_returns_nothing(feeds: FeedStandIn) -> None:
    statuses: list[int] = []
    c = connector(feeds.feed_url(SHAKHTY), statuses=statuses)
    first = c.fetch(None)
    assert first.cursor["etag"] and first.cursor["modified"] and len(first.cursor["seen"]) == 6
    assert "if-none-match" not in feeds.calls[0] and "if-modified-since" not in feeds.calls[0]

    again = c.fetch(first.cursor)
    assert again.posts == [] and again.cursor == first.cursor
    assert statuses == [200, 304]
    sent = feeds.calls[-1]
    assert sent["if-none-match"] == first.cursor["etag"]
    assert sent["if-modified-since"] == first.cursor["modified"]


def test_if_modified_since_alone_also_gets_304(feeds: FeedStandIn) -> None:
    statuses: list[int] = []
    c = connector(feeds.feed_url(KIROV), statuses=statuses)
    first = c.fetch(None)
    assert c.fetch({**first.cursor, "etag": None}).posts == []
    assert statuses == [200, 304] and "if-none-match" not in feeds.calls[-1]


def test_a_new_item_appears_and_only_it_is_returned(feeds: FeedStandIn) -> None:
    c = connector(feeds.feed_url(SHAKHTY))
    first = c.fetch(None)
    original = (DEMO_FEEDS / SHAKHTY).read_text(encoding="utf-8")
    new_item = """
    <item>
      <title>В пос. Артём дали воду, но она ржавая</title>
      <link>https://shakhty-vesti.example/news/2026/11/13/artem-rzhavaya</link>
      <guid isPermaLink="false">shakhty-vesti-48240</guid>
      <pubDate>Fri, 13 Nov 2026 08:10:00 +0300</pubDate>
      <description>Читатели пишут, что из кранов идёт ржавая вода.</description>
    </item>"""
    # The newest item first, as sites do; the oldest item drops off the end of the feed.
    updated = original.replace("<lastBuildDate>", new_item + "\n    <lastBuildDate>", 1)
    updated = updated[: updated.rindex("<item>")] + "</channel>\n</rss>\n"
    feeds.set_feed(SHAKHTY, updated)

    again = c.fetch(first.cursor)
    assert [p.post_id for p in again.posts] == ["shakhty-vesti-48240"]
    assert (
        again.posts[0].text
        == "В пос. Артём дали воду, но она ржавая\n\nЧитатели пишут, что из кранов идёт ржавая вода."
    )
    assert again.cursor["etag"] != first.cursor["etag"]
    assert again.cursor["seen"][0] == "shakhty-vesti-48240"
    assert "shakhty-vesti-47998" in again.cursor["seen"]  # dropped from the feed, still remembered
    assert c.fetch(again.cursor).posts == []


def test_503_with_retry_after_is_retried_after_that_wait(feeds: FeedStandIn) -> None:
    waits: list[float] = []
    feeds.fail_next(503, retry_after=7)
    result = connector(feeds.feed_url(SHAKHTY), waits=waits).fetch(None)
    assert len(result.posts) == 6
    assert waits == [7.0]
    assert len(feeds.calls) == 2


def test_429_without_retry_after_backs_off_and_a_feed_that_keeps_failing_is_transient(feeds: FeedStandIn) -> None:
    waits: list[float] = []
    for _ in range(3):
        feeds.fail_next(429)
    with pytest.raises(TransientError, match="HTTP 429"):
        connector(feeds.feed_url(SHAKHTY), waits=waits).fetch(None)
    assert len(waits) == 2 and all(0 <= w <= 60 for w in waits)


def test_an_unreachable_site_is_transient() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits: list[float] = []
    with pytest.raises(TransientError, match="ConnectError"):
        connector(f"http://127.0.0.1:{port}/feed.xml", waits=waits, attempts=2).fetch(None)
    assert len(waits) == 1


@pytest.mark.parametrize(
    "body",
    [
        "this is not a feed at all",
        "<html><head><title>Новости</title></head><body><p>Сайт на реконструкции</p></body></html>",
        '{"items": []}',
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Обор',  # cut off before any item
    ],
)
def test_a_body_that_is_not_a_feed_is_permanent(feeds: FeedStandIn, body: str) -> None:
    feeds.set_feed("broken.xml", body)
    with pytest.raises(PermanentError, match="not an RSS/Atom feed"):
        connector(feeds.feed_url("broken.xml")).fetch(None)


def test_a_feed_feedparser_marks_bozo_but_reads_is_used(feeds: FeedStandIn) -> None:
    # &nbsp; without a DTD is not well-formed XML; feedparser flags it (bozo) and still reads the items.
    feeds.set_feed(
        "sloppy.xml",
        rss(
            '<item><title>Яма&nbsp;на Советской</title><guid isPermaLink="false">x1</guid>'
            "<link>https://site.example/1</link></item>"
        ),
    )
    [post] = connector(feeds.feed_url("sloppy.xml")).fetch(None).posts
    assert post.post_id == "x1" and post.text == "Яма на Советской"


def test_a_feed_larger_than_any_honest_one_is_refused_unread(feeds: FeedStandIn, monkeypatch: Any) -> None:
    monkeypatch.setattr(answers, "MAX_ANSWER_BYTES", 64 * 1024)  # the default (16 MiB) at a test's size
    item = '<item><title>Яма на Советской</title><guid isPermaLink="false">x{}</guid></item>'
    feeds.set_feed("huge.xml", rss("".join(item.format(n) for n in range(2_000))))
    with pytest.raises(answers.AnswerTooLarge, match="RSS rss-test"):
        connector(feeds.feed_url("huge.xml")).fetch(None)


def test_an_empty_but_valid_feed_is_no_posts(feeds: FeedStandIn) -> None:
    feeds.set_feed("empty.xml", rss(""))
    result = connector(feeds.feed_url("empty.xml")).fetch(None)
    assert result.posts == [] and result.cursor["seen"] == []


@pytest.mark.parametrize("status", [404, 410])
def test_a_missing_feed_stops_the_source_with_what_to_do(feeds: FeedStandIn, status: int) -> None:
    if status == 404:
        url = feeds.feed_url("no_such_feed.xml")
    else:
        url = feeds.feed_url(SHAKHTY)
        feeds.fail_next(410)
    with pytest.raises(SourceAccessError) as err:
        connector(url).fetch(None)
    assert f"HTTP {status}" in str(err.value)
    assert err.value.action == "check the feed URL in sources.yaml"


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_feed_stops_the_source(feeds: FeedStandIn, status: int) -> None:
    feeds.fail_next(status)
    with pytest.raises(SourceAccessError, match=f"HTTP {status}") as err:
        connector(feeds.feed_url(SHAKHTY)).fetch(None)
    assert "sources.yaml" in err.value.action


def test_entries_without_id_link_date_or_text(feeds: FeedStandIn) -> None:
    feeds.set_feed(
        "odd.xml",
        rss(
            "<item><title>Без guid</title><link>https://site.example/a/1</link>"
            "<pubDate>Wed, 04 Nov 2026 10:00:00 +0300</pubDate></item>"
            "<item><title>Без даты и ссылки</title><description>Текст есть</description></item>"
            "<item><description></description></item>"
        ),
    )
    c = connector(feeds.feed_url("odd.xml"))
    result = c.fetch(None)
    by_title = {p.text.split("\n")[0]: p for p in result.posts}
    assert set(by_title) == {"Без guid", "Без даты и ссылки"}
    assert by_title["Без guid"].post_id == "https://site.example/a/1"  # no guid: the link
    undated = by_title["Без даты и ссылки"]
    assert undated.post_id.startswith("sha256:")  # neither: a hash of title and date
    assert undated.published_at == FETCHED_AT
    assert undated.url == feeds.feed_url("odd.xml")
    assert [p.post_id for p in result.posts] == ["https://site.example/a/1", undated.post_id]

    [rejected] = result.rejected
    assert rejected.reason == "feed entry has neither a link nor any text"
    assert rejected.key.startswith("sha256:") and rejected.key in result.cursor["seen"]
    again = c.fetch({**result.cursor, "etag": None, "modified": None})  # same ids: nothing new, nothing rejected
    assert again.posts == [] and again.rejected == []


def test_the_cursor_remembers_at_most_the_newest_500_ids(feeds: FeedStandIn) -> None:
    items = "".join(
        f'<item><title>Новость {i}</title><guid isPermaLink="false">n{i}</guid>'
        f"<link>https://site.example/{i}</link>"
        f"<pubDate>Sun, 01 Nov 2026 {i // 60 % 24:02d}:{i % 60:02d}:00 +0000</pubDate></item>"
        for i in range(600, 0, -1)
    )
    feeds.set_feed("big.xml", rss(items))
    result = connector(feeds.feed_url("big.xml")).fetch(None)
    assert len(result.posts) == 600
    assert len(result.cursor["seen"]) == SEEN_LIMIT
    assert result.cursor["seen"][0] == "n600" and result.cursor["seen"][-1] == "n101"


def test_demo_feeds_are_where_the_stand_in_serves_them_from() -> None:
    names = sorted(p.name for p in Path(DEMO_FEEDS).iterdir())
    assert names == [KIROV, SHAKHTY]
