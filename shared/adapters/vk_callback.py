"""VK Callback API (https://dev.vk.com/ru/api/callback/getting-started): VK pushes a community's new posts and
comments within seconds instead of waiting for the next ingest timer.

Answers ``confirmation`` with the community's code, checks ``secret``, publishes ``wall_post_new`` and
``wall_reply_new`` through ``PostIntake`` (a post a wall fetch already published is not published again) and
answers ``ok``; an ``event_id`` seen before is answered ``ok`` without publishing, since VK repeats events it did
not get ``ok`` for.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any

from shared.adapters.vk import vk_comment, vk_post
from shared.domain.models import Post
from shared.ports import Clock, MarkerSet, Quarantine, QuarantinedMessage
from shared.services.inbox import Answer
from shared.services.ingest import PostIntake
from shared.source_config import VkCallbackSource

log = logging.getLogger(__name__)


class VkCallbackService:
    HANDLED = frozenset({"wall_post_new", "wall_reply_new"})

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
        if body["type"] not in self.HANDLED:
            return Answer(200, "ok")  # other event types are switched on in VK by mistake: nothing to do
        event_id = str(body.get("event_id") or "")
        if event_id and not self.events.unseen([event_id]):
            return Answer(200, "ok")
        try:
            post = self._post(body, community)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            self._quarantine(event_id, body, f"unreadable {body['type']} object: {type(exc).__name__}: {exc}")
            return Answer(200, "ok")  # retrying the same garbage would not help; it is kept with its reason
        self.intake.publish([post])  # raises if Pub/Sub is down: the 500 makes VK retry
        if event_id:
            self.events.mark([event_id], self.clock())
        return Answer(200, "ok")

    @staticmethod
    def _post(body: dict[str, Any], community: VkCallbackSource) -> Post:
        obj = body["object"]
        if not isinstance(obj, dict):
            raise TypeError("object is not a JSON object")
        if body["type"] == "wall_reply_new":
            return vk_comment(obj, community.id, community.municipality)
        return vk_post(obj, community.id, community.municipality)

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
