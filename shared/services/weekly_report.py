"""The weekly report: every Monday the regional coordinators get last week's report by e-mail.

Last week is Monday 00:00 to Monday 00:00 in the regions' time (Europe/Moscow), the whole region (no
municipality filter), compared with the week before. The coordinators are the directory's fallback
department (the regional coordination centre): its address and its supervisor's. Exactly once per address and
week, as the digest does it: the letter is a notification ``weekly_report.<address key>.<Monday>`` claimed
before sending, so a retried or doubled scheduler run sends nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.domain.errors import PermanentError
from shared.domain.models import Channel, Notification, NotificationStatus
from shared.ports import DepartmentDirectory
from shared.services.digest import LetterSender
from shared.services.notify import Notifier
from shared.services.report_render import period_title, to_html, to_markdown
from shared.services.reports import REPORT_ZONE, IncidentsCreatedBetween, Names, Report, report_for
from shared.services.texts import RenderedEmail


@dataclass
class WeeklyReportRun:
    start: datetime
    end: datetime
    complaints: int = 0
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # sent already this week, or being sent
    failed: list[str] = field(default_factory=list)


def last_week(now: datetime) -> tuple[datetime, datetime]:
    """[Monday 00:00, next Monday 00:00) of the last full week before ``now``, local time, as aware datetimes."""
    today = now.astimezone(REPORT_ZONE).date()
    monday = today - timedelta(days=today.weekday())
    end = datetime.combine(monday, datetime.min.time(), REPORT_ZONE)
    return end - timedelta(days=7), end


def weekly_email(report: Report) -> RenderedEmail:
    c = report.complaints
    subject = (
        f"Отчёт об обращениях за неделю {period_title(report)}: обращений {c.current} (неделей раньше {c.previous})"
    )
    return RenderedEmail(subject=subject, text=to_markdown(report), html=to_html(report))


class WeeklyReportService:
    def __init__(
        self,
        incidents: IncidentsCreatedBetween,
        directory: DepartmentDirectory,
        notifier: Notifier,
        mail: LetterSender | None,
        names: Names,
    ) -> None:
        self.incidents = incidents
        self.directory = directory
        self.notifier = notifier
        self.mail = mail
        self.names = names

    def recipients(self) -> list[tuple[str, str]]:
        """(key, address) of the coordinators: the fallback department and its supervisor."""
        coordinator = self.directory.department(self.directory.fallback)
        if coordinator is None:
            return []
        found = []
        if coordinator.email is not None:
            found.append((coordinator.id, coordinator.email))
        if coordinator.supervisor is not None and coordinator.supervisor.email != coordinator.email:
            found.append((f"{coordinator.id}-supervisor", coordinator.supervisor.email))
        return found

    def run(self, now: datetime) -> WeeklyReportRun:
        if self.mail is None:
            raise PermanentError("no e-mail provider is configured (OTKLIK_SMTP_HOST or OTKLIK_MAIL_PROVIDER=ses)")
        start, end = last_week(now)
        report = report_for(self.incidents, start, end, now, names=self.names)
        run = WeeklyReportRun(start=start, end=end, complaints=report.complaints.current)
        letter = weekly_email(report)
        for key, address in self.recipients():
            nid = f"weekly_report.{key}.{start.date().isoformat()}"
            fresh = Notification(
                id=nid,
                incident_id="-",
                department_id=self.directory.fallback,
                channel=Channel.EMAIL,
                kind="weekly_report",
                status=NotificationStatus.SENDING,
            )
            outcome = self.notifier.once(fresh, self._send(address, letter, nid))
            if not outcome.attempted:
                run.skipped.append(key)
            elif outcome.status is NotificationStatus.SENT:
                run.sent.append(key)
            else:
                run.failed.append(key)
        return run

    def _send(self, to: str, letter: RenderedEmail, nid: str) -> Callable[[], None]:
        mail = self.mail
        assert mail is not None

        def send() -> None:
            mail.send_rendered(to, letter, nid)

        return send
