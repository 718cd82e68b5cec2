"""A stand-in for the VK API (https://api.vk.com/method/<name>, version 5.199), answering as dev.vk.com documents:

- ``wall.get`` (https://dev.vk.com/ru/method/wall.get): ``{"response": {"count", "items"}}``, the pinned post
  first, then newest first, ``offset``/``count`` paging (count at most 100), by ``owner_id`` or ``domain``;
- ``wall.getComments``: top-level comments oldest first (``sort=asc``) or newest first, ``offset``/``count``,
  ``count`` every comment and reply, ``current_level_count`` the top-level ones; each with ``thread``: its
  ``count`` of replies and, with ``thread_items_count``, at most 10 of them embedded, as VK does; the rest of a
  thread with ``comment_id`` (its replies, paged the same way); deleted comments stay as ``deleted: true``;
- ``newsfeed.search``: public posts matching any word of ``q`` (and within 25 km of ``latitude``/``longitude``),
  newer than ``start_time``, newest first, ``count`` at most 200, paged by ``start_from``/``next_from``;
- errors as ``{"error": {"error_code", "error_msg", "request_params"}}``: 5 bad token, 8 no ``v``, 100 bad
  parameter, 6 too many requests per second (with ``max_requests_per_second`` set), or any error queued with
  ``fail_next``;
- any raw answer at all (garbage, truncated JSON, a proxy's HTML page, wrong types) with ``inject`` (see
  ``otklik.standins.http``), per method name;
and, as VK's Callback API does, it POSTs events (``confirmation``, ``wall_post_new``, ``wall_reply_new``,
``message_new``, ...) to a server: ``push_event``.

Posts and comments are served in the shape VK 5.199 gives them (``vkbottle-types``, generated from VK's schema,
validates them in tests/integration/test_vk_shapes.py): an item a test adds with only the fields it cares about
gets what VK always sends (``inner_type``, ``type``, ``hash``, ``post_source``, ``likes`` with ``can_like`` and
``user_likes``, ``comments``, ``reposts``, ``views``; a comment's ``thread``).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from otklik.standins.http import LoopbackServer, QuietHandler

# Texts as https://dev.vk.com/ru/reference/errors gives them.
VK_ERROR_MESSAGES = {
    1: "Unknown error occurred",
    5: "User authorization failed: invalid access_token (4).",
    6: "Too many requests per second",
    9: "Flood control",
    10: "Internal server error",
    15: "Access denied",
    18: "User was deleted or banned",
    29: "Rate limit reached",
    203: "Access to group denied",
    213: "Access denied: no access to comment this post",
    222: "Hyperlinks are forbidden",
}
DATA = Path(__file__).resolve().parent.parent / "demo" / "data"
DEMO_WALLS = DATA / "vk_walls.json"
DEMO_COMMENTS = DATA / "vk_comments.json"
DEMO_SEARCH_EXTRA = DATA / "vk_search_extra.json"
DEMO_CALLBACK_EVENTS = DATA / "vk_callback_events.json"
THREAD_ITEMS_MAX = 10  # wall.getComments embeds at most this many replies of a thread
# The moment the demo's VK data was written as of (its newest post is a few hours older). The local stack moves
# every date by (its start - this), so the demo reads the same on any day: VK search's first-run window and its
# cursor see the same posts, and the pushed post is always the newest.
DEMO_AS_OF = datetime(2026, 11, 29, tzinfo=UTC)


MOVED_TIMES = ("date", "edited", "update_time")  # unix times of an object, moved with the demo's clock


def _strip(item: Any, moved_by: int = 0) -> Any:
    """Without our ground-truth labels (``_label``), recursively: what VK itself would send; with every unix
    time (``date``, ``edited``, ``update_time``) ``moved_by`` seconds later."""
    if isinstance(item, list):
        return [_strip(i, moved_by) for i in item]
    if not isinstance(item, dict):
        return item
    clean = {k: _strip(v, moved_by) for k, v in item.items() if not k.startswith("_")}
    for key in MOVED_TIMES:
        if moved_by and type(clean.get(key)) is int and clean[key] > 0:
            clean[key] += moved_by
    return clean


def demo_callback_events(dates_as_of: datetime | None = None) -> list[dict[str, Any]]:
    """The demo's Callback API events (type, object, event id), their dates moved as ``VkStandIn`` moves the walls'."""
    moved_by = int((dates_as_of - DEMO_AS_OF).total_seconds()) if dates_as_of is not None else 0
    events: list[dict[str, Any]] = json.loads(DEMO_CALLBACK_EVENTS.read_text(encoding="utf-8"))["events"]
    return [_strip(e, moved_by) for e in events]


def served_post(item: Any) -> Any:
    """A wall post as VK 5.199 sends it: what a test left out that VK always sends, filled in."""
    if not isinstance(item, dict) or type(item.get("id")) is not int:
        return item  # a test's garbage is served as it is
    owner_id, post_id = item.get("owner_id"), item["id"]
    served = {
        "inner_type": "wall_wallpost",
        "type": item.get("post_type", "post"),
        "post_type": "post",
        "hash": hashlib.sha256(f"{owner_id}_{post_id}".encode()).hexdigest()[:14],
        "post_source": {"type": "vk"},
        "comments": {"count": 0},
        "likes": {"count": 0},
        "reposts": {"count": 0},
        "views": {"count": 0},
        **item,
    }
    counters = {
        "comments": {"can_post": 1, "can_close": 0, "groups_can_post": True},
        "likes": {"can_like": 1, "user_likes": 0, "can_publish": 1, "repost_disabled": False},
        "reposts": {"user_reposted": 0},
    }
    for name, defaults in counters.items():
        if isinstance(served[name], dict):
            served[name] = {**defaults, **served[name]}
    if isinstance(served.get("copy_history"), list):
        served["copy_history"] = [_served_copy(c) for c in served["copy_history"]]
    return served


def _served_copy(item: Any) -> Any:
    """A post inside a repost's ``copy_history``: VK sends it without counters."""
    if not isinstance(item, dict):
        return item
    return {"inner_type": "wall_wallpost", "type": "post", "post_type": "post", "post_source": {"type": "vk"}, **item}


