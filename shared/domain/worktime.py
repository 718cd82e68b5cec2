"""Working time: deadlines that count a department's working hours, skipping weekends and public holidays of the
production calendar (config/calendar.yaml), in the department's own time zone.

No library does this for Russia's production calendar (days off moved by decree, working Saturdays, shortened
pre-holiday days), so it is small and written here, with the calendar as data operators update once a year.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.models import WorkingHours

Unit = Literal["clock_hours", "working_hours", "working_days", "days"]


class Duration(BaseModel):
    """How long a clock runs: ``{working_hours: 9}``, ``{clock_hours: 2}``, ``{working_days: 10}``, ``{days: 7}``.
    Exactly one unit."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    clock_hours: float | None = Field(default=None, ge=0)
    working_hours: float | None = Field(default=None, ge=0)
    working_days: int | None = Field(default=None, ge=0)
    days: int | None = Field(default=None, ge=0)

    def model_post_init(self, __context: object) -> None:
        given = [u for u in ("clock_hours", "working_hours", "working_days", "days") if getattr(self, u) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of clock_hours, working_hours, working_days, days (got {given})")

    @property
    def unit(self) -> Unit:
        for u in ("clock_hours", "working_hours", "working_days", "days"):
            if getattr(self, u) is not None:
                return u
        raise AssertionError("validated: one unit is set")

    def __str__(self) -> str:
        names = {"clock_hours": "h", "working_hours": " working h", "working_days": " working days", "days": " days"}
        value = getattr(self, self.unit)
        return f"{value:g}{names[self.unit]}"


@dataclass(frozen=True)
class ProductionCalendar:
    """Weekdays that are days off, weekend days that are working days, and pre-holiday days shortened by an
    hour; ``years`` says which years the calendar knows (outside them: plain weekends only)."""

    holidays: frozenset[date] = frozenset()
    working_weekends: frozenset[date] = frozenset()
    shortened: frozenset[date] = frozenset()
    years: frozenset[int] = field(default_factory=frozenset)

    def is_working_day(self, day: date, weekdays: tuple[int, ...]) -> bool:
        if day in self.working_weekends:
            return True
        if day in self.holidays:
            return False
        return day.isoweekday() in weekdays

    def window(self, day: date, hours: WorkingHours) -> tuple[time, time] | None:
        """The working hours of ``day``, or None on a day off. Round-the-clock services (every weekday) work on
        holidays too: an on-duty service has no production calendar."""
        around_the_clock = len(hours.days) == 7
        if not around_the_clock and not self.is_working_day(day, hours.days):
            return None
        end = hours.end
        if day in self.shortened and not around_the_clock:
            end_dt = datetime.combine(day, end) - timedelta(hours=1)
            end = max(end_dt.time(), hours.start)
        return hours.start, end


class WorkingClock:
    """Adds a Duration to a moment for one department (its working hours and time zone)."""

    MAX_DAYS = 400  # a guard: a misconfigured calendar (no working day at all) must not loop forever

    def __init__(self, calendar: ProductionCalendar, hours: WorkingHours, timezone: str) -> None:
        self.calendar = calendar
        self.hours = hours
        self.zone = ZoneInfo(timezone)

    def add(self, start: datetime, duration: Duration) -> datetime:
        unit, value = duration.unit, getattr(duration, duration.unit)
        if unit == "clock_hours":
            return start + timedelta(hours=value)
        if unit == "days":
            return start + timedelta(days=value)
        if unit == "working_days":
            return self._add_working_days(start, int(value))
        return self._add_working_seconds(start, float(value) * 3600)

    def _windows_from(self, start: datetime) -> list[tuple[datetime, datetime]]:
        local = start.astimezone(self.zone)
        found = []
        for offset in range(self.MAX_DAYS):
            day = local.date() + timedelta(days=offset)
            window = self.calendar.window(day, self.hours)
            if window is None:
                continue
            begin = datetime.combine(day, window[0], self.zone)
            end = datetime.combine(day, window[1], self.zone)
            if end <= start:
                continue
            found.append((max(begin, start), end))
            if len(found) >= 64:
                break
        return found

    def _add_working_seconds(self, start: datetime, seconds: float) -> datetime:
        remaining = seconds
        cursor = start
        while True:
            windows = self._windows_from(cursor)
            if not windows:
                raise ValueError(f"no working time within {self.MAX_DAYS} days of {start}: check working hours")
            for begin, end in windows:
                available = (end - begin).total_seconds()
                if remaining <= available:
                    return (begin + timedelta(seconds=remaining)).astimezone(UTC)
                remaining -= available
                cursor = end

    def _add_working_days(self, start: datetime, days: int) -> datetime:
        """The same local time ``days`` working days later (end of that day's work if later than it)."""
        local = start.astimezone(self.zone)
        day, counted = local.date(), 0
        for _ in range(self.MAX_DAYS):
            if counted == days:
                break
            day += timedelta(days=1)
            if self.calendar.window(day, self.hours) is not None:
                counted += 1
        else:
            raise ValueError(f"no {days} working days within {self.MAX_DAYS} days of {start}")
        window = self.calendar.window(day, self.hours)
        moment = local.time()
        if window is not None and moment > window[1]:
            moment = window[1]
        return datetime.combine(day, moment, self.zone).astimezone(UTC)

    def is_working_time(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        window = self.calendar.window(local.date(), self.hours)
        return window is not None and window[0] <= local.time() < window[1]
