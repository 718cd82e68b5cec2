"""ingest: fetch new posts from every configured source and publish each post once.

Per source, in order: skip it while it is stopped (a person must act); fetch what is newer than its cursor;
quarantine items that cannot be read; count by its reason each item that is not a post on purpose (a service
message, an album's later photo); publish the posts no other path has published yet (the same post seen
on a wall, in a search and through the Callback API is published once); only then move the cursor. One
failing source does not stop the others, and a run stops starting new sources when its time budget is spent
(the least recently run sources go first next time, so every source gets its turn).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.contracts import PostFetchedV1
from shared.domain.errors import SourceAccessError
from shared.domain.models import Post
from shared.logs import redact
from shared.ports import (
    Clock,
    CursorStore,
    MarkerSet,
    Publisher,
    Quarantine,
    QuarantinedMessage,
    SourceConnector,
    SourceHealthStore,
)

log = logging.getLogger(__name__)
# A source that keeps answering "more" (one page per fetch) gets at most this many batches per run.
MAX_ROUNDS_PER_SOURCE = 20


@dataclass(frozen=True)
class WatchedSource:
    connector: SourceConnector
    fingerprint: str = field(default="", metadata={"doc": "changes when its config or credentials change"})

    @property
    def source_id(self) -> str:
        return self.connector.source_id


@dataclass
class SourceReport:
    source_id: str
    fetched: int = 0
    published: int = 0
    duplicates: int = 0
    skipped: int = 0
    quarantined: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    status: str = "ok"  # ok | failing | stopped | skipped
    error: str | None = None
    action: str | None = None


@dataclass
class IngestReport:
    sources: list[SourceReport] = field(default_factory=list)

    @property
    def published(self) -> int:
        return sum(s.published for s in self.sources)

    @property
    def accounted(self) -> bool:
        """Every item the sources answered is a post, a duplicate, a named skip or a quarantine record."""
        return all(s.fetched == s.published + s.duplicates + s.skipped + s.quarantined for s in self.sources)

    @property
    def failed(self) -> list[str]:
        return [s.source_id for s in self.sources if s.error]


class PostIntake:
    """Publish posts that no path has published before; remember them once Pub/Sub has them."""

    def __init__(self, published: MarkerSet, publisher: Publisher, topic: str, clock: Clock) -> None:
        self.published = published
        self.publisher = publisher
        self.topic = topic
        self.clock = clock

    def publish(self, posts: Sequence[Post]) -> tuple[int, int]:
        """Returns (published, duplicates). Raises if Pub/Sub did not take them (nothing is remembered then)."""
        unique: dict[str, Post] = {}
        for post in posts:
            unique.setdefault(post.intake_key, post)
        unseen = self.published.unseen(list(unique))
        fresh = [p for key, p in unique.items() if key in unseen]
        if fresh:
            now = self.clock()
            self.publisher.publish(self.topic, [PostFetchedV1(post=p, fetched_at=now) for p in fresh])
            # A crash before this line republishes next time; classify's deterministic ids absorb it.
            self.published.mark([p.intake_key for p in fresh], now)
        return len(fresh), len(posts) - len(fresh)


class IngestService:
    def __init__(
        self,
        sources: Sequence[WatchedSource],
        cursors: CursorStore,
        intake: PostIntake,
        quarantine: Quarantine,
        health: SourceHealthStore,
        clock: Clock,
        budget: timedelta = timedelta(minutes=4),
    ) -> None:
        self.sources = list(sources)
        self.cursors = cursors
        self.intake = intake
        self.quarantine = quarantine
        self.health = health
        self.clock = clock
        self.budget = budget
        self.started = clock()

    def run(self) -> IngestReport:
        report = IngestReport()
        started = self.started = self.clock()
        records = {s.source_id: self.health.get(s.source_id) or {} for s in self.sources}
        never = datetime.min.replace(tzinfo=started.tzinfo)
        ordered = sorted(self.sources, key=lambda s: records[s.source_id].get("last_run_at") or never)
        for source in ordered:
            if self.clock() - started > self.budget:
                report.sources.append(SourceReport(source.source_id, status="skipped", error="time budget spent"))
                continue
            report.sources.append(self._ingest_one(source, records[source.source_id]))
        for rep in report.sources:
            log.info("ingested source", extra={"json_fields": {"ingest": rep.__dict__}})
        return report

    def _ingest_one(self, source: WatchedSource, record: dict[str, Any]) -> SourceReport:
        rep = SourceReport(source.source_id)
        if record.get("status") == "stopped" and record.get("fingerprint") == source.fingerprint:
            rep.status, rep.error, rep.action = "skipped", f"stopped: {record.get('error')}", record.get("action")
            return rep
        now = self.clock()
        try:
            for _ in range(MAX_ROUNDS_PER_SOURCE):
                more = self._one_batch(source, rep, now)
                if not more or self.clock() - self.started > self.budget:
                    break
        except SourceAccessError as exc:
            # Errors are kept in the health record and the run's report: masked like a log line (shared/logs.py).
            rep.status, rep.error, rep.action = "stopped", redact(str(exc)), exc.action
            log.error("source %s stopped: %s. To do: %s", source.source_id, rep.error, exc.action)
        except Exception as exc:
            rep.status, rep.error = "failing", redact(f"{type(exc).__name__}: {exc}")
            log.exception("source %s failed", source.source_id)
        self.health.set(source.source_id, _health(record, rep, source.fingerprint, now))
        return rep

    def _one_batch(self, source: WatchedSource, rep: SourceReport, now: datetime) -> bool:
        result = source.connector.fetch(self.cursors.get(source.source_id))
        rep.fetched += len(result.posts) + len(result.rejected) + len(result.skipped)
        for skip in result.skipped:
            rep.skipped_by_reason[skip.reason.value] = rep.skipped_by_reason.get(skip.reason.value, 0) + 1
        rep.skipped += len(result.skipped)
        for bad in result.rejected:
            self.quarantine.put(
                QuarantinedMessage(
                    id=f"ingest.{source.source_id}.{bad.key}",
                    stage="ingest",
                    reason=redact(bad.reason),
                    payload=bad.payload,
                    attributes={"source_id": source.source_id},
                    received_at=now,
                )
            )
        rep.quarantined += len(result.rejected)
        published, duplicates = self.intake.publish(result.posts)
        rep.published += published
        rep.duplicates += duplicates
        # Only now: a crash before this line refetches the same posts next time.
        self.cursors.set(source.source_id, result.cursor)
        return result.more


def _health(before: dict[str, Any], rep: SourceReport, fingerprint: str, now: datetime) -> dict[str, Any]:
    failures = 0 if rep.status == "ok" else int(before.get("consecutive_failures", 0)) + 1
    record = {
        "status": rep.status,
        "fingerprint": fingerprint,
        "last_run_at": now,
        "last_success_at": now if rep.status == "ok" else before.get("last_success_at"),
        "consecutive_failures": failures,
        "error": rep.error,
        "action": rep.action,
        "last_counts": {
            "fetched": rep.fetched,
            "published": rep.published,
            "duplicates": rep.duplicates,
            "skipped": rep.skipped,
            "quarantined": rep.quarantined,
        },
    }
    return record
