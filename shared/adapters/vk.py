"""VK connectors over httpx, API version 5.199: community walls (``wall.get``), the comments under their newest
posts (``wall.getComments``, long reply threads read on with ``comment_id``), and keyword / place search
(``newsfeed.search``); the objects VK sends (posts, reposts, comments, community messages) read as posts; and the
community's answers under the authors' posts (``wall.createComment``).

Every call goes through ``Polite`` (the token's request rate, backoff with jitter on VK errors 1/6/9/10/29 and
HTTP 429/5xx). Errors that need a person (a revoked token, a closed community) raise ``SourceAccessError``
with what to do; the ingest service stops that source and keeps the others going.

An answer that is not what VK documents (not JSON, an HTML page, ``items`` that is not a list, more items than
asked for, a body over ``answers.MAX_ANSWER_BYTES``) fails the fetch with an error naming what was wrong, so the
cursor stays; one unreadable item in an otherwise good page (a wrong type, a missing field, not an object) is
rejected with its reason and the rest of the page is read.

Every item VK answers is accounted for: a post, a rejected item, or a skip with its reason (read in an earlier
run, older than the first run's window, an advertisement marked as such, deleted or empty).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.adapters.answers import send
from shared.domain.errors import PermanentError, SourceAccessError, TransientError
from shared.domain.models import Attachment, Geo, Post, ReplyTarget, RepostOrigin
from shared.ports import Delivery, FetchResult, Rejected, Skipped, SkipReason
from shared.services.comments import comment_text
from shared.source_config import VkSearchSource, VkWallSource

PAGE_SIZE = 100  # wall.get and wall.getComments' maximum
SEARCH_PAGE_SIZE = 200  # newsfeed.search's maximum
MAX_PAGES = 50
# wall.getComments embeds at most 10 replies of each thread (thread.count says how many there are); the rest is
# read with comment_id.
THREAD_ITEMS = 10
MAX_REPOST_DEPTH = 10  # a repost of a repost ...: VK lists the chain in copy_history; deeper is not a post
CHAT_PEER_START = 2_000_000_000  # VK peer ids from here on are group chats, below are private conversations
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


@dataclass
class _WallAnswer:
    """What ``wall.get`` answered in one fetch, sorted by what becomes of each item."""

    fresh: dict[int, dict[str, Any]] = field(default_factory=dict)  # newer than the cursor, by post id
    known: list[dict[str, Any]] = field(default_factory=list)  # at or below the cursor: read in an earlier run
    repeated: list[dict[str, Any]] = field(default_factory=list)  # a fresh post answered again on a later page
    unplaced: list[Any] = field(default_factory=list)  # no positive id: rejected with the reason
    newest_page: list[Any] = field(default_factory=list)


class VkWallConnector:
    """Cursor: ``{"last_post_id": N, "edited": {"<post id>": T}, "comments": {"<post id>": {"last_id": C,
    "count": K, "threads": {"<comment id>": R}}}}``. VK post ids grow with time on a wall; ``wall.get`` returns the
    pinned post first and then newest first, so pages are read until a post at or below ``last_post_id`` appears.
    ``edited`` keeps the edit time of the newest page's edited posts: a later edit of one of them is read again, as
    a new version of the post. Comments are followed on the newest posts only; ``threads`` keeps the reply count of
    each thread longer than VK embeds (R replies when last read)."""

    def __init__(self, config: VkWallSource, client: VkClient) -> None:
        self.config = config
        self.client = client
        self.source_id = config.id

    def fetch(self, cursor: dict[str, Any] | None) -> FetchResult:
        cursor = cursor or {}
        last_seen = int(cursor["last_post_id"]) if "last_post_id" in cursor else None
        limit = None if last_seen is not None else self.config.max_posts_first_run
        wall = self._read_wall(last_seen, limit)
        ordered = [wall.fresh[i] for i in sorted(wall.fresh)]
        old = ordered[: max(0, len(ordered) - limit)] if limit is not None else []
        ordered = ordered[len(old) :]
        known_edits = cursor.get("edited", {}) if last_seen is not None else None
        edited = [i for i in wall.known if _edited_since(i, known_edits, wall.newest_page)]
        unchanged = [i for i in wall.known if not any(i is e for e in edited)]
        result = _read(ordered, self._post)
        _merge(result, _read(edited, lambda item: self._post(item, edited_at=_time(item["edited"]))))
        result.rejected.extend(_unplaced(item) for item in wall.unplaced)
        result.skipped.extend(_skip(i, SkipReason.SEEN) for i in wall.repeated + unchanged)
        result.skipped.extend(_skip(i, SkipReason.OLD) for i in old)
        newest = max([last_seen or 0, *(_int(i.get("id")) for i in ordered)])
        new_cursor: dict[str, Any] = {"last_post_id": newest} if newest else {}
        edits = _edit_times(wall.newest_page)
        if edits:
            new_cursor["edited"] = edits
        if self.config.comments:
            comments, comment_cursor = self._comments(wall.newest_page, cursor.get("comments", {}))
            _merge(result, comments)
            new_cursor["comments"] = comment_cursor
        return FetchResult(posts=result.posts, cursor=new_cursor, rejected=result.rejected, skipped=result.skipped)

    def _read_wall(self, last_seen: int | None, limit: int | None) -> _WallAnswer:
        wall = _WallAnswer()
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
                wall.newest_page = items
            reached_known = False
            for item in items:
                post_id = _int(item.get("id")) if isinstance(item, dict) else 0
                if post_id <= 0:
                    # Not a post we can place: rejected with its reason. It must not pass for "known" and end the
                    # paging, or the newer posts on the next pages would be skipped for good.
                    wall.unplaced.append(item)
                elif last_seen is not None and post_id <= last_seen:
                    reached_known = reached_known or not item.get("is_pinned")
                    wall.known.append(item)
                elif post_id in wall.fresh:  # a new post moved the pages on while they were read
                    wall.repeated.append(item)
                else:
                    wall.fresh[post_id] = item
            if reached_known or len(items) < PAGE_SIZE or (limit is not None and len(wall.fresh) >= limit):
                break
        return wall

    def _post(self, item: dict[str, Any], edited_at: datetime | None = None) -> Post:
        return vk_post(item, self.config.id, self.config.municipality, edited_at=edited_at)

    def _comments(self, newest_page: list[Any], known: dict[str, Any]) -> tuple[FetchResult, dict[str, Any]]:
        """New comments (and replies in their threads) under the newest posts whose comment count changed."""
        posts = [i for i in newest_page if isinstance(i, dict) and isinstance(i.get("id"), int)]
        watched = sorted(posts, key=lambda i: i["id"], reverse=True)[: self.config.comments_on_newest_posts]
        cursor: dict[str, Any] = {}
        result = FetchResult(posts=[], cursor={})
        for item in watched:
            post_id = str(item["id"])
            stored = known.get(post_id)
            before: dict[str, Any] = stored if isinstance(stored, dict) else {}
            count = _int(_field(item, "comments", "count"))
            entry = {**before, "last_id": _int(before.get("last_id")), "count": count}
            cursor[post_id] = entry
            if count == _int(before.get("count")) or count == 0:
                continue
            thread = _PostComments(self.client, _int(item.get("owner_id")), _int(post_id), entry["last_id"])
            threads = before.get("threads")
            thread.read(threads if isinstance(threads, dict) else {})
            read = _read([thread.fresh[i] for i in sorted(thread.fresh)], self._comment)
            # Past every comment read or skipped; one rejected is read again with the next change (its record in
            # quarantine is overwritten, not doubled), and a garbage id cannot move the cursor past the rest.
            rejected = {r.key for r in read.rejected}
            entry["last_id"] = max([entry["last_id"], *(i for i, c in thread.fresh.items() if _key(c) not in rejected)])
            if thread.threads:
                entry["threads"] = thread.threads
            else:
                entry.pop("threads", None)
            _merge(result, read)
            result.rejected.extend(_rejected(c, f"the item is {type(c).__name__}, not an object") for c in thread.bad)
            result.rejected.extend(_rejected(c, f"id {c.get('id')!r} does not name a comment") for c in thread.unnamed)
            result.skipped.extend(_skip(c, SkipReason.SEEN) for c in thread.seen)
        result.posts.sort(key=lambda p: _int(p.post_id.rsplit("_", 1)[-1]))
        return result, cursor

    def _comment(self, item: dict[str, Any]) -> Post:
        return vk_comment(item, self.config.id, self.config.municipality)


class _PostComments:
    """The comments under one post that are newer than ``last_id`` (comment ids grow with time on a wall, replies
    too), every thread read whole: VK embeds at most ``THREAD_ITEMS`` replies of a thread, the rest is read with
    ``comment_id`` when the thread's reply count changed since it was last read."""

    def __init__(self, client: VkClient, owner_id: int, post_id: int, last_id: int) -> None:
        self.client = client
        self.owner_id = owner_id
        self.post_id = post_id
        self.last_id = last_id
        self.fresh: dict[int, dict[str, Any]] = {}
        self.seen: list[dict[str, Any]] = []  # read in an earlier run, or answered twice in this one
        self.bad: list[Any] = []  # not an object
        self.unnamed: list[dict[str, Any]] = []  # without a positive id
        self.threads: dict[str, int] = {}  # long threads' reply counts, for the next run

    def read(self, threads_before: dict[str, Any]) -> None:
        for comment in self._pages():
            if not self._take(comment):
                continue
            items = _field(comment, "thread", "items")
            embedded: list[Any] = items if isinstance(items, list) else []
            for reply in embedded:
                self._take(reply)
            replies = _int(_field(comment, "thread", "count"))
            if replies <= len(embedded):
                continue
            comment_id = str(comment.get("id"))
            self.threads[comment_id] = replies
            if replies != _int(threads_before.get(comment_id)):
                for reply in self._pages(comment_id=comment_id):
                    self._take(reply)

    def _pages(self, **params: Any) -> Iterator[Any]:
        for offset in range(0, PAGE_SIZE * MAX_PAGES, PAGE_SIZE):
            response = self.client.call(
                "wall.getComments",
                owner_id=self.owner_id,
                post_id=self.post_id,
                offset=offset,
                count=PAGE_SIZE,
                sort="asc",
                thread_items_count=None if params else THREAD_ITEMS,
                **params,
            )
            page = _page(response, "wall.getComments", PAGE_SIZE)
            yield from page
            if len(page) < PAGE_SIZE:
                return

    def _take(self, comment: Any) -> bool:
        """Sorts one comment in; False when it is not an object."""
        if not isinstance(comment, dict):
            self.bad.append(comment)
            return False
        comment_id = _int(comment.get("id"))
        if comment_id <= 0:
            self.unnamed.append(comment)
        elif comment_id in self.fresh or comment_id <= self.last_id:
            self.seen.append(comment)
        else:
            # Read with comment_id, VK names the post in each reply as well; this keeps it if it ever does not.
            self.fresh[comment_id] = {"owner_id": self.owner_id, "post_id": self.post_id, **comment}
        return True


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
        repeated: list[dict[str, Any]] = []
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
                if not (isinstance(item, dict) and _int(item.get("owner_id")) and _int(item.get("id")) > 0):
                    unplaced.append(item)  # rejected with its reason; not one key shared by all of them
                elif (key := (_int(item.get("owner_id")), _int(item.get("id")))) in items:
                    repeated.append(item)  # new posts moved the pages on while they were read
                else:
                    items[key] = item
            start_from = response.get("next_from")
            if not page or not start_from:
                break
        ordered = sorted(items.values(), key=lambda i: (_int(i.get("date")), _int(i.get("id"))))
        result = _read(ordered, lambda item: vk_post(item, self.config.id, self.config.municipality))
        result.rejected.extend(_unplaced(item) for item in unplaced)
        result.skipped.extend(_skip(item, SkipReason.SEEN) for item in repeated)
        # From the posts read, not from every date in the answer: a rejected item's garbage date (year 5138) would
        # move start_time past every post to come.
        newest = max([start_time - 1, *(int(p.published_at.timestamp()) for p in result.posts)])
        return FetchResult(
            posts=result.posts, cursor={"start_time": newest + 1}, rejected=result.rejected, skipped=result.skipped
        )


