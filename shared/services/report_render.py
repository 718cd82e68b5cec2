"""A report as people and programs read it: Markdown, CSV (long format), JSON and a self-contained HTML page.

The HTML page has no JavaScript and loads nothing: its charts are inline SVG bars whose geometry is computed
here and drawn by ``shared/templates/reports/report.html.j2``, where every text is escaped by autoescaping.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.services.reports import REPORT_ZONE, DeadlineShare, Durations, Report, Trend
from shared.services.texts import environment

FORMATS = ("md", "csv", "json", "html")
SECTION_TITLES = {
    "by_category": "По категориям",
    "by_municipality": "По муниципалитетам",
    "by_source": "По источникам",
}
UNIT_NAMES = {"day": "по дням", "week": "по неделям (с понедельника)", "month": "по месяцам"}
CSV_HEADER = ("section", "key", "name", "metric", "value")


def render(report: Report, fmt: str) -> str:
    renderers: dict[str, Callable[[Report], str]] = {
        "md": to_markdown,
        "csv": to_csv,
        "json": to_json,
        "html": to_html,
    }
    if fmt not in renderers:
        raise ValueError(f"unknown report format {fmt!r}: one of {', '.join(FORMATS)}")
    return renderers[fmt](report)


# ------------------------------------------------------------------------------------------------ numbers


def number(value: float | None, digits: int = 1) -> str:
    """Russian style: decimal comma; a missing value is a dash."""
    if value is None:
        return "—"
    return f"{value:.{digits}f}".replace(".", ",")


def percent(share: float | None) -> str:
    return "—" if share is None else f"{number(100 * share)} %"


def change(trend: Trend) -> str:
    pct = "" if trend.change_pct is None else f" ({trend.change_pct:+.1f} %)".replace(".", ",")
    return f"{trend.change:+d}{pct}"


def period_title(report: Report) -> str:
    last_day = (report.end - timedelta(microseconds=1)).astimezone(REPORT_ZONE)
    where = f", {report.municipality_name}" if report.municipality_name else ""
    return f"{_day(report.start)} — {last_day:%d.%m.%Y}{where}"


def previous_title(report: Report) -> str:
    last_day = (report.start - timedelta(microseconds=1)).astimezone(REPORT_ZONE)
    return f"{_day(report.previous_start)} — {last_day:%d.%m.%Y}"


def _day(moment: datetime) -> str:
    return f"{moment.astimezone(REPORT_ZONE):%d.%m.%Y}"


def summary_rows(report: Report) -> list[tuple[str, str]]:
    """(what, value) lines of the report's head, shared by Markdown and HTML."""
    return [
        ("Прочитано сообщений", _with_trend(report.monitored)),
        ("Обращений (жалоб)", _with_trend(report.complaints)),
        ("Инцидентов (разных проблем)", _with_trend(report.incidents)),
        (
            "Доля жалоб среди прочитанных",
            f"{percent(report.complaint_share)} (в прошлом периоде {percent(report.previous_complaint_share)})",
        ),
        ("Время до первого ответа", _durations(report.first_reply)),
        ("Время до решения", _durations(report.resolution)),
        ("Первый ответ в срок", _deadline(report.reply_deadline)),
        ("Решено в срок", _deadline(report.resolve_deadline)),
    ]


def _with_trend(t: Trend) -> str:
    return f"{t.current} (в прошлом периоде {t.previous}, изменение {change(t)})"


def _durations(d: Durations) -> str:
    if d.count == 0:
        return f"нет данных (ждут: {d.waiting})"
    times = f"медиана {number(d.median_hours)} ч, 90-й перцентиль {number(d.p90_hours)} ч"
    return f"{times} (n = {d.count}, ждут: {d.waiting})"


def _deadline(d: DeadlineShare) -> str:
    return f"{percent(d.share_on_time)} (в срок {d.on_time}, с опозданием {d.late}, срок не истёк {d.pending})"


# ------------------------------------------------------------------------------------------------ Markdown


def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def to_markdown(report: Report) -> str:
    lines = [f"# Отчёт об обращениях: {_md_cell(period_title(report))}", ""]
    lines.append(f"Сравнение с периодом {previous_title(report)}.")
    lines.append("")
    lines += _md_table(("Показатель", "Значение"), summary_rows(report))
    for section, title in SECTION_TITLES.items():
        trends: tuple[Trend, ...] = getattr(report, section)
        lines += ["", f"## {title}", ""]
        rows = [(t.name, t.current, t.previous, change(t)) for t in trends]
        lines += _md_table(("", "Обращений", "Прошлый период", "Изменение"), rows)
    lines += ["", f"## Обращения {UNIT_NAMES[report.by_date_unit]}", ""]
    lines += _md_table(("С", "Обращений"), [(f"{d.start:%d.%m.%Y}", d.count) for d in report.by_date])
    lines += ["", "## Просрочено по ведомствам", ""]
    if report.overdue_by_department:
        lines += _md_table(
            ("Ведомство", "Было просрочено", "Просрочено сейчас"),
            [(d.name, d.overdue, d.still_overdue) for d in report.overdue_by_department],
        )
    else:
        lines.append("Просроченных обращений нет.")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ CSV and JSON