def served_comment(comment: Any, thread_items: int | None) -> Any:
    """A comment as wall.getComments sends it: its thread's reply count, and at most ``thread_items`` replies
    embedded (None: a reply, which has no thread of its own)."""
    if not isinstance(comment, dict):
        return comment
    served = {"from_id": 0, "text": "", "parents_stack": [], **comment}
    if thread_items is None:
        served.pop("thread", None)
        return served
    replies = _replies(comment)
    served["thread"] = {
        "count": len(replies),
        "items": [served_comment(r, None) for r in replies[:thread_items]],
        "can_post": True,
        "show_reply_button": True,
        "groups_can_post": True,
    }
    return served


def _replies(comment: dict[str, Any]) -> list[dict[str, Any]]:
    thread = comment.get("thread")
    items = thread.get("items") if isinstance(thread, dict) else None
    return items if isinstance(items, list) else []


class VkStandIn(LoopbackServer):
    def __init__(
        self,
        walls_file: Path = DEMO_WALLS,
        token: str | None = None,
        comments_file: Path | None = None,
        search_extra_file: Path | None = None,
        max_requests_per_second: float | None = None,
        reply_token: str | None = None,
        dates_as_of: datetime | None = None,
    ) -> None:
        """``dates_as_of``: the files' dates moved so that ``DEMO_AS_OF`` becomes this moment (None: as written)."""
        super().__init__(_VkHandler)
        moved_by = int((dates_as_of - DEMO_AS_OF).total_seconds()) if dates_as_of is not None else 0
        self.dates_as_of = dates_as_of
        self.token = token
        self.reply_token = reply_token  # the community token wall.createComment takes (None: any)
        self.comment_guids: dict[tuple[int, str], int] = {}  # VK keeps a guid's comment: a resend is the same one
        self.closed_comments: set[tuple[int, int]] = set()  # posts whose comments are closed (error 213)
        self.max_requests_per_second = max_requests_per_second
        self.lock = threading.Lock()
        self.calls: list[dict[str, str]] = []
        # Every item an answer carried (a thread's embedded replies too), in order: what a connector must account for.
        self.served: list[Any] = []
        self.failures: list[tuple[str, int]] = []  # ("vk", error code) or ("http", status), consumed in order
        self.request_times: deque[float] = deque()
        self.walls: dict[int, dict[str, Any]] = {}
        data = json.loads(walls_file.read_text(encoding="utf-8"))
        for community in data["communities"]:
            items = [_strip(item, moved_by) for item in community["items"]]
            self.walls[int(community["owner_id"])] = {**community, "items": items}
        self.comments: dict[tuple[int, int], list[dict[str, Any]]] = {}
        if comments_file is not None and comments_file.exists():
            raw = json.loads(comments_file.read_text(encoding="utf-8"))["comments"]
            for owner, posts in raw.items():
                for post_id, comments in posts.items():
                    self.comments[(int(owner), int(post_id))] = [_strip(c, moved_by) for c in comments]
            self._count_comments()
        self.search_extra: list[dict[str, Any]] = []
        if search_extra_file is not None and search_extra_file.exists():
            extra = json.loads(search_extra_file.read_text(encoding="utf-8"))["items"]
            self.search_extra = [_strip(i, moved_by) for i in extra]

    @classmethod
    def demo(cls, token: str | None = None) -> VkStandIn:
        return cls(DEMO_WALLS, token, DEMO_COMMENTS, DEMO_SEARCH_EXTRA)

    @property
    def api_base(self) -> str:
        return self.url

    # --- what tests and the demo change ---------------------------------------------------------------

    def add_post(self, owner_id: int, item: dict[str, Any]) -> None:
        """A new post appears on the wall (after the pinned one, newest first)."""
        with self.lock:
            items = self.walls[owner_id]["items"]
            at = 1 if items and items[0].get("is_pinned") else 0
            items.insert(at, item)

    def add_comment(self, comment: dict[str, Any]) -> None:
        """A new comment under a post, or a new reply in a thread (``parents_stack`` names the thread's comment)."""
        with self.lock:
            comments = self.comments.setdefault((int(comment["owner_id"]), int(comment["post_id"])), [])
            parents = comment.get("parents_stack") or []
            if parents:
                parent = next(c for c in comments if c["id"] == parents[0])
                parent.setdefault("thread", {"count": 0, "items": []})["items"].append(comment)
                parent["thread"]["count"] = len(parent["thread"]["items"])
            else:
                comments.append(comment)
            self._count_comments()

    def official_comments(self) -> list[dict[str, Any]]:
        """Comments the communities wrote themselves (from_id is the negative community id)."""
        return [c for c in self.all_comments() if int(c.get("from_id", 0)) < 0]

    def fail_next(
        self, *, vk_error: int | None = None, http_status: int | None = None, after_calls: int = 0, times: int = 1
    ) -> None:
        """The next call (or the one after ``after_calls`` good ones) answers with this VK error object (e.g. 6:
        too many requests) or HTTP status, ``times`` calls in a row."""
        with self.lock:
            self.failures += [("pass", 0)] * after_calls
            self.failures += [("vk", vk_error) if vk_error is not None else ("http", http_status or 500)] * times

    def all_posts(self) -> list[tuple[int, dict[str, Any]]]:
        return [(oid, item) for oid, wall in self.walls.items() for item in wall["items"]]

    def all_comments(self) -> list[dict[str, Any]]:
        """Every comment and thread reply that is not deleted."""
        found = []
        for comments in self.comments.values():
            for c in comments:
                found += [x for x in [c, *(c.get("thread") or {}).get("items", [])] if not x.get("deleted")]
        return found

    def push_event(
        self, url: str, event_type: str, group_id: int, secret: str | None, obj: Any = None, event_id: str | None = None
    ) -> httpx.Response:
        """POST a Callback API event to ``url`` as VK does."""
        body: dict[str, Any] = {"type": event_type, "group_id": group_id}
        if event_type != "confirmation":
            body |= {"event_id": event_id or f"ev{time.monotonic_ns():x}", "v": "5.199", "object": obj}
            if secret is not None:
                body["secret"] = secret
        return httpx.post(url, json=body, timeout=30)

    def _count_comments(self) -> None:
        for (owner, post_id), comments in self.comments.items():
            for item in self.walls.get(owner, {}).get("items", []):
                if item.get("id") == post_id:
                    total = sum(1 + len((c.get("thread") or {}).get("items", [])) for c in comments)
                    item["comments"] = {**item.get("comments", {}), "count": total}

    def _over_rate(self) -> bool:
        if self.max_requests_per_second is None:
            return False
        now = time.monotonic()
        self.request_times.append(now)
        while self.request_times and now - self.request_times[0] >= 1.0:
            self.request_times.popleft()
        return len(self.request_times) > self.max_requests_per_second


