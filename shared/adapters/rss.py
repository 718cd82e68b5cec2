"""RSS 2.0 / Atom 1.0 feeds of local news sites and city portals, over httpx, parsed with feedparser.

A feed is fetched with conditional headers (``If-None-Match`` / ``If-Modified-Since`` from the stored ``ETag`` /
``Last-Modified``): a ``304 Not Modified`` costs the site nothing and yields no posts. Feeds have no reliable order
and their ids say nothing about time, so an entry is new when its id is not among the ids seen before; the cursor
keeps the ids of the newest ``SEEN_LIMIT`` entries.

Every HTTP call goes through ``Polite`` (the source's request rate, backoff on 429/5xx/timeouts honouring
``Retry-After``). A URL that is gone (404/410) or refused (401/403) stops the source with what to do; a body that
is not a feed is a ``PermanentError`` naming what was wrong.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

import feedparser  # type: ignore[import-untyped]
import httpx

from shared.adapters.answers import send
from shared.adapters.politeness import Polite
from shared.domain.errors import PermanentError, SourceAccessError, TransientError
from shared.domain.models import Attachment, Geo, Post
from shared.ports import FetchResult, Rejected
from shared.source_config import RssSource

SEEN_LIMIT = 500  # ids kept in the cursor: far more than any news feed carries at once
ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
GONE_ACTION = "check the feed URL in sources.yaml"
REFUSED_ACTION = (
    "the site refuses to serve the feed to us: ask the site for access (or for an open feed URL) and update "
    "sources.yaml, or disable the source"
)


class RssConnector:
    """Cursor: ``{"etag": str | None, "modified": str | None, "seen": [entry ids, newest first]}``."""

    def __init__(
        self,
        config: RssSource,
        http: httpx.Client,
        polite: Polite,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config
        self.http = http
        self.polite = polite
        self.source_id = config.id
        self.url = str(config.url)
        self.clock = clock or (lambda: datetime.now(UTC))

    def fetch(self, cursor: dict[str, Any] | None) -> FetchResult:
        cursor = cursor or {}
        headers = {"Accept": ACCEPT}
        if cursor.get("etag"):
            headers["If-None-Match"] = str(cursor["etag"])
        if cursor.get("modified"):
            headers["If-Modified-Since"] = str(cursor["modified"])
        answer = self.polite.call(lambda: self._get(headers))
        if answer is None:  # 304 Not Modified
            return FetchResult(posts=[], cursor=dict(cursor))
        response, body = answer
        fetched_at = self.clock()
        parsed = feedparser.parse(
            body,
            response_headers={
                "content-type": response.headers.get("Content-Type", "application/xml"),
                "content-location": str(response.url),  # relative links resolve against the feed's address
            },
        )
        entries: list[Any] = list(parsed.get("entries") or [])
        if not entries and (parsed.get("bozo") or not parsed.get("version")):
            raise PermanentError(f"not an RSS/Atom feed: {self.url}: {_why_not_a_feed(parsed, response, body)}")

        seen_before = {str(i) for i in cursor.get("seen", [])}
        ids_in_feed: list[str] = []
        in_feed: set[str] = set()
        fresh: list[tuple[datetime, int, Post]] = []
        rejected: list[Rejected] = []
        for index, entry in enumerate(entries):
            entry_id = _entry_id(entry)
            if entry_id in in_feed:
                continue  # a feed repeating an item: one post
            ids_in_feed.append(entry_id)
            in_feed.add(entry_id)
            if entry_id in seen_before:
                continue
            try:
                post = self._post(entry, entry_id, fetched_at)
            except (KeyError, TypeError, ValueError) as exc:
                rejected.append(_rejected(entry, entry_id, f"unreadable feed entry: {type(exc).__name__}: {exc}"))
                continue
            if post is None:
                rejected.append(_rejected(entry, entry_id, "feed entry has neither a link nor any text"))
                continue
            fresh.append((post.published_at, -index, post))  # feeds list newest first: ties keep that order
        fresh.sort(key=lambda t: (t[0], t[1]))

        seen = ids_in_feed + [str(i) for i in cursor.get("seen", []) if str(i) not in in_feed]
        new_cursor = {
            "etag": response.headers.get("ETag"),
            "modified": response.headers.get("Last-Modified"),
            "seen": seen[:SEEN_LIMIT],
        }
        return FetchResult(posts=[p for _, _, p in fresh], cursor=new_cursor, rejected=rejected)

    def _get(self, headers: dict[str, str]) -> tuple[httpx.Response, bytes] | None:
        try:
            # Streamed and cut off at answers.MAX_ANSWER_BYTES: a broken site must not take ingest down with it.
            response, body = send(
                self.http, "GET", self.url, what=f"RSS {self.source_id}", headers=headers, follow_redirects=True
            )
        except httpx.TooManyRedirects as exc:
            raise SourceAccessError(f"RSS {self.source_id}: redirect loop at {self.url}", GONE_ACTION) from exc
        except httpx.RequestError as exc:  # timeouts, refused connections, broken TLS, a garbled transfer
            raise TransientError(f"RSS {self.source_id}: {type(exc).__name__}") from exc
        status = response.status_code
        if status == 304:
            return None
        if status == 429 or status >= 500:
            raise TransientError(f"RSS {self.source_id}: HTTP {status}", _retry_after(response, self.clock()))
        if status in (404, 410):
            raise SourceAccessError(f"RSS {self.source_id}: HTTP {status} for {self.url}", GONE_ACTION)
        if status in (401, 403):
            raise SourceAccessError(f"RSS {self.source_id}: HTTP {status} for {self.url}", REFUSED_ACTION)
        if status >= 400:
            raise PermanentError(f"RSS {self.source_id}: HTTP {status} for {self.url}")
        return response, body

    def _post(self, entry: Any, entry_id: str, fetched_at: datetime) -> Post | None:
        title = _plain(str(entry.get("title") or ""), (entry.get("title_detail") or {}).get("type"))
        summary = _summary(entry)
        if summary == title:
            summary = ""
        text = "\n\n".join(part for part in (title, summary) if part)
        link = _http_url(entry.get("link"))
        if link is None and not text:
            return None
        return Post(
            source="rss",
            community=self.url,
            post_id=entry_id,
            author_id=str(entry.get("author")) if entry.get("author") else None,
            text=text,
            published_at=_published(entry) or fetched_at,
            url=link or self.url,
            geo=_geo(entry),
            attachments=tuple(_attachments(entry)),
            source_id=self.config.id,
            municipality_hint=self.config.municipality,
        )


# --- feed entries -> Post fields ------------------------------------------------------------------------


def _entry_id(entry: Any) -> str:
    """The entry's id / guid, else its link, else a hash of title and date (stable across fetches)."""
    for key in ("id", "link"):
        value = str(entry.get(key) or "").strip()
        if value:
            return value
    basis = f"{entry.get('title') or ''}\n{entry.get('published') or entry.get('updated') or ''}"
    return "sha256:" + hashlib.sha256(basis.encode("utf-8")).hexdigest()


