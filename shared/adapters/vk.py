"""VK connectors over httpx, API version 5.199: community walls (``wall.get``), the comments under their newest
posts (``wall.getComments``), and keyword / place search (``newsfeed.search``); and the community's answers
under the authors' posts (``wall.createComment``).

Every call goes through ``Polite`` (the token's request rate, backoff with jitter on VK errors 1/6/9/10/29 and
HTTP 429/5xx). Errors that need a person (a revoked token, a closed community) raise ``SourceAccessError``
with what to do; the ingest service stops that source and keeps the others going.

An answer that is not what VK documents (not JSON, an HTML page, ``items`` that is not a list, more items than
asked for, a body over ``answers.MAX_ANSWER_BYTES``) fails the fetch with an error naming what was wrong, so the
cursor stays; one unreadable item in an otherwise good page (a wrong type, a missing field, not an object) is
rejected with its reason and the rest of the page is read.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.adapters.answers import send
from shared.domain.errors import PermanentError, SourceAccessError, TransientError
from shared.domain.models import Attachment, Geo, Post
from shared.ports import Delivery, FetchResult, Rejected
from shared.services.comments import comment_text
from shared.source_config import VkSearchSource, VkWallSource

PAGE_SIZE = 100  # wall.get and wall.getComments' maximum
SEARCH_PAGE_SIZE = 200  # newsfeed.search's maximum
MAX_PAGES = 50
SEARCH_MAX_RESULTS = 1000  # newsfeed.search returns at most 1000 results per query
# https://dev.vk.com/ru/reference/errors
RETRYABLE_ERRORS = {1, 6, 9, 10, 29}
ACCESS_ERRORS = {
    5: "the VK token is invalid, expired or revoked: issue a new one and store it as OTKLIK_VK_TOKEN "
    "(Secret Manager) — then the source resumes by itself",
    15: "access denied: the community is closed or the token cannot read it; use a token with access or "
    "disable the source in sources.yaml",
    17: "VK asks the token's user to validate the account: log in as that user, or issue a service token",
    18: "the page was deleted or banned: disable the source in sources.yaml",
    28: "the application's authorization failed: check the VK app and issue a new token",
    30: "the profile is private: disable the source or use a token with access",
    203: "access to the community is denied: the token's user must join it, or disable the source",
}


class VkApiError(PermanentError):
    """A VK error that retrying will not fix and that is not about access (a bad parameter, say)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"VK error {code}: {message}")
        self.code = code


