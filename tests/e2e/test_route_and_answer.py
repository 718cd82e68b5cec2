"""Issue 5's promise end to end on the local stack: a dangerous post in Shakhty reaches the right department by
signed webhook and by e-mail, urgent; the department answers through its API; the incident is answered with its
history. Then the coordinator corrects the municipality and the incident is re-routed and the new department
notified once."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from otklik.stack.local import LocalStack
from shared.domain.ids import incident_id_for
from shared.domain.models import Incident

pytestmark = pytest.mark.e2e

DANGEROUS_POST = (
    "Шахты, ул. Советская 140, у остановки открытый люк без крышки прямо на тротуаре, вечером его не видно. "
    "Сегодня ребенок чуть не упал туда! Срочно закройте, пока никто не погиб"
)


def stored(stack: LocalStack, incident_id: str) -> Incident:
    snap = stack.firestore().collection("incidents").document(incident_id).get()
    return Incident.model_validate(snap.to_dict())


def wait_for(read: Callable[[], Incident], done: Callable[[Incident], bool], timeout: float = 30) -> Incident:
    """Until route has handled the re-published incident (the bridge delivers it asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        incident = read()
        if done(incident) or time.monotonic() > deadline:
            return incident
        time.sleep(0.2)


def api(stack: LocalStack, token: str, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
    return httpx.request(method, stack.public_api_url + path, headers=headers, timeout=30, **kw)


def test_a_dangerous_post_in_shakhty_reaches_its_departments_and_is_answered_through_the_api(
    make_stack: Any,
) -> None:
    stack: LocalStack = make_stack()
    post_id = f"e2e-{uuid.uuid4().hex[:8]}"
    accepted = stack.post_inbox(
        {"source_id": "city-portal", "post_id": post_id, "text": DANGEROUS_POST, "municipality": "shakhty"}
    )
    assert accepted.status_code == 202, accepted.text
    stack.wait_until_settled(1)
    incident_id = incident_id_for("inbox", "city-portal", post_id)

    incident = stored(stack, incident_id)
    assert incident.classification.danger and incident.classification.priority == "critical"
    assert incident.classification.municipality == "shakhty"
    assert "shakhty-edds" in incident.department_ids  # the duty dispatch service gets every dangerous one
    assert incident.status == "routed" and incident.reply_due_at is not None and not incident.undelivered

    # Every channel of every department it was routed to, urgent; webhooks signed with that department's key.
    departments = {d.id: d for d in stack.routing.departments}
    hooks = [r for r in stack.webhooks.accepted() if r.json["incident_id"] == incident_id]
    mails = [m for m in stack.smtp.messages if incident_id in m.get_body(("plain",)).get_content()]  # type: ignore[union-attr]
    expected_hooks = {d for d in incident.department_ids if departments[d].webhook_url}
    expected_mails = {departments[d].email for d in incident.department_ids if departments[d].email}
    assert {r.json["department_id"] for r in hooks} == expected_hooks and len(hooks) == len(expected_hooks)
    assert {m["To"] for m in mails} == expected_mails and len(mails) == len(expected_mails)
    assert "shakhty-edds" in expected_hooks and "edds@shakhty.example" in expected_mails  # both channels
    for hook in hooks:
        assert hook.signature_valid, hook.signature_error
        assert hook.headers["otklik-urgent"] == "1" and hook.json["urgent"] is True
        assert hook.json["answer_url"].startswith(stack.public_api_url + "/answer/")
    for mail in mails:
        assert mail["Subject"].startswith("СРОЧНО")
        assert stack.public_api_url + "/answer/" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    # The department answers through its API.
    token = stack.issue_token("shakhty-edds")
    assert api(stack, "otk_not-a-token", "GET", f"/incidents/{incident_id}").status_code == 401
    other = stack.issue_token("kirov-roads")
    assert api(stack, other, "POST", f"/incidents/{incident_id}/acknowledge").status_code == 403
    assert api(stack, token, "POST", f"/incidents/{incident_id}/acknowledge").status_code == 200
    answer = {"text": "Люк закрыт временной крышкой и огорожен, бригада водоканала выехала."}
    first = api(
        stack, token, "POST", f"/incidents/{incident_id}/answer", json=answer, headers={"Idempotency-Key": "a1"}
    )
    again = api(
        stack, token, "POST", f"/incidents/{incident_id}/answer", json=answer, headers={"Idempotency-Key": "a1"}
    )
    assert first.status_code == again.status_code == 200, first.text
    view = api(stack, token, "GET", f"/incidents/{incident_id}").json()
    assert view["status"] == "answered" and [a["text"] for a in view["answers"]] == [answer["text"]]
    assert [h["status"] for h in view["history"]] == ["new", "routed", "acknowledged", "answered"]
    assert view["history"][-1]["actor"] == "shakhty-edds (api)"
    answered = stored(stack, incident_id)
    assert answered.first_reply_at is not None and answered.first_reply_at <= answered.reply_due_at  # type: ignore[operator]


def test_a_correction_by_the_coordinator_re_routes_the_incident_and_notifies_the_new_department_once(
    make_stack: Any,
) -> None:
    stack: LocalStack = make_stack()
    post_id = f"e2e-{uuid.uuid4().hex[:8]}"
    text = "Шахты, на улице Ленина огромная яма на проезжей части, уже третий день никто не ремонтирует"
    stack.post_inbox({"source_id": "city-portal", "post_id": post_id, "text": text, "municipality": "shakhty"})
    stack.wait_until_settled(1)
    incident_id = incident_id_for("inbox", "city-portal", post_id)
    before = stored(stack, incident_id)
    assert before.classification.category == "roads" and before.department_ids == ("shakhty-roads",)

    coordinator = stack.issue_token("region-coordinator")
    fixed = api(
        stack,
        coordinator,
        "POST",
        f"/incidents/{incident_id}/correct",
        json={"municipality": "kirov", "reason": "улица в Кирове"},
    )
    assert fixed.status_code == 200, fixed.text
    after = wait_for(lambda: stored(stack, incident_id), lambda i: not i.undelivered)
    assert after.department_ids == ("kirov-roads",) and after.routing_round == 1
    assert not after.undelivered and after.delivery["kirov-roads/webhook"] == "sent"
    rerouted = [r for r in stack.webhooks.accepted() if r.json["incident_id"] == incident_id]
    assert [(r.json["department_id"], r.json["kind"]) for r in rerouted] == [
        ("shakhty-roads", "new_incident"),
        ("kirov-roads", "rerouted.1"),
    ]
    assert all(r.signature_valid for r in rerouted)
    assert "municipality shakhty -> kirov" in after.status_history[-1].note


def test_nobody_answers_for_a_week_remind_escalates_and_the_digest_lists_it(make_stack: Any) -> None:
    stack: LocalStack = make_stack()
    post_id = f"e2e-{uuid.uuid4().hex[:8]}"
    stack.post_inbox(
        {"source_id": "city-portal", "post_id": post_id, "text": DANGEROUS_POST, "municipality": "shakhty"}
    )
    stack.wait_until_settled(1)
    incident_id = incident_id_for("inbox", "city-portal", post_id)
    mails_before = len(stack.smtp.messages)

    week_later = stored(stack, incident_id).routed_at + timedelta(days=7)  # type: ignore[operator]
    report = stack.fire_remind(week_later)
    again = stack.fire_remind(week_later)  # Cloud Scheduler may fire twice: nothing more happens

    steps = [s.split(" ")[1] for s in report["steps"] if s.startswith(incident_id)]
    # A dangerous incident's 2-hour clock is shorter than the reminder's lead: no reminder, straight to overdue.
    assert steps == ["reply.overdue", "reply.supervisor", "reply.coordinator"]
    assert not any(s.startswith(incident_id) for s in again["steps"])
    incident = stored(stack, incident_id)
    assert incident.overdue and [e.kind for e in incident.events] == [
        "overdue",
        "escalated_to_supervisor",
        "escalated_to_coordinator",
    ]
    new_mail = stack.smtp.messages[mails_before:]
    subjects = [(m["To"], m["Subject"]) for m in new_mail]
    assert any(s.startswith("Эскалация") for to, s in subjects if to == "edds-head@shakhty.example")  # supervisor
    assert any(s.startswith("ПРОСРОЧЕНО") for to, s in subjects if to == "edds@shakhty.example")
    assert any(s.startswith("Эскалация в ЦУР") for to, s in subjects if to == "cur-duty@region.example")
    hooks = [r for r in stack.webhooks.accepted() if r.json["incident_id"] == incident_id]
    assert {r.json["kind"] for r in hooks} >= {"new_incident", "reply.overdue.r0"}
    assert all(r.signature_valid for r in hooks)

    digest = stack.fire_digest(week_later)
    assert "shakhty-edds" in digest["sent"]
    again = stack.fire_digest(week_later)
    assert again["sent"] == []  # once a day
    # The same run mails last week's report to the coordinators, once a week.
    assert digest["weekly_report"]["sent"] and again["weekly_report"]["sent"] == []
    assert any(m["Subject"].startswith("Отчёт об обращениях за неделю") for m in stack.smtp.messages)
    [letter] = [
        m for m in stack.smtp.messages if m["Subject"].startswith("Сводка") and m["To"] == "edds@shakhty.example"
    ]
    assert "просрочено" in letter["Subject"] and incident_id in letter.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_an_answer_is_posted_under_the_vk_post_and_read_back_as_the_official_answer(make_stack: Any) -> None:
    stack: LocalStack = make_stack()
    report = stack.fire_ingest()
    stack.wait_until_settled(report["published"])
    db = stack.firestore()
    docs = [Incident.model_validate(d.to_dict()) for d in db.collection("incidents").stream()]
    # A post the community has not commented on in the demo data (its own comments count as answers too).
    answered_by_demo = {str(c["post_id"]) for c in stack.vk.official_comments()}
    # The newest such post: ingest follows the comments of a wall's newest posts only (comments_on_newest_posts).
    newest_first = sorted(docs, key=lambda i: -int(i.post.post_id.split("_")[0]) if i.post.source == "vk" else 0)
    target = next(
        i
        for i in newest_first
        if i.status == "routed"
        and i.post.source == "vk"
        and i.post.parent_post_id is None
        and i.post.community == "-210000001"
        and i.post.post_id not in answered_by_demo
        and not i.answers
    )
    department = target.department_ids[0]
    token = stack.issue_token(department)
    text = f"Заявка {uuid.uuid4().hex[:6]} передана подрядчику, ремонт в течение трёх дней."
    assert api(stack, token, "POST", f"/incidents/{target.id}/answer", json={"text": text}).status_code == 200

    def posted() -> list[dict[str, Any]]:
        return [c for c in stack.vk.official_comments() if c["text"].startswith(text)]

    deadline = time.monotonic() + 30
    while not posted() and time.monotonic() < deadline:
        time.sleep(0.2)
    [comment] = posted()
    assert int(comment["post_id"]) == int(target.post.post_id) and comment["from_id"] == -210000001

    again = stack.fire_ingest()  # the community's comment comes back through the wall's comments
    stack.wait_until_settled(report["published"] + again["published"])
    echo = stored(stack, incident_id_for("vk", "-210000001", f"{comment['post_id']}_{comment['id']}"))
    assert echo.status == "irrelevant" and "official answer" in echo.status_history[-1].note
    answered = stored(stack, target.id)
    assert answered.status == "answered" and [a.text for a in answered.answers] == [text]
