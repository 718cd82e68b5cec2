"""The city's bot in the MAX messenger through the MAX Bot API's long polling, ``GET /updates``, over httpx.

What is taken from the published schema (github.com/max-messenger/api-schema, ``schema.yaml``, OpenAPI 0.0.33):

- the bot token goes in the ``Authorization`` header as it is, without ``Bearer`` (``securitySchemes.access_token``);
  an error is its HTTP status with ``{"code": "...", "message": "..."}`` (``Error``): 401 no or a wrong token, 403
  no access, 405 not allowed, 429 too many requests, 500 and 503;
- ``GET /updates``: ``limit`` 1-1000 (default 100), ``timeout`` 0-90 s of long polling (default 30), ``marker``,
  ``types`` (comma-separated update kinds); the answer is ``UpdateList`` ``{"updates": [...], "marker": N}``, whose
  ``marker`` points at the next update. Asking with a ``marker`` *commits* every update before it (MAX forgets
  them); without one, the bot gets everything not committed yet;
- ``Update``: ``update_type`` and ``timestamp`` (milliseconds, like every MAX time). ``message_created`` and
  ``message_edited`` carry a ``Message``: ``sender`` (``User``: ``user_id``, ``first_name``, ``is_bot``; null for a
  channel's own posts), ``recipient`` (``chat_id``, ``chat_type`` dialog / chat / channel), ``timestamp``, ``link``
  (``LinkedMessage``: ``type`` forward or reply, ``sender``, ``chat_id``, ``message`` a ``MessageBody``), ``body``
  (``MessageBody``: ``mid``, ``seq``, ``text``, ``attachments``, ``markup``; null when the message only forwards
  another) and ``url`` (public chats and channels only);
- attachments by ``type``: ``image`` (``payload`` ``photo_id``, ``token``, ``url``), ``video`` and ``audio``
  (``payload`` ``url``, ``token``), ``file`` (``payload`` ``url``, ``token``; ``filename``, ``size``), ``share`` (a
  link preview, ``payload.url``), ``location`` (``latitude``, ``longitude`` beside ``type``, not in a payload),
  ``sticker``, ``contact``, ``inline_keyboard``; a ``link`` element of ``markup`` carries the ``url`` behind words.

What a deployment must know (from the schema's descriptions, not checkable here): in group chats and channels the
bot receives messages only as an administrator with the ``read_all_messages`` permission. MAX calls long polling
"not recommended for production": limited in speed and in how long updates are kept (how long is not published),
and impossible while a webhook subscription exists (``GET /updates`` then answers 405).

Cursor: ``{"marker": N}``, the marker of the last answer. Asking with it commits the updates before it on MAX's
side, so one ``fetch`` reads one page only and says ``more`` when the page was full: the ingest service publishes
the page and stores the cursor before it fetches again. Nothing is committed to MAX before it is published.
"""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeGuard

import httpx

from shared import logs
from shared.adapters.answers import send
from shared.adapters.politeness import Polite
from shared.domain.errors import PermanentError, SourceAccessError, TransientError
from shared.domain.models import Attachment, Geo, Post, ReplyTarget, RepostOrigin
from shared.ports import FetchResult, Rejected, Skipped, SkipReason
from shared.source_config import MaxSource

PAGE_SIZE = 100  # the schema's default ``limit``; one page is published before the next is asked for
MESSAGE_KINDS = ("message_created", "message_edited")
# Asked for with the messages so that the ingest report counts them: they tell when the bot joins or leaves a
# chat and when a resident opens a dialog. Callbacks, deletions and dialog settings are not asked for.
MEMBERSHIP_KINDS = ("bot_started", "bot_added", "bot_removed", "user_added", "user_removed")
UPDATE_TYPES = MESSAGE_KINDS + MEMBERSHIP_KINDS
SERVICE_KINDS = frozenset(
    {
        *MEMBERSHIP_KINDS,
        "bot_stopped",
        "chat_title_changed",
        "bot_admin_permissions_changed",
        "dialog_cleared",
        "dialog_removed",
        "dialog_muted",
        "dialog_unmuted",
    }
)
CHAT_TYPES = ("dialog", "chat", "channel")
# Attachment type -> Attachment.kind; stickers, contact cards and keyboards are not a resident's evidence.
ATTACHMENT_KINDS = {"image": "photo", "video": "video", "audio": "audio", "file": "file", "share": "link"}
# A resident writing to the bot sends the words, the photos and the place as separate messages, moments apart.
PIECE_WINDOW = timedelta(minutes=5)
REPLY_CHANNEL = "max_chat"

