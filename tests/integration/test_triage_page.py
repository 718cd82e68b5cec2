"""The operator's triage pages and /reports under functions-framework's own app (``department_api``), with the
real adapters against the Firestore and Pub/Sub emulators. The browser walk: tests/e2e/test_triage_browser.py."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.firestore import FirestoreDepartmentTokens
from shared.domain.models import Classification, IncidentStatus, Priority, Report, utcnow
from shared.services import tokens
from tests.builders import T0, make_incident, make_post
from tests.integration.test_answer_page import (
    COORDINATOR,
    DEPARTMENT,
    DEPARTMENTS_YAML,
    SECURITY_HEADERS,
    AnswerPageApp,
    answer_page_app,
)
from tests.integration.test_function_entrypoints import pull_all

pytestmark = pytest.mark.integration
S = IncidentStatus


@dataclass
class Triage:
    page: AnswerPageApp
    coordinator_token: str
    department_token: str

    @property
    def client(self) -> Any:
        return self.page.app.test_client()


def triage_app(project_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Triage:
    """The department_api app with a coordinator and a department token (also used by the browser test)."""
    page = answer_page_app(project_id, tmp_path, monkeypatch)
    store = FirestoreDepartmentTokens(page.db)
    return Triage(page, tokens.issue(store, COORDINATOR, "test", T0), tokens.issue(store, DEPARTMENT, "test", T0))


@pytest.fixture
def triage(project_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Triage:
    return triage_app(project_id, tmp_path, monkeypatch)


def logged_in(t: Triage) -> Any:
    client = t.client
    response = client.post("/triage/login", data={"token": t.coordinator_token})
    assert response.status_code == 303 and response.headers["Location"] == "/triage"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    return client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no form token on the page"
    return found.group(1)


def routed(post_id: str, text: str, **kw: Any) -> Any:
    """A routed incident created a minute ago (the queue looks at the last 90 days of the real clock)."""
    fields: dict[str, Any] = {
        "created_at": utcnow() - timedelta(minutes=1),
        "post": make_post(post_id, text),
        "department_ids": (DEPARTMENT,),
        "routed_at": T0,
        "reply_due_at": T0 + timedelta(hours=6),
    }
    fields.update(kw)
    return make_incident(post_id, status=S.ROUTED, **fields)


def test_the_pages_need_a_coordinators_session(triage: Triage) -> None:
    client = triage.client
    assert client.get("/triage").status_code == 303
    assert client.get("/triage").headers["Location"] == "/triage/login"
    login = client.get("/triage/login")
    assert login.status_code == 200 and 'type="password"' in login.get_data(as_text=True)
    for name, value in SECURITY_HEADERS.items():
        assert login.headers[name] == value
    assert client.post("/triage/login", data={"token": "otk_wrong"}).status_code == 401
    assert client.post("/triage/login", data={"token": triage.department_token}).status_code == 403
    # A forged cookie is no session.
    client.set_cookie("otklik_triage", "W10.forged.signature")
    assert client.get("/triage").status_code == 303


def test_the_queue_filters_and_shows_the_most_urgent_first(triage: Triage) -> None:
    ordinary = triage.page.store(routed("7001", "Яма на Советской, 5"))
    hazard = triage.page.store(
        routed(
            "7002",
            "Открытый люк у школы",
            classification=make_incident("x", priority=Priority.CRITICAL).classification,
        )
    )
    triage.page.store(make_incident("7003", status=S.IRRELEVANT, post=make_post("7003", "Продам гараж")))
    client = logged_in(triage)

    html = client.get("/triage").get_data(as_text=True)
    ids = re.findall(r'<tr class="[^"]*" data-id="([0-9a-f]+)"', html)
    assert ids[:2] == [hazard.id, ordinary.id] and "Продам гараж" not in html
    critical_only = client.get("/triage?priority=critical").get_data(as_text=True)
    assert re.findall(r'data-id="([0-9a-f]+)"', critical_only) == [hazard.id]
    assert "Найдено: 0" in client.get("/triage?category=education").get_data(as_text=True)


def test_not_a_complaint_from_the_page_needs_the_form_token_and_feeds_the_corpus(triage: Triage) -> None:
    incident = triage.page.store(routed("7101", "Продаю шины, недорого, звоните"))
    client = logged_in(triage)
    page = client.get(f"/triage/incidents/{incident.id}").get_data(as_text=True)

    forged = client.post(f"/triage/incidents/{incident.id}/not_complaint", data={"csrf": "nope", "reason": "x"})
    assert forged.status_code == 403 and triage.page.incident(incident.id).status is S.ROUTED

    done = client.post(
        f"/triage/incidents/{incident.id}/not_complaint", data={"csrf": csrf_of(page), "reason": "реклама"}
    )
    assert done.status_code == 303
    after = client.get(done.headers["Location"]).get_data(as_text=True)
    assert 'id="done"' in after and "не обращение" in after
    stored = triage.page.incident(incident.id)
    assert stored.status is S.IRRELEVANT and not stored.classification.is_complaint
    feedback = triage.page.db.collection("corpus_feedback").document(incident.id).get().to_dict()
    assert feedback["text"] == "Продаю шины, недорого, звоните" and feedback["is_complaint"] is False


def test_merge_and_split_from_the_pages(triage: Triage) -> None:
    first = triage.page.store(routed("7201", "Яма на Советской, 5, колёса бьём"))
    second = triage.page.store(routed("7202", "Советская 5 — ямища, когда засыплют?"))
    client = logged_in(triage)
    page = client.get(f"/triage/incidents/{second.id}").get_data(as_text=True)

    merged = client.post(f"/triage/incidents/{second.id}/merge", data={"csrf": csrf_of(page), "into": first.id})
    assert merged.status_code == 303 and merged.headers["Location"].startswith(f"/triage/incidents/{first.id}")
    target = triage.page.incident(first.id)
    assert target.residents == 1  # the same author (the builder's) wrote both
    assert [r.incident_id for r in target.reports] == [second.id]
    assert triage.page.incident(second.id).status is S.MERGED
    shown = client.get(f"/triage/incidents/{first.id}").get_data(as_text=True)
    assert "ямища" in shown and "выделить в отдельное обращение" in shown

    split = client.post(f"/triage/incidents/{first.id}/split", data={"csrf": csrf_of(shown), "report": second.id})
    assert split.status_code == 303
    assert triage.page.incident(second.id).status is S.NEW and triage.page.incident(first.id).reports == ()
    unknown = client.post(f"/triage/incidents/{first.id}/merge", data={"csrf": csrf_of(shown), "into": "missing"})
    assert unknown.status_code == 404 and 'id="error"' in unknown.get_data(as_text=True)


def test_reports_for_machines_and_for_the_operator(triage: Triage) -> None:
    triage.page.store(routed("7301", "Яма на Советской", created_at=T0))
    merged = make_incident(
        "7302",
        status=S.MERGED,
        post=make_post("7302", "И у нас яма на Советской"),
        created_at=T0,
        merged_into="x",
    )
    triage.page.store(merged)
    day = T0.date().isoformat()
    next_day = (T0.date() + timedelta(days=1)).isoformat()
    query = f"?from={day}&to={next_day}"

    assert triage.client.get("/reports" + query).status_code == 401
    dept = {"Authorization": f"Bearer {triage.department_token}"}
    assert triage.client.get("/reports" + query, headers=dept).status_code == 403
    boss = {"Authorization": f"Bearer {triage.coordinator_token}"}
    report = triage.client.get("/reports" + query, headers=boss).get_json()
    assert report["complaints"]["current"] == 2 and report["incidents"]["current"] == 1
    assert [c["key"] for c in report["by_category"]] == ["roads"]
    rows = list(csv.reader(io.StringIO(triage.client.get("/reports" + query + "&format=csv", headers=boss).text)))
    assert any(r[:2] == ["totals", "incidents"] for r in rows), rows[:5]
    assert triage.client.get("/reports?from=2026-13-01&to=x", headers=boss).status_code == 400

    html = logged_in(triage).get("/triage/report" + query).get_data(as_text=True)
    assert "<svg" in html and "Инцидентов (разных проблем)" in html


def test_without_a_signing_key_there_are_no_triage_pages(
    project_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = triage_app(project_id, tmp_path, monkeypatch)
    monkeypatch.delenv("OTKLIK_LINK_SIGNING_KEY")
    from shared import bootstrap

    bootstrap.reset()
    assert app.client.get("/triage").status_code == 404


def test_report_entries_keep_their_links(triage: Triage) -> None:
    report = Report(incident_id="a", source="vk", url="https://vk.com/wall-1_2", published_at=T0)
    incident = triage.page.store(routed("7401", "Яма на Советской", reports=(report,), residents=2))
    html = logged_in(triage).get(f"/triage/incidents/{incident.id}").get_data(as_text=True)
    assert 'href="https://vk.com/wall-1_2"' in html and 'id="residents">2<' in html


DUTY_YAML = (
    DEPARTMENTS_YAML
    + """  - id: shakhty-edds
    name: ЕДДС г. Шахты
    municipality: shakhty