class _VkHandler(QuietHandler):
    def do_GET(self) -> None:
        self._handle(dict(parse_qsl(urlsplit(self.path).query)))

    def do_POST(self) -> None:
        params = dict(parse_qsl(urlsplit(self.path).query))
        params.update(parse_qsl(self.read_body().decode("utf-8")))
        self._handle(params)

    def _handle(self, params: dict[str, str]) -> None:
        owner: VkStandIn = self.server.owner  # type: ignore[attr-defined]
        method = urlsplit(self.path).path.removeprefix("/method/")
        with owner.lock:
            owner.calls.append({"method": method, **{k: v for k, v in params.items() if k != "access_token"}})
        if self.answer_fault(method):
            return
        with owner.lock:
            failure = owner.failures.pop(0) if owner.failures else None
            if failure is not None and failure[0] == "pass":
                failure = None
            if failure is None and owner._over_rate():
                failure = ("vk", 6)
        if failure is not None and failure[0] == "http":
            self.reply(failure[1], b"<html><body>Bad Gateway</body></html>", "text/html")
            return
        answer = _dispatch(owner, method, params)
        if failure is not None:
            answer = _error(method, params, failure[1], VK_ERROR_MESSAGES.get(failure[1], "Error"))
        with owner.lock:
            owner.served.extend(_items_in(answer))
        self.reply(200, json.dumps(answer, ensure_ascii=False).encode("utf-8"))


