"""What happened in a local run, read back from Firestore and the sinks, as numbers and as text."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shared.domain.categories import category_name


@dataclass
class PushReport:
    vk_events: int = 0
    vk_ok: int = 0
    inbox_accepted: int = 0
    edits: int = 0  # pushed edits of posts pushed before: published, but no incident of their own
    expected: set[str] = field(default_factory=set)  # incident ids the pushes must have produced


@dataclass
class RunSummary:
    emulators: str
    ingest_runs: list[dict[str, Any]]
    push: PushReport
    incidents: int
    incident_ids: set[str]
    wall_post_ids: set[str]
    complaints_by_category: Counter[str]
    by_network: Counter[str]
    irrelevant: int
    critical: int
    routed_to: Counter[str]
    notifications: Counter[str]  # "webhook sent", "email failed", ...
    webhooks_received: int
    emails_received: int
    quarantined: Counter[str]  # by stage
    dead_lettered: int
    overdue_now: int
    overdue_week_later: int
    escalation_steps: Counter[str]
    shapes: Counter[str] = field(default_factory=Counter)  # real post shapes that became incidents (shapes_of)
    versions: int = 0  # other versions of posts kept on their incidents: authors' edits (an edit is no new incident)
    merged: int = 0  # complaints grouped into another incident about the same problem
    most_reported: int = 1  # the most residents on one incident
    seconds: float = 0.0

    @property
    def published(self) -> int:
        """Posts that reached Pub/Sub: ingest's runs plus the pushes that were new (posts and edits)."""
        return sum(int(r["published"]) for r in self.ingest_runs) + len(self.push.expected) + self.push.edits

    @property
    def source_errors(self) -> list[str]:
        return [f"{s['source_id']}: {s['error']}" for r in self.ingest_runs for s in r["sources"] if s["error"]]

    @property
    def unaccounted(self) -> int:
        """Published posts that became neither an incident nor a quarantine record, plus demo wall posts and
        pushed posts that are missing."""
        lost = self.published - self.incidents - self.versions - self.quarantined.get("classify", 0)
        missing = (self.wall_post_ids | self.push.expected) - self.incident_ids
        return abs(lost) + len(missing)

    def render(self) -> str:
        first, second = self.ingest_runs[0], self.ingest_runs[-1]
        lines = [f"Otklik local run ({self.emulators} emulators) in {self.seconds:.1f}s", "", "Ingest, first run:"]
        lines.append(f"  {'source':<26}{'fetched':>8}{'new':>6}{'dupes':>7}{'skip':>6}{'bad':>5}  status")
        for s in first["sources"]:
            lines.append(
                f"  {s['source_id']:<26}{s['fetched']:>8}{s['published']:>6}{s['duplicates']:>7}"
                f"{s['skipped']:>6}{s['quarantined']:>5}  {s['status']}"
            )
        skips = Counter[str]()
        for s in first["sources"]:
            skips.update(s["skipped_by_reason"])
        lines.append(
            "  every item accounted for (fetched = new + dupes + skip + bad): "
            + ("yes" if first["accounted"] else "NO")
            + (f"; skipped: {', '.join(f'{k} {v}' for k, v in sorted(skips.items()))}" if skips else "")
        )
        lines += [
            f"Pushed: {self.push.vk_events} VK Callback API events (answered ok: {self.push.vk_ok}), "
            f"{self.push.inbox_accepted} inbox post",
            f"Ingest, second run: {second['published']} new, "
            f"{sum(s['duplicates'] for s in second['sources'])} already published "
            "(the pushed post, now on its wall and found by VK search)",
            "",
            f"Published to Pub/Sub:         {self.published:>4}",
            f"Incidents stored:             {self.incidents:>4}  "
            f"({sum(self.complaints_by_category.values())} complaints, {self.irrelevant} not complaints)",
            f"Edits kept on their incidents: {self.versions:>4}  (the author changed the text; history keeps both)",
            "  by network:                 " + ", ".join(f"{k} {v}" for k, v in self.by_network.most_common()),
            "  real shapes:                " + ", ".join(f"{name} {self.shapes.get(name, 0)}" for name in SHAPES),
            "Complaints by category:",
        ]
        lines += [f"  {category_name(cat):<28} {n:>4}" for cat, n in self.complaints_by_category.most_common()]
        lines += [
            f"Grouped into an incident about the same problem: {self.merged} "
            f"(the most residents on one incident: {self.most_reported})",
            f"Dangerous (critical):         {self.critical:>4}",
            "Routed to departments:",
        ]
        lines += [f"  {dep:<28} {n:>4}" for dep, n in sorted(self.routed_to.items())]
        lines += ["Notifications:"]
        lines += [f"  {kind:<28} {n:>4}" for kind, n in sorted(self.notifications.items())]
        lines += [
            f"  webhook sink received        {self.webhooks_received:>4}",
            f"  SMTP sink received           {self.emails_received:>4}",
            f"Overdue now:                  {self.overdue_now:>4}",
            f"A week later, nobody answered (remind with the clock 7 days ahead): {self.overdue_week_later} overdue",
            "  steps: " + (", ".join(f"{k} {v}" for k, v in sorted(self.escalation_steps.items())) or "none"),
            "Quarantined (kept with the reason): "
            + (", ".join(f"{stage} {n}" for stage, n in sorted(self.quarantined.items())) or "none"),
            f"Dead-lettered:                {self.dead_lettered:>4}",
        ]
        if self.source_errors:
            lines += ["Source errors:"] + [f"  {e}" for e in self.source_errors]
        verdict = (
            "Every post is accounted for: each published post is an incident, a version of one or in quarantine."
            if self.unaccounted == 0
            else f"{self.unaccounted} posts are unaccounted for!"
        )
        lines += ["", verdict]
        return "\n".join(lines)


SHAPES = (
    "reposts",
    "comments under posts with over 10",
    "posts with several photos",
    "with a location",
    "written to the city directly",
)


def shapes_of(incidents: list[dict[str, Any]]) -> Counter[str]:
    """How many incidents came from the shapes that used to be lost at the door (issue 16)."""
    found: Counter[str] = Counter()
    replies: Counter[str] = Counter(i["post"]["parent_post_id"] for i in incidents if i["post"].get("parent_post_id"))
    for incident in incidents:
        post = incident["post"]
        found["reposts"] += post.get("repost_of") is not None
        found["comments under posts with over 10"] += replies.get(post.get("parent_post_id") or "", 0) > 10
        found["posts with several photos"] += sum(a["kind"] == "photo" for a in post.get("attachments", [])) > 1
        found["with a location"] += post.get("geo") is not None
        found["written to the city directly"] += bool(post.get("direct"))
    return found


def collect_incidents(db: Any) -> list[dict[str, Any]]:
    return [snap.to_dict() for snap in db.collection("incidents").stream()]


def count(db: Any, collection: str) -> int:
    return int(db.collection(collection).count().get()[0][0].value)


def notification_counts(db: Any) -> Counter[str]:
    counts: Counter[str] = Counter()
    for snap in db.collection("notifications").stream():
        doc = snap.to_dict()
        counts[f"{doc['channel']} {doc['status']}"] += 1
    return counts
