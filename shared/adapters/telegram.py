"""Telegram chats and channels through the Bot API (https://core.telegram.org/bots/api), ``getUpdates`` over httpx.

What is taken from the Bot API documentation:

- every call is ``{api_base}/bot<token>/<method>``, parameters as JSON; an answer is ``{"ok": true, "result": ...}``
  or ``{"ok": false, "error_code": N, "description": "...", "parameters": {"retry_after": S}}``
  (#making-requests, #responseparameters); the HTTP status carries the same code;
- ``getUpdates`` (#getupdates): ``offset`` is the first update to return and *confirms* every update below it
  (Telegram forgets them), ``limit`` 1-100, ``timeout`` 0 is a short poll, ``allowed_updates`` lists the update
  kinds wanted (it does not affect updates queued before the call, so other kinds may still come once);
- ``Update`` carries one of ``message`` / ``channel_post`` / ``edited_message`` / ...; ``Message`` has
  ``message_id``, ``date`` (unix time), ``chat`` (``id``, ``type``, ``title``, ``username``), ``from`` (a user) or
  ``sender_chat`` (a channel, or a group's anonymous admin), ``text`` or ``caption``, ``photo`` (the sizes of one
  photo, ``PhotoSize``), ``document``, ``video``, ``location``, ``reply_to_message``.

What a deployment must know (from the Bot API's "privacy mode" and channel rules, not checkable here): a bot
sees every message of a group only if privacy mode is off (@BotFather ``/setprivacy``) or it is an admin there;
it sees a channel's posts only as an admin of the channel. Telegram keeps unconfirmed updates for 24 hours: a
source stopped longer than that loses what was posted meanwhile.

Cursor: ``{"update_id": N}``, the highest update seen (also those skipped or rejected), so the next fetch asks
``offset = N + 1``. Asking with an offset confirms everything below it on Telegram's side, so one ``fetch`` reads
one page only and says ``more`` when the page was full: the ingest service publishes the page and stores the
cursor before it fetches again. Nothing is confirmed to Telegram before it is published.

The token is part of every URL: no message built here contains the URL or the token, and the URL httpx logs
(``HTTP Request: POST ...`` at INFO) is masked by the filter shared/logs.py puts on the ``httpx`` logger.
"""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeGuard

import httpx

from shared import logs
from shared.adapters.answers import send
from shared.adapters.politeness import Polite
from shared.domain.errors import PermanentError, SourceAccessError, TransientError
from shared.domain.models import Attachment, Geo, Post
from shared.ports import FetchResult, Rejected
from shared.source_config import TelegramSource

PAGE_SIZE = 100  # getUpdates' maximum ``limit``
ALLOWED_UPDATES = ("message", "channel_post")
PRIVATE_CHANNEL_PREFIX = "-100"  # supergroups and channels: chat id = -100<internal id>; t.me/c/ wants the latter
FILE_ATTACHMENTS = ("document", "video")

UNAUTHORIZED_ACTION = (
    "the bot token is wrong or was revoked: replace OTKLIK_TELEGRAM_BOT_TOKEN (Secret Manager) with the token "
    "@BotFather shows for the bot (/token; /revoke issues a new one) — then the source resumes by itself"
)
FORBIDDEN_ACTION = (
    "Telegram refuses the bot (removed from a chat, or blocked): add the bot back to the chat (as an admin in "
    "channels), or remove the chat from sources.yaml"
)
CONFLICT_ACTION = (
    "delete the bot's webhook (deleteWebhook) or stop the other poller: a bot token can be read by one getUpdates "
    "client only, and not at all while a webhook is set; give Otklik a bot of its own"
)
NOT_FOUND_ACTION = (
    "Telegram does not know this bot URL: OTKLIK_TELEGRAM_BOT_TOKEN is not a bot token (it looks like "
    "123456789:AA...) or OTKLIK_TELEGRAM_API_BASE is wrong; fix them — then the source resumes by itself"
)