UNAUTHORIZED_ACTION = (
    "the bot token is wrong or was revoked: replace OTKLIK_MAX_BOT_TOKEN (Secret Manager) with the token the MAX "
    "partner platform (business.max.ru, the bot's Integration section) shows for the bot — then the source "
    "resumes by itself"
)
FORBIDDEN_ACTION = (
    "MAX refuses the bot (blocked, or its access to the Bot API suspended): check the bot's status on "
    "business.max.ru and with MAX support — then the source resumes by itself"
)
NOT_FOUND_ACTION = (
    "MAX does not know this address: OTKLIK_MAX_API_BASE is wrong (https://platform-api2.max.ru, or "
    "https://platform-api2.max.ru as the schema names it); fix it — then the source resumes by itself"
)
WEBHOOK_ACTION = (
    "the bot has a webhook subscription, and MAX then refuses long polling: delete it (DELETE /subscriptions?url=...) "
    "or give Otklik a bot of its own"
)


class MaxApiError(PermanentError):
    """A Bot API answer that retrying will not fix and that needs no person (a bad parameter, a broken page)."""


class MaxConnector:
    """Residents' private dialogs with the bot (``config.private_chats``) and the chats and channels of
    ``config.chats``, through one bot's update queue. Updates from other chats are skipped with their reason and
    still move the cursor; edits come as posts with ``edited_at``."""

    def __init__(self, config: MaxSource, http: httpx.Client, api_base: str, bot_token: str, polite: Polite) -> None:
        self.config = config
        self.http = http
        self.polite = polite
        self.source_id = config.id
        self._token = bot_token
        self._endpoint = f"{api_base.rstrip('/')}/updates"
        logs.hide(bot_token)  # never in a URL, but an error page might echo the header

    def fetch(self, cursor: dict[str, Any] | None) -> FetchResult:
        marker = cursor.get("marker") if cursor else None
        params: dict[str, Any] = {"limit": PAGE_SIZE, "timeout": 0, "types": ",".join(UPDATE_TYPES)}
        if _is_int(marker):
            params["marker"] = marker
        updates, next_marker = self.polite.call(functools.partial(self._get_updates, params))
        read: list[Post] = []
        skipped: list[Skipped] = []
        rejected: list[Rejected] = []
        for update in updates:
            outcome = self._read(update)
            if isinstance(outcome, Post):
                read.append(outcome)
            elif isinstance(outcome, Skipped):
                skipped.append(outcome)
            else:
                rejected.append(outcome)
        posts, folded = fold_dialog_pieces(read)
        posts.sort(key=lambda p: (p.published_at, p.edited_at or p.published_at))  # an edit after its original
        return FetchResult(
            posts=posts,
            cursor={"marker": next_marker} if next_marker is not None else dict(cursor or {}),
            rejected=rejected,
            skipped=skipped + folded,
            more=len(updates) >= PAGE_SIZE,
        )

    # --- the HTTP call ----------------------------------------------------------------------------------

    def _get_updates(self, params: dict[str, Any]) -> tuple[list[Any], int | None]:
        try:
            response, raw = send(
                self.http, "GET", self._endpoint, what="MAX GET /updates", params=params, headers=self._headers()
            )
        except httpx.TransportError as exc:
            raise TransientError(f"MAX GET /updates: {type(exc).__name__}: {self._scrub(str(exc))}") from None
        body = _json(raw)
        if response.status_code >= 400:
            self._raise_error(response, body)
        if not isinstance(body, dict):
            # A proxy's or a captive portal's page: MAX itself always answers JSON.
            raise TransientError(f"MAX GET /updates: HTTP {response.status_code}, the answer is not a JSON object")
        updates, marker = body.get("updates"), body.get("marker")
        if not isinstance(updates, list):
            raise MaxApiError(f"MAX GET /updates: updates is {type(updates).__name__}, not a list")
        if len(updates) > PAGE_SIZE:
            raise MaxApiError(f"MAX GET /updates: {len(updates)} updates in a page of at most {PAGE_SIZE}")
        if marker is not None and not _is_int(marker):
            raise MaxApiError(f"MAX GET /updates: marker is {type(marker).__name__}, not an integer")
        return updates, marker

    def _headers(self) -> dict[str, str]:
        return {"Authorization": self._token}

    def _raise_error(self, response: httpx.Response, body: Any) -> NoReturn:
        status = response.status_code
        details = body if isinstance(body, dict) else {}
        code = details.get("code") or response.reason_phrase or "no code"
        text = self._scrub(f"{code}: {details.get('message') or 'no message'}")
        message = f"MAX GET /updates: HTTP {status} {text}"
        if status == 429 or status >= 500:
            raise TransientError(message, _retry_after(response))
        if status == 401:
            raise SourceAccessError(message, UNAUTHORIZED_ACTION)
        if status == 403:
            raise SourceAccessError(message, FORBIDDEN_ACTION)
        if status == 404:
            raise SourceAccessError(message, NOT_FOUND_ACTION)
        if status == 405:
            raise SourceAccessError(message, WEBHOOK_ACTION)
        raise MaxApiError(message)

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "<bot token>") if self._token else text

    # --- Update -> Post, Skipped or Rejected ------------------------------------------------------------

    def _read(self, update: Any) -> Post | Skipped | Rejected:
        if not isinstance(update, dict):
            return _rejected(update, "an update that is not an object")
        kind = update.get("update_type")
        if not isinstance(kind, str):
            return _rejected(update, "an update without update_type")
        if kind in SERVICE_KINDS:
            return Skipped(_key(update), SkipReason.SERVICE_MESSAGE)
        if kind not in MESSAGE_KINDS:
            return Skipped(_key(update), SkipReason.UNSUPPORTED)  # asked for or not, MAX may send any kind
        try:
            return self._message(update, kind)
        except _Unreadable as exc:
            return _rejected(update, str(exc))
        except (TypeError, ValueError, OverflowError, OSError) as exc:  # Post's own checks: a latitude of 91
            return _rejected(update, f"{type(exc).__name__}: {exc}")

    def _message(self, update: dict[str, Any], kind: str) -> Post | Skipped:
        message = update.get("message")
        if message is None:
            # MAX sends message_created without its message for what the Bot API cannot show (a voice message to a
            # bot, for one): kept in quarantine so that someone can see what residents send.
            raise _Unreadable(f"{kind} without message")
        if not isinstance(message, dict):
            raise _Unreadable("the message is not an object")
        chat_id, chat_type = _recipient(message)
        direct = chat_type == "dialog"
        if (direct and not self.config.private_chats) or (not direct and chat_id not in self.config.chats):
            return Skipped(_key(update), SkipReason.CHAT_NOT_CONFIGURED)
        sender = message.get("sender")
        if isinstance(sender, dict) and sender.get("is_bot") is True:
            return Skipped(_key(update), SkipReason.NOT_RESIDENT)  # the bot's own answers, other bots
        content = _content(message, direct)
        if not content.text.strip() and not content.attachments and content.geo is None:
            return Skipped(_key(update), SkipReason.EMPTY)  # a sticker, a contact card, an empty forward
        published_at = _time(message.get("timestamp"), "the message's timestamp")
        post_id = content.mid or _forward_id(message, published_at)
        return Post(
            source="max",
            community=str(chat_id),
            post_id=post_id,
            author_id=_author(sender, chat_id),
            text=content.text,
            published_at=published_at,
            url=_url(message, chat_id, post_id),
            geo=content.geo,
            attachments=tuple(content.attachments),
            parent_post_id=content.parent,
            source_id=self.config.id,
            municipality_hint=self._municipality(chat_id, direct),
            repost_of=content.origin,
            direct=direct,
            reply_to=_reply_target(chat_id, content.mid) if direct else None,
            edited_at=_time(update.get("timestamp"), "the update's timestamp") if kind == "message_edited" else None,
        )

    def _municipality(self, chat_id: int, direct: bool) -> str | None:
        if direct:
            return self.config.private_chats_municipality or self.config.municipality
        return self.config.chats.get(chat_id) or self.config.municipality