# --- VK objects -> Post ---------------------------------------------------------------------------------


def vk_post(item: dict[str, Any], source_id: str, municipality: str | None, edited_at: datetime | None = None) -> Post:
    """A wall post object (wall.get, newsfeed.search, Callback API wall_post_new and wall_repost). A repost
    (``copy_history``) is one post: the reposter's words, then the original's, the attachments of both, and
    ``repost_of`` naming the original (the innermost one of a repost of a repost). An object that cannot be read
    raises KeyError, TypeError or ValueError only, saying what was wrong."""
    owner_id = int(item["owner_id"])
    post_id = int(item["id"])
    chain = [item, *_reposted(item)]
    return Post(
        source="vk",
        community=str(owner_id),
        post_id=str(post_id),
        author_id=_author(item),
        text=_joined_text(chain),
        published_at=_time(item["date"]),
        url=f"https://vk.com/wall{owner_id}_{post_id}",
        geo=next((geo for geo in (_geo(p.get("geo")) for p in chain) if geo is not None), None),
        attachments=tuple(a for p in chain for a in _attachments(p.get("attachments", []))),
        source_id=source_id,
        municipality_hint=municipality,
        repost_of=_origin(chain[-1]) if len(chain) > 1 else None,
        edited_at=edited_at,
    )


