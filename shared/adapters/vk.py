"""VK community wall connector (``wall.get``, API 5.199) over httpx.

The cursor is ``{"last_post_id": N}``: VK post ids grow with time on a wall, and ``wall.get`` returns the pinned
post first and then newest first, so pages are read until a post at or below the cursor appears.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx

from shared.config import SourceConfig
from shared.domain.errors import TransientError
from shared.domain.models import Attachment, Geo, Post
from shared.ports import FetchResult, Rejected

PAGE_SIZE = 100  # wall.get's maximum
MAX_PAGES = 50
# https://dev.vk.com/ru/reference/errors: worth retrying later vs. needs a person
RETRYABLE_ERRORS = {1, 6, 9, 10, 29}


class VkApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"VK error {code}: {message}")
        self.code = code


class VkClient:
    def __init__(self, http: httpx.Client, base_url: str, token: str | None, version: str) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.version = version

    def call(self, method: str, **params: Any) -> Any:
        data = {k: v for k, v in params.items() if v is not None} | {"v": self.version}
        if self.token:
            data["access_token"] = self.token
        # POST keeps the token out of URLs (and so out of proxies' access logs).
        response = self.http.post(f"{self.base_url}/method/{method}", data=data)
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"VK {method}: HTTP {response.status_code}")
        response.raise_for_status()
        body = response.json()
        if "error" in body:
            err = body["error"]
            code, msg = int(err.get("error_code", 0)), str(err.get("error_msg", ""))
            if code in RETRYABLE_ERRORS:
                raise TransientError(f"VK {method}: error {code}: {msg}")
            raise VkApiError(code, msg)
        return body["response"]


class VkWallConnector:
    def __init__(self, config: SourceConfig, client: VkClient) -> None:
        self.config = config
        self.client = client
        self.source_id = config.id

    def fetch(self, cursor: dict[str, Any] | None) -> FetchResult:
        last_seen = int(cursor["last_post_id"]) if cursor and "last_post_id" in cursor else None
        limit = None if last_seen is not None else self.config.max_posts_first_run
        fresh: dict[int, dict[str, Any]] = {}
        for page in range(MAX_PAGES):
            response = self.client.call(
                "wall.get",
                owner_id=self.config.owner_id,
                domain=self.config.domain,
                offset=page * PAGE_SIZE,
                count=PAGE_SIZE,
            )
            items: list[dict[str, Any]] = response.get("items", [])
            reached_known = False
            for item in items:
                post_id = int(item["id"])
                if last_seen is not None and post_id <= last_seen:
                    reached_known = reached_known or not item.get("is_pinned")
                    continue
                fresh[post_id] = item
            if reached_known or len(items) < PAGE_SIZE or (limit is not None and len(fresh) >= limit):
                break
        ordered = [fresh[i] for i in sorted(fresh)]
        if limit is not None:
            ordered = ordered[-limit:]
        posts, rejected = [], []
        for item in ordered:
            try:
                posts.append(self._to_post(item))
            except (KeyError, TypeError, ValueError) as exc:
                rejected.append(
                    Rejected(
                        key=f"{item.get('owner_id')}_{item.get('id')}",
                        payload=json.dumps(item, ensure_ascii=False),
                        reason=f"unreadable wall.get item: {type(exc).__name__}: {exc}",
                    )
                )
        newest = max([last_seen or 0, *(int(i["id"]) for i in ordered)])
        cursor_after = {"last_post_id": newest} if newest else dict(cursor or {})
        return FetchResult(posts=posts, cursor=cursor_after, rejected=rejected)

    def _to_post(self, item: dict[str, Any]) -> Post:
        owner_id = int(item["owner_id"])
        post_id = int(item["id"])
        return Post(
            source="vk",
            community=str(owner_id),
            post_id=str(post_id),
            author_id=str(item.get("signer_id") or item.get("from_id") or owner_id),
            text=item.get("text", ""),
            published_at=datetime.fromtimestamp(int(item["date"]), tz=UTC),
            url=f"https://vk.com/wall{owner_id}_{post_id}",
            geo=_geo(item.get("geo")),
            attachments=tuple(_attachments(item.get("attachments", []))),
            source_id=self.config.id,
            municipality_hint=self.config.municipality,
        )


def _geo(geo: dict[str, Any] | None) -> Geo | None:
    if not geo or not geo.get("coordinates"):
        return None
    lat, lon = str(geo["coordinates"]).split()
    return Geo(lat=float(lat), lon=float(lon))


def _attachments(items: list[dict[str, Any]]) -> list[Attachment]:
    found = []
    for a in items:
        kind = a.get("type", "")
        body = a.get(kind, {}) if isinstance(a.get(kind), dict) else {}
        url = None
        if kind == "photo" and body.get("sizes"):
            url = max(body["sizes"], key=lambda s: s.get("width", 0) * s.get("height", 0)).get("url")
        elif kind == "link":
            url = body.get("url")
        elif kind in {"video", "doc", "audio"} and "owner_id" in body and "id" in body:
            url = f"https://vk.com/{kind}{body['owner_id']}_{body['id']}"
        if url:
            found.append(Attachment(kind=kind, url=url))
    return found
