"""Telegram chats and channels through the Bot API (https://core.telegram.org/bots/api), ``getUpdates`` over httpx.

What is taken from the Bot API documentation:

- every call is ``{api_base}/bot<token>/<method>``, parameters as JSON; an answer is ``{"ok": true, "result": ...}``
  or ``{"ok": false, "error_code": N, "description": "...", "parameters": {"retry_after": S}}``
  (#making-requests, #responseparameters); the HTTP status carries the same code;
- ``getUpdates`` (#getupdates): ``offset`` is the first update to return and *confirms* every update below it
  (Telegram forgets them), ``limit`` 1-100, ``timeout`` 0 is a short poll, ``allowed_updates`` lists the update
  kinds wanted (it does not affect updates queued before the call, so other kinds may still come once);
- ``Update`` carries one of ``message`` / ``edited_message`` / ``channel_post`` / ``edited_channel_post`` / ...;
  ``Message`` has ``message_id``, ``date`` (unix time), ``chat`` (``id``, ``type``, ``title``, ``username``),
  ``from`` (a user) or ``sender_chat`` (a channel, a group's anonymous admin, the linked channel of an automatic
  forward), ``text`` or ``caption`` with ``entities`` / ``caption_entities`` (offsets and lengths in UTF-16 code
  units), ``photo`` (the sizes of one photo), ``document``, ``video``, ``voice``, ``location``, ``venue`` (its
  ``location`` is also the message's), ``media_group_id`` (an album: one message per photo, the caption on one of
  them), ``forward_origin``, ``is_automatic_forward``, ``message_thread_id`` / ``is_topic_message`` (forum topics
  and comment threads), ``reply_to_message``, ``edit_date``.

Every update a page holds is accounted for: a post, a quarantine record (``Rejected``: a broken update) or a
``Skipped`` with its reason — another update kind (a poll, a reaction: ``unsupported``), a chat nobody configured
(``chat_not_configured``), a join or a pin (``service_message``), a sticker (``empty``), another bot
(``not_resident``), or what another post already carries (``folded``, below).

How the shapes become posts (``_compose``):

- **albums**: the items of one ``media_group_id`` in one chat are one post with every photo, the caption and the
  id of the item that has the caption (else the first); the other items are ``folded``. An album may straddle
  two pages: a full page is cut before the first item of any album among its last ten updates (an album has at
  most ten), and the cursor stays before it, so the next page brings the album whole and nothing is confirmed to
  Telegram before its post is published. Not covered: an album still arriving while a *short* page is read (its
  items reach the Bot API within a second); its later items then come in the next fetch as a post of their own
  (empty text, their photos) — never lost, but not one post;
- **locations**: ``location`` and ``venue`` give ``Post.geo``, a venue also its title and address as a line of
  text. A bare location (no text, no media) its sender sends within ten minutes after a post of theirs in the same
  chat and page, or as a reply to it, is that post's place (common in bot chats: the complaint, then the pin): it
  is ``folded`` into it, if it has no place yet; otherwise it is a post of its own (empty text, geo);
- **link URLs**: a ``text_link`` entity's URL follows its words in the text, «тут (https://...)»;
- **automatic forwards**: a channel post copied into its linked discussion group is ``folded`` (the channel post
  is the post); a comment replying to it is a comment *of the channel post*: community the channel, post id
  ``<channel post>_<comment>``, parent the channel post (as VK comments are keyed); the municipality is the
  group's. A reply to a comment is a reply in the group (its thread root is not in the payload);
- **forwards** from a channel name the original (``repost_of``), so it is published once however it is seen
  (not in a private chat: a resident forwarding a post to the bot writes to the city, a post of its own);
- **edits**: ``edited_message`` / ``edited_channel_post`` are the same post with ``edited_at`` (publish-once keys
  each edit once); a live location moving and a photo of an album replaced are ``folded``;
- **private chats** with the bot (``private_chats``): the resident wrote to the city: ``direct``, with
  ``reply_to`` (the chat and the message an answer goes to); a bare command (``/start``) is a service message;
- **forum topics**: a topic's messages "reply" to its creation message, which is no parent; topic service
  messages are service messages. An anonymous admin (``sender_chat`` = the chat) posts as the chat itself, like a
  channel: the author is the chat.

What a deployment must know (from the Bot API's "privacy mode" and channel rules, not checkable here): a bot
sees every message of a group only if privacy mode is off (@BotFather ``/setprivacy``) or it is an admin there;
it sees a channel's posts only as an admin of the channel, and a channel's comments only as a member of its
discussion group. Telegram keeps unconfirmed updates for 24 hours: a source stopped longer than that loses what
was posted meanwhile.

Cursor: ``{"update_id": N}``, the highest update read (also those skipped or rejected), so the next fetch asks
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
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeGuard

import httpx

from shared import logs
from shared.adapters.answers import send
from shared.adapters.politeness import Polite
from shared.domain.errors import PermanentError, SourceAccessError, TransientError
from shared.domain.models import Attachment, Geo, Post, ReplyTarget, RepostOrigin
from shared.ports import FetchResult, Rejected, Skipped, SkipReason
from shared.source_config import TelegramSource

PAGE_SIZE = 100  # getUpdates' maximum ``limit``
# The update kinds read, and whether the kind is a later version of a message read before.
MESSAGE_KINDS = {"message": False, "edited_message": True, "channel_post": False, "edited_channel_post": True}
ALLOWED_UPDATES = tuple(MESSAGE_KINDS)
PRIVATE_CHANNEL_PREFIX = "-100"  # supergroups and channels: chat id = -100<internal id>; t.me/c/ wants the latter
FILE_ATTACHMENTS = ("video", "document", "voice", "audio", "video_note")  # an animation (GIF) is a document too
ALBUM_MAX_ITEMS = 10  # sendMediaGroup sends 2-10 items
PLACE_FOLLOWS_WITHIN = 10 * 60  # seconds: a bare location this soon after its sender's post is that post's place
PLACE_LINE = "Место: "
REPLY_CHANNEL = "telegram_chat"
# Messages that say something happened in the chat, not what a resident wrote (Message's service fields).
SERVICE_FIELDS = frozenset(
    {
        "new_chat_members", "left_chat_member", "new_chat_title", "new_chat_photo", "delete_chat_photo",
        "group_chat_created", "supergroup_chat_created", "channel_chat_created", "message_auto_delete_timer_changed",
        "migrate_to_chat_id", "migrate_from_chat_id", "pinned_message", "successful_payment", "refunded_payment",
        "users_shared", "chat_shared", "connected_website", "write_access_allowed", "passport_data",
        "proximity_alert_triggered", "boost_added", "chat_background_set", "checklist_tasks_done",
        "checklist_tasks_added", "forum_topic_created", "forum_topic_edited", "forum_topic_closed",
        "forum_topic_reopened", "general_forum_topic_hidden", "general_forum_topic_unhidden", "giveaway_created",
        "giveaway_completed", "video_chat_scheduled", "video_chat_started", "video_chat_ended",
        "video_chat_participants_invited", "web_app_data", "gift", "unique_gift", "paid_message_price_changed",
        "direct_message_price_changed", "chat_owner_changed", "chat_owner_left",
    }
)  # fmt: skip
# Message contents Otklik does not read (a sticker or a dice alone is simply empty).
UNREAD_CONTENT = frozenset(
    {"poll", "contact", "game", "invoice", "story", "giveaway", "giveaway_winners", "checklist", "paid_media"}
)

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
    """Every chat and channel the bot is in, and its private chats, through one bot's update queue
    (``getUpdates``).

    With ``config.chats`` set, only those chats (by id, or by ``@username``) become posts; updates from other chats
    are skipped as ``chat_not_configured`` and still move the cursor. Private chats with the bot are taken as
    ``config.private_chats`` says."""

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
        request: dict[str, Any] = {"timeout": 0, "limit": PAGE_SIZE, "allowed_updates": list(ALLOWED_UPDATES)}
        if last is not None:
            request["offset"] = last + 1
        updates = self.polite.call(functools.partial(self._get_updates, request))
        full = len(updates) >= PAGE_SIZE
        if full:
            updates = updates[: _album_safe_end(updates)]
        messages: list[_Message] = []
        rejected: list[Rejected] = []
        skipped: list[Skipped] = []
        for update in updates:
            update_id = update.get("update_id") if isinstance(update, dict) else None
            if not _is_int(update_id):
                rejected.append(_rejected(update, None, "an update without an integer update_id"))
                continue
            last = update_id if last is None else max(last, update_id)
            try:
                read = self._read(update, update_id)
            except _Unreadable as exc:
                rejected.append(_rejected(update, str(update_id), str(exc)))
                continue
            if isinstance(read, Skipped):
                skipped.append(read)
            else:
                messages.append(read)
        drafts, folded = _compose(messages)
        found: list[tuple[Post, int]] = []
        for draft in drafts:
            try:
                found.append((self._post(draft), draft.head.update_id))
            except (TypeError, ValueError) as exc:
                rejected.append(_rejected(draft.head.update, str(draft.head.update_id), f"{type(exc).__name__}: {exc}"))
        found.sort(key=lambda pair: (pair[0].published_at, pair[1]))
        return FetchResult(
            posts=[post for post, _ in found],
            cursor={"update_id": last} if last is not None else {},
            rejected=rejected,
            skipped=skipped + folded,
            more=full,
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

    def _read(self, update: dict[str, Any], update_id: int) -> _Message | Skipped:
        """The message in ``update``, checked; a ``Skipped`` for what is not a post on purpose; ``_Unreadable``
        for a message that is broken."""
        kind = next((k for k in MESSAGE_KINDS if k in update), None)
        if kind is None:
            return _skip(update_id, SkipReason.UNSUPPORTED)  # kinds queued before allowed_updates took effect
        message = update[kind]
        if not isinstance(message, dict):
            raise _Unreadable("the message is not an object")
        chat = message.get("chat")
        if not isinstance(chat, dict):
            raise _Unreadable("a message without chat")
        if not _is_int(chat.get("id")):
            raise _Unreadable("a message whose chat has no integer id")
        watched, municipality = self._watched(chat)
        if not watched:
            return _skip(update_id, SkipReason.CHAT_NOT_CONFIGURED)
        read = _Message.of(update, kind, municipality or self.config.municipality)
        reason = _skip_reason(read)
        return _skip(update_id, reason) if reason is not None else read

    def _watched(self, chat: dict[str, Any]) -> tuple[bool, str | None]:
        """Is the chat one of ``config.chats`` (all are when it is empty), and its municipality there. A private
        chat with the bot is taken as ``config.private_chats`` says (unset: when every chat is)."""
        if chat.get("type") == "private":
            taken = self.config.private_chats
            return (not self.config.chats) if taken is None else taken, self.config.private_chats_municipality
        chat_id, username = str(chat["id"]), chat.get("username")
        if chat_id in self._chats_by_id:
            return True, self._chats_by_id[chat_id]
        if isinstance(username, str) and username.lower() in self._chats_by_name:
            return True, self._chats_by_name[username.lower()]
        return not self.config.chats, None

    def _post(self, draft: _Draft) -> Post:
        head = draft.head
        community, post_id, parent = _thread(head)
        return Post(
            source="telegram",
            community=community,
            post_id=post_id,
            author_id=head.author,
            text="\n".join(part for part in (head.text, *draft.place_lines) if part),
            published_at=min(item.published_at for item in draft.items),
            url=message_url(head.chat, head.message_id),
            geo=draft.geo,
            attachments=tuple(a for item in draft.items for a in item.attachments),
            parent_post_id=parent,
            source_id=self.config.id,
            municipality_hint=head.municipality,
            repost_of=None if head.private else _forwarded_from(head.body),
            direct=head.private,
            reply_to=_answer_target(head),
            edited_at=head.edited_at,
        )


@dataclass(frozen=True)
class _Message:
    """A message of a watched chat, checked and read: what posts are built from."""

    update: dict[str, Any]
    update_id: int
    body: dict[str, Any]
    message_id: int
    published_at: datetime
    edited_at: datetime | None
    municipality: str | None
    raw_text: str  # as sent, "" when there is none
    text: str  # with the URLs of its text links
    geo: Geo | None
    place_line: str  # a venue's title and address
    attachments: tuple[Attachment, ...]

    @classmethod
    def of(cls, update: dict[str, Any], kind: str, municipality: str | None) -> _Message:
        body = update[kind]
        message_id, date = body.get("message_id"), body.get("date")
        if not _is_int(message_id):
            raise _Unreadable("a message without an integer message_id")
        if not _is_int(date):
            raise _Unreadable("a message without an integer date")
        edit_date = body.get("edit_date")
        if MESSAGE_KINDS[kind] and not _is_int(edit_date):
            raise _Unreadable("an edited message without an integer edit_date")
        field_name, entities = ("text", "entities") if "text" in body else ("caption", "caption_entities")
        raw = body.get(field_name)
        if raw is not None and not isinstance(raw, str):
            raise _Unreadable(f"{field_name} is {type(raw).__name__}, not a string")
        raw = raw or ""
        try:
            return cls(
                update=update,
                update_id=int(update["update_id"]),
                body=body,
                message_id=message_id,
                published_at=_time(date),
                edited_at=_time(edit_date) if MESSAGE_KINDS[kind] and _is_int(edit_date) else None,
                municipality=municipality,
                raw_text=raw,
                text=with_link_urls(raw, body.get(entities)),
                geo=_geo(body),
                place_line=_place_line(body.get("venue")),
                attachments=tuple(_attachments(body)),
            )
        except (TypeError, ValueError, OverflowError, OSError) as exc:
            raise _Unreadable(f"{type(exc).__name__}: {exc}") from exc

    @property
    def chat(self) -> dict[str, Any]:
        chat: dict[str, Any] = self.body["chat"]
        return chat

    @property
    def chat_id(self) -> str:
        return str(self.chat["id"])

    @property
    def private(self) -> bool:
        return self.chat.get("type") == "private"

    @property
    def author(self) -> str | None:
        return _author(self.body)

    @property
    def album(self) -> str | None:
        """The album (``media_group_id``) this new message is an item of."""
        group = self.body.get("media_group_id")
        return group if isinstance(group, str) and group and self.edited_at is None else None

    @property
    def place_only(self) -> bool:
        """A shared location or venue and nothing else."""
        return self.geo is not None and not self.raw_text.strip() and not self.attachments

    @property
    def has_content(self) -> bool:
        return bool(self.raw_text.strip() or self.attachments or self.geo is not None)

    def replies_to(self, message_ids: Iterable[int]) -> bool:
        reply = self.body.get("reply_to_message")
        return isinstance(reply, dict) and reply.get("message_id") in set(message_ids)


@dataclass
class _Draft:
    """One post to be: a message or an album's items, and the bare locations its sender sent right after."""

    items: list[_Message]
    places: list[_Message] = field(default_factory=list)

    @property
    def head(self) -> _Message:
        """The item whose id and text the post has: the one with the caption (albums), else the first."""
        return next((item for item in self.items if item.raw_text.strip()), self.items[0])

    @property
    def geo(self) -> Geo | None:
        return next((m.geo for m in (*self.items, *self.places) if m.geo is not None), None)

    @property
    def place_lines(self) -> list[str]:
        return [m.place_line for m in (*self.items, *self.places) if m.place_line]

    def takes_place(self, place: _Message) -> bool:
        """Is ``place`` (a bare location of the same sender in the same chat) where this post is?"""
        if self.geo is not None or self.head.edited_at is not None:
            return False
        ids = [m.message_id for m in self.items]
        after = (place.published_at - max(m.published_at for m in self.items)).total_seconds()
        return place.replies_to(ids) or 0 <= after <= PLACE_FOLLOWS_WITHIN


