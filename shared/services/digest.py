"""digest: once a working day, each department gets one e-mail listing its open incidents, overdue first.

Exactly once per department and day (its local date): the letter is a notification
``digest.<department>.<date>`` claimed before sending, so a retried or doubled scheduler run sends nothing twice.
A department with nothing open gets no letter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Protocol
from zoneinfo import ZoneInfo

from shared.domain.errors import PermanentError
from shared.domain.models import Channel, Department, Incident, Notification, NotificationStatus
from shared.ports import DepartmentDirectory, IncidentRepository
from shared.services.notify import Notifier
from shared.services.paging import by_created_at
from shared.services.texts import RenderedEmail, digest_email

log = logging.getLogger(__name__)
PAGE = 300
MAX_OPEN = 20_000  # a guard on one run's work; a region has a few hundred open at a time


class LetterSender(Protocol):
    def send_rendered(self, to: str, rendered: RenderedEmail, event_id: str) -> None: ...


@dataclass
class DigestReport:
    now: datetime
    open_incidents: int = 0
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # sent already today, or failed for good earlier
    failed: list[str] = field(default_factory=list)


class DigestService:
    def __init__(
        self,
        incidents: IncidentRepository,
        directory: DepartmentDirectory,
        notifier: Notifier,
        mail: LetterSender | None,
        answer_url: Callable[[str, str], str | None],
    ) -> None:
        self.incidents = incidents
        self.directory = directory
        self.notifier = notifier
        self.mail = mail
        self.answer_url = answer_url

    def run(self, now: datetime) -> DigestReport:
        report = DigestReport(now=now)
        if self.mail is None:
            raise PermanentError("no e-mail provider is configured (OTKLIK_SMTP_HOST or OTKLIK_MAIL_PROVIDER=ses)")
        by_department: dict[str, list[Incident]] = {}
        for incident in self._open():
            report.open_incidents += 1
            for department_id in incident.department_ids:
                by_department.setdefault(department_id, []).append(incident)
        for department in self.directory.departments():
            mine = by_department.get(department.id)
            if not mine or department.email is None:
                continue
            local_date = now.astimezone(ZoneInfo(department.timezone)).date().isoformat()
            nid = f"digest.{department.id}.{local_date}"
            fresh = Notification(
                id=nid,
                incident_id="-",
                department_id=department.id,
                channel=Channel.EMAIL,
                kind="digest",
                status=NotificationStatus.SENDING,
            )
            outcome = self.notifier.once(fresh, self._letter(department, mine, now, nid))
            if not outcome.attempted:
                report.skipped.append(department.id)  # sent (or failed for good) earlier today, or being sent
            elif outcome.status is NotificationStatus.SENT:
                report.sent.append(department.id)
            else:
                report.failed.append(department.id)
        return report

    def _open(self) -> list[Incident]:
        return list(islice(by_created_at(self.incidents.open_incidents, None, PAGE), MAX_OPEN))

    def _letter(self, department: Department, mine: list[Incident], now: datetime, nid: str) -> Callable[[], None]:
        mail, to = self.mail, department.email
        assert mail is not None and to is not None

        def send() -> None:
            mail.send_rendered(to, digest_email(department, mine, now, self.answer_url), nid)

        return send
