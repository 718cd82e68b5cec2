"""ingest: fetch new posts from every configured source and publish them, moving each cursor only after its
posts are safely published. One failing source does not stop the others."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from shared.contracts import PostFetchedV1
from shared.ports import Clock, CursorStore, Publisher, Quarantine, QuarantinedMessage, SourceConnector

log = logging.getLogger(__name__)


@dataclass
class SourceReport:
    source_id: str
    fetched: int = 0
    published: int = 0
    quarantined: int = 0
    error: str | None = None


@dataclass
class IngestReport:
    sources: list[SourceReport] = field(default_factory=list)

    @property
    def published(self) -> int:
        return sum(s.published for s in self.sources)

    @property
    def failed(self) -> list[str]:
        return [s.source_id for s in self.sources if s.error]


class IngestService:
    def __init__(
        self,
        connectors: list[SourceConnector],
        cursors: CursorStore,
        publisher: Publisher,
        quarantine: Quarantine,
        topic: str,
        clock: Clock,
    ) -> None:
        self.quarantine = quarantine
        self.connectors = connectors
        self.cursors = cursors
        self.publisher = publisher
        self.topic = topic
        self.clock = clock

    def run(self) -> IngestReport:
        report = IngestReport()
        for connector in self.connectors:
            report.sources.append(self._ingest_one(connector))
        return report

    def _ingest_one(self, connector: SourceConnector) -> SourceReport:
        rep = SourceReport(connector.source_id)
        try:
            result = connector.fetch(self.cursors.get(connector.source_id))
            rep.fetched = len(result.posts) + len(result.rejected)
            now = self.clock()
            for bad in result.rejected:
                self.quarantine.put(
                    QuarantinedMessage(
                        id=f"ingest.{connector.source_id}.{bad.key}",
                        stage="ingest",
                        reason=bad.reason,
                        payload=bad.payload,
                        attributes={"source_id": connector.source_id},
                        received_at=now,
                    )
                )
            rep.quarantined = len(result.rejected)
            if result.posts:
                messages = [PostFetchedV1(post=p, fetched_at=now) for p in result.posts]
                self.publisher.publish(self.topic, messages)
                rep.published = len(messages)
            # Only now: a crash before this line refetches the same posts next time (classify dedupes them).
            self.cursors.set(connector.source_id, result.cursor)
        except Exception as exc:
            rep.error = f"{type(exc).__name__}: {exc}"
            log.exception("source %s failed", connector.source_id)
        log.info(
            "ingested source",
            extra={
                "json_fields": {
                    "source_id": rep.source_id,
                    "fetched": rep.fetched,
                    "published": rep.published,
                    "quarantined": rep.quarantined,
                    "error": rep.error,
                }
            },
        )
        return rep
