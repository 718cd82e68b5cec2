"""remind: flag incidents whose first-reply deadline has passed, in bounded batches; each flag is recorded in
the incident's history exactly once, even when two runs overlap."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from shared.domain.lifecycle import OPEN_FOR_REPLY, record_event
from shared.domain.models import Incident
from shared.ports import IncidentRepository

log = logging.getLogger(__name__)
ACTOR = "remind"


@dataclass
class RemindReport:
    now: datetime
    checked: int = 0
    flagged: list[str] = field(default_factory=list)
    more_pending: bool = False


class RemindService:
    def __init__(self, incidents: IncidentRepository, batch_size: int) -> None:
        self.incidents = incidents
        self.batch_size = batch_size

    def run(self, now: datetime) -> RemindReport:
        report = RemindReport(now=now)
        candidates = self.incidents.due_for_reply(now, self.batch_size)
        report.checked = len(candidates)
        report.more_pending = len(candidates) == self.batch_size
        for candidate in candidates:
            applied: list[bool] = []

            def flag(incident: Incident, applied: list[bool] = applied) -> Incident | None:
                # A transaction may run this more than once; the last run is the one committed.
                changed = _flag_overdue(incident, now)
                applied[:] = [changed is not None]
                return changed

            self.incidents.update(candidate.id, flag)
            if applied == [True]:
                report.flagged.append(candidate.id)
        log.info("remind run", extra={"json_fields": {"checked": report.checked, "flagged": len(report.flagged)}})
        return report


def _flag_overdue(incident: Incident, now: datetime) -> Incident | None:
    # Re-checked inside the transaction: another run may have flagged or the department answered meanwhile.
    due = incident.reply_due_at
    if incident.overdue or incident.status not in OPEN_FOR_REPLY or due is None or due > now:
        return None
    return record_event(
        incident,
        "overdue",
        at=now,
        actor=ACTOR,
        note=f"no reply by {due.isoformat()}",
        overdue=True,
        overdue_at=now,
    )