def vk_comment(
    item: dict[str, Any], source_id: str, municipality: str | None, edited_at: datetime | None = None
) -> Post:
    """A comment object (wall.getComments, Callback API wall_reply_new / wall_reply_edit, whose object names the
    wall as ``post_owner_id``). Its id is unique on the wall; the post id of the incident is ``<post id>_<comment
    id>`` so every path to the same comment meets the same incident."""
    if "owner_id" in item:
        owner_id = int(item["owner_id"])
    elif "post_owner_id" in item:
        owner_id = int(item["post_owner_id"])
    else:
        raise KeyError("neither owner_id nor post_owner_id names the wall")
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
        edited_at=edited_at,
    )


def vk_message(
    message: dict[str, Any],
    group_id: int,
    source_id: str,
    municipality: str | None,
    edited_at: datetime | None = None,
) -> Post:
    """A message a resident wrote to the community (Callback API ``message_new``'s ``object.message``): written
    to the city itself, answered in the same conversation (``reply_to``). Forwarded messages are part of it (a
    resident forwards a neighbour's complaint); a reply's quoted message is not (it is usually the community's)."""
    peer_id = int(message["peer_id"])
    number = int(message.get("conversation_message_id") or message["id"])
    forwarded = message.get("fwd_messages") or []
    if not isinstance(forwarded, list) or not all(isinstance(m, dict) for m in forwarded):
        raise TypeError("fwd_messages is not a list of messages")
    parts = [message, *forwarded]
    return Post(
        source="vk",
        community=str(group_id),
        post_id=f"msg{peer_id}_{number}",
        author_id=str(int(message["from_id"])),
        text=_joined_text(parts),
        published_at=_time(message["date"]),
        url=f"https://vk.com/gim{group_id}?sel={peer_id}",
        geo=_geo(message.get("geo")),
        attachments=tuple(a for m in parts for a in _attachments(m.get("attachments", []))),
        source_id=source_id,
        municipality_hint=municipality,
        direct=peer_id < CHAT_PEER_START,
        reply_to=ReplyTarget(channel="vk_message", chat_id=str(peer_id), message_id=str(number)),
        edited_at=edited_at,
    )


