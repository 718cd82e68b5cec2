"""A stand-in for the MAX Bot API (``https://platform-api2.max.ru``), answering as its published schema
(github.com/max-messenger/api-schema, OpenAPI 0.0.33) describes:

- the bot token in the ``Authorization`` header, as it is; a missing or wrong one is ``401``
  ``{"code": "verify.token", "message": "Invalid access_token"}``; every error is its HTTP status with
  ``{"code", "message"}``;
- ``GET /updates`` (long polling): ``limit`` 1-1000 (default 100), ``timeout`` 0-90 s (default 30: waits that long
  for an update when there is none), ``marker`` commits (forgets) every update before it, ``types`` (comma-separated)
  serves only those kinds (the others are committed with the rest); the answer is ``{"updates": [...], "marker":
  N}``, ``marker`` pointing at the next update; a parameter out of range is ``400``;
- while a webhook subscription is set (``subscribe``), ``GET /updates`` answers ``405`` (the schema: both cannot be
  used at once);
- ``GET /me``: the bot.

Tests and the demo add updates (``add_update``, ``add_message``), queue an error for the next call
(``fail_next``: 429 comes with ``Retry-After``), have the bot blocked (``block``: every call answers 403) or have
``updates`` answer any raw bytes (``inject``, see ``otklik.standins.http``). Initial updates come from
``otklik/demo/data/max_updates.json`` (without the ``_label`` ground truth).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from otklik.standins.http import LoopbackServer, QuietHandler

DEMO_UPDATES = Path(__file__).resolve().parent.parent / "demo" / "data" / "max_updates.json"
DEMO_BOT_TOKEN = "demo-max-bot-token-f3Kq9xL2vB7nR4tW"
DEMO_BOT = {"user_id": 9000001, "first_name": "Отклик", "username": "otklik_demo_bot", "is_bot": True}
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_TIMEOUT = 90
DEFAULT_TIMEOUT = 30
# How long this stand-in waits at most in a long poll, whatever ``timeout`` asks: tests must not hang.
LONGEST_WAIT = 5.0
ERRORS = {
    400: ("proto.payload", "Invalid request parameters"),
    401: ("verify.token", "Invalid access_token"),
    403: ("access.denied", "Bot is blocked"),
    404: ("not.found", "Method not found"),
    405: ("method.not.allowed", "Long polling is not available while the bot has a webhook subscription"),
    429: ("too.many.requests", "Too many requests"),
    500: ("internal.error", "Internal server error"),
    503: ("service.unavailable", "Service unavailable"),
}


def message_id(chat_id: int, seq: int) -> str:
    """A ``mid`` as MAX writes them: ``mid.`` + the chat id (64-bit two's complement) + the message's ``seq``, in
    hex."""
    return f"mid.{chat_id & 0xFFFFFFFFFFFFFFFF:016x}{seq:016x}"


def _strip(update: dict[str, Any]) -> dict[str, Any]:
    """Without our ground-truth labels (``_label``): what MAX itself would send."""
    return {k: v for k, v in update.items() if not k.startswith("_")}


class MaxStandIn(LoopbackServer):
    def __init__(self, updates_file: Path | None = DEMO_UPDATES, token: str = DEMO_BOT_TOKEN) -> None:
        super().__init__(_MaxHandler)
        self.token = token
        self.lock = threading.Condition()
        self.calls: list[dict[str, Any]] = []  # path and parameters of every call, and whether a token came
        self.failures: list[tuple[int, int | None]] = []  # (status, Retry-After), consumed one per call
        self.blocked = False
        self.webhook: str | None = None
        self.queue: list[tuple[int, dict[str, Any]]] = []  # (sequence number, update), not yet committed
        self.next_number = 1
        self.next_seq: dict[int, int] = {}  # chat id -> the next message's seq
        self.last_timestamp = 0
        if updates_file is not None:
            for update in json.loads(updates_file.read_text(encoding="utf-8"))["updates"]:
                self.add_update(update)

    @property
    def api_base(self) -> str:
        return self.url

    # --- what tests and the demo change ---------------------------------------------------------------

    def add_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update as it is (without ``_`` keys) and return it."""
        with self.lock:
            update = _strip(update)
            self._remember(update)
            self.queue.append((self.next_number, update))
            self.next_number += 1
            self.lock.notify_all()
            return update

    def add_message(
        self,
        chat_id: int,
        chat_type: str,
        text: str | None,
        *,
        sender: dict[str, Any] | None = None,
        kind: str = "message_created",
        **fields: Any,
    ) -> dict[str, Any]:
        """A new message in ``chat_id`` (``chat_type`` dialog, chat or channel) with the next ``seq`` and ``mid``
        of that chat, a minute after the latest update: from ``sender`` (a resident by default; none in channels).
        ``fields`` go into the body (``attachments``, ``markup``) or, for ``link``, ``url`` and ``timestamp``,
        into the message."""
        with self.lock:
            seq = self.next_seq.get(chat_id, 1)
            timestamp = int(fields.pop("timestamp", self.last_timestamp + 60_000 if self.last_timestamp else 0))
            timestamp = timestamp or 1795400000000
            body: dict[str, Any] = {"mid": message_id(chat_id, seq), "seq": seq, "text": text}
            message: dict[str, Any] = {}
            if chat_type != "channel" or sender is not None:
                message["sender"] = sender or resident()
            recipient: dict[str, Any] = {"chat_id": chat_id, "chat_type": chat_type}
            if chat_type == "dialog":
                recipient["user_id"] = DEMO_BOT["user_id"]
            message |= {"recipient": recipient, "timestamp": timestamp}
            for key in ("link", "url"):
                if key in fields:
                    message[key] = fields.pop(key)
            message["body"] = body | fields
            update = {"update_type": kind, "timestamp": timestamp, "message": message}
            if chat_type == "dialog" and kind == "message_created":
                update["user_locale"] = "ru"
            return self.add_update(update)

    def fail_next(self, status: int = 429, retry_after: int | None = 3) -> None:
        """The next call answers with this error (``Retry-After`` only with 429)."""
        with self.lock:
            self.failures.append((status, retry_after if status == 429 else None))

    def block(self) -> None:
        """The bot is blocked: from now on every call answers 403."""
        with self.lock:
            self.blocked = True

    def subscribe(self, url: str) -> None:
        """A webhook subscription is set (``POST /subscriptions``): long polling answers 405 until it is gone."""
        with self.lock:
            self.webhook = url

    def pending(self) -> list[dict[str, Any]]:
        """The updates not committed yet, in order."""
        with self.lock:
            return [update for _, update in self.queue]

    def _remember(self, update: dict[str, Any]) -> None:
        """Keep ``add_message``'s seq and time after whatever was queued, demo data included."""
        if isinstance(update.get("timestamp"), int):
            self.last_timestamp = max(self.last_timestamp, update["timestamp"])
        message = update.get("message")
        if not isinstance(message, dict):
            return
        recipient, body = message.get("recipient"), message.get("body")
        if isinstance(recipient, dict) and isinstance(body, dict):
            chat_id, seq = recipient.get("chat_id"), body.get("seq")
            if isinstance(chat_id, int) and isinstance(seq, int):
                self.next_seq[chat_id] = max(self.next_seq.get(chat_id, 1), seq + 1)

    # --- the API ----------------------------------------------------------------------------------------

    def get_updates(self, params: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            limit = int(params.get("limit") or DEFAULT_LIMIT)
            timeout = int(params.get("timeout") or DEFAULT_TIMEOUT)
            marker = int(params["marker"]) if params.get("marker") not in (None, "", "null") else None
            types = {t for t in (params.get("types") or "").split(",") if t} or None
        except ValueError:
            return _error(400)
        if not 1 <= limit <= MAX_LIMIT or not 0 <= timeout <= MAX_TIMEOUT:
            return _error(400)
        with self.lock:
            if marker is not None:
                self.queue = [(n, u) for n, u in self.queue if n >= marker]
            if not self._served(types) and timeout > 0:
                self.lock.wait_for(lambda: bool(self._served(types)), min(timeout, LONGEST_WAIT))
            page = self._served(types)[:limit]
            # The next update: after the last one served, or after everything queued when nothing was.
            next_marker = page[-1][0] + 1 if len(page) == limit else self.next_number
            return 200, {"updates": [u for _, u in page], "marker": next_marker}, {}

    def _served(self, types: set[str] | None) -> list[tuple[int, dict[str, Any]]]:
        return [(n, u) for n, u in self.queue if types is None or u.get("update_type") in types]

    def get_me(self) -> tuple[int, dict[str, Any], dict[str, str]]:
        return 200, {**DEMO_BOT, "last_activity_time": self.last_timestamp}, {}


def resident(user_id: int = 4127733, first_name: str = "Житель") -> dict[str, Any]:
    return {"user_id": user_id, "first_name": first_name, "last_name": "", "is_bot": False}


def _error(status: int, retry_after: int | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    code, message = ERRORS.get(status, ("internal.error", "Error"))
    headers = {"Retry-After": str(retry_after)} if status == 429 and retry_after is not None else {}
    return status, {"code": code, "message": message}, headers


class _MaxHandler(QuietHandler):
    def do_GET(self) -> None:
        owner: MaxStandIn = self.server.owner  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query))
        token = self.headers.get("Authorization")
        with owner.lock:
            owner.calls.append({"path": url.path, **params, "authorized": token == owner.token})
        if self.answer_fault(url.path.strip("/")):
            return
        with owner.lock:
            answer = self._refusal(owner, token, url.path)
        if answer is None:
            answer = owner.get_updates(params) if url.path == "/updates" else owner.get_me()
        self._answer(*answer)

    def _refusal(
        self, owner: MaxStandIn, token: str | None, path: str
    ) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        if token != owner.token:
            return _error(401)
        if path not in ("/updates", "/me"):
            return _error(404)
        if owner.blocked:
            return _error(403)
        if owner.failures:
            status, retry_after = owner.failures.pop(0)
            return _error(status, retry_after)
        if path == "/updates" and owner.webhook is not None:
            return _error(405)
        return None

    def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)