def _skip_reason(message: _Message) -> SkipReason | None:
    """Why a readable message is not a post of its own, or None when it is one."""
    body = message.body
    if body.get("is_automatic_forward") is True:
        return SkipReason.FOLDED  # the channel post itself is the post
    if SERVICE_FIELDS & body.keys():
        return SkipReason.SERVICE_MESSAGE
    sender = body.get("from")
    if "sender_chat" not in body and isinstance(sender, dict) and sender.get("is_bot") is True:
        return SkipReason.NOT_RESIDENT  # another bot in the chat (moderation, weather)
    if not message.has_content:
        return SkipReason.UNSUPPORTED if UNREAD_CONTENT & body.keys() else SkipReason.EMPTY
    if message.edited_at is not None and (message.place_only or ("media_group_id" in body and not message.raw_text)):
        return SkipReason.FOLDED  # a live location moving, an album's photo replaced: the post stands as it is
    if _bare_command(message.raw_text, body.get("entities")) and not message.attachments and message.geo is None:
        return SkipReason.SERVICE_MESSAGE  # /start, /help: the bot's buttons, not a resident's words
    return None


def _compose(messages: list[_Message]) -> tuple[list[_Draft], list[Skipped]]:
    """The page's posts to be: an album's items together, a bare location with its sender's post just before
    it. What is folded into another post (each item but the head, each place) is returned as a skip."""
    drafts: list[_Draft] = []
    albums: dict[tuple[str, str], _Draft] = {}
    latest: dict[tuple[str, str | None], _Draft] = {}  # each sender's latest new post, per chat
    for message in messages:
        album = (message.chat_id, message.album) if message.album is not None else None
        if album is not None and album in albums:
            albums[album].items.append(message)
            continue
        sender = (message.chat_id, message.author)
        target = latest.get(sender)
        if message.place_only and message.edited_at is None and target is not None and target.takes_place(message):
            target.places.append(message)
            continue
        draft = _Draft([message])
        drafts.append(draft)
        if album is not None:
            albums[album] = draft
        if message.edited_at is None and message.author is not None:
            latest[sender] = draft
    folded = [_skip(m.update_id, SkipReason.FOLDED) for d in drafts for m in (*d.items, *d.places) if m is not d.head]
    return drafts, folded