class _Unreadable(Exception):
    pass


class _Content:
    """What a message says: its own body, and the body of the message it forwards after it."""

    def __init__(self) -> None:
        self.mid: str | None = None
        self.text = ""
        self.attachments: list[Attachment] = []
        self.geo: Geo | None = None
        self.parent: str | None = None
        self.origin: RepostOrigin | None = None

    def add(self, body: dict[str, Any]) -> None:
        text = _text(body)
        self.text = f"{self.text}\n\n{text}" if self.text and text else self.text or text
        for attachment in _attachments_of(body):
            if attachment.get("type") == "location":
                self.geo = self.geo or _geo(attachment)
            else:
                found = _attachment(attachment)
                if found is not None:
                    self.attachments.append(found)


def _content(message: dict[str, Any], direct: bool) -> _Content:
    content = _Content()
    body = message.get("body")
    if body is not None:
        if not isinstance(body, dict):
            raise _Unreadable("the message's body is not an object")
        mid = body.get("mid")
        if not isinstance(mid, str) or not mid:
            raise _Unreadable("a message body without mid")
        content.mid = mid
        content.add(body)
    link = message.get("link")
    if link is None:
        if body is None:
            raise _Unreadable("a message with neither body nor link")
        return content
    if not isinstance(link, dict) or not isinstance(link.get("message"), dict):
        raise _Unreadable("a link without its message")
    linked = link["message"]
    linked_mid = linked.get("mid") if isinstance(linked.get("mid"), str) and linked.get("mid") else None
    if link.get("type") == "reply":
        content.parent = linked_mid
    elif link.get("type") == "forward":
        own_words = bool(content.text.strip())
        content.add(linked)
        content.origin = None if own_words else _origin(link, linked_mid, direct)
    else:
        raise _Unreadable(f"link type {link.get('type')!r} is neither forward nor reply")
    if body is None and linked_mid is None:
        raise _Unreadable("a forward without body whose forwarded message has no mid")
    return content