class TelegramApiError(PermanentError):
    """A Bot API error that retrying will not fix and that needs no person (a bad parameter, say)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"Telegram error {code}: {message}")
        self.code = code


class TelegramConnector:
    """Every chat and channel the bot is in, through one bot's update queue (``getUpdates``).

    With ``config.chats`` set, only those chats (by id, or by ``@username``) become posts; updates from other chats
    are skipped without a trace but still move the cursor. Edited messages are not asked for."""

    def __init__(
        self, config: TelegramSource, http: httpx.Client, api_base: str, bot_token: str, polite: Polite
    ) -> None:
        self.config = config
        self.http = http
        self.polite = polite
        self.source_id = config.id
        self._token = bot_token
        self._endpoint = f"{api_base.rstrip('/')}/bot{bot_token}/getUpdates"
        self._chats_by_id = {k: v for k, v in config.chats.items() if not k.startswith("@")}
        self._chats_by_name = {k[1:].lower(): v for k, v in config.chats.items() if k.startswith("@")}
        logs.hide(bot_token)  # httpx logs every request's URL, and this one carries the token

    def fetch(self, cursor: dict[str, Any] | None) -> FetchResult:
        last = int(cursor["update_id"]) if cursor and "update_id" in cursor else None
        found: list[tuple[Post, int]] = []
        rejected: list[Rejected] = []
        request: dict[str, Any] = {"timeout": 0, "limit": PAGE_SIZE, "allowed_updates": list(ALLOWED_UPDATES)}
        if last is not None:
            request["offset"] = last + 1
        updates = self.polite.call(functools.partial(self._get_updates, request))
        for update in updates:
            update_id = update.get("update_id") if isinstance(update, dict) else None
            if not isinstance(update_id, int) or isinstance(update_id, bool):
                rejected.append(_rejected(update, None, "an update without an integer update_id"))
                continue
            last = update_id if last is None else max(last, update_id)
            try:
                post = self._post(update)
            except _Unreadable as exc:
                rejected.append(_rejected(update, str(update_id), str(exc)))
                continue
            if post is not None:
                found.append((post, update_id))
        found.sort(key=lambda pair: (pair[0].published_at, pair[1]))
        return FetchResult(
            posts=[post for post, _ in found],
            cursor={"update_id": last} if last is not None else {},
            rejected=rejected,
            more=len(updates) >= PAGE_SIZE,
        )

    # --- the HTTP call ----------------------------------------------------------------------------------

    def _get_updates(self, request: dict[str, Any]) -> list[Any]:
        try:
            response, raw = send(self.http, "POST", self._endpoint, what="Telegram getUpdates", json=request)
        except httpx.TransportError as exc:
            # ``from None``: the cause's text and its request carry the URL, and so the token.
            raise TransientError(f"Telegram getUpdates: {type(exc).__name__}: {self._scrub(str(exc))}") from None
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("ok") is True and response.status_code < 400:
            result = body.get("result")
            if not isinstance(result, list):
                raise TelegramApiError(0, f"getUpdates: result is {type(result).__name__}, not a list")
            if len(result) > PAGE_SIZE:
                raise TelegramApiError(0, f"getUpdates: {len(result)} updates in a page of at most {PAGE_SIZE}")
            return result
        if isinstance(body, dict) and response.status_code < 400 and not _is_int(body.get("error_code")):
            raise TelegramApiError(
                0, f"getUpdates: HTTP {response.status_code}, an answer that is neither a result nor an error"
            )
        if not isinstance(body, dict):
            if response.status_code == 429 or response.status_code >= 500:
                raise TransientError(f"Telegram getUpdates: HTTP {response.status_code}", _retry_after_header(response))
            if response.status_code < 400:
                raise TransientError(f"Telegram getUpdates: HTTP {response.status_code}, the answer is not JSON")
        self._raise_error(response, body if isinstance(body, dict) else {})

    def _raise_error(self, response: httpx.Response, body: dict[str, Any]) -> NoReturn:
        code = body.get("error_code")
        if not isinstance(code, int) or isinstance(code, bool):
            code = response.status_code
        description = self._scrub(str(body.get("description") or response.reason_phrase or "no description"))
        message = f"Telegram getUpdates: error {code}: {description}"
        if code == 429:
            parameters = body.get("parameters")
            asked = parameters.get("retry_after") if isinstance(parameters, dict) else None
            wait = float(asked) if isinstance(asked, int | float) and not isinstance(asked, bool) else None
            raise TransientError(message, wait if wait is not None else _retry_after_header(response))
        if code >= 500 or code == 0:
            raise TransientError(message, _retry_after_header(response))
        if code == 401:
            raise SourceAccessError(message, UNAUTHORIZED_ACTION)
        if code == 403:
            raise SourceAccessError(message, FORBIDDEN_ACTION)
        if code == 404:
            raise SourceAccessError(message, NOT_FOUND_ACTION)
        if code == 409:
            raise SourceAccessError(message, CONFLICT_ACTION)
        raise TelegramApiError(code, f"getUpdates: {description}")

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "<bot token>") if self._token else text

    # --- Update -> Post ---------------------------------------------------------------------------------

    def _post(self, update: dict[str, Any]) -> Post | None:
        """The post in ``update``; None for what is not one (another update kind, a chat not watched, a message
        without text or caption); ``_Unreadable`` for a message that is broken."""
        message = update.get("message", update.get("channel_post"))
        if message is None:
            return None  # edited_message and other kinds queued before allowed_updates took effect
        if not isinstance(message, dict):
            raise _Unreadable("the message is not an object")
        chat = message.get("chat")
        if not isinstance(chat, dict):
            raise _Unreadable("a message without chat")
        chat_id = chat.get("id")
        if not _is_int(chat_id):
            raise _Unreadable("a message whose chat has no integer id")
        username = chat.get("username") if isinstance(chat.get("username"), str) else None
        watched, municipality = self._watched(str(chat_id), username)
        if not watched:
            return None
        text = message.get("text", message.get("caption"))
        if text is not None and not isinstance(text, str):
            field = "text" if "text" in message else "caption"
            raise _Unreadable(f"{field} is {type(text).__name__}, not a string")
        if text is None or not text.strip():
            return None  # service messages (joins, pins), stickers, photos without a caption, locations
        message_id = message.get("message_id")
        if not _is_int(message_id):
            raise _Unreadable("a message without an integer message_id")
        date = message.get("date")
        if not _is_int(date):
            raise _Unreadable("a message without an integer date")
        try:
            return Post(
                source="telegram",
                community=str(chat_id),
                post_id=str(message_id),
                author_id=_author(message),
                text=text,
                published_at=datetime.fromtimestamp(date, tz=UTC),
                url=message_url(chat, message_id),
                geo=_geo(message.get("location")),
                attachments=tuple(_attachments(message)),
                parent_post_id=_parent(message),
                source_id=self.config.id,
                municipality_hint=municipality or self.config.municipality,
            )
        except (TypeError, ValueError, OverflowError, OSError) as exc:
            raise _Unreadable(f"{type(exc).__name__}: {exc}") from exc

    def _watched(self, chat_id: str, username: str | None) -> tuple[bool, str | None]:
        """Is the chat one of ``config.chats`` (all are when it is empty), and its municipality there."""
        if chat_id in self._chats_by_id:
            return True, self._chats_by_id[chat_id]
        if username is not None and username.lower() in self._chats_by_name:
            return True, self._chats_by_name[username.lower()]
        return not self.config.chats, None


def message_url(chat: dict[str, Any], message_id: int) -> str:
    """A link that opens the message: ``t.me/<username>/<id>`` in public groups and channels, ``t.me/c/<id>/<id>``
    in private ones (members only), and ``tg://chat/...`` (not a Telegram link: our own address) in basic groups and
    private chats, which have no message links."""
    chat_id, chat_type, username = str(chat["id"]), chat.get("type"), chat.get("username")
    if username and chat_type in {"supergroup", "channel"}:
        return f"https://t.me/{username}/{message_id}"
    if chat_id.startswith(PRIVATE_CHANNEL_PREFIX) and chat_type != "private":
        return f"https://t.me/c/{chat_id.removeprefix(PRIVATE_CHANNEL_PREFIX)}/{message_id}"
    return f"tg://chat/{chat_id}/{message_id}"


class _Unreadable(Exception):
    pass


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _author(message: dict[str, Any]) -> str | None:
    """The channel (or the group posting anonymously) when the message is sent on behalf of a chat: ``from`` is
    then missing (channels) or a placeholder user (@GroupAnonymousBot, @Channel_Bot); otherwise the user."""
    for key in ("sender_chat", "from"):
        who = message.get(key)
        if isinstance(who, dict) and _is_int(who.get("id")):
            return str(who["id"])
    return None


def _parent(message: dict[str, Any]) -> str | None:
    reply = message.get("reply_to_message")
    if not isinstance(reply, dict) or not _is_int(reply.get("message_id")):
        return None
    if "forum_topic_created" in reply:
        return None  # in forum groups every message of a topic "replies" to the topic's first (service) message
    return str(reply["message_id"])


def _geo(location: Any) -> Geo | None:
    if not isinstance(location, dict) or "latitude" not in location or "longitude" not in location:
        return None
    return Geo(lat=float(location["latitude"]), lon=float(location["longitude"]))


def _attachments(message: dict[str, Any]) -> list[Attachment]:
    found = []
    sizes = message.get("photo")
    if isinstance(sizes, list):
        usable = [s for s in sizes if isinstance(s, dict) and s.get("file_id")]
        if usable:
            largest = max(
                usable, key=lambda s: (_number(s.get("width")) * _number(s.get("height")), s.get("file_size", 0))
            )
            found.append(Attachment(kind="photo", url=f"tg-file:{largest['file_id']}"))
    for kind in FILE_ATTACHMENTS:
        item = message.get(kind)
        if isinstance(item, dict) and item.get("file_id"):
            found.append(Attachment(kind=kind, url=f"tg-file:{item['file_id']}"))
    return found


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _retry_after_header(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def _rejected(update: Any, key: str | None, reason: str) -> Rejected:
    payload = json.dumps(update, ensure_ascii=False, default=str)
    return Rejected(
        key=key or "update-" + hashlib.sha256(payload.encode()).hexdigest()[:16],
        payload=payload,
        reason=f"unreadable Telegram update: {reason}",
    )
