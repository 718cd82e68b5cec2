"""Posts pushed to us by other systems through the ``inbox`` function.

It ends where polling ends, in ``PostIntake``: a post already published is not published again. The caller
gets 202, or a 4xx saying what is wrong with its request (and a bad body is kept in quarantine).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from pydantic import ValidationError

from shared.contracts import InboxPostV1
from shared.domain.models import Attachment, Post
from shared.ports import Clock, Quarantine, QuarantinedMessage
from shared.services.ingest import PostIntake
from shared.source_config import InboxSource


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"

    @staticmethod
    def json(status: int, body: dict[str, Any]) -> Answer:
        return Answer(status, json.dumps(body, ensure_ascii=False), "application/json; charset=utf-8")


class InboxService:
    def __init__(
        self,
        sources: Mapping[str, InboxSource],
        token: str | None,
        intake: PostIntake,
        quarantine: Quarantine,
        clock: Clock,
    ) -> None:
        self.sources = sources
        self.token = token
        self.intake = intake
        self.quarantine = quarantine
        self.clock = clock

    def handle(self, authorization: str | None, body: Any) -> Answer:
        presented = (authorization or "").removeprefix("Bearer ").strip()
        # Bytes: compare_digest raises on non-ASCII str, and a stranger's header must get 401, not 500.
        if self.token is None or not hmac.compare_digest(presented.encode(), self.token.encode()):
            return Answer.json(401, {"error": "missing or wrong bearer token"})
        try:
            item = InboxPostV1.model_validate(body)
        except ValidationError as exc:
            reason = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
            self._quarantine(body, reason)
            return Answer.json(400, {"error": reason})
        source = self.sources.get(item.source_id)
        if source is None:
            return Answer.json(404, {"error": f"no inbox source {item.source_id!r} in sources.yaml"})
        now = self.clock()
        post = Post(
            source="inbox",
            community=source.id,
            post_id=item.post_id,
            author_id=item.author_id,
            text=item.text,
            published_at=item.published_at or now.astimezone(UTC),
            url=item.url or f"inbox:{source.id}/{item.post_id}",
            geo=item.geo,
            attachments=tuple(Attachment(kind="link", url=u) for u in item.attachments),
            source_id=source.id,
            municipality_hint=item.municipality or source.municipality,
        )
        published, _ = self.intake.publish([post])
        return Answer.json(202, {"incident_id": post.incident_id, "duplicate": published == 0})

    def _quarantine(self, body: Any, reason: str) -> None:
        payload = json.dumps(body, ensure_ascii=False, default=str, sort_keys=True)
        key = hashlib.sha256(payload.encode()).hexdigest()[:32]
        self.quarantine.put(
            QuarantinedMessage(
                id=f"inbox.{key}",
                stage="inbox",
                reason=reason,
                payload=payload,
                attributes={},
                received_at=self.clock(),
            )
        )