def _origin(link: dict[str, Any], linked_mid: str | None, direct: bool) -> RepostOrigin | None:
    """The forwarded message of a bare forward (no words of the forwarder's), when MAX says where it was posted:
    then it is the original seen again, published once. A forward with words of its own is a new post quoting
    the original, and so is any forward to the bot: a resident forwarding a message to the city asks for an
    answer of their own (``reply_to``), which must not fold into the original."""
    chat_id = link.get("chat_id")
    if direct or linked_mid is None or not _is_int(chat_id):
        return None
    sender = link.get("sender")
    return RepostOrigin(source="max", community=str(chat_id), post_id=linked_mid, author_id=_author(sender, chat_id))


def _recipient(message: dict[str, Any]) -> tuple[int, str]:
    recipient = message.get("recipient")
    if not isinstance(recipient, dict):
        raise _Unreadable("a message without recipient")
    chat_id, chat_type = recipient.get("chat_id"), recipient.get("chat_type")
    if not _is_int(chat_id):
        raise _Unreadable("a message whose recipient has no integer chat_id")
    if chat_type not in CHAT_TYPES:
        raise _Unreadable(f"chat_type {chat_type!r} is none of {', '.join(CHAT_TYPES)}")
    return chat_id, str(chat_type)


def _text(body: dict[str, Any]) -> str:
    """The text, and the address behind each linked word (``markup`` ``link``) the text does not show itself:
    «тут» linking to a map is where the problem is."""
    text = body.get("text")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise _Unreadable(f"text is {type(text).__name__}, not a string")
    markup = body.get("markup")
    hidden = []
    for element in markup if isinstance(markup, list) else []:
        url = element.get("url") if isinstance(element, dict) and element.get("type") == "link" else None
        if isinstance(url, str) and url and url not in text and url not in hidden:
            hidden.append(url)
    return "\n".join([text, *hidden]) if hidden else text


def _attachments_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    attachments = body.get("attachments")
    if attachments is None:
        return []
    if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
        raise _Unreadable("attachments is not a list of objects")
    return attachments


def _attachment(attachment: dict[str, Any]) -> Attachment | None:
    kind = ATTACHMENT_KINDS.get(str(attachment.get("type")))
    payload = attachment.get("payload")
    if kind is None or not isinstance(payload, dict):
        return None
    url, token = payload.get("url"), payload.get("token")
    if isinstance(url, str) and url:
        return Attachment(kind=kind, url=url)
    if isinstance(token, str) and token:
        return Attachment(kind=kind, url=f"max-{kind}:{token}")  # reusable token; no address given
    return None


def _geo(location: dict[str, Any]) -> Geo:
    lat, lon = location.get("latitude"), location.get("longitude")
    if not _is_number(lat) or not _is_number(lon):
        raise _Unreadable("a location without numeric latitude and longitude")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise _Unreadable(f"a location off the globe: latitude {lat}, longitude {lon}")
    return Geo(lat=float(lat), lon=float(lon))


