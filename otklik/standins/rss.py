"""A stand-in for a news site serving RSS / Atom feeds, answering as an ordinary web server does (RFC 9110):

- ``GET /<file name>``: the feed, ``application/rss+xml`` (``.xml``, ``.rss``) or ``application/atom+xml``
  (``.atom``), with a strong ``ETag`` (a hash of the body) and ``Last-Modified``;
- ``304 Not Modified`` when ``If-None-Match`` matches the ETag or, without ``If-None-Match``, when
  ``If-Modified-Since`` is not older than ``Last-Modified`` (If-None-Match takes precedence, §13.2.2);
- ``404`` for an unknown file, and any status queued with ``fail_next`` (with ``Retry-After`` when given).

Feeds are read from a folder (default ``otklik/demo/data/rss``) when the server is created; ``set_feed`` replaces
one, as a site publishing a new item would. ``calls`` records every request's path and headers.
"""

from __future__ import annotations

import hashlib
import threading
import time
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from otklik.standins.http import LoopbackServer, QuietHandler

DEMO_FEEDS = Path(__file__).resolve().parent.parent / "demo" / "data" / "rss"
CONTENT_TYPES = {
    ".xml": "application/rss+xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
}


class _Feed:
    def __init__(self, body: bytes, modified: float) -> None:
        self.body = body
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        self.modified = int(modified)  # HTTP dates have one-second resolution

    @property
    def last_modified(self) -> str:
        return formatdate(self.modified, usegmt=True)


class FeedStandIn(LoopbackServer):
    def __init__(self, folder: Path = DEMO_FEEDS) -> None:
        super().__init__(_FeedHandler)
        self.lock = threading.Lock()
        self.calls: list[dict[str, str]] = []  # {"path": ..., "<lower-case header name>": value, ...}
        self.failures: list[tuple[int, float | None]] = []
        self.feeds: dict[str, _Feed] = {}
        now = time.time()
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            if path.is_file() and path.suffix in CONTENT_TYPES:
                self.feeds[path.name] = _Feed(path.read_bytes(), now)

    def feed_url(self, name: str) -> str:
        return f"{self.url}/{name}"

    def set_feed(self, name: str, xml_text: str) -> None:
        """Replace (or add) a feed; its ETag changes and Last-Modified moves forward by at least a second."""
        with self.lock:
            before = self.feeds.get(name)
            modified = max(time.time(), before.modified + 1 if before else 0)
            self.feeds[name] = _Feed(xml_text.encode("utf-8"), modified)

    def fail_next(self, status: int, retry_after: float | None = None) -> None:
        """The next request is answered with this HTTP status (and ``Retry-After`` seconds, when given)."""
        with self.lock:
            self.failures.append((status, retry_after))


class _FeedHandler(QuietHandler):
    def do_GET(self) -> None:
        owner: FeedStandIn = self.server.owner  # type: ignore[attr-defined]
        name = self.path.split("?", 1)[0].lstrip("/")
        with owner.lock:
            owner.calls.append({"path": "/" + name, **{k.lower(): v for k, v in self.headers.items()}})
            failure = owner.failures.pop(0) if owner.failures else None
            feed = owner.feeds.get(name)
        if failure is not None:
            status, retry_after = failure
            body = f"<html><body><h1>{status}</h1></body></html>".encode()
            self.send_response(status)
            if retry_after is not None:
                self.send_header("Retry-After", str(int(retry_after)))
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if feed is None:
            self.reply(404, b"<html><body><h1>404 Not Found</h1></body></html>", "text/html; charset=utf-8")
            return
        if _not_modified(self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since"), feed):
            self.send_response(304)
            self.send_header("ETag", feed.etag)
            self.send_header("Last-Modified", feed.last_modified)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        content_type = CONTENT_TYPES.get(Path(name).suffix, "application/xml; charset=utf-8")
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("ETag", feed.etag)
        self.send_header("Last-Modified", feed.last_modified)
        self.send_header("Content-Length", str(len(feed.body)))
        self.end_headers()
        self.wfile.write(feed.body)


def _not_modified(if_none_match: str | None, if_modified_since: str | None, feed: _Feed) -> bool:
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or feed.etag in tags
    if if_modified_since is not None:
        try:
            since = parsedate_to_datetime(if_modified_since).timestamp()
        except (TypeError, ValueError):
            return False  # an unparsable date is ignored, as RFC 9110 §13.1.3 says
        return feed.modified <= since
    return False