def skip_reason(item: dict[str, Any]) -> SkipReason | None:
    """Why a post, comment or message VK sent is not a resident's words, on purpose (None: it may be)."""
    if item.get("marked_as_ads") in (1, True):  # the community's paid post, marked as VK's rules require
        return SkipReason.NOT_RESIDENT
    if item.get("deleted") in (1, True) or item.get("is_deleted") in (1, True):
        return SkipReason.EMPTY  # VK keeps a deleted comment with replies as a placeholder without words
    if isinstance(item.get("action"), dict):  # a member joined a chat, a message was pinned
        return SkipReason.SERVICE_MESSAGE
    return None


def is_empty(post: Post) -> bool:
    """Nothing to read: no words, no attachment Otklik can show, no place (a sticker, a poll only)."""
    return not post.text.strip() and not post.attachments and post.geo is None


def read_item(item: dict[str, Any], convert: Callable[[dict[str, Any]], Post]) -> Post | SkipReason:
    """The item as a post, or why it is none. Raises what ``convert`` raises for an item it cannot read."""
    reason = skip_reason(item)
    if reason is not None:
        return reason
    post = convert(item)
    return SkipReason.EMPTY if is_empty(post) else post


def _read(items: list[Any], convert: Callable[[dict[str, Any]], Post]) -> FetchResult:
    result = FetchResult(posts=[], cursor={})
    for item in items:
        try:
            if not isinstance(item, dict):
                raise TypeError(f"the item is {type(item).__name__}, not an object")
            read = read_item(item, convert)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            result.rejected.append(_rejected(item, f"{type(exc).__name__}: {exc}"))
            continue
        if isinstance(read, SkipReason):
            result.skipped.append(_skip(item, read))
        else:
            result.posts.append(read)
    return result


