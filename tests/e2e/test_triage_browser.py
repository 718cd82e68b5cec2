"""The regional operator's triage in a real browser: Debian's headless Chromium (Playwright) against the
department_api function on a loopback port, the Firestore and Pub/Sub emulators behind it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from werkzeug.serving import make_server

from shared.domain.models import IncidentStatus, Priority
from tests.builders import make_incident
from tests.e2e.test_answer_page_browser import CHROMIUM, browser_page  # noqa: F401 (the fixture)
from tests.integration.test_triage_page import routed, triage_app

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install chromium (scripts/setup.sh does)"),
]
S = IncidentStatus


@pytest.fixture
def served(project_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, object]]:
    triage = triage_app(project_id, tmp_path, monkeypatch)
    server = make_server("127.0.0.1", 0, triage.page.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", triage
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_the_operator_filters_the_queue_merges_splits_dismisses_and_marks_danger_in_the_browser(
    served: tuple[str, object],
    browser_page: Page,  # noqa: F811
) -> None:
    base, triage = served
    store = triage.page.store  # type: ignore[attr-defined]
    pothole = store(routed("8001", "Яма на Советской, 5 — колёса бьём каждый день"))
    again = store(routed("8002", "Советская 5: ямища так и не засыпана"))
    hazard = store(
        routed(
            "8003",
            "Открытый люк у школы № 5, дети ходят рядом",
            classification=make_incident("x", priority=Priority.CRITICAL).classification,
        )
    )
    advert = store(routed("8004", "Шиномонтаж на Советской, скидки всю неделю"))
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})

    page.goto(f"{base}/triage")
    assert page.url.endswith("/triage/login")
    page.get_by_label("API-токен координатора региона").fill(triage.coordinator_token)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Войти").click()
    expect(page.locator("#count")).to_have_text("Найдено: 4")
    expect(page.locator("#queue tbody tr").first).to_have_attribute("data-id", hazard.id)

    page.locator("#f-priority").select_option("critical")
    page.get_by_role("button", name="Показать").click()
    expect(page.locator("#count")).to_have_text("Найдено: 1")
    assert "priority=critical" in page.url
    page.goto(f"{base}/triage")

    # The same pothole twice: merge the second into the first.
    page.locator(f'tr[data-id="{again.id}"] a').click()
    expect(page.locator("#post-text")).to_have_text("Советская 5: ямища так и не засыпана")
    page.get_by_label("Это та же проблема, что в обращении №").fill(pothole.id)
    page.get_by_role("button", name="Объединить").click()
    expect(page.locator("#done")).to_have_text("Обращения объединены.")
    assert f"/triage/incidents/{pothole.id}" in page.url
    expect(page.locator("#reports li")).to_have_count(1)
    expect(page.locator("#reports")).to_contain_text("ямища")

    # It was another problem after all: split it out again; it goes to route as a new incident.
    page.get_by_role("button", name="Это другая проблема: выделить в отдельное обращение").click()
    expect(page.locator("#done")).to_contain_text("выделено в отдельное обращение")
    expect(page.locator("#status")).to_have_attribute("data-status", "new")

    # An advertisement is not a complaint: dismissed, and kept for the classifier's corpus.
    page.goto(f"{base}/triage/incidents/{advert.id}")
    page.get_by_label("Почему (реклама, новость, благодарность…)").fill("реклама")
    page.get_by_role("button", name="Отметить как не обращение").click()
    expect(page.locator("#status")).to_have_attribute("data-status", "irrelevant")
    page.goto(f"{base}/triage")
    expect(page.locator("#count")).to_have_text("Найдено: 3")

    # The pothole is a hazard after all (people walk round it on the road): critical, the fast lane.
    page.goto(f"{base}/triage/incidents/{pothole.id}")
    expect(page.locator("#evidence")).to_be_visible()
    page.locator("#danger-reason").fill("люди обходят по проезжей части")
    page.get_by_role("button", name="Опасно: критический приоритет, срочно").click()
    expect(page.locator("#done")).to_contain_text("Отмечено как опасное")
    expect(page.locator("#priority")).to_contain_text("КРИТИЧЕСКИЙ")

    # The week's report, with charts.
    page.goto(f"{base}/triage")
    page.get_by_role("button", name="Построить").click()
    expect(page.locator("svg").first).to_be_visible()

    page.goto(f"{base}/triage")
    page.get_by_role("button", name="Выйти").click()
    page.goto(f"{base}/triage")
    assert page.url.endswith("/triage/login")

    stored = triage.page  # type: ignore[attr-defined]
    assert stored.incident(again.id).status is S.NEW and stored.incident(pothole.id).reports == ()
    assert stored.incident(advert.id).status is S.IRRELEVANT
    assert stored.incident(pothole.id).classification.priority is Priority.CRITICAL
    assert stored.incident(pothole.id).routing_reason == "marked_dangerous"
    feedback = stored.db.collection("corpus_feedback").document(advert.id).get().to_dict()
    assert feedback["is_complaint"] is False and feedback["by"] == "region-coordinator"
