"""``otklik run``: the demo feed once through the whole local stack, then a summary."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from otklik.stack.local import LocalStack
from otklik.stack.summary import RunSummary, collect_incidents, count, notification_counts
from shared.domain.models import utcnow


def run_once(work_dir: Path, emulators_kind: str | None = None) -> RunSummary:
    began = time.monotonic()
    with LocalStack(work_dir, emulators_kind=emulators_kind) as stack:
        assert stack.emulators is not None and stack.bridge is not None
        ingest = stack.fire_ingest()
        stack.wait_until_settled(ingest["published"])
        overdue_now = len(stack.fire_remind()["flagged"])
        overdue_next_day = len(stack.fire_remind(utcnow() + timedelta(hours=25))["flagged"])
        db = stack.firestore()
        incidents = collect_incidents(db)
        complaints = [i for i in incidents if i["status"] != "irrelevant"]
        routed: Counter[str] = Counter(d for i in complaints for d in i.get("department_ids", []))
        summary = RunSummary(
            emulators=f"{stack.emulators.kind}",
            demo_posts=len(stack.vk.all_posts()),
            fetched_per_source={s["source_id"]: s["fetched"] for s in ingest["sources"]},
            published=ingest["published"],
            incidents=len(incidents),
            complaints_by_category=Counter(i["classification"]["category"] for i in complaints),
            irrelevant=len(incidents) - len(complaints),
            critical=sum(1 for i in complaints if i["classification"]["priority"] == "critical"),
            routed_to=routed,
            notifications=notification_counts(db),
            webhooks_received=len(stack.webhooks.accepted()),
            emails_received=len(stack.smtp.messages),
            quarantined=count(db, "quarantine"),
            dead_lettered=sum(stack.bridge.stats.dead_lettered.values()),
            overdue_now=overdue_now,
            overdue_next_day=overdue_next_day,
            source_errors=[f"{s['source_id']}: {s['error']}" for s in ingest["sources"] if s["error"]],
        )
    summary.seconds = time.monotonic() - began
    return summary