def _album_safe_end(updates: list[Any]) -> int:
    """Where a full page is cut so that an album it may end inside comes whole on the next page: before the first
    item of any album with an item among the page's last ``ALBUM_MAX_ITEMS`` updates. The whole page when there is
    none, or when the cut would leave nothing (the page could then never move on)."""
    open_albums = {_album_key(u) for u in updates[-ALBUM_MAX_ITEMS:]} - {None}
    if not open_albums:
        return len(updates)
    cut = next(i for i, update in enumerate(updates) if _album_key(update) in open_albums)
    return cut or len(updates)


def _album_key(update: Any) -> tuple[Any, str] | None:
    """(chat id, media_group_id) of a new message that is an album's item; None for anything else, broken too."""
    if not isinstance(update, dict):
        return None
    message = update.get("message", update.get("channel_post"))
    if not isinstance(message, dict) or not isinstance(message.get("chat"), dict):
        return None
    group = message.get("media_group_id")
    return (message["chat"].get("id"), group) if isinstance(group, str) and group else None


def _answer_target(message: _Message) -> ReplyTarget | None:
    """Where the answer to a resident who wrote to the bot goes: their chat, as a reply to their message."""
    if not message.private:
        return None
    return ReplyTarget(channel=REPLY_CHANNEL, chat_id=message.chat_id, message_id=str(message.message_id))


