"""Reports: what came in over a period and how fast departments answered, against the period before.

Pure computation over a list of incidents: no I/O, no clock (``now`` is a parameter). The definitions are
the ones a coordinator reads off the report, so they are stated here once:

- **period** [start, end): incidents whose ``created_at`` falls in it. The previous period is the one of the
  same length ending at ``start``; the trend compares the two.
- **monitored posts**: every incident created in the period. Every post Otklik reads becomes an incident
  document, those that are not complaints with status ``irrelevant``, so this is "posts read".
- **complaints**: incidents whose classification says ``is_complaint`` (after an operator's correction, if
  any). Counts by category, municipality, source and date count complaints: the seeds' table (roads 387,
  landscaping 154, ...) counts the messages that needed a reaction, not every post read.
- **incidents**: the complaints less those grouped into another incident (status ``merged``: one more
  resident's post about a problem already tracked). Times, deadlines and overdue count incidents: a merged post
  has no reply of its own, its incident has.
- **municipality**: the classifier's, else the source's own (``post.municipality_hint``), else "not
  determined". The municipality filter uses the same value.
- **first-reply time** = ``first_reply_at - created_at``. From ``created_at``, not ``routed_at``: the author
  waits from the moment Otklik knows of the post, and a slow classification or routing is part of that wait;
  ``routed_at`` also moves on every re-routing while the author's clock keeps running. A reply Otklik found
  in the thread dated before ``created_at`` counts as 0.
- **resolution time** = ``resolved_at - created_at``.
- Times are of the incidents as stored at ``now``: a reply after the period's end counts for an incident
  created within it; an incident with no reply yet is counted in ``waiting``, not in the times.
- **within deadline** (first reply): of the complaints with a ``reply_due_at``, those with
  ``first_reply_at <= reply_due_at``. Late: replied after it, or not replied and the deadline has passed
  (``reply_due_at <= now``). Not replied with the deadline still ahead: pending, in neither. The same for
  the resolution with ``resolved_at`` and ``resolve_due_at``.
- **overdue by department**: complaints created in the period that remind flagged overdue at some time
  (``overdue_at`` set), per department they are routed to; ``still_overdue`` of them carry the flag now.
- **median** is :func:`statistics.median`; **p90** is the nearest-rank 90th percentile: the value at rank
  ``ceil(0.9 * n)`` of the sorted values.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from shared.domain.categories import CATEGORY_NAMES
from shared.domain.models import Incident

UNKNOWN = "unknown"  # municipality not determined
UNKNOWN_NAME = "не определено"
SOURCE_NAMES: dict[str, str] = {
    "vk": "ВКонтакте",
    "telegram": "Telegram",
    "max": "MAX",
    "ok": "Одноклассники",
    "rss": "Новостные сайты (RSS)",
    "inbox": "Портал и боты (inbox)",
}
REPORT_ZONE = ZoneInfo("Europe/Moscow")  # both regions' wall clock: days and weeks of the by-date counts


class IncidentsCreatedBetween(Protocol):
    """What a report reads: every incident created in [start, end), oldest first."""

    def created_between(self, start: datetime, end: datetime) -> list[Incident]: ...


@dataclass(frozen=True)
class Names:
    """The names people read for ids; an id without a name is shown as it is."""

    categories: Mapping[str, str] = field(default_factory=lambda: dict(CATEGORY_NAMES))
    municipalities: Mapping[str, str] = field(default_factory=dict)
    departments: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=lambda: dict(SOURCE_NAMES))


class _ReportModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trend(_ReportModel):
    """A count in this period against the previous one."""

    key: str
    name: str
    current: int
    previous: int
    change: int
    change_pct: float | None  # None when the previous period had none


class DateCount(_ReportModel):
    start: date  # first day of the bucket (a day, an ISO week's Monday or a month's first day)
    count: int


class Durations(_ReportModel):
    """Hours from creation to an event, over the incidents that have it."""

    count: int
    median_hours: float | None
    p90_hours: float | None
    waiting: int  # complaints without the event yet


class DeadlineShare(_ReportModel):
    on_time: int
    late: int
    pending: int  # deadline still ahead, nothing yet
    share_on_time: float | None  # on_time / (on_time + late)


class DepartmentOverdue(_ReportModel):
    department_id: str
    name: str
    overdue: int
    still_overdue: int


class Report(_ReportModel):
    start: datetime
    end: datetime
    previous_start: datetime
    municipality: str | None
    municipality_name: str | None
    generated_at: datetime
    monitored: Trend
    complaints: Trend
    incidents: Trend  # complaints less merged ones: distinct problems
    complaint_share: float | None  # complaints / monitored, this period
    previous_complaint_share: float | None
    by_category: tuple[Trend, ...]
    by_municipality: tuple[Trend, ...]
    by_source: tuple[Trend, ...]
    by_date_unit: str  # day, week or month
    by_date: tuple[DateCount, ...]
    first_reply: Durations
    resolution: Durations
    reply_deadline: DeadlineShare
    resolve_deadline: DeadlineShare
    overdue_by_department: tuple[DepartmentOverdue, ...]


class DateUnit(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


def municipality_of(incident: Incident) -> str:
    return incident.classification.municipality or incident.post.municipality_hint or UNKNOWN


def p90(values: Sequence[float]) -> float:
    """Nearest-rank 90th percentile: the smallest value with at least 90% of the values at or below it."""
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def build_report(
    incidents: Iterable[Incident],
    start: datetime,
    end: datetime,
    now: datetime,
    municipality: str | None = None,
    names: Names | None = None,
) -> Report:
    """The report of [start, end) with the trend against [start - (end - start), start). ``incidents`` may hold
    more than both periods: the rest is left out."""
    if end <= start:
        raise ValueError(f"the period must end after it starts: {start.isoformat()} .. {end.isoformat()}")
    names = names or Names()
    previous_start = start - (end - start)
    current: list[Incident] = []
    previous: list[Incident] = []
    for i in incidents:
        if municipality is not None and municipality_of(i) != municipality:
            continue
        if start <= i.created_at < end:
            current.append(i)
        elif previous_start <= i.created_at < start:
            previous.append(i)
    complaints = [i for i in current if i.classification.is_complaint]
    before = [i for i in previous if i.classification.is_complaint]
    tracked = [i for i in complaints if i.status != "merged"]
    tracked_before = [i for i in before if i.status != "merged"]
    unit = _date_unit(end - start)
    return Report(
        start=start,
        end=end,
        previous_start=previous_start,
        municipality=municipality,
        municipality_name=_name(names.municipalities, municipality) if municipality else None,
        generated_at=now,
        monitored=_trend("monitored", "Прочитано сообщений", len(current), len(previous)),
        complaints=_trend("complaints", "Обращений (жалоб)", len(complaints), len(before)),
        incidents=_trend("incidents", "Инцидентов (проблем)", len(tracked), len(tracked_before)),
        complaint_share=_share(len(complaints), len(current)),
        previous_complaint_share=_share(len(before), len(previous)),
        by_category=_trends(complaints, before, lambda i: i.classification.category, names.categories),
        by_municipality=_trends(complaints, before, municipality_of, {UNKNOWN: UNKNOWN_NAME, **names.municipalities}),
        by_source=_trends(complaints, before, lambda i: i.post.source, names.sources),
        by_date_unit=unit.value,
        by_date=_by_date(complaints, start, end, unit),
        first_reply=_durations(tracked, lambda i: i.first_reply_at),
        resolution=_durations(tracked, lambda i: i.resolved_at),
        reply_deadline=_deadline(tracked, now, lambda i: (i.first_reply_at, i.reply_due_at)),
        resolve_deadline=_deadline(tracked, now, lambda i: (i.resolved_at, i.resolve_due_at)),
        overdue_by_department=_overdue(tracked, names.departments),
    )


def report_for(
    store: IncidentsCreatedBetween,
    start: datetime,
    end: datetime,
    now: datetime,
    municipality: str | None = None,
    names: Names | None = None,
) -> Report:
    """Read both periods from ``store`` (one range read) and build the report."""
    incidents = store.created_between(start - (end - start), end)
    return build_report(incidents, start, end, now, municipality, names)


def _name(names: Mapping[str, str], key: str) -> str:
    return names.get(key, key)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _trend(key: str, name: str, current: int, previous: int) -> Trend:
    pct = round(100 * (current - previous) / previous, 1) if previous else None
    return Trend(key=key, name=name, current=current, previous=previous, change=current - previous, change_pct=pct)


def _trends(
    current: Sequence[Incident], previous: Sequence[Incident], key: Callable[[Incident], str], names: Mapping[str, str]
) -> tuple[Trend, ...]:
    """One row per key seen in either period, the largest this period first (ties: by the key)."""
    now_counts = Counter(key(i) for i in current)
    then_counts = Counter(key(i) for i in previous)
    keys = sorted(set(now_counts) | set(then_counts), key=lambda k: (-now_counts[k], -then_counts[k], k))
    return tuple(_trend(k, _name(names, k), now_counts[k], then_counts[k]) for k in keys)


def _date_unit(length: timedelta) -> DateUnit:
    if length <= timedelta(days=31):
        return DateUnit.DAY
    if length <= timedelta(days=190):
        return DateUnit.WEEK
    return DateUnit.MONTH


def _bucket(day: date, unit: DateUnit) -> date:
    if unit is DateUnit.WEEK:
        return day - timedelta(days=day.weekday())
    if unit is DateUnit.MONTH:
        return day.replace(day=1)
    return day


def _by_date(incidents: Sequence[Incident], start: datetime, end: datetime, unit: DateUnit) -> tuple[DateCount, ...]:
    """Complaints per local day, week or month, every bucket of the period listed (a zero is information)."""
    counts = Counter(_bucket(i.created_at.astimezone(REPORT_ZONE).date(), unit) for i in incidents)
    first = _bucket(start.astimezone(REPORT_ZONE).date(), unit)
    last = _bucket((end - timedelta(microseconds=1)).astimezone(REPORT_ZONE).date(), unit)
    buckets = []
    day = first
    while day <= last:
        buckets.append(DateCount(start=day, count=counts[day]))
        day = _bucket(day + timedelta(days=32 if unit is DateUnit.MONTH else 7 if unit is DateUnit.WEEK else 1), unit)
    return tuple(buckets)


def _durations(incidents: Sequence[Incident], event: Callable[[Incident], datetime | None]) -> Durations:
    hours = []
    for i in incidents:
        at = event(i)
        if at is not None:
            hours.append(max(0.0, (at - i.created_at).total_seconds() / 3600))
    if not hours:
        return Durations(count=0, median_hours=None, p90_hours=None, waiting=len(incidents))
    return Durations(
        count=len(hours),
        median_hours=round(statistics.median(hours), 2),
        p90_hours=round(p90(hours), 2),
        waiting=len(incidents) - len(hours),
    )


def _deadline(
    incidents: Sequence[Incident], now: datetime, clock: Callable[[Incident], tuple[datetime | None, datetime | None]]
) -> DeadlineShare:
    on_time = late = pending = 0
    for i in incidents:
        done, due = clock(i)
        if due is None:
            continue
        if done is not None and done <= due:
            on_time += 1
        elif done is not None or due <= now:
            late += 1
        else:
            pending += 1
    return DeadlineShare(on_time=on_time, late=late, pending=pending, share_on_time=_share(on_time, on_time + late))


def _overdue(incidents: Sequence[Incident], names: Mapping[str, str]) -> tuple[DepartmentOverdue, ...]:
    flagged: Counter[str] = Counter()
    still: Counter[str] = Counter()
    for i in incidents:
        if i.overdue_at is None and not i.overdue:
            continue
        for department in i.department_ids:
            flagged[department] += 1
            still[department] += i.overdue
    order = sorted(flagged, key=lambda d: (-flagged[d], -still[d], d))
    return tuple(
        DepartmentOverdue(department_id=d, name=_name(names, d), overdue=flagged[d], still_overdue=still[d])
        for d in order
    )
