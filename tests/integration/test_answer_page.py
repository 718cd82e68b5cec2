"""The answer page under functions-framework's own app (``department_api``), with the real adapters against the
Firestore and Pub/Sub emulators: a clerk's signed link, the forms, and what ends up on the incident."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from functions_framework import create_app
from google.cloud import firestore

from otklik import REPO_ROOT
from otklik.stack import topology
from shared.adapters.firestore import FirestoreIncidents
from shared.answer_links import AnswerLinks
from shared.domain.models import Incident, IncidentStatus
from tests.builders import T0, make_incident, make_post

pytestmark = pytest.mark.integration

PUBLIC_URL = "https://department-api.example"
SIGNING_KEY = "answer-page-test-signing-key"
DEPARTMENT = "shakhty-roads"
COORDINATOR = "region-coordinator"
DEPARTMENTS_YAML = """
fallback: region-coordinator
departments:
  - id: region-coordinator
    name: Центр управления регионом — дежурный координатор
  - id: shakhty-roads
    name: Отдел дорожного хозяйства г. Шахты
    municipality: shakhty
    categories: [roads]
"""
HOSTILE_TEXT = 'Яма на Советской <script>alert("x")</script> & <b>жирный</b>'
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}


@dataclass
class AnswerPageApp:
    """The department_api function's WSGI app, its Firestore and a way to sign links."""

    app: Any
    db: firestore.Client
    links: AnswerLinks

    def store(self, incident: Incident) -> Incident:
        assert FirestoreIncidents(self.db).create(incident)
        return incident

    def path(self, incident: Incident, department: str = DEPARTMENT) -> str:
        return f"/answer/{self.links.token(incident.id, department)}"

    def incident(self, incident_id: str) -> Incident:
        found = FirestoreIncidents(self.db).get(incident_id)
        assert found is not None
        return found