def _thread(message: _Message) -> tuple[str, str, str | None]:
    """(community, post id, parent post id). A comment under a channel post (a reply to its automatic forward in
    the discussion group) belongs to the channel post, keyed like a VK comment."""
    reply = message.body.get("reply_to_message")
    origin = _channel_origin(reply) if isinstance(reply, dict) and reply.get("is_automatic_forward") is True else None
    if origin is not None:
        channel_id, channel_post = origin
        return str(channel_id), f"{channel_post}_{message.message_id}", str(channel_post)
    return message.chat_id, str(message.message_id), _parent(message.body)


def _channel_origin(message: dict[str, Any]) -> tuple[int, int] | None:
    """The channel post a forward copies: ``forward_origin`` (Bot API 7.0+) or the older ``forward_from_chat`` and
    ``forward_from_message_id``."""
    origin = message.get("forward_origin")
    if isinstance(origin, dict) and origin.get("type") == "channel" and isinstance(origin.get("chat"), dict):
        chat_id, message_id = origin["chat"].get("id"), origin.get("message_id")
    else:
        chat = message.get("forward_from_chat")
        chat_id = chat.get("id") if isinstance(chat, dict) else None
        message_id = message.get("forward_from_message_id")
    return (chat_id, message_id) if _is_int(chat_id) and _is_int(message_id) else None


