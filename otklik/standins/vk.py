"""A stand-in for the VK API (https://api.vk.com/method/<name>, version 5.199) serving community walls from a
file. It answers ``wall.get`` as https://dev.vk.com/ru/method/wall.get documents it: ``{"response": {"count",
"items"}}``, pinned post first, then newest first, ``offset``/``count`` paging (count at most 100); and errors
as ``{"error": {"error_code", "error_msg", "request_params"}}`` (5: bad token, 100: bad parameter, 8: no v)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from otklik.standins.http import LoopbackServer, QuietHandler

# Texts as https://dev.vk.com/ru/reference/errors gives them.
VK_ERROR_MESSAGES = {
    1: "Unknown error occurred",
    5: "User authorization failed: invalid access_token (4).",
    6: "Too many requests per second",
    9: "Flood control",
    10: "Internal server error",
    15: "Access denied",
    29: "Rate limit reached",
}
DEMO_WALLS = Path(__file__).resolve().parent.parent / "demo" / "data" / "vk_walls.json"


class VkStandIn(LoopbackServer):
    def __init__(self, walls_file: Path = DEMO_WALLS, token: str | None = None) -> None:
        super().__init__(_VkHandler)
        self.token = token
        self.lock = threading.Lock()
        self.calls: list[dict[str, str]] = []
        self.failures: list[tuple[str, int]] = []  # ("vk", error code) or ("http", status), consumed in order
        self.walls: dict[int, dict[str, Any]] = {}
        data = json.loads(walls_file.read_text(encoding="utf-8"))
        for community in data["communities"]:
            items = [{k: v for k, v in item.items() if not k.startswith("_")} for item in community["items"]]
            self.walls[int(community["owner_id"])] = {**community, "items": items}

    @property
    def api_base(self) -> str:
        return self.url

    def add_post(self, owner_id: int, item: dict[str, Any]) -> None:
        """A new post appears on the wall (after the pinned one, newest first)."""
        with self.lock:
            items = self.walls[owner_id]["items"]
            at = 1 if items and items[0].get("is_pinned") else 0
            items.insert(at, item)

    def fail_next(self, *, vk_error: int | None = None, http_status: int | None = None) -> None:
        """The next call answers with this VK error object (e.g. 6: too many requests) or HTTP status."""
        with self.lock:
            self.failures.append(("vk", vk_error) if vk_error is not None else ("http", http_status or 500))

    def all_posts(self) -> list[tuple[int, dict[str, Any]]]:
        return [(oid, item) for oid, wall in self.walls.items() for item in wall["items"]]


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
            failure = owner.failures.pop(0) if owner.failures else None
        if failure is not None and failure[0] == "http":
            self.reply(failure[1], b"<html><body>Bad Gateway</body></html>", "text/html")
            return
        answer = self._dispatch(owner, method, params)
        if failure is not None:
            answer = {
                "error": {
                    "error_code": failure[1],
                    "error_msg": VK_ERROR_MESSAGES.get(failure[1], "Error"),
                    "request_params": [{"key": "method", "value": method}],
                }
            }
        self.reply(200, json.dumps(answer, ensure_ascii=False).encode("utf-8"))

    def _dispatch(self, owner: VkStandIn, method: str, params: dict[str, str]) -> dict[str, Any]:
        request_params = [{"key": "method", "value": method}] + [
            {"key": k, "value": v} for k, v in params.items() if k != "access_token"
        ]

        def error(code: int, msg: str) -> dict[str, Any]:
            return {"error": {"error_code": code, "error_msg": msg, "request_params": request_params}}

        if "v" not in params:
            return error(8, "Invalid request: v (version) is required")
        if owner.token is not None and params.get("access_token") != owner.token:
            return error(5, "User authorization failed: invalid access_token (4).")
        if method != "wall.get":
            return error(3, "Unknown method passed")
        wall = self._find_wall(owner, params)
        if wall is None:
            return error(100, "One of the parameters specified was missing or invalid: owner_id is undefined")
        try:
            offset = int(params.get("offset", 0))
            count = min(int(params.get("count", 20)), 100)
        except ValueError:
            return error(100, "One of the parameters specified was missing or invalid: offset or count")
        with owner.lock:
            items = list(wall["items"])
        return {"response": {"count": len(items), "items": items[offset : offset + count]}}

    @staticmethod
    def _find_wall(owner: VkStandIn, params: dict[str, str]) -> dict[str, Any] | None:
        if "owner_id" in params:
            try:
                return owner.walls.get(int(params["owner_id"]))
            except ValueError:
                return None
        domain = params.get("domain")
        return next((w for w in owner.walls.values() if w.get("screen_name") == domain), None)