def csv_rows(report: Report) -> list[tuple[str, str, str, str, str]]:
    """Long format: one number per row, so a spreadsheet pivots it any way."""
    rows: list[tuple[str, str, str, str, str]] = []

    def add(section: str, key: str, name: str, metric: str, value: object) -> None:
        rows.append((section, key, name, metric, "" if value is None else str(value)))

    for key, value in (
        ("start", report.start.isoformat()),
        ("end", report.end.isoformat()),
        ("previous_start", report.previous_start.isoformat()),
        ("municipality", report.municipality),
        ("generated_at", report.generated_at.isoformat()),
    ):
        add("period", key, "", "value", value)
    for section, trends in (
        ("totals", (report.monitored, report.complaints, report.incidents)),
        ("by_category", report.by_category),
        ("by_municipality", report.by_municipality),
        ("by_source", report.by_source),
    ):
        for t in trends:
            for metric in ("current", "previous", "change", "change_pct"):
                add(section, t.key, t.name, metric, getattr(t, metric))
    add("totals", "complaint_share", "Доля жалоб", "current", report.complaint_share)
    add("totals", "complaint_share", "Доля жалоб", "previous", report.previous_complaint_share)
    for d in report.by_date:
        add("by_date", d.start.isoformat(), report.by_date_unit, "count", d.count)
    for key, durations in (("first_reply", report.first_reply), ("resolution", report.resolution)):
        for metric, value in durations.model_dump().items():
            add("times", key, "", metric, value)
    for key, share in (("reply", report.reply_deadline), ("resolution", report.resolve_deadline)):
        for metric, value in share.model_dump().items():
            add("deadlines", key, "", metric, value)
    for dep in report.overdue_by_department:
        add("overdue_by_department", dep.department_id, dep.name, "overdue", dep.overdue)
        add("overdue_by_department", dep.department_id, dep.name, "still_overdue", dep.still_overdue)
    return rows


def to_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(csv_rows(report))
    return out.getvalue()


def to_json(report: Report) -> str:
    return report.model_dump_json(indent=2) + "\n"


# ------------------------------------------------------------------------------------------------ HTML


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    previous: int | None
    width: float  # px, this period
    previous_width: float  # px, the previous period (0 when not shown)


@dataclass(frozen=True)
class Chart:
    title: str
    bars: tuple[Bar, ...]
    label_width: int
    bar_area: int
    row_height: int

    @property
    def height(self) -> int:
        return self.row_height * len(self.bars) + 12


def bar_chart(title: str, rows: Sequence[tuple[str, int, int | None]], bar_area: int = 360) -> Chart:
    """Horizontal bars, one row per (label, this period, previous period or None), scaled to the largest."""
    largest = max([1, *(v for _, v, _ in rows), *(p or 0 for _, _, p in rows)])
    scale = bar_area / largest
    bars = tuple(
        Bar(label=label, value=value, previous=prev, width=value * scale, previous_width=(prev or 0) * scale)
        for label, value, prev in rows
    )
    return Chart(title=title, bars=bars, label_width=220, bar_area=bar_area, row_height=30)


def charts(report: Report) -> list[Chart]:
    found = [
        bar_chart("Обращения по категориям", [(t.name, t.current, t.previous) for t in report.by_category]),
        bar_chart("Обращения по муниципалитетам", [(t.name, t.current, t.previous) for t in report.by_municipality]),
        bar_chart(
            f"Обращения {UNIT_NAMES[report.by_date_unit]}",
            [(f"{d.start:%d.%m.%Y}", d.count, None) for d in report.by_date],
        ),
    ]
    return [c for c in found if c.bars]


def to_html(report: Report) -> str:
    template = environment().get_template("reports/report.html.j2")
    return template.render(
        report=report,
        title=period_title(report),
        previous=previous_title(report),
        summary=summary_rows(report),
        sections=[(title, getattr(report, section)) for section, title in SECTION_TITLES.items()],
        unit_name=UNIT_NAMES[report.by_date_unit],
        charts=charts(report),
        change=change,
    )