def _items_in(answer: dict[str, Any]) -> list[Any]:
    response = answer.get("response")
    items = response.get("items") if isinstance(response, dict) else None
    found: list[Any] = []
    for item in items if isinstance(items, list) else []:
        thread = item.get("thread") if isinstance(item, dict) else None
        embedded = thread.get("items") if isinstance(thread, dict) else None
        found += [item, *(embedded if isinstance(embedded, list) else [])]
    return found


def _error(method: str, params: dict[str, str], code: int, msg: str) -> dict[str, Any]:
    request_params = [{"key": "method", "value": method}] + [
        {"key": k, "value": v} for k, v in params.items() if k != "access_token"
    ]
    return {"error": {"error_code": code, "error_msg": msg, "request_params": request_params}}


def _dispatch(owner: VkStandIn, method: str, params: dict[str, str]) -> dict[str, Any]:
    if "v" not in params:
        return _error(method, params, 8, "Invalid request: v (version) is required")
    expected = owner.reply_token if method == "wall.createComment" else owner.token
    if expected is not None and params.get("access_token") != expected:
        return _error(method, params, 5, VK_ERROR_MESSAGES[5])
    handler = {
        "wall.get": _wall_get,
        "wall.getComments": _wall_get_comments,
        "newsfeed.search": _search,
        "wall.createComment": _wall_create_comment,
    }.get(method)
    if handler is None:
        return _error(method, params, 3, "Unknown method passed")
    try:
        with owner.lock:
            return handler(owner, params)
    except ValueError as exc:
        return _error(method, params, 100, f"One of the parameters specified was missing or invalid: {exc}")


def _wall_get(owner: VkStandIn, params: dict[str, str]) -> dict[str, Any]:
    wall = _find_wall(owner, params)
    if wall is None:
        raise ValueError("owner_id is undefined")
    offset, count = int(params.get("offset", 0)), min(int(params.get("count", 20)), 100)
    items = wall["items"]
    return {"response": {"count": len(items), "items": [served_post(i) for i in items[offset : offset + count]]}}


def _wall_get_comments(owner: VkStandIn, params: dict[str, str]) -> dict[str, Any]:
    """Top-level comments with their threads cut to ``thread_items_count`` (at most 10) replies, or with
    ``comment_id`` the replies of that comment's thread; either paged by ``offset``/``count`` in ``sort`` order."""
    if "owner_id" not in params or "post_id" not in params:
        raise ValueError("post_id is undefined")
    comments = owner.comments.get((int(params["owner_id"]), int(params["post_id"])), [])
    offset, count = int(params.get("offset", 0)), min(int(params.get("count", 10)), 100)
    if "comment_id" in params:
        parent = next((c for c in comments if c.get("id") == int(params["comment_id"])), None)
        if parent is None:
            raise ValueError("comment_id is invalid")
        level, thread_items = _replies(parent), None
    else:
        level, thread_items = comments, min(int(params.get("thread_items_count", 0)), THREAD_ITEMS_MAX)
    ordered = level if params.get("sort", "asc") == "asc" else list(reversed(level))
    page = [served_comment(c, thread_items) for c in ordered[offset : offset + count]]
    total = len(level) if "comment_id" in params else sum(1 + len(_replies(c)) for c in comments)
    response = {"count": total, "current_level_count": len(level), "items": page}
    return {"response": {**response, "can_post": True, "show_reply_button": True, "groups_can_post": True}}