def _forwarded_from(message: dict[str, Any]) -> RepostOrigin | None:
    """The channel post a forward copies, so it is published once however it is seen."""
    origin = _channel_origin(message)
    if origin is None:
        return None
    channel_id, message_id = origin
    forward_origin = message.get("forward_origin")
    named = forward_origin.get("chat") if isinstance(forward_origin, dict) else message.get("forward_from_chat")
    chat = named if isinstance(named, dict) else {"id": channel_id, "type": "channel"}
    return RepostOrigin(
        source="telegram",
        community=str(channel_id),
        post_id=str(message_id),
        author_id=str(channel_id),
        url=message_url(chat, message_id),
    )


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


def with_link_urls(text: str, entities: Any) -> str:
    """``text`` with each ``text_link`` entity's URL after its words: «тут (https://yandex.ru/maps/...)», so a link
    behind a word is not lost. Entity offsets count UTF-16 code units (an emoji is two), hence the re-encoding;
    a URL the words already show is not repeated, and an entity outside the text is left out."""
    if not isinstance(entities, list):
        return text
    links = [
        (e["offset"], e["offset"] + e["length"], e["url"])
        for e in entities
        if isinstance(e, dict)
        and e.get("type") == "text_link"
        and _is_int(e.get("offset"))
        and _is_int(e.get("length"))
        and isinstance(e.get("url"), str)
        and e["url"]
    ]
    if not links:
        return text
    units = text.encode("utf-16-le", "surrogatepass")
    for start, end, url in sorted(links, key=lambda link: link[1], reverse=True):  # from the end: offsets hold
        if start < 0 or end <= start or end * 2 > len(units):
            continue
        words = units[start * 2 : end * 2].decode("utf-16-le", "surrogatepass")
        if url in words:
            continue
        units = units[: end * 2] + f" ({url})".encode("utf-16-le") + units[end * 2 :]
    return units.decode("utf-16-le", "surrogatepass")


