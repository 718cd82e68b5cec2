"""A stand-in for the Telegram Bot API (``https://api.telegram.org/bot<token>/<method>``), answering as
https://core.telegram.org/bots/api documents:

- parameters by query string, ``application/x-www-form-urlencoded`` or ``application/json``, GET or POST
  (#making-requests); method names are case-insensitive;
- answers ``{"ok": true, "result": ...}``, errors ``{"ok": false, "error_code", "description"}`` with
  ``parameters.retry_after`` on 429, the HTTP status equal to ``error_code``; a wrong token is
  ``401 Unauthorized``, an unknown method ``404 Not Found``;
- ``getUpdates`` (#getupdates): updates in ``update_id`` order; ``offset`` confirms (forgets) every update below
  it, a negative ``offset`` keeps only the last ``-offset`` updates; ``limit`` 1-100 (clamped, default 100);
  ``timeout`` > 0 waits for an update up to that many seconds (at most 50); ``allowed_updates`` is remembered and
  filters updates queued *after* it was given, as Telegram does (updates already queued still come);
- ``getMe`` (#getme).

Tests and the demo add updates in the shapes Telegram sends (``add_update``, ``add_message``; ``add_album``: one
message per photo with a shared ``media_group_id``; ``add_edit``: ``edited_message`` / ``edited_channel_post`` with
``edit_date``; ``add_automatic_forward``: a channel post copied into its discussion group; ``add_comment``: a reply
to that copy in its thread), queue an error for the next call (``fail_next``), have the bot kicked (``kick``: every
call answers 403) or have a method answer any raw bytes (``inject``, see ``otklik.standins.http``: garbage,
truncated JSON, wrong types). ``served`` keeps every update a ``getUpdates`` answer carried, so a test can check
them against the Bot API's schema. Initial updates come from ``otklik/demo/data/telegram_updates.json`` (without
the ``_label`` ground truth).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from otklik.standins.http import LoopbackServer, QuietHandler

DEMO_UPDATES = Path(__file__).resolve().parent.parent / "demo" / "data" / "telegram_updates.json"
DEMO_BOT_TOKEN = "7100000001:AAHstand-in_demo_token_for_Otklik_bot0"
MAX_LIMIT = 100
MAX_TIMEOUT = 50
# The update kinds of https://core.telegram.org/bots/api#update; without allowed_updates a bot gets all but these.
NOT_BY_DEFAULT = {"chat_member", "message_reaction", "message_reaction_count"}
RESIDENT = {"id": 6000000001, "is_bot": False, "first_name": "Житель", "language_code": "ru"}
# Who Telegram names as the sender of a channel post's copy in its discussion group.
TELEGRAM_SERVICE_USER = {"id": 777000, "is_bot": False, "first_name": "Telegram"}
PHOTO_SIZES = ((90, 67, 2291), (320, 240, 17405), (800, 600, 71574), (1280, 960, 158585))
ERROR_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was kicked from the supergroup chat",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


def _strip(update: dict[str, Any]) -> dict[str, Any]:
    """Without our ground-truth labels (``_label``): what Telegram itself would send."""
    return {k: v for k, v in update.items() if not k.startswith("_")}


def _kind(update: dict[str, Any]) -> str:
    return next((k for k in update if k != "update_id"), "")


def photo(name: str) -> list[dict[str, Any]]:
    """One photo as Telegram sends it: the same picture in four sizes (``PhotoSize``), the largest last."""
    return [
        {
            "file_id": f"AgACAgIAAxkBAAI{name}_{width}",
            "file_unique_id": f"AQAD{name}{width}",
            "file_size": size,
            "width": width,
            "height": height,
        }
        for width, height, size in PHOTO_SIZES
    ]


def _sender(chat: dict[str, Any]) -> dict[str, Any]:
    """``from`` of a resident's message: in a private chat the chat is the resident."""
    if chat.get("type") != "private":
        return RESIDENT
    user = {"id": chat["id"], "is_bot": False, "first_name": chat.get("first_name", "Житель")}
    user |= {k: chat[k] for k in ("last_name", "username") if k in chat}
    return user | {"language_code": "ru"}