def _summary(entry: Any) -> str:
    detail = entry.get("summary_detail") or {}
    if entry.get("summary"):
        return _plain(str(entry["summary"]), detail.get("type"))
    for content in entry.get("content") or []:  # Atom <content> or RSS content:encoded without a description
        if content.get("value"):
            return _plain(str(content["value"]), content.get("type"))
    return ""


def _published(entry: Any) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)  # feedparser gives UTC struct_time


def _geo(entry: Any) -> Geo | None:
    """georss:point ("lat lon") arrives from feedparser as GeoJSON ``where`` with coordinates (lon, lat)."""
    where = entry.get("where") or {}
    if where.get("type") != "Point":
        return None
    try:
        lon, lat = (float(x) for x in where["coordinates"])
        return Geo(lat=lat, lon=lon)
    except (KeyError, TypeError, ValueError):
        return None


def _attachments(entry: Any) -> list[Attachment]:
    found: list[Attachment] = []
    urls: set[str] = set()

    def add(kind: str, url: Any) -> None:
        href = _http_url(url)
        if href and href not in urls:
            urls.add(href)
            found.append(Attachment(kind=kind, url=href))

    for enclosure in entry.get("enclosures") or []:
        is_image = str(enclosure.get("type", "")).startswith("image/")
        add("image" if is_image else "enclosure", enclosure.get("href") or enclosure.get("url"))
    for media in entry.get("media_content") or []:
        is_image = media.get("medium") == "image" or str(media.get("type", "")).startswith("image/")
        add("image" if is_image else "enclosure", media.get("url"))
    return found


def _http_url(value: Any) -> str | None:
    text = str(value or "").strip()
    return text if text.startswith(("http://", "https://")) else None


def _rejected(entry: Any, entry_id: str, reason: str) -> Rejected:
    return Rejected(key=entry_id, payload=json.dumps(entry, ensure_ascii=False, default=str), reason=reason)


def _retry_after(response: httpx.Response, now: datetime) -> float | None:
    """Retry-After as delta-seconds or as an HTTP date (RFC 9110 §10.2.3)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _why_not_a_feed(parsed: Any, response: httpx.Response, body: bytes) -> str:
    problem = parsed.get("bozo_exception")
    kind = response.headers.get("Content-Type", "no content type")
    if problem is not None:
        return f"{type(problem).__name__}: {problem} ({kind})"
    return f"no RSS or Atom document in the body ({kind}, {len(body)} bytes)"


# --- HTML -> plain text ---------------------------------------------------------------------------------

_BLOCK_TAGS = {
    "p", "div", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6",
    "blockquote", "section", "article", "header", "footer", "figure", "figcaption", "pre", "hr",
}  # fmt: skip
_LINE_TAGS = {"br", "li", "tr", "dt", "dd"}  # a new line where they open, no blank line between them


class _TextExtractor(HTMLParser):
    """Visible text of an HTML fragment; links keep their address: ``text (https://...)``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0  # inside <script> / <style>
        self.links: list[tuple[str | None, int]] = []  # href, index of the first part of the link text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in _BLOCK_TAGS or tag in _LINE_TAGS:
            self.parts.append("\n")
        elif tag == "a":
            self.links.append((dict(attrs).get("href"), len(self.parts)))
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.parts.append(f" {alt} ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            label = "".join(self.parts[start:]).strip()
            if href and href.startswith(("http://", "https://", "mailto:")) and href not in label:
                self.parts.append(f" ({href})" if label else href)

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)

    def text(self) -> str:
        return _tidy("".join(self.parts))


def _tidy(text: str) -> str:
    """Runs of spaces (non-breaking ones too) to one, no trailing spaces, at most one blank line in a row."""
    lines = [re.sub(r"[ \t\r\f\v\u00a0]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(fragment: str) -> str:
    parser = _TextExtractor()
    parser.feed(fragment)
    parser.close()
    return parser.text()


def _plain(value: str, content_type: str | None) -> str:
    if content_type == "text/plain":
        return _tidy(value)
    return html_to_text(value)