class _Unreadable(Exception):
    pass


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _skip(update_id: int, reason: SkipReason) -> Skipped:
    return Skipped(key=str(update_id), reason=reason)


def _time(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, tz=UTC)


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


def _bare_command(text: str, entities: Any) -> bool:
    """A message that is only a bot command (``/start``, ``/help@otklik_bot``; ``/start`` with a deep-link
    parameter too): a button the resident pressed, not words."""
    if not isinstance(entities, list) or not entities or not isinstance(entities[0], dict):
        return False
    first = entities[0]
    if first.get("type") != "bot_command" or first.get("offset") != 0 or not _is_int(first.get("length")):
        return False
    command, _, rest = text.partition(" ")
    return not rest.strip() or command.split("@")[0].lower() == "/start"


def _geo(message: dict[str, Any]) -> Geo | None:
    """Where the message says it is: its ``location`` (a venue's is there too), else the venue's own."""
    venue = message.get("venue")
    for location in (message.get("location"), venue.get("location") if isinstance(venue, dict) else None):
        if isinstance(location, dict) and "latitude" in location and "longitude" in location:
            return Geo(lat=float(location["latitude"]), lon=float(location["longitude"]))
    return None


def _place_line(venue: Any) -> str:
    """A venue's title and address, as a line of the post's text: what a person and the gazetteer read."""
    if not isinstance(venue, dict):
        return ""
    parts = [venue.get(key) for key in ("title", "address")]
    named = ", ".join(part.strip() for part in parts if isinstance(part, str) and part.strip())
    return PLACE_LINE + named if named else ""


def _attachments(message: dict[str, Any]) -> list[Attachment]:
    found = []
    sizes = message.get("photo")
    if isinstance(sizes, list):
        usable = [s for s in sizes if isinstance(s, dict) and s.get("file_id")]
        if usable:
            largest = max(
                usable, key=lambda s: (_number(s.get("width")) * _number(s.get("height")), _number(s.get("file_size")))
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