def _wall_create_comment(owner: VkStandIn, params: dict[str, str]) -> dict[str, Any]:
    """As https://dev.vk.com/ru/method/wall.createComment: owner_id, post_id, message, from_group,
    reply_to_comment, guid; answers {comment_id, parents_stack}."""
    if "post_id" not in params:
        raise ValueError("post_id is undefined")
    owner_id, post_id = int(params.get("owner_id", 0)), int(params["post_id"])
    if not params.get("message"):
        raise ValueError("message is undefined")
    if owner_id not in owner.walls or not any(int(i["id"]) == post_id for i in owner.walls[owner_id]["items"]):
        raise ValueError("post_id is invalid")
    if (owner_id, post_id) in owner.closed_comments:
        return _error("wall.createComment", params, 213, VK_ERROR_MESSAGES[213])
    guid = params.get("guid")
    if guid and (owner_id, guid) in owner.comment_guids:
        return {"response": {"comment_id": owner.comment_guids[(owner_id, guid)], "parents_stack": []}}
    comment_id = 1 + max([int(c["id"]) for cs in owner.comments.values() for c in cs] + [900000])
    from_group = int(params.get("from_group", 0))
    comment = {
        "id": comment_id,
        "from_id": -from_group if from_group else 1,
        "owner_id": owner_id,
        "post_id": post_id,
        "date": int(time.time()),
        "text": params["message"],
    }
    reply_to = params.get("reply_to_comment")
    parents: list[int] = []
    if reply_to:
        parent = next((c for c in owner.comments.get((owner_id, post_id), []) if int(c["id"]) == int(reply_to)), None)
        if parent is None:
            raise ValueError("reply_to_comment is invalid")
        comment["reply_to_comment"] = int(reply_to)
        comment["parents_stack"] = [int(reply_to)]
        thread = parent.setdefault("thread", {"count": 0, "items": []})
        thread["items"].append(comment)
        thread["count"] = len(thread["items"])
        parents = [int(reply_to)]
    else:
        owner.comments.setdefault((owner_id, post_id), []).append(comment)
    owner._count_comments()
    if guid:
        owner.comment_guids[(owner_id, guid)] = comment_id
    return {"response": {"comment_id": comment_id, "parents_stack": parents}}


def _search(owner: VkStandIn, params: dict[str, str]) -> dict[str, Any]:
    words = [w for w in params.get("q", "").lower().split() if w]
    if not words:
        raise ValueError("q is undefined")
    start_time = int(params.get("start_time", 0))
    count = min(int(params.get("count", 30)), 200)
    offset = int(params.get("start_from") or 0)
    center = (float(params["latitude"]), float(params["longitude"])) if "latitude" in params else None
    posts = [item for _, item in owner.all_posts() if not item.get("is_pinned")] + owner.search_extra
    found = [
        p
        for p in posts
        if int(p.get("date", 0)) >= start_time
        and any(w in str(p.get("text", "")).lower() for w in words)
        and (center is None or _within_km(p.get("geo"), center, 25))
    ]
    found.sort(key=lambda p: int(p["date"]), reverse=True)
    page = [served_post(p) for p in found[offset : offset + count]]
    response: dict[str, Any] = {"items": page, "count": len(page), "total_count": len(found)}
    if offset + count < len(found):
        response["next_from"] = str(offset + count)
    return {"response": response}


def _within_km(geo: Any, center: tuple[float, float], km: float) -> bool:
    if not isinstance(geo, dict) or not geo.get("coordinates"):
        return False
    lat, lon = (float(x) for x in str(geo["coordinates"]).split())
    dlat = math.radians(lat - center[0])
    dlon = math.radians(lon - center[1])
    a = (
        math.sin(dlat / 2) ** 2
        + math.cos(math.radians(lat)) * math.cos(math.radians(center[0])) * math.sin(dlon / 2) ** 2
    )
    return 6371 * 2 * math.asin(math.sqrt(a)) <= km


def _find_wall(owner: VkStandIn, params: dict[str, str]) -> dict[str, Any] | None:
    if "owner_id" in params:
        return owner.walls.get(int(params["owner_id"]))
    domain = params.get("domain")
    return next((w for w in owner.walls.values() if w.get("screen_name") == domain), None)