class TelegramStandIn(LoopbackServer):
    def __init__(self, updates_file: Path | None = DEMO_UPDATES, token: str = DEMO_BOT_TOKEN) -> None:
        super().__init__(_TelegramHandler)
        self.token = token
        self.lock = threading.Condition()
        self.calls: list[dict[str, Any]] = []  # method and parameters of every call, without the token
        self.failures: list[tuple[int, int | None]] = []  # (status, retry_after), consumed one per call
        self.kicked = False
        self.allowed_updates: set[str] | None = None  # None: the default, every kind but NOT_BY_DEFAULT
        self.updates: list[dict[str, Any]] = []  # the bot's queue: not yet confirmed, update_id order
        self.next_update_id = 1
        self.next_message_id: dict[int, int] = {}
        self.last_date = 0
        self.served: list[dict[str, Any]] = []  # every update a getUpdates answer carried, in order
        if updates_file is not None:
            for update in json.loads(updates_file.read_text(encoding="utf-8"))["updates"]:
                self.add_update(update)

    @property
    def api_base(self) -> str:
        return self.url

    # --- what tests and the demo change ---------------------------------------------------------------

    def add_update(self, update: dict[str, Any]) -> dict[str, Any] | None:
        """Queue an update as Telegram would (an ``update_id`` is given if it has none). Returns it, or None if the
        bot's ``allowed_updates`` excludes its kind: Telegram does not queue those at all."""
        with self.lock:
            update = _strip(update)
            if "update_id" not in update:
                update = {"update_id": self.next_update_id, **update}
            if not self._allowed(_kind(update)):
                return None
            self.next_update_id = max(self.next_update_id, int(update["update_id"]) + 1)
            message = update.get(_kind(update))
            if isinstance(message, dict):
                chat = message.get("chat")
                if isinstance(chat, dict) and isinstance(message.get("message_id"), int):
                    chat_id = int(chat["id"])
                    self.next_message_id[chat_id] = max(self.next_message_id.get(chat_id, 1), message["message_id"] + 1)
                for stamp in ("date", "edit_date"):
                    if isinstance(message.get(stamp), int):
                        self.last_date = max(self.last_date, message[stamp])
            self.updates.append(update)
            self.updates.sort(key=lambda u: int(u["update_id"]))
            self.lock.notify_all()
            return update

    def add_message(self, chat: dict[str, Any], text: str | None, **fields: Any) -> dict[str, Any]:
        """A new message in ``chat`` (a Chat object: ``id``, ``type``, ``title``, ``username``) with the next
        ``message_id`` of that chat and the next ``update_id``: ``channel_post`` from the channel itself in
        channels, otherwise a ``message`` from a resident (the chat's user in private chats; ``from`` can be
        given). ``fields`` are added to the message (``photo``, ``reply_to_message``, ``date``, ``caption`` ...);
        ``text=None`` leaves text out."""
        with self.lock:
            message = self._message(chat, text, fields)
            kind = "channel_post" if chat.get("type") == "channel" else "message"
            return self._queue({"update_id": self.next_update_id, kind: message})

    def add_album(
        self, chat: dict[str, Any], photos: list[str], caption: str | None = None, caption_on: int = 0, **fields: Any
    ) -> list[dict[str, Any]]:
        """An album (``sendMediaGroup``): one message per photo, consecutive ids, one ``media_group_id`` and one
        ``date``, the caption on the item ``caption_on`` only. Returns the updates, in order."""
        with self.lock:
            group = f"1387{self.next_update_id:013d}"
            date = fields.pop("date", self._next_date())
            items = []
            for n, name in enumerate(photos):
                extra = {"caption": caption} if caption is not None and n == caption_on else {}
                items.append(
                    self.add_message(chat, None, date=date, media_group_id=group, photo=photo(name), **extra, **fields)
                )
            return items

    def add_edit(self, update: dict[str, Any], edit_date: int | None = None, **changes: Any) -> dict[str, Any]:
        """A later version of the message in ``update``: ``edited_message`` (``edited_channel_post`` in channels)
        with the same ``message_id`` and ``date``, ``edit_date`` and ``changes`` (``text``, ``caption`` ...)."""
        with self.lock:
            kind = _kind(update)
            message = dict(update[kind]) | changes | {"edit_date": edit_date or self._next_date()}
            edited_kind = "edited_channel_post" if kind == "channel_post" else "edited_message"
            return self._queue({"update_id": self.next_update_id, edited_kind: message})

    def add_automatic_forward(self, channel_update: dict[str, Any], group: dict[str, Any]) -> dict[str, Any]:
        """The copy Telegram makes of a channel post in the channel's linked discussion group (the comments'
        thread root): ``is_automatic_forward``, sent by the channel, ``forward_origin`` naming the post."""
        with self.lock:
            post = channel_update["channel_post"]
            content = {k: v for k, v in post.items() if k not in {"message_id", "chat", "sender_chat", "date"}}
            origin = {"type": "channel", "chat": post["chat"], "message_id": post["message_id"], "date": post["date"]}
            fields = {"from": TELEGRAM_SERVICE_USER, "sender_chat": post["chat"], "forward_origin": origin}
            message = self._message(group, None, fields | {"is_automatic_forward": True} | content)
            return self._queue({"update_id": self.next_update_id, "message": message})

    def add_comment(self, forward_update: dict[str, Any], text: str, **fields: Any) -> dict[str, Any]:
        """A resident's comment under a channel post: a reply to its automatic forward, in its thread."""
        forward = forward_update["message"]
        thread = {"message_thread_id": forward["message_id"], "reply_to_message": forward}
        return self.add_message(forward["chat"], text, **thread, **fields)

    def _message(self, chat: dict[str, Any], text: str | None, fields: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(chat["id"])
        message: dict[str, Any] = {"message_id": self.next_message_id.get(chat_id, 1)}
        if chat.get("type") == "channel":
            message["sender_chat"] = chat
        else:
            message["from"] = _sender(chat)
        message |= {"chat": chat, "date": self._next_date()}
        if text is not None:
            message["text"] = text
        return message | fields

    def _next_date(self) -> int:
        return self.last_date + 60 if self.last_date else 1795300000

    def _queue(self, update: dict[str, Any]) -> dict[str, Any]:
        added = self.add_update(update)
        if added is None:
            raise ValueError(f"allowed_updates {sorted(self.allowed_updates or [])} excludes this update")
        return added

    def fail_next(self, status: int = 429, retry_after: int | None = 3) -> None:
        """The next call answers with this error in the Bot API's shape (``retry_after`` only with 429)."""
        with self.lock:
            self.failures.append((status, retry_after if status == 429 else None))

    def kick(self) -> None:
        """The bot is kicked: from now on every call answers 403 Forbidden."""
        with self.lock:
            self.kicked = True

    def pending(self) -> list[int]:
        """The ``update_id`` of every update still in the queue (not confirmed by an offset)."""
        with self.lock:
            return [int(u["update_id"]) for u in self.updates]

    # --- the API ----------------------------------------------------------------------------------------

    def _allowed(self, kind: str) -> bool:
        return kind in self.allowed_updates if self.allowed_updates is not None else kind not in NOT_BY_DEFAULT

    def get_updates(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            offset = int(params.get("offset") or 0)
            limit = min(max(int(params.get("limit") or MAX_LIMIT), 1), MAX_LIMIT)
            timeout = min(max(float(params.get("timeout") or 0), 0), MAX_TIMEOUT)
            allowed = params.get("allowed_updates")
            if isinstance(allowed, str):
                allowed = json.loads(allowed) if allowed else None
            if allowed is not None and not (isinstance(allowed, list) and all(isinstance(a, str) for a in allowed)):
                raise ValueError("allowed_updates is not an array of strings")
        except (TypeError, ValueError):
            return _error(400, "Bad Request: wrong parameter value")
        with self.lock:
            if allowed:
                self.allowed_updates = {str(a).lower() for a in allowed}
            elif allowed == []:
                self.allowed_updates = None
            self._confirm(offset)
            if not self.updates and timeout > 0:
                self.lock.wait_for(lambda: bool(self.updates), timeout)
                self._confirm(offset)
            page = self.updates[:limit]
            self.served.extend(page)
            return 200, {"ok": True, "result": page}

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self.updates = [u for u in self.updates if int(u["update_id"]) >= offset]
        elif offset < 0:
            self.updates = self.updates[offset:]

    def get_me(self) -> tuple[int, dict[str, Any]]:
        bot = {
            "id": int(self.token.split(":", 1)[0]) if self.token.split(":", 1)[0].isdigit() else 1,
            "is_bot": True,
            "first_name": "Отклик",
            "username": "otklik_demo_bot",
            "can_join_groups": True,
            "can_read_all_group_messages": True,
            "supports_inline_queries": False,
        }
        return 200, {"ok": True, "result": bot}


def _error(status: int, description: str | None = None, retry_after: int | None = None) -> tuple[int, dict[str, Any]]:
    if description is None:
        description = (
            f"Too Many Requests: retry after {retry_after}"
            if status == 429
            else ERROR_DESCRIPTIONS.get(status, "Bad Request")
        )
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if status == 429 and retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return status, body


class _TelegramHandler(QuietHandler):
    def do_GET(self) -> None:
        self._handle(dict(parse_qsl(urlsplit(self.path).query)))

    def do_POST(self) -> None:
        params: dict[str, Any] = dict(parse_qsl(urlsplit(self.path).query))
        body = self.read_body()
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        try:
            if content_type == "application/json" and body:
                decoded = json.loads(body.decode("utf-8"))
                if not isinstance(decoded, dict):
                    raise ValueError("not an object")
                params.update(decoded)
            elif body:
                params.update(parse_qsl(body.decode("utf-8")))
        except (UnicodeDecodeError, ValueError):
            self._answer(*_error(400, "Bad Request: can't parse JSON object"))
            return
        self._handle(params)

    def _handle(self, params: dict[str, Any]) -> None:
        owner: TelegramStandIn = self.server.owner  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        token, _, method = path.removeprefix("/bot").partition("/")
        if not path.startswith("/bot") or not method:
            self._answer(*_error(404))
            return
        with owner.lock:
            owner.calls.append({"method": method, **params})
        if self.answer_fault(method):
            return
        with owner.lock:
            if token != owner.token:
                answer = _error(401)
            elif owner.kicked:
                answer = _error(403)
            elif owner.failures:
                status, retry_after = owner.failures.pop(0)
                answer = _error(status, retry_after=retry_after)
            else:
                answer = (0, {})
        if answer[0]:
            self._answer(*answer)
            return
        name = method.lower()
        if name == "getupdates":
            self._answer(*owner.get_updates(params))
        elif name == "getme":
            self._answer(*owner.get_me())
        else:
            self._answer(*_error(404))

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        self.reply(status, json.dumps(body, ensure_ascii=False).encode("utf-8"))