def _merge(into: FetchResult, other: FetchResult) -> None:
    into.posts.extend(other.posts)
    into.rejected.extend(other.rejected)
    into.skipped.extend(other.skipped)


def _key(item: dict[str, Any]) -> str:
    """``<owner>_<post>`` for a post, ``<owner>_<post>_<comment>`` for a comment."""
    if "post_id" in item:
        return f"{item.get('owner_id', item.get('post_owner_id'))}_{item.get('post_id')}_{item.get('id')}"
    return f"{item.get('owner_id')}_{item.get('id')}"


def _skip(item: dict[str, Any], reason: SkipReason) -> Skipped:
    return Skipped(key=_key(item), reason=reason)


def _rejected(item: Any, reason: str) -> Rejected:
    payload = json.dumps(item, ensure_ascii=False, default=str)
    # An item that is not an object has nothing to name it by but its content.
    key = _key(item) if isinstance(item, dict) else "item-" + hashlib.sha256(payload.encode()).hexdigest()[:16]
    return Rejected(key=key, payload=payload, reason=f"unreadable VK item: {reason}")


def _unplaced(item: Any) -> Rejected:
    """An item of a page that cannot be told apart from others: not an object, or without a positive id."""
    if not isinstance(item, dict):
        return _rejected(item, f"the item is {type(item).__name__}, not an object")
    return _rejected(item, f"owner_id {item.get('owner_id')!r} / id {item.get('id')!r} do not name a post")


def _edit_times(newest_page: list[Any]) -> dict[str, int]:
    """When each edited post of the newest page was last edited (``edited``, unix time)."""
    return {
        str(item["id"]): _int(item.get("edited"))
        for item in newest_page
        if isinstance(item, dict) and _int(item.get("id")) > 0 and _int(item.get("edited")) > 0
    }


