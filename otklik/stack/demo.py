"""``otklik run``: the demo through the whole local stack once, then a summary.

1. ingest fetches every demo source (VK walls with comments, VK search, Telegram, OK, RSS);
2. VK's Callback API pushes a brand-new post (twice: VK repeats events) and a comment, a resident's message to
   the community, a comment naming its wall only as post_owner_id and its edit; a city portal posts to the inbox;
3. ingest runs again: the pushed post is on the wall now too, and is not published a second time;
4. remind runs now, and with the clock a week ahead (nobody answered): reminders, overdue flags, escalations.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from otklik.stack.local import LocalStack
from otklik.stack.summary import PushReport, RunSummary, collect_incidents, count, notification_counts, shapes_of
from otklik.standins.vk import demo_callback_events
from shared.adapters.vk import vk_comment, vk_message
from shared.domain.ids import incident_id_for
from shared.domain.models import utcnow

SHAKHTY = -210000001


def _new_wall_post(stack: LocalStack) -> dict[str, Any]:
    newest = max(int(item["id"]) for owner, item in stack.vk.all_posts() if owner == SHAKHTY)
    return {
        "id": newest + 1000,
        "owner_id": SHAKHTY,
        "from_id": 731455,
        "date": int(utcnow().timestamp()),
        "post_type": "post",
        "text": "Только что на пр. Победы Революции провалился асфальт, яма глубиной по колено прямо на "
        "пешеходном переходе! Опасно, дети идут в школу 😡",
        "comments": {"count": 0},
    }


def _push(stack: LocalStack) -> PushReport:
    push = PushReport()
    post = _new_wall_post(stack)
    comment = {
        "id": post["id"] + 1,
        "owner_id": SHAKHTY,
        "post_id": post["id"],
        "from_id": 5512,
        "date": post["date"] + 60,
        "text": "Подтверждаю, сама чуть не упала там утром",
        "parents_stack": [],
    }
    for event_type, obj, event_id in (
        ("wall_post_new", post, "demo-event-1"),
        ("wall_post_new", post, "demo-event-1"),  # VK repeats an event it is unsure we got
        ("wall_reply_new", comment, "demo-event-2"),
    ):
        answer = stack.push_vk_event(event_type, obj, event_id)
        push.vk_events += 1
        push.vk_ok += answer.text == "ok"
    # A resident's message to the community, a comment naming its wall only as post_owner_id, that comment's
    # edit (the same incident, new text) and an event Otklik does not read (answered ok, logged).
    for event in demo_callback_events(stack.vk.dates_as_of):
        answer = stack.push_vk_event(event["type"], event["object"], event["event_id"])
        push.vk_events += 1
        push.vk_ok += answer.text == "ok"
        if event["type"] == "message_new":
            message = vk_message(event["object"]["message"], -SHAKHTY, "vk-callback-shakhty", "shakhty")
            push.expected.add(message.incident_id)
        elif event["type"].endswith("_edit"):
            push.edits += answer.text == "ok"
        elif event["type"] == "wall_reply_new":
            push.expected.add(vk_comment(event["object"], "vk-callback-shakhty", "shakhty").incident_id)
    stack.vk.add_post(SHAKHTY, post)  # the post is on the wall now: the next wall fetch sees it again
    push.expected.update(
        {
            incident_id_for("vk", str(SHAKHTY), str(post["id"])),
            incident_id_for("vk", str(SHAKHTY), f"{post['id']}_{comment['id']}"),
        }
    )
    body = {
        "source_id": "city-portal",
        "post_id": "form-2026-11-0042",
        "text": "Обращение с портала: в доме по ул. Ленина, 102 в Кирове третий день нет отопления, дети болеют.",
        "url": "https://portal.kirov.example/appeals/42",
    }
    answer = stack.post_inbox(body)
    push.inbox_accepted += answer.status_code == 202
    push.expected.add(incident_id_for("inbox", "city-portal", body["post_id"]))
    return push


def run_once(work_dir: Path, emulators_kind: str | None = None) -> RunSummary:
    began = time.monotonic()
    with LocalStack(work_dir, emulators_kind=emulators_kind, deployed=True) as stack:
        assert stack.emulators is not None and stack.bridge is not None
        first = stack.fire_ingest()
        stack.wait_until_settled(first["published"])
        push = _push(stack)
        second = stack.fire_ingest()
        stack.wait_until_settled(first["published"] + len(push.expected) + push.edits + second["published"])
        overdue_now = len(stack.fire_remind()["flagged"])
        week_later = stack.fire_remind(utcnow() + timedelta(days=7))
        stack.bridge.wait_idle(quiet=0.5, timeout=30)
        db = stack.firestore()
        incidents = collect_incidents(db)
        complaints = [i for i in incidents if i["status"] != "irrelevant"]
        routed: Counter[str] = Counter(d for i in complaints for d in i.get("department_ids", []))
        quarantine = [d.to_dict() for d in db.collection("quarantine").stream()]
        wall_ids = {
            incident_id_for("vk", str(owner), str(item["id"]))
            for owner, item in stack.vk.all_posts()
            if not item.get("marked_as_ads")  # a community's advertisement: skipped as not a resident's
        }
        summary = RunSummary(
            emulators=stack.emulators.kind,
            ingest_runs=[first, second],
            push=push,
            incidents=len(incidents),
            incident_ids={i["id"] for i in incidents},
            wall_post_ids=wall_ids,
            complaints_by_category=Counter(i["classification"]["category"] for i in complaints),
            by_network=Counter(i["post"]["source"] for i in incidents),
            shapes=shapes_of(incidents),
            irrelevant=len(incidents) - len(complaints),
            critical=sum(1 for i in complaints if i["classification"]["priority"] == "critical"),
            routed_to=routed,
            notifications=notification_counts(db),
            webhooks_received=len(stack.webhooks.accepted()),
            emails_received=len(stack.smtp.messages),
            quarantined=Counter(q["stage"] for q in quarantine),
            dead_lettered=sum(stack.bridge.stats.dead_lettered.values()),
            overdue_now=overdue_now,
            overdue_week_later=len(week_later["flagged"]),
            escalation_steps=Counter(step.rsplit(" ", 1)[1] for step in week_later["steps"]),
            versions=sum(len(i.get("post_versions", [])) for i in incidents),
            merged=sum(1 for i in complaints if i["status"] == "merged"),
            most_reported=max((int(i.get("residents", 1)) for i in complaints), default=1),
        )
        assert count(db, "incidents") == summary.incidents
    summary.seconds = time.monotonic() - began
    return summary