def answer_page_app(project_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AnswerPageApp:
    """Configure the environment as a deployment would and build the function's app (also used by e2e)."""
    topology.create_on_emulator(topology.load(), project_id)  # reassign publishes the incident for route
    config = tmp_path / "config"
    config.mkdir()
    (config / "departments.yaml").write_text(DEPARTMENTS_YAML, encoding="utf-8")
    (config / "sources.yaml").write_text("sources: []\n", encoding="utf-8")
    monkeypatch.setenv("OTKLIK_CONFIG_DIR", str(config))
    monkeypatch.setenv("OTKLIK_PUBLIC_API_URL", PUBLIC_URL)
    monkeypatch.setenv("OTKLIK_LINK_SIGNING_KEY", SIGNING_KEY)
    monkeypatch.setenv("OTKLIK_LOCAL_MODE", "true")
    app = create_app(target="department_api", source=str(REPO_ROOT / "functions" / "department_api" / "main.py"))
    return AnswerPageApp(app, firestore.Client(project=project_id), AnswerLinks(PUBLIC_URL, SIGNING_KEY, 14))


def routed_incident(post_id: str = "9001", text: str = HOSTILE_TEXT) -> Incident:
    return make_incident(
        post_id,
        status=IncidentStatus.ROUTED,
        post=make_post(post_id, text),
        department_ids=(DEPARTMENT,),
        routed_at=T0,
        reply_due_at=T0.replace(hour=15),
    )


def form_key(html: str, action: str) -> str:
    """The request_key the page rendered into the form of ``action``."""
    found = re.search(
        rf'name="action" value="{action}">\s*<input type="hidden" name="request_key" value="([0-9a-f]+)"', html
    )
    assert found, f"no {action} form on the page"
    return found.group(1)


@pytest.fixture
def page(project_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AnswerPageApp:
    return answer_page_app(project_id, tmp_path, monkeypatch)


def test_the_page_shows_the_incident_with_the_post_text_escaped(page: AnswerPageApp) -> None:
    incident = page.store(routed_incident())
    response = page.app.test_client().get(page.path(incident))
    assert response.status_code == 200
    assert response.content_type == "text/html; charset=utf-8"
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    html = response.get_data(as_text=True)
    assert "<script" not in html and "<b>жирный" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;жирный&lt;/b&gt;" in html
    assert 'lang="ru"' in html and "Отдел дорожного хозяйства г. Шахты" in html
    assert "Дороги" in html and "обычный" in html and "направлено в ведомство" in html
    assert 'href="https://vk.com/wall-210000001_9001"' in html
    # Published 09:00 UTC, due 15:00 UTC: the clerk reads Moscow time.
    assert "23.11.2026 12:00 МСК" in html and "23.11.2026 18:00 МСК" in html
    for action in ("acknowledge", "answer", "resolve", "reassign"):
        assert len(form_key(html, action)) == 32
    assert "Взять в работу" in html and "Промежуточный ответ" in html and "Срок полного ответа" in html


def test_a_tampered_foreign_or_missing_link_is_refused_without_details(page: AnswerPageApp) -> None:
    incident = page.store(routed_incident())
    client = page.app.test_client()
    good = page.path(incident)
    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    foreign = "/answer/" + AnswerLinks(PUBLIC_URL, "some other key", 14).token(incident.id, DEPARTMENT)
    for path in (tampered, foreign, "/answer/not-a-token"):
        for response in (client.get(path), client.post(path, data={"action": "answer", "request_key": "k"})):
            assert response.status_code == 403
            assert response.headers["Cache-Control"] == "no-store"
            html = response.get_data(as_text=True)
            assert "Ссылка недействительна или срок её действия истёк" in html
            assert "signature" not in html.lower() and incident.id not in html
    assert page.incident(incident.id).status is IncidentStatus.ROUTED
    # A valid link for a department the incident is not routed to: readable refusal, no incident text.
    other = page.app.test_client().get(page.path(incident, COORDINATOR.replace("region", "nowhere")))
    assert other.status_code == 403 and "Яма" not in other.get_data(as_text=True)


def test_an_answer_is_stored_once_and_the_page_confirms_it(page: AnswerPageApp) -> None:
    incident = page.store(routed_incident())
    client = page.app.test_client()
    path = page.path(incident)
    key = form_key(client.get(path).get_data(as_text=True), "answer")
    form = {"action": "answer", "request_key": key, "text": "Яму заделаем до пятницы.", "promised_by": ""}

    response = client.post(path, data=form)
    assert response.status_code == 303
    token = path.rsplit("/", 1)[1]
    assert response.headers["Location"] == f"./{token}?done=answer"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    confirmed = client.get(path)
    assert confirmed.status_code == 200
    assert "Готово: ответ сохранён." in confirmed.get_data(as_text=True)
    assert "Готово" not in client.get(path).get_data(as_text=True)  # shown once

    stored = page.incident(incident.id)
    assert stored.status is IncidentStatus.ANSWERED
    assert [a.text for a in stored.answers] == ["Яму заделаем до пятницы."]
    assert stored.answers[0].department_id == DEPARTMENT and stored.first_reply_at is not None
    assert stored.status_history[-1].actor == f"{DEPARTMENT} (answer-page)"

    # The same form sent again (a double click, the browser's resend): still one answer.
    assert client.post(path, data=form).status_code == 303
    assert len(page.incident(incident.id).answers) == 1


def test_following_the_redirect_lands_on_the_page_with_the_confirmation(page: AnswerPageApp) -> None:
    incident = page.store(routed_incident())
    client = page.app.test_client()
    path = page.path(incident)
    key = form_key(client.get(path).get_data(as_text=True), "acknowledge")
    redirect = client.post(path, data={"action": "acknowledge", "request_key": key})
    assert redirect.status_code == 303
    # Relative, so it works under a path prefix too (werkzeug's client does not resolve "./": do as browsers do).
    target = urlsplit(urljoin(f"{PUBLIC_URL}/prefix{path}", redirect.headers["Location"]))
    assert target.path == f"/prefix{path}" and target.query == "done=acknowledge"
    response = client.get(path, query_string=target.query)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Готово: обращение взято в работу." in html and 'data-status="acknowledged"' in html
    assert 'value="acknowledge"' not in html  # the form is gone once done
    assert page.incident(incident.id).acknowledged_at is not None


def test_an_interim_answer_needs_a_date_and_keeps_what_was_typed(page: AnswerPageApp) -> None:
    incident = page.store(routed_incident())
    client = page.app.test_client()
    path = page.path(incident)
    key = form_key(client.get(path).get_data(as_text=True), "answer")
    form = {"action": "answer", "request_key": key, "text": "Проверим <на месте>", "interim": "1"}

    refused = client.post(path, data=form)
    assert refused.status_code == 400
    html = refused.get_data(as_text=True)
    assert "Для промежуточного ответа укажите срок полного ответа." in html
    assert "Проверим &lt;на месте&gt;</textarea>" in html
    assert refused.headers["X-Frame-Options"] == "DENY"
    assert page.incident(incident.id).answers == ()

    assert client.post(path, data={**form, "promised_by": "2099-12-01"}).status_code == 303
    [answer] = page.incident(incident.id).answers
    assert answer.interim and answer.promised_by is not None and answer.promised_by.isoformat() == "2099-12-01"


def test_a_post_without_request_key_and_refused_actions(page: AnswerPageApp) -> None:
    incident = page.store(routed_incident())
    client = page.app.test_client()
    path = page.path(incident)
    no_key = client.post(path, data={"action": "answer", "text": "Ответ"})
    assert no_key.status_code == 400 and "Форма устарела" in no_key.get_data(as_text=True)
    empty = client.post(path, data={"action": "answer", "text": "  ", "request_key": "k1"})
    assert empty.status_code == 400 and "Напишите текст ответа." in empty.get_data(as_text=True)
    # Resolving with no answer given: the service refuses (409), the page says why in Russian.
    early = client.post(path, data={"action": "resolve", "text": "", "request_key": "k2"})
    assert early.status_code == 409 and "Сначала ответьте автору" in early.get_data(as_text=True)
    unknown = client.post(path, data={"action": "delete", "request_key": "k3"})
    assert unknown.status_code == 400
    assert page.incident(incident.id).status is IncidentStatus.ROUTED


def test_resolve_with_a_final_answer_closes_the_incident(page: AnswerPageApp) -> None:
    incident = page.store(routed_incident())
    client = page.app.test_client()
    path = page.path(incident)
    form = {"action": "resolve", "text": "Яма заделана.", "request_key": "r-1"}
    assert client.post(path, data=form).status_code == 303
    stored = page.incident(incident.id)
    assert stored.status is IncidentStatus.CLOSED and [a.text for a in stored.answers] == ["Яма заделана."]
    html = client.get(path).get_data(as_text=True)
    assert "Готово: обращение отмечено как решённое." in html and 'name="request_key"' not in html


def test_not_ours_hands_the_incident_to_the_coordinator(page: AnswerPageApp) -> None:
    incident = page.store(routed_incident())
    client = page.app.test_client()
    path = page.path(incident)
    form = {"action": "reassign", "reason": "Это дорога регионального значения", "request_key": "x-1"}
    assert client.post(path, data=form).status_code == 303
    stored = page.incident(incident.id)
    assert stored.department_ids == (COORDINATOR,) and stored.routing_round == 1
    assert "Это дорога регионального значения" in stored.status_history[-1].note

    after = client.get(path)
    assert after.status_code == 200
    html = after.get_data(as_text=True)
    assert "Готово: обращение передано координатору региона." in html and "Яма" not in html
    # The same "not ours" sent twice is no error either.
    assert client.post(path, data=form).status_code == 303
    # The coordinator's own link now opens it.
    assert client.get(page.path(incident, COORDINATOR)).status_code == 200


def test_the_page_says_how_many_residents_reported_and_links_their_posts(page: AnswerPageApp) -> None:
    from shared.domain.models import Report

    reports = (
        Report(incident_id="a", source="ok", url="https://ok.ru/group/55/topic/2", published_at=T0),
        Report(incident_id="b", source="inbox", url="javascript:alert(1)", published_at=T0),
    )
    incident = page.store(routed_incident("9002").model_copy(update={"reports": reports, "residents": 3}))
    html = page.app.test_client().get(page.path(incident)).get_data(as_text=True)
    assert "Сообщили жителей" in html and 'id="residents">3' in html
    assert 'href="https://ok.ru/group/55/topic/2"' in html and 'href="javascript' not in html
    alone = page.store(routed_incident("9003"))
    assert "Сообщили жителей" not in page.app.test_client().get(page.path(alone)).get_data(as_text=True)
