"""Reports: the numbers of a small hand-made period, checked one by one, and how each format shows them."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta

import pytest

from shared.domain.models import Classification, Incident, IncidentStatus
from shared.services import report_render
from shared.services.reports import REPORT_ZONE, Names, Report, build_report, p90, report_for
from tests.builders import make_incident, make_post
from tests.fakes import MemoryIncidents

START = datetime(2026, 10, 1, tzinfo=REPORT_ZONE)  # local midnight, as `otklik report` makes it
END = datetime(2026, 10, 11, tzinfo=REPORT_ZONE)  # ten days; the previous period is 21.09 - 30.09
NOW = datetime(2026, 10, 20, 12, 0, tzinfo=REPORT_ZONE)
H = timedelta(hours=1)
NAMES = Names(municipalities={"shakhty": "Шахты", "kirov": "Киров"}, departments={"shakhty-roads": "Дороги Шахт"})


def incident(
    n: int,
    created: datetime,
    category: str = "roads",
    complaint: bool = True,
    municipality: str | None = "shakhty",
    source: str = "vk",
    **kw: object,
) -> Incident:
    """Times in ``kw`` given as hours (float) are hours after ``created``."""
    post = make_post(str(n), source=source)
    for name in ("first_reply_at", "reply_due_at", "resolved_at", "resolve_due_at", "overdue_at"):
        if isinstance(kw.get(name), int | float):
            kw[name] = created + float(kw[name]) * H  # type: ignore[arg-type]
    classification = Classification(
        category=category, is_complaint=complaint, municipality=municipality, confidence=0.9, classifier="test"
    )
    status = IncidentStatus.ROUTED if complaint else IncidentStatus.IRRELEVANT
    fields = {"id": post.incident_id, "post": post, "classification": classification, "created_at": created, **kw}
    return Incident.model_validate({**make_incident(str(n), status).model_dump(), **fields})


def fixture() -> list[Incident]:
    return [
        # this period
        incident(
            1,
            START,
            first_reply_at=2,
            reply_due_at=24,
            resolved_at=48,
            resolve_due_at=72,
            overdue_at=30,
            department_ids=("shakhty-roads", "region-coordinator"),
        ),
        incident(
            2,
            START + 34 * H,
            source="telegram",
            first_reply_at=30,
            reply_due_at=24,
            resolve_due_at=100,
            overdue=True,
            overdue_at=24,
            department_ids=("shakhty-roads",),
        ),
        incident(
            3, START + 58 * H, "landscaping", municipality="kirov", first_reply_at=4, reply_due_at=24, resolved_at=10
        ),
        # no municipality from the classifier: the source's (make_post: shakhty); deadline still ahead
        incident(4, END - H, "housing_utilities", municipality=None, reply_due_at=NOW + H),
        incident(5, START + 100 * H, "other", complaint=False, municipality=None),
        incident(6, END, "roads"),  # the end is not in the period
        # the previous period
        incident(7, START - 6 * 24 * H),
        incident(8, START - 0.01 * H, "housing_utilities"),
        incident(9, START - 9 * 24 * H, "other", complaint=False),
        incident(10, START - 10 * 24 * H - H),  # before the previous period
    ]


@pytest.fixture
def report() -> Report:
    return build_report(fixture(), START, END, NOW, names=NAMES)


def rows(trends: tuple[object, ...]) -> list[tuple[object, ...]]:
    return [(t.key, t.name, t.current, t.previous, t.change, t.change_pct) for t in trends]  # type: ignore[attr-defined]


def test_totals_and_their_trend(report: Report) -> None:
    assert (report.monitored.current, report.monitored.previous, report.monitored.change) == (5, 3, 2)
    assert report.monitored.change_pct == 66.7
    assert (report.complaints.current, report.complaints.previous, report.complaints.change_pct) == (4, 2, 100.0)
    assert report.complaint_share == 0.8
    assert report.previous_complaint_share == pytest.approx(2 / 3)
    assert report.previous_start == START - (END - START)


def test_counts_by_category_municipality_and_source_with_the_trend(report: Report) -> None:
    # Largest first; equal counts: the larger previous count, then the id.
    assert rows(report.by_category) == [
        ("roads", "Дороги", 2, 1, 1, 100.0),
        ("housing_utilities", "ЖКХ", 1, 1, 0, 0.0),
        ("landscaping", "Благоустройство", 1, 0, 1, None),
    ]
    assert rows(report.by_municipality) == [("shakhty", "Шахты", 3, 2, 1, 50.0), ("kirov", "Киров", 1, 0, 1, None)]
    assert rows(report.by_source) == [("vk", "ВКонтакте", 3, 2, 1, 50.0), ("telegram", "Telegram", 1, 0, 1, None)]


def test_a_category_gone_this_period_is_still_listed_with_its_fall() -> None:
    made = [incident(1, START), incident(2, START - H, "ecology"), incident(3, START - 2 * H, "education")]
    built = build_report(made, START, END, NOW)
    assert rows(built.by_category) == [
        ("roads", "Дороги", 1, 0, 1, None),
        ("ecology", "Экология", 0, 1, -1, -100.0),
        ("education", "Образование", 0, 1, -1, -100.0),
    ]


def test_first_reply_and_resolution_times_median_and_p90(report: Report) -> None:
    # First replies after 2, 30 and 4 hours; incident 4 waits. Resolved after 48 and 10 hours.
    assert report.first_reply.model_dump() == {"count": 3, "median_hours": 4.0, "p90_hours": 30.0, "waiting": 1}
    assert report.resolution.model_dump() == {"count": 2, "median_hours": 29.0, "p90_hours": 48.0, "waiting": 2}


def test_share_within_deadline(report: Report) -> None:
    # Replies: 1 and 3 on time, 2 late, 4 not due yet. Resolution: 1 on time, 2 unresolved past its deadline.
    assert report.reply_deadline.model_dump() == {"on_time": 2, "late": 1, "pending": 1, "share_on_time": 2 / 3}
    assert report.resolve_deadline.model_dump() == {"on_time": 1, "late": 1, "pending": 0, "share_on_time": 0.5}


def test_an_unanswered_complaint_past_its_deadline_is_late() -> None:
    late = incident(1, START, reply_due_at=24)
    assert build_report([late], START, END, NOW).reply_deadline.late == 1


def test_overdue_by_department_with_names(report: Report) -> None:
    assert [d.model_dump() for d in report.overdue_by_department] == [
        {"department_id": "shakhty-roads", "name": "Дороги Шахт", "overdue": 2, "still_overdue": 1},
        {"department_id": "region-coordinator", "name": "region-coordinator", "overdue": 1, "still_overdue": 0},
    ]


def test_complaints_by_local_day_every_day_listed(report: Report) -> None:
    assert report.by_date_unit == "day"
    assert len(report.by_date) == 10
    counts = {d.start: d.count for d in report.by_date if d.count}
    assert counts == {date(2026, 10, 1): 1, date(2026, 10, 2): 1, date(2026, 10, 3): 1, date(2026, 10, 10): 1}


def test_a_quarter_is_counted_by_week_and_a_year_by_month() -> None:
    quarter = build_report([incident(1, START + 24 * H)], START, START + timedelta(days=92), NOW)
    assert quarter.by_date_unit == "week"
    assert quarter.by_date[0].start == date(2026, 9, 28)  # the Monday of the week of 1 October
    assert all(d.start.weekday() == 0 for d in quarter.by_date) and sum(d.count for d in quarter.by_date) == 1
    year = build_report([], datetime(2026, 1, 1, tzinfo=REPORT_ZONE), datetime(2027, 1, 1, tzinfo=REPORT_ZONE), NOW)
    assert [d.start for d in year.by_date] == [date(2026, m, 1) for m in range(1, 13)]


def test_municipality_filter() -> None:
    built = build_report(fixture(), START, END, NOW, municipality="kirov", names=NAMES)
    assert (built.monitored.current, built.complaints.current, built.complaints.previous) == (1, 1, 0)
    assert built.complaints.change_pct is None
    assert built.municipality_name == "Киров"
    assert rows(built.by_category) == [("landscaping", "Благоустройство", 1, 0, 1, None)]


def test_an_empty_period() -> None:
    built = build_report([], START, END, NOW)
    assert (built.monitored.current, built.complaints.current, built.complaints.change_pct) == (0, 0, None)
    assert built.complaint_share is None and built.by_category == () and built.overdue_by_department == ()
    assert built.first_reply.model_dump() == {"count": 0, "median_hours": None, "p90_hours": None, "waiting": 0}
    assert built.reply_deadline.share_on_time is None
    assert [d.count for d in built.by_date] == [0] * 10


def test_a_period_must_end_after_it_starts() -> None:
    with pytest.raises(ValueError, match="must end after"):
        build_report([], END, START, NOW)


@pytest.mark.parametrize(
    ("values", "expected"),
    [([5.0], 5.0), ([float(v) for v in range(1, 11)], 9.0), ([float(v) for v in range(20, 0, -1)], 18.0),
     ([1.0, 1.0, 1.0, 2.0, 2.0], 2.0), ([3.0, 1.0, 2.0], 3.0)],
)  # fmt: skip
def test_p90_is_nearest_rank(values: list[float], expected: float) -> None:
    assert p90(values) == expected


def test_a_reply_found_dated_before_the_incident_counts_as_zero() -> None:
    early = incident(1, START + H, first_reply_at=-0.5)
    assert build_report([early], START, END, NOW).first_reply.median_hours == 0.0


def test_report_for_reads_both_periods_from_the_store() -> None:
    store = MemoryIncidents()
    for i in fixture():
        store.create(i)
    assert report_for(store, START, END, NOW, names=NAMES) == build_report(fixture(), START, END, NOW, names=NAMES)


# ------------------------------------------------------------------------------------------------ formats


def test_csv_is_long_format_and_parses(report: Report) -> None:
    parsed = list(csv.DictReader(io.StringIO(report_render.render(report, "csv"))))
    assert list(parsed[0]) == list(report_render.CSV_HEADER)
    value = {(r["section"], r["key"], r["metric"]): r["value"] for r in parsed}
    assert value[("by_category", "roads", "current")] == "2"
    assert value[("by_category", "landscaping", "change_pct")] == ""
    assert value[("totals", "complaints", "previous")] == "2"
    assert value[("times", "first_reply", "p90_hours")] == "30.0"
    assert value[("overdue_by_department", "shakhty-roads", "still_overdue")] == "1"
    assert value[("by_date", "2026-10-10", "count")] == "1"


def test_json_round_trips(report: Report) -> None:
    text = report_render.render(report, "json")
    assert Report.model_validate_json(text) == report
    assert json.loads(text)["by_category"][0]["name"] == "Дороги"


def test_markdown_tables(report: Report) -> None:
    text = report_render.render(report, "md")
    assert text.startswith("# Отчёт об обращениях: 01.10.2026 — 10.10.2026\n")
    assert "| Дороги | 2 | 1 | +1 (+100,0 %) |" in text
    assert "| Благоустройство | 1 | 0 | +1 |" in text
    assert "| Доля жалоб среди прочитанных | 80,0 % (в прошлом периоде 66,7 %) |" in text
    assert "| Дороги Шахт | 2 | 1 |" in text


def test_html_has_the_numbers_escaped_and_svg_charts_and_nothing_external() -> None:
    names = Names(departments={"shakhty-roads": '<script>alert("x")</script> & Co'})
    built = build_report(fixture(), START, END, NOW, names=names)
    html = report_render.render(built, "html")
    assert html.count("<svg") == 3  # categories, municipalities, days
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in html
    assert "<script" not in html and "src=" not in html and "http://" not in html.replace('"http://www.w3.org', "")
    assert "Дороги" in html and "80,0 %" in html and "медиана 4,0 ч" in html


def test_an_empty_report_renders_in_every_format() -> None:
    built = build_report([], START, END, NOW)
    for fmt in report_render.FORMATS:
        assert report_render.render(built, fmt)
    with pytest.raises(ValueError, match="unknown report format"):
        report_render.render(built, "pdf")
