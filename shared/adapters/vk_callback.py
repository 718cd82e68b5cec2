"""VK Callback API (https://dev.vk.com/ru/api/callback/getting-started): VK pushes a community's new posts,
comments and the messages residents write to it within seconds instead of waiting for the next ingest timer.

Answers ``confirmation`` with the community's code, checks ``secret``, and reads:

- ``wall_post_new`` and ``wall_repost`` (a wall post; a repost carries its original), ``wall_reply_new`` and
  ``wall_reply_restore`` (a comment; its object names the wall as ``post_owner_id``): published as posts;
- ``wall_reply_edit``, ``message_edit`` (and ``wall_post_edit``, should VK ever send it: its schema has no such
  event, wall posts' edits are read by the wall connector): a later version of a post, with ``edited_at``;
- ``message_new``: a resident's message to the community, a post written to the city (``direct``) with what an
  answer in that conversation needs (``reply_to``).

Each goes through ``PostIntake`` (a post a wall fetch already published is not published again) and is answered
``ok``. Nothing is lost without a trace: an object that cannot be read is quarantined with its reason; one that is
not a resident's words (an advertisement, a deleted comment, a sticker, a chat's service message) and every other
event type are logged with the reason, by name. An ``event_id`` seen before is answered ``ok`` without publishing,
since VK repeats events it did not get ``ok`` for.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from shared.adapters.vk import read_item, vk_comment, vk_message, vk_post
from shared.domain.models import Post
from shared.ports import Clock, MarkerSet, Quarantine, QuarantinedMessage, SkipReason
from shared.services.inbox import Answer
from shared.services.ingest import PostIntake
from shared.source_config import VkCallbackSource

log = logging.getLogger(__name__)
Reader = Callable[[dict[str, Any], VkCallbackSource, datetime], Post | SkipReason]


def _wall_post(obj: dict[str, Any], community: VkCallbackSource, now: datetime) -> Post | SkipReason:
    return read_item(obj, lambda item: vk_post(item, community.id, community.municipality))


def _wall_post_edit(obj: dict[str, Any], community: VkCallbackSource, now: datetime) -> Post | SkipReason:
    # A post names its edit time (``edited``): the same edit pushed twice is the same version.
    edited_at = _time_or(obj.get("edited"), now)
    return read_item(obj, lambda item: vk_post(item, community.id, community.municipality, edited_at=edited_at))


def _comment(obj: dict[str, Any], community: VkCallbackSource, now: datetime) -> Post | SkipReason:
    return read_item(obj, lambda item: vk_comment(item, community.id, community.municipality))


def _comment_edit(obj: dict[str, Any], community: VkCallbackSource, now: datetime) -> Post | SkipReason:
    # A comment does not say when it was edited: the event's arrival is the edit's time (a repeat of the same event
    # is caught by its event_id).
    return read_item(obj, lambda item: vk_comment(item, community.id, community.municipality, edited_at=now))


def _message(obj: dict[str, Any], community: VkCallbackSource, now: datetime) -> Post | SkipReason:
    message = obj["message"]  # API 5.103+: {"message": ..., "client_info": ...}
    if not isinstance(message, dict):
        raise TypeError("message is not a JSON object")
    return read_item(message, lambda m: vk_message(m, community.group_id, community.id, community.municipality))


def _message_edit(obj: dict[str, Any], community: VkCallbackSource, now: datetime) -> Post | SkipReason:
    edited_at = _time_or(obj.get("update_time"), now)  # the object is the message itself, as it reads now
    return read_item(
        obj, lambda m: vk_message(m, community.group_id, community.id, community.municipality, edited_at=edited_at)
    )


READERS: dict[str, Reader] = {
    "wall_post_new": _wall_post,
    "wall_repost": _wall_post,
    "wall_post_edit": _wall_post_edit,
    "wall_reply_new": _comment,
    "wall_reply_restore": _comment,
    "wall_reply_edit": _comment_edit,
    "message_new": _message,
    "message_edit": _message_edit,
}


class VkCallbackService:
    HANDLED = frozenset(READERS)

    def __init__(
        self,
        communities: Mapping[int, VkCallbackSource],
        secret: str | None,
        intake: PostIntake,
        events: MarkerSet,
        quarantine: Quarantine,
        clock: Clock,
    ) -> None:
        self.communities = communities
        self.secret = secret
        self.intake = intake
        self.events = events
        self.quarantine = quarantine
        self.clock = clock

    def handle(self, body: Any) -> Answer:
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            return Answer(400, "expected a Callback API event: a JSON object with a type")
        try:
            group_id = int(body.get("group_id"))  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):  # 1e400 is JSON: int(inf)
            return Answer(400, "group_id is missing or not a number")
        community = self.communities.get(group_id)
        if community is None:
            log.warning("Callback API event for unconfigured community %s", group_id)
            return Answer(403, "unknown community")
        if body["type"] == "confirmation":
            return Answer(200, community.confirmation_code)
        presented = str(body.get("secret", "")).encode()  # bytes: compare_digest raises on non-ASCII str
        if self.secret is None or not hmac.compare_digest(presented, self.secret.encode()):
            log.warning("Callback API event with a wrong secret for community %s", group_id)
            return Answer(403, "wrong secret")
        reader = READERS.get(body["type"])
        if reader is None:
            # Switched on in VK's settings by mistake, or not a resident's words (a like, a new member).
            _log_skip(body, SkipReason.UNSUPPORTED)
            return Answer(200, "ok")
        event_id = str(body.get("event_id") or "")
        if event_id and not self.events.unseen([event_id]):
            return Answer(200, "ok")
        try:
            read = self._read(body, community, reader)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            self._quarantine(event_id, body, f"unreadable {body['type']} object: {type(exc).__name__}: {exc}")
            return Answer(200, "ok")  # retrying the same garbage would not help; it is kept with its reason
        if isinstance(read, SkipReason):
            _log_skip(body, read)
        else:
            self.intake.publish([read])  # raises if Pub/Sub is down: the 500 makes VK retry
        if event_id:
            self.events.mark([event_id], self.clock())
        return Answer(200, "ok")

    def _read(self, body: dict[str, Any], community: VkCallbackSource, reader: Reader) -> Post | SkipReason:
        obj = body["object"]
        if not isinstance(obj, dict):
            raise TypeError("object is not a JSON object")
        return reader(obj, community, self.clock())

    def _quarantine(self, event_id: str, body: dict[str, Any], reason: str) -> None:
        safe = {k: v for k, v in body.items() if k != "secret"}
        self.quarantine.put(
            QuarantinedMessage(
                id=f"vk_callback.{event_id or hashlib.sha256(json.dumps(safe, sort_keys=True).encode()).hexdigest()}",
                stage="vk_callback",
                reason=reason,
                payload=json.dumps(safe, ensure_ascii=False, default=str),
                attributes={"group_id": str(body.get("group_id"))},
                received_at=self.clock(),
            )
        )


def _log_skip(body: dict[str, Any], reason: SkipReason) -> None:
    log.info(
        "Callback API event %s skipped: %s",
        body.get("type"),
        reason.russian,
        extra={"json_fields": {"vk_callback": {"type": body.get("type"), "skipped": reason.value}}},
    )


def _time_or(value: Any, default: datetime) -> datetime:
    """A unix time VK sent, or ``default`` when it sent none that can be read."""
    try:
        seconds = int(value)
        return datetime.fromtimestamp(seconds, tz=UTC) if seconds > 0 else default
    except (TypeError, ValueError, OverflowError, OSError):
        return default