def _reply_target(chat_id: int, mid: str | None) -> ReplyTarget:
    """Where the answer loop answers a dialog: ``POST /messages?chat_id=`` with a reply ``link`` to ``mid``."""
    return ReplyTarget(channel=REPLY_CHANNEL, chat_id=str(chat_id), message_id=mid)


def _author(sender: Any, chat_id: Any) -> str | None:
    """The user; a channel's own post (no sender) is the channel's."""
    if isinstance(sender, dict) and _is_int(sender.get("user_id")):
        return str(sender["user_id"])
    return str(chat_id) if _is_int(chat_id) else None


def _url(message: dict[str, Any], chat_id: int, post_id: str) -> str:
    """The message's public address when MAX gives one (public chats and channels); otherwise ``max://chat/...``,
    our own address (not a MAX link): dialogs and private chats have no public one."""
    url = message.get("url")
    return url if isinstance(url, str) and url else f"max://chat/{chat_id}/{post_id}"


def _forward_id(message: dict[str, Any], published_at: datetime) -> str:
    """A message that only forwards another has no body and so no mid of its own: named by the forwarded
    message and the time, the same on every read."""
    linked = message["link"]["message"]
    return f"fwd.{int(published_at.timestamp() * 1000)}.{linked['mid']}"


def _time(value: Any, what: str) -> datetime:
    if not _is_int(value):
        raise _Unreadable(f"{what} is not an integer (milliseconds)")
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def fold_dialog_pieces(posts: list[Post]) -> tuple[list[Post], list[Skipped]]:
    """A resident writing to the bot sends the complaint, its photos and the place as messages of their own. A
    dialog message without text (only photos, only a location) joins the nearest message with text of the same
    dialog within ``PIECE_WINDOW`` in this page, before or after it, and is counted as folded. Only in dialogs:
    in a house chat, the photo after a neighbour's words may be someone else's answer."""
    kept: list[Post | None] = []
    folded: list[Skipped] = []
    with_text: dict[str, int] = {}  # dialog -> index in kept of its latest message with text
    waiting: dict[str, list[int]] = {}  # dialog -> pieces that came before any message with text
    for post in posts:
        if not post.direct or post.edited_at is not None:
            kept.append(post)
            continue
        dialog = post.community
        if not post.text.strip():
            target = with_text.get(dialog)
            host = kept[target] if target is not None else None
            if target is not None and host is not None and _close(host, post):
                kept[target] = _joined(host, post)
                folded.append(Skipped(post.post_id, SkipReason.FOLDED))
            else:
                waiting.setdefault(dialog, []).append(len(kept))
                kept.append(post)
            continue
        for index in waiting.pop(dialog, []):
            piece = kept[index]
            if piece is not None and _close(piece, post):
                post = _joined(post, piece)
                kept[index] = None
                folded.append(Skipped(piece.post_id, SkipReason.FOLDED))
        with_text[dialog] = len(kept)
        kept.append(post)
    return [p for p in kept if p is not None], folded


def _close(a: Post, b: Post) -> bool:
    return abs(a.published_at - b.published_at) <= PIECE_WINDOW and a.author_id == b.author_id


def _joined(host: Post, piece: Post) -> Post:
    return host.model_copy(update={"attachments": host.attachments + piece.attachments, "geo": host.geo or piece.geo})


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def _key(update: dict[str, Any]) -> str:
    """What names an update in the report and in quarantine: its kind and message id (and time, for an edit),
    else a digest of the update itself. MAX updates have no id of their own."""
    kind = str(update.get("update_type") or "update")
    message = update.get("message")
    body = message.get("body") if isinstance(message, dict) else None
    mid = body.get("mid") if isinstance(body, dict) else None
    if isinstance(mid, str) and mid and "/" not in mid:
        return f"{kind}.{mid}" if kind == "message_created" else f"{kind}.{mid}.{update.get('timestamp')}"
    return f"{kind}.{_digest(update)}"


def _digest(update: Any) -> str:
    return hashlib.sha256(json.dumps(update, ensure_ascii=False, default=str, sort_keys=True).encode()).hexdigest()[:16]


def _rejected(update: Any, reason: str) -> Rejected:
    key = _key(update) if isinstance(update, dict) else f"update.{_digest(update)}"
    payload = json.dumps(update, ensure_ascii=False, default=str)
    return Rejected(key=key, payload=payload, reason=f"unreadable MAX update: {reason}")