rules:
  - municipality: shakhty
    priority: critical
    departments: [shakhty-roads, shakhty-edds]
"""
)


def test_the_page_shows_the_classifiers_evidence_and_marking_danger_starts_the_fast_lane(
    triage: Triage, project_id: str, tmp_path: Path
) -> None:
    (tmp_path / "config" / "departments.yaml").write_text(DUTY_YAML, encoding="utf-8")  # with a duty service
    from shared import bootstrap

    bootstrap.reset()
    decided = Classification(
        category="roads",
        is_complaint=True,
        municipality="shakhty",
        confidence=0.73,
        evidence=("категория «дороги»: провал, асфальт", "danger: <b>no strong words</b>"),
        classifier="test-1",
    )
    incident = triage.page.store(
        routed("7501", "Провал асфальта у остановки, люди обходят по проезжей части", classification=decided)
    )
    closed = triage.page.store(make_incident("7502", status=S.CLOSED, post=make_post("7502", "Яма засыпана")))
    client = logged_in(triage)

    html = client.get(f"/triage/incidents/{incident.id}").get_data(as_text=True)
    evidence = re.search(r'<ul class="evidence" id="evidence">(.*?)</ul>', html, re.S)
    assert evidence, "no evidence on the page"
    assert re.findall(r"<li>(.*?)</li>", evidence.group(1)) == [
        "категория «дороги»: провал, асфальт",
        "danger: &lt;b&gt;no strong words&lt;/b&gt;",
    ]
    assert 'id="is-complaint">да' in html and 'id="category">Дороги<' in html and 'id="confidence">73 %<' in html
    assert 'data-danger="no"' in html and 'id="priority">обычный<' in html and 'id="danger-form"' in html

    form = {"csrf": csrf_of(html), "dangerous": "yes", "reason": "люди выходят на проезжую часть"}
    done = client.post(f"/triage/incidents/{incident.id}/danger", data=form)
    assert done.status_code == 303 and done.headers["Location"].endswith("?done=dangerous")
    after = client.get(done.headers["Location"]).get_data(as_text=True)
    assert 'id="done"' in after and "КРИТИЧЕСКИЙ" in after and 'data-danger="yes"' in after

    stored = triage.page.incident(incident.id)
    assert stored.classification.danger and stored.classification.priority is Priority.CRITICAL
    assert stored.routing_reason == "marked_dangerous" and stored.routing_round == 1
    assert stored.department_ids == (DEPARTMENT, "shakhty-edds")
    assert stored.status_history[-1].actor == f"{COORDINATOR} (triage)"
    assert "люди выходят на проезжую часть" in stored.status_history[-1].note
    [handed] = pull_all(project_id, "otklik-incidents-route")  # route hears of the new round
    message = json.loads(handed.message.data)
    assert message["incident_id"] == incident.id and message["priority"] == "critical" and message["danger"]
    feedback = triage.page.db.collection("corpus_feedback").document(incident.id).get().to_dict()
    assert feedback["danger"] is True and feedback["classifier_said"]["danger"] is False
    assert feedback["by"] == COORDINATOR

    # Not dangerous after all: back to normal, nothing re-routed, the history says who decided.
    form = {"csrf": csrf_of(after), "dangerous": "no", "reason": ""}
    lowered = client.post(f"/triage/incidents/{incident.id}/danger", data=form)
    assert lowered.status_code == 303 and lowered.headers["Location"].endswith("?done=not_dangerous")
    stored = triage.page.incident(incident.id)
    assert stored.classification.priority is Priority.NORMAL and stored.routing_round == 1
    assert stored.events[-1].actor == f"{COORDINATOR} (triage)"
    assert pull_all(project_id, "otklik-incidents-route") == []

    # A closed incident: no form on its page, and a stale form is refused in Russian.
    page = client.get(f"/triage/incidents/{closed.id}").get_data(as_text=True)
    assert 'id="danger-form"' not in page
    refused = client.post(f"/triage/incidents/{closed.id}/danger", data={"csrf": csrf_of(page), "dangerous": "yes"})
    assert refused.status_code == 409 and "опасность отмечают у открытых обращений" in refused.get_data(as_text=True)
    unclear = client.post(f"/triage/incidents/{incident.id}/danger", data={"csrf": csrf_of(page), "dangerous": "?"})
    assert unclear.status_code == 400 and "опасно или не опасно" in unclear.get_data(as_text=True)
