"""IngestService's policies with in-memory ports: publish once across paths, stop sources that need a person,
resume them when their configuration or credentials change, share the time budget fairly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.domain.errors import SourceAccessError, TransientError
from shared.ports import FetchResult
from shared.services.ingest import MAX_ROUNDS_PER_SOURCE, IngestService, PostIntake, WatchedSource
from tests.builders import make_post
from tests.fakes import ListConnector, MemoryCursors, MemoryHealth, MemoryMarkers, MemoryPublisher, MemoryQuarantine

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self, step: timedelta = timedelta(0)) -> None:
        self.now = T0
        self.step = step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


class Failing:
    def __init__(self, source_id: str, error: Exception) -> None:
        self.source_id = source_id
        self.error = error
        self.calls = 0

    def fetch(self, cursor: dict[str, Any] | None) -> FetchResult:
        self.calls += 1
        raise self.error


class Rig:
    def __init__(self, clock: Clock | None = None, budget: timedelta = timedelta(minutes=4)) -> None:
        self.clock = clock or Clock()
        self.publisher = MemoryPublisher()
        self.markers = MemoryMarkers()
        self.health = MemoryHealth()
        self.cursors = MemoryCursors()
        self.intake = PostIntake(self.markers, self.publisher, "posts", self.clock)
        self.budget = budget

    def run(self, *sources: WatchedSource) -> Any:
        service = IngestService(
            list(sources), self.cursors, self.intake, MemoryQuarantine(), self.health, self.clock, self.budget
        )
        return service.run()


def test_the_same_post_through_two_sources_is_published_once() -> None:
    rig = Rig()
    post = make_post("42")
    wall = ListConnector("vk-wall", [post])
    search = ListConnector("vk-search", [post, make_post("43")])
    report = rig.run(WatchedSource(wall), WatchedSource(search))
    assert [m.post.post_id for m in rig.publisher.on("posts")] == ["42", "43"]  # type: ignore[attr-defined]
    by_id = {s.source_id: s for s in report.sources}
    assert by_id["vk-search"].duplicates == 1 and by_id["vk-search"].published == 1


def test_an_access_error_stops_the_source_until_its_fingerprint_changes() -> None:
    rig = Rig()
    broken = Failing("vk-closed", SourceAccessError("VK error 15: Access denied", "use a token with access"))
    healthy = ListConnector("vk-open", [make_post("1")])
    first = rig.run(WatchedSource(broken, "v1"), WatchedSource(healthy, "v1"))
    assert {s.source_id: s.status for s in first.sources} == {"vk-closed": "stopped", "vk-open": "ok"}
    record = rig.health.get("vk-closed")
    assert record is not None and record["action"] == "use a token with access" and record["status"] == "stopped"

    second = rig.run(WatchedSource(broken, "v1"), WatchedSource(healthy, "v1"))
    assert broken.calls == 1  # not asked again while nothing changed
    assert next(s for s in second.sources if s.source_id == "vk-closed").status == "skipped"

    rig.run(WatchedSource(broken, "v2-new-token"))
    assert broken.calls == 2  # the operator changed the token: tried again


def test_a_transient_failure_marks_the_source_failing_and_counts_consecutive_failures() -> None:
    rig = Rig()
    flaky = Failing("rss", TransientError("HTTP 503"))
    rig.run(WatchedSource(flaky))
    rig.run(WatchedSource(flaky))
    record = rig.health.get("rss")
    assert record is not None and record["status"] == "failing" and record["consecutive_failures"] == 2
    assert rig.cursors.get("rss") is None


def test_health_records_success_and_counts() -> None:
    rig = Rig()
    rig.run(WatchedSource(ListConnector("vk", [make_post("1"), make_post("2")])))
    record = rig.health.get("vk")
    assert record is not None and record["status"] == "ok" and record["consecutive_failures"] == 0
    assert record["last_counts"]["published"] == 2 and record["last_success_at"] == record["last_run_at"]


def test_the_time_budget_skips_the_rest_and_they_go_first_next_time() -> None:
    rig = Rig(Clock(step=timedelta(minutes=1)), budget=timedelta(minutes=2))
    sources = [WatchedSource(ListConnector(f"s{i}", [make_post(str(i))])) for i in range(4)]
    first = rig.run(*sources)
    ran = [s.source_id for s in first.sources if s.status == "ok"]
    skipped = [s.source_id for s in first.sources if s.status == "skipped"]
    assert ran and skipped and all("time budget" in (s.error or "") for s in first.sources if s.status == "skipped")
    second = rig.run(*sources)
    assert [s.source_id for s in second.sources][: len(skipped)] == skipped


def test_posts_are_remembered_only_after_pub_sub_took_them() -> None:
    rig = Rig()
    rig.publisher.fail_with = RuntimeError("Pub/Sub unavailable")
    connector = ListConnector("vk", [make_post("7")])
    rig.run(WatchedSource(connector))
    assert rig.markers.items == {} and rig.cursors.get("vk") is None
    rig.publisher.fail_with = None
    rig.run(WatchedSource(connector))
    assert [m.post.post_id for m in rig.publisher.on("posts")] == ["7"]  # type: ignore[attr-defined]


class Paged:
    """A source that hands out ``page`` posts per fetch and says ``more`` while it has more (like Telegram)."""

    def __init__(self, source_id: str, total: int, page: int) -> None:
        self.source_id, self.total, self.page = source_id, total, page
        self.cursors_seen: list[dict[str, Any] | None] = []

    def fetch(self, cursor: dict[str, Any] | None) -> FetchResult:
        self.cursors_seen.append(cursor)
        last = int((cursor or {}).get("last", 0))
        ids = list(range(last + 1, min(last + self.page, self.total) + 1))
        return FetchResult([make_post(str(i)) for i in ids], {"last": ids[-1] if ids else last}, more=bool(ids))


def test_a_paged_source_is_fetched_again_from_the_cursor_stored_after_each_page() -> None:
    rig = Rig()
    source = Paged("tg", total=25, page=10)
    [report] = rig.run(WatchedSource(source)).sources
    assert report.published == 25 and report.fetched == 25 and report.status == "ok"
    assert source.cursors_seen == [None, {"last": 10}, {"last": 20}, {"last": 25}]


def test_a_paged_source_gets_a_bounded_number_of_rounds_per_run() -> None:
    rig = Rig()
    source = Paged("tg", total=10_000, page=1)
    [report] = rig.run(WatchedSource(source)).sources
    assert report.published == MAX_ROUNDS_PER_SOURCE and rig.cursors.get("tg") == {"last": MAX_ROUNDS_PER_SOURCE}


def test_a_paged_source_stops_paging_when_the_time_budget_is_spent() -> None:
    rig = Rig(Clock(step=timedelta(minutes=1)), budget=timedelta(minutes=3))
    source = Paged("tg", total=100, page=1)
    [report] = rig.run(WatchedSource(source)).sources
    assert 0 < report.published < 5 and rig.cursors.get("tg") == {"last": report.published}
