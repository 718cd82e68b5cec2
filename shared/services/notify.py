"""Sending one notification exactly once: claim its record (``notifications/{id}``), send on its channel,
record the outcome. Route (new and re-routed incidents) and remind (reminders, escalations, digests) both send
through here, so a replayed message or an overlapping run never sends anything twice."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

from shared.domain.errors import PermanentError
from shared.domain.ids import notification_id_for
from shared.domain.models import Channel, Notification, NotificationStatus
from shared.logs import redact
from shared.ports import ChannelSender, ClaimState, Clock, Delivery, NotificationLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    status: NotificationStatus
    error: str | None
    channel: Channel | None = None
    attempted: bool = False  # this call tried to send it (False: done, or busy, elsewhere)


class Notifier:
    def __init__(
        self,
        notifications: NotificationLog,
        senders: dict[Channel, ChannelSender],
        clock: Clock,
        lease_seconds: float,
    ) -> None:
        self.notifications = notifications
        self.senders = senders
        self.clock = clock
        self.lease_seconds = lease_seconds

    def send(self, delivery: Delivery, channel: Channel) -> Outcome:
        department, incident = delivery.department, delivery.incident
        nid = notification_id_for(incident.id, department.id, channel, delivery.kind)
        sender = self.senders.get(channel)
        fresh = Notification(
            id=nid,
            incident_id=incident.id,
            department_id=department.id,
            channel=channel,
            kind=delivery.kind,
            status=NotificationStatus.SENDING,
        )
        if sender is None:
            return self.once(fresh, None)
        return self.once(fresh, lambda: sender.send(dataclasses.replace(delivery, event_id=nid)))

    def once(self, fresh: Notification, send: Callable[[], None] | None) -> Outcome:
        """Claim ``fresh`` (or its stored record), run ``send`` if granted, record the outcome. ``send`` None:
        there is no way to send it (no sender configured), recorded as failed."""
        nid, channel = fresh.id, fresh.channel
        claim = self.notifications.claim(fresh, self.lease_seconds, self.clock())
        if claim.state is ClaimState.DONE:
            return Outcome(claim.notification.status, claim.notification.last_error, channel)
        if claim.state is ClaimState.BUSY:
            # Another delivery of this message is sending it; come back to confirm it was sent.
            return Outcome(NotificationStatus.SENDING, f"{nid} is being sent by another worker", channel)
        claimed = claim.notification
        if send is None:
            return self._save(claimed, NotificationStatus.FAILED, f"no sender configured for {channel}")
        # The error is logged, stored on the notification and the incident, and told to the coordinator: masked
        # first (a webhook URL's query or credentials, a secret a server echoed: shared/logs.py).
        try:
            send()
        except PermanentError as exc:
            error = redact(str(exc))
            log.error("notification %s failed for good: %s", nid, error)
            return self._save(claimed, NotificationStatus.FAILED, error)
        except Exception as exc:
            error = redact(f"{type(exc).__name__}: {exc}")
            log.warning("notification %s failed, will retry: %s", nid, error)
            return self._save(claimed, NotificationStatus.SENDING, error, release=True)
        return self._save(claimed, NotificationStatus.SENT, None)

    def _save(self, n: Notification, status: NotificationStatus, error: str | None, release: bool = False) -> Outcome:
        update: dict[str, object] = {"status": status, "last_error": error}
        if status is NotificationStatus.SENT:
            update["sent_at"] = self.clock()
        if release:
            update["claimed_at"] = None  # let the redelivery try at once
        self.notifications.save(n.model_copy(update=update))
        return Outcome(status, error, n.channel, attempted=True)