def _edited_since(item: dict[str, Any], known_edits: Any, newest_page: list[Any]) -> bool:
    """A post read in an earlier run, on the newest page, edited after that run saw it. The first run knows no
    edit (``known_edits`` None): what it reads is the post as it is."""
    if not isinstance(known_edits, dict) or not any(i is item for i in newest_page):
        return False
    return _int(item.get("edited")) > _int(known_edits.get(str(item.get("id"))))


def _reposted(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The posts a repost carries, from the one reposted to the original: VK lists a repost of a repost in one
    ``copy_history``; a chain nested in the last one (an older shape) is followed too."""
    chain: list[dict[str, Any]] = []
    current = item
    for _ in range(MAX_REPOST_DEPTH):
        history = current.get("copy_history")
        if history is None or history == []:
            return chain
        if not isinstance(history, list) or not all(isinstance(p, dict) for p in history):
            raise TypeError("copy_history is not a list of posts")
        chain.extend(history)
        current = history[-1]
    raise ValueError(f"copy_history nested deeper than {MAX_REPOST_DEPTH}")


def _origin(original: dict[str, Any]) -> RepostOrigin:
    owner_id, post_id = int(original["owner_id"]), int(original["id"])
    return RepostOrigin(
        source="vk",
        community=str(owner_id),
        post_id=str(post_id),
        author_id=_author(original),
        url=f"https://vk.com/wall{owner_id}_{post_id}",
    )


def _author(item: dict[str, Any]) -> str:
    """A community's post signed by a resident (``signer_id``) is the resident's."""
    return str(item.get("signer_id") or item.get("from_id") or int(item["owner_id"]))


def _joined_text(parts: list[dict[str, Any]]) -> str:
    """One object's text as it is; a repost's or a message with forwards: every non-empty text, in order, with
    the place a part names (``geo.place``) when its text does not."""
    texts = [_text_with_place(p) for p in parts]
    if len(parts) == 1:
        return texts[0]
    return "\n\n".join(t for t in texts if t.strip())


def _text_with_place(item: dict[str, Any]) -> str:
    """The text, and the place the author marked on the map (its name and address) if the text does not name it:
    the address is what routes a complaint."""
    text = _text(item)
    place = _field(item, "geo", "place")
    names = [place.get(k) for k in ("title", "address")] if isinstance(place, dict) else []
    named = ", ".join(dict.fromkeys(n.strip() for n in names if isinstance(n, str) and n.strip() and n not in text))
    if not named:
        return text
    return f"{text}\n\nМесто: {named}" if text.strip() else f"Место: {named}"


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


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # 1e400 is JSON: int(inf)
        return 0


def _geo(geo: Any) -> Geo | None:
    """A wall post's ``coordinates`` are ``"lat lon"``, a message's ``{latitude, longitude}``; a place may carry
    them instead."""
    if not isinstance(geo, dict):
        return None
    coordinates = geo.get("coordinates")
    if isinstance(coordinates, dict):
        return Geo(lat=float(coordinates["latitude"]), lon=float(coordinates["longitude"]))
    if coordinates:
        lat, lon = str(coordinates).split()
        return Geo(lat=float(lat), lon=float(lon))
    place = geo.get("place")
    if isinstance(place, dict) and place.get("latitude") is not None and place.get("longitude") is not None:
        return Geo(lat=float(place["latitude"]), lon=float(place["longitude"]))
    return None


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
        elif kind in {"video", "clip", "doc", "audio"} and "owner_id" in body and "id" in body:
            url = f"https://vk.com/{kind}{body['owner_id']}_{body['id']}"
        elif kind == "wall" and "id" in body and ("owner_id" in body or "to_id" in body):
            url = f"https://vk.com/wall{body.get('owner_id', body.get('to_id'))}_{body['id']}"  # a post shared
        elif kind == "audio_message":  # a voice message to the community
            url = body.get("link_mp3") or body.get("link_ogg")
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
        if post.reply_to is not None:
            raise PermanentError("a message to the community is answered in its conversation, not with a comment")
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
