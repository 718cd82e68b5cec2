"""What happened in a local run, read back from Firestore and the sinks, as numbers and as text."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shared.domain.categories import category_name


@dataclass
class RunSummary:
    emulators: str
    demo_posts: int
    fetched_per_source: dict[str, int]
    published: int
    incidents: int
    complaints_by_category: Counter[str]
    irrelevant: int
    critical: int
    routed_to: Counter[str]
    notifications: Counter[str]  # "webhook sent", "email failed", ...
    webhooks_received: int
    emails_received: int
    quarantined: int
    dead_lettered: int
    overdue_now: int
    overdue_next_day: int
    source_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def unaccounted(self) -> int:
        """Demo posts that became neither an incident nor a quarantine record."""
        return self.demo_posts - self.incidents - self.quarantined

    def render(self) -> str:
        lines = [
            f"Otklik local run ({self.emulators} emulators) in {self.seconds:.1f}s",
            "",
            f"Posts fetched: {sum(self.fetched_per_source.values())} of {self.demo_posts} on the demo walls",
        ]
        lines += [f"  {src:<28} {n:>4}" for src, n in sorted(self.fetched_per_source.items())]
        lines += [
            f"Published to Pub/Sub:         {self.published:>4}",
            f"Incidents stored:             {self.incidents:>4}  "
            f"({sum(self.complaints_by_category.values())} complaints, {self.irrelevant} not complaints)",
            "Complaints by category:",
        ]
        lines += [f"  {category_name(cat):<28} {n:>4}" for cat, n in self.complaints_by_category.most_common()]
        lines += [f"Dangerous (critical):         {self.critical:>4}", "Routed to departments:"]
        lines += [f"  {dep:<28} {n:>4}" for dep, n in sorted(self.routed_to.items())]
        lines += ["Notifications:"]
        lines += [f"  {kind:<28} {n:>4}" for kind, n in sorted(self.notifications.items())]
        lines += [
            f"  webhook sink received        {self.webhooks_received:>4}",
            f"  SMTP sink received           {self.emails_received:>4}",
            f"Overdue now:                  {self.overdue_now:>4}",
            f"Overdue the next day (remind run with the clock 25 h ahead): {self.overdue_next_day}",
            f"Quarantined:                  {self.quarantined:>4}",
            f"Dead-lettered:                {self.dead_lettered:>4}",
        ]
        if self.source_errors:
            lines += ["Source errors:"] + [f"  {e}" for e in self.source_errors]
        verdict = (
            "Every demo post is accounted for."
            if self.unaccounted == 0
            else f"{self.unaccounted} demo posts are unaccounted for!"
        )
        lines += ["", verdict]
        return "\n".join(lines)


def collect_incidents(db: Any) -> list[dict[str, Any]]:
    return [snap.to_dict() for snap in db.collection("incidents").stream()]


def count(db: Any, collection: str) -> int:
    value = int(db.collection(collection).count().get()[0][0].value)
    return value


def notification_counts(db: Any) -> Counter[str]:
    counts: Counter[str] = Counter()
    for snap in db.collection("notifications").stream():
        doc = snap.to_dict()
        counts[f"{doc['channel']} {doc['status']}"] += 1
    return counts