class VkClient:
    def __init__(self, http: httpx.Client, base_url: str, token: str | None, version: str, polite: Any) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.version = version
        self.polite = polite

    def call(self, method: str, **params: Any) -> Any:
        return self.polite.call(lambda: self._call_once(method, params))

    def _call_once(self, method: str, params: dict[str, Any]) -> Any:
        data = {k: v for k, v in params.items() if v is not None} | {"v": self.version}
        if self.token:
            data["access_token"] = self.token
        try:
            # POST keeps the token out of URLs (and so out of proxies' access logs).
            response, raw = send(self.http, "POST", f"{self.base_url}/method/{method}", what=f"VK {method}", data=data)
        except httpx.TransportError as exc:
            raise TransientError(f"VK {method}: {type(exc).__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"VK {method}: HTTP {response.status_code}", _retry_after(response))
        if response.status_code >= 400:
            raise VkApiError(0, f"{method}: HTTP {response.status_code}")
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise TransientError(f"VK {method}: the answer is not JSON") from exc
        if not isinstance(body, dict):
            raise VkApiError(0, f"{method}: unexpected answer of type {type(body).__name__}")
        if "error" in body:
            err = body["error"] if isinstance(body["error"], dict) else {}
            code, msg = int(err.get("error_code", 0)), str(err.get("error_msg", ""))
            if code in RETRYABLE_ERRORS:
                raise TransientError(f"VK {method}: error {code}: {msg}")
            if code in ACCESS_ERRORS:
                raise SourceAccessError(f"VK {method}: error {code}: {msg}", ACCESS_ERRORS[code])
            raise VkApiError(code, f"{method}: {msg}")
        if "response" not in body:
            raise VkApiError(0, f"{method}: answer has neither response nor error")
        return body["response"]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


class VkWallConnector:
    """Cursor: ``{"last_post_id": N, "comments": {"<post id>": {"last_id": C, "count": K}}}``. VK post ids grow
    with time on a wall; ``wall.get`` returns the pinned post first and then newest first, so pages are read
    until a post at or below ``last_post_id`` appears. Comments are followed on the newest posts only."""

    def __init__(self, config: VkWallSource, client: VkClient) -> None:
        self.config = config
        self.client = client
        self.source_id = config.id

    def fetch(self, cursor: dict[str, Any] | None) -> FetchResult:
        cursor = cursor or {}
        last_seen = int(cursor["last_post_id"]) if "last_post_id" in cursor else None
        limit = None if last_seen is not None else self.config.max_posts_first_run
        fresh: dict[int, dict[str, Any]] = {}
        unplaced: list[Any] = []
        newest_page: list[Any] = []
        for page in range(MAX_PAGES):
            response = self.client.call(
                "wall.get",
                owner_id=self.config.owner_id,
                domain=self.config.domain,
                offset=page * PAGE_SIZE,
                count=PAGE_SIZE,
            )
            items = _page(response, "wall.get", PAGE_SIZE)
            if page == 0:
                newest_page = items
            reached_known = False
            for item in items:
                post_id = _int(item.get("id")) if isinstance(item, dict) else 0
                if post_id <= 0:
                    # Not a post we can place: rejected with its reason. It must not pass for "known" and end the
                    # paging, or the newer posts on the next pages would be skipped for good.
                    unplaced.append(item)
                    continue
                if last_seen is not None and post_id <= last_seen:
                    reached_known = reached_known or not item.get("is_pinned")
                    continue
                fresh[post_id] = item
            if reached_known or len(items) < PAGE_SIZE or (limit is not None and len(fresh) >= limit):
                break
        ordered = [fresh[i] for i in sorted(fresh)]
        if limit is not None:
            ordered = ordered[-limit:]
        result = _to_posts(ordered, lambda item: vk_post(item, self.config.id, self.config.municipality))
        result.rejected.extend(_unplaced(item) for item in unplaced)
        newest = max([last_seen or 0, *(_int(i.get("id")) for i in ordered)])
        new_cursor: dict[str, Any] = {"last_post_id": newest} if newest else {}
        if self.config.comments:
            comments, comment_cursor = self._comments(newest_page, cursor.get("comments", {}))
            result.posts.extend(comments.posts)
            result.rejected.extend(comments.rejected)
            new_cursor["comments"] = comment_cursor
        return FetchResult(posts=result.posts, cursor=new_cursor, rejected=result.rejected)

    def _comments(
        self, newest_page: list[Any], known: dict[str, dict[str, int]]
    ) -> tuple[FetchResult, dict[str, dict[str, int]]]:
        """New comments (and replies in their threads) under the newest posts whose comment count changed."""
        posts = [i for i in newest_page if isinstance(i, dict) and isinstance(i.get("id"), int)]
        watched = sorted(posts, key=lambda i: i["id"], reverse=True)[: self.config.comments_on_newest_posts]
        cursor: dict[str, dict[str, int]] = {}
        found: list[Any] = []
        for item in watched:
            post_id = str(item["id"])
            before = known.get(post_id, {"last_id": 0, "count": 0})
            count = _int(_field(item, "comments", "count"))
            cursor[post_id] = {"last_id": before["last_id"], "count": count}
            if count == before["count"] or count == 0:
                continue
            owner_id = _int(item.get("owner_id"))
            for offset in range(0, PAGE_SIZE * MAX_PAGES, PAGE_SIZE):
                response = self.client.call(
                    "wall.getComments",
                    owner_id=owner_id,
                    post_id=post_id,
                    offset=offset,
                    count=PAGE_SIZE,
                    sort="asc",
                    thread_items_count=10,
                )
                page = _page(response, "wall.getComments", PAGE_SIZE)
                for comment in page:
                    thread = _field(comment, "thread", "items")
                    for c in [comment, *(thread if isinstance(thread, list) else [])]:
                        if not isinstance(c, dict):
                            found.append(c)  # rejected below, with the reason
                        elif _int(c.get("id")) > before["last_id"] and not c.get("deleted"):
                            found.append(c)
                if len(page) < PAGE_SIZE:
                    break
            newest_comment = max([before["last_id"], *(_int(c.get("id")) for c in found if _same_post(c, post_id))])
            cursor[post_id]["last_id"] = newest_comment
        found.sort(key=lambda c: _int(_field(c, "id")))
        return _to_posts(found, lambda c: vk_comment(c, self.config.id, self.config.municipality)), cursor


class VkSearchConnector:
    """``newsfeed.search`` over every public post. Cursor: ``{"start_time": T}``, the newest post time seen plus
    one second; within a run, pages follow ``next_from``."""

    def __init__(self, config: VkSearchSource, client: VkClient, clock: Any = None) -> None:
        self.config = config
        self.client = client
        self.source_id = config.id
        self.clock = clock or (lambda: datetime.now(UTC))

    def fetch(self, cursor: dict[str, Any] | None) -> FetchResult:
        if cursor and "start_time" in cursor:
            start_time = int(cursor["start_time"])
        else:
            start_time = int((self.clock() - timedelta(hours=self.config.first_run_hours)).timestamp())
        items: dict[tuple[int, int], dict[str, Any]] = {}
        unplaced: list[Any] = []
        start_from: str | None = None
        while len(items) < SEARCH_MAX_RESULTS:
            response = self.client.call(
                "newsfeed.search",
                q=self.config.query,
                count=SEARCH_PAGE_SIZE,
                start_time=start_time,
                start_from=start_from,
                latitude=self.config.latitude,
                longitude=self.config.longitude,
                extended=0,
            )
            page = _page(response, "newsfeed.search", SEARCH_PAGE_SIZE)
            for item in page:
                if isinstance(item, dict) and _int(item.get("owner_id")) and _int(item.get("id")) > 0:
                    items[(_int(item.get("owner_id")), _int(item.get("id")))] = item
                else:
                    unplaced.append(item)  # rejected with its reason; not one key shared by all of them
            start_from = response.get("next_from")
            if not page or not start_from:
                break
        ordered = sorted(items.values(), key=lambda i: (_int(i.get("date")), _int(i.get("id"))))
        result = _to_posts(ordered, lambda item: vk_post(item, self.config.id, self.config.municipality))
        result.rejected.extend(_unplaced(item) for item in unplaced)
        # From the posts read, not from every date in the answer: a rejected item's garbage date (year 5138) would
        # move start_time past every post to come.
        newest = max([start_time - 1, *(int(p.published_at.timestamp()) for p in result.posts)])
        return FetchResult(posts=result.posts, cursor={"start_time": newest + 1}, rejected=result.rejected)


# --- VK objects -> Post ---------------------------------------------------------------------------------


def vk_post(item: dict[str, Any], source_id: str, municipality: str | None) -> Post:
    """A wall post object (wall.get, newsfeed.search, Callback API wall_post_new). An object that cannot be read
    raises KeyError, TypeError or ValueError only, saying what was wrong."""
    owner_id = int(item["owner_id"])
    post_id = int(item["id"])
    return Post(
        source="vk",
        community=str(owner_id),
        post_id=str(post_id),
        author_id=str(item.get("signer_id") or item.get("from_id") or owner_id),
        text=_text(item),
        published_at=_time(item["date"]),
        url=f"https://vk.com/wall{owner_id}_{post_id}",
        geo=_geo(item.get("geo")),
        attachments=tuple(_attachments(item.get("attachments", []))),
        source_id=source_id,
        municipality_hint=municipality,
    )


def vk_comment(item: dict[str, Any], source_id: str, municipality: str | None) -> Post:
    """A comment object (wall.getComments, Callback API wall_reply_new). Its id is unique on the wall; the post
    id of the incident is ``<post id>_<comment id>`` so every path to the same comment meets the same incident."""
    owner_id = int(item["owner_id"])
    post_id = int(item["post_id"])
    comment_id = int(item["id"])
    return Post(
        source="vk",
        community=str(owner_id),
        post_id=f"{post_id}_{comment_id}",
        author_id=str(item.get("from_id") or owner_id),
        text=_text(item),
        published_at=_time(item["date"]),
        url=f"https://vk.com/wall{owner_id}_{post_id}?reply={comment_id}",
        attachments=tuple(_attachments(item.get("attachments", []))),
        parent_post_id=str(post_id),
        source_id=source_id,
        municipality_hint=municipality,
    )


def _to_posts(items: list[Any], convert: Any) -> FetchResult:
    posts: list[Post] = []
    rejected: list[Rejected] = []
    for item in items:
        try:
            if not isinstance(item, dict):
                raise TypeError(f"the item is {type(item).__name__}, not an object")
            posts.append(convert(item))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            rejected.append(_rejected(item, f"{type(exc).__name__}: {exc}"))
    return FetchResult(posts=posts, cursor={}, rejected=rejected)


def _rejected(item: Any, reason: str) -> Rejected:
    payload = json.dumps(item, ensure_ascii=False, default=str)
    if isinstance(item, dict):
        key = f"{item.get('owner_id')}_{item.get('post_id', '')}{item.get('id')}"
    else:  # nothing to name it by: its content
        key = "item-" + hashlib.sha256(payload.encode()).hexdigest()[:16]
    return Rejected(key=key, payload=payload, reason=f"unreadable VK item: {reason}")


def _unplaced(item: Any) -> Rejected:
    """An item of a page that cannot be told apart from others: not an object, or without a positive id."""
    if not isinstance(item, dict):
        return _rejected(item, f"the item is {type(item).__name__}, not an object")
    return _rejected(item, f"owner_id {item.get('owner_id')!r} / id {item.get('id')!r} do not name a post")


def _page(response: Any, method: str, asked: int) -> list[Any]:
    """The ``items`` of a paged answer, as VK documents them, or an error saying how the answer differs."""
    if not isinstance(response, dict):
        raise VkApiError(0, f"{method}: response is {type(response).__name__}, not an object")
    items = response.get("items", [])
    if not isinstance(items, list):
        raise VkApiError(0, f"{method}: items is {type(items).__name__}, not a list")
    if len(items) > asked:
        raise VkApiError(0, f"{method}: {len(items)} items in a page of at most {asked}")
    return items


def _field(obj: Any, *path: str) -> Any:
    """``obj[path[0]][path[1]]...``, None wherever an object is missing or is not one."""
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _text(item: dict[str, Any]) -> str:
    text = item.get("text", "")
    if not isinstance(text, str):
        raise TypeError(f"text is {type(text).__name__}, not a string")
    return text


def _time(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (OverflowError, OSError) as exc:
        raise ValueError(f"date {value!r} is out of range") from exc


def _same_post(comment: Any, post_id: str) -> bool:
    return str(_field(comment, "post_id")) == post_id


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # 1e400 is JSON: int(inf)
        return 0


def _geo(geo: Any) -> Geo | None:
    if not isinstance(geo, dict) or not geo.get("coordinates"):
        return None
    lat, lon = str(geo["coordinates"]).split()
    return Geo(lat=float(lat), lon=float(lon))


def _attachments(items: Any) -> list[Attachment]:
    """What can be read of them: an attachment in a shape VK does not send is left out, the post is kept."""
    found = []
    for a in items if isinstance(items, list) else []:
        if not isinstance(a, dict) or not isinstance(a.get("type"), str):
            continue
        kind = a["type"]
        body = a.get(kind, {}) if isinstance(a.get(kind), dict) else {}
        url = None
        sizes = body.get("sizes")
        sizes = [s for s in sizes if isinstance(s, dict)] if isinstance(sizes, list) else []
        if kind == "photo" and sizes:
            url = max(sizes, key=lambda s: _int(s.get("width")) * _int(s.get("height"))).get("url")
        elif kind == "link":
            url = body.get("url")
        elif kind in {"video", "doc", "audio"} and "owner_id" in body and "id" in body:
            url = f"https://vk.com/{kind}{body['owner_id']}_{body['id']}"
        if url:
            found.append(Attachment(kind=kind, url=url))
    return found


class VkCommentSender:
    """The COMMENT channel on VK: the community answers under the author's post (``wall.createComment`` with
    ``from_group``). ``guid`` is derived from the notification id, so VK itself refuses a second copy should the
    same notification ever be sent twice. Needs a community token with the ``wall`` right (OTKLIK_VK_REPLY_TOKEN)."""

    def __init__(self, client: VkClient) -> None:
        self.client = client

    def send(self, delivery: Delivery) -> None:
        post = delivery.incident.post
        if post.source != "vk":
            raise PermanentError(f"{post.source} posts take no comments from Otklik")
        owner_id = _int(post.community)
        if owner_id >= 0:
            raise PermanentError(f"wall {owner_id} is not a community's: Otklik answers only as a community")
        if post.parent_post_id is not None:  # a comment: answer in its thread
            post_id, reply_to = _int(post.parent_post_id), _int(post.post_id.rsplit("_", 1)[-1])
        else:
            post_id, reply_to = _int(post.post_id), None
        guid = hashlib.sha256(delivery.event_id.encode("utf-8")).hexdigest()[:32]
        try:
            self.client.call(
                "wall.createComment",
                owner_id=owner_id,
                post_id=post_id,
                from_group=-owner_id,
                message=comment_text(delivery),
                reply_to_comment=reply_to,
                guid=guid,
            )
        except SourceAccessError as exc:
            # For a comment, "access denied" is about this post (comments closed, a foreign wall): not retried.
            raise PermanentError(f"{exc} ({exc.action})") from exc
