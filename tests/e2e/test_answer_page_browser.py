"""A clerk's way through the answer page in a real browser: the signed link from the e-mail opened in headless
Chromium (Debian's, driven by Playwright), served by the department_api function on a loopback port, with the
Firestore emulator behind it."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from werkzeug.serving import make_server

from shared.domain.models import IncidentStatus
from tests.integration.test_answer_page import DEPARTMENT, HOSTILE_TEXT, answer_page_app, routed_incident

CHROMIUM = shutil.which("chromium") or next(
    (p for p in ("/usr/bin/chromium",) if Path(p).is_file()),
    None,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium binary on PATH or at /usr/bin/chromium: apt-get install chromium (scripts/setup.sh does)",
    ),
]


@pytest.fixture
def browser_page() -> Iterator[Page]:
    assert CHROMIUM is not None
    with sync_playwright() as playwright:
        # Debian's Chromium, not a browser Playwright downloads.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            # A phone-sized window: the page must be readable there without sideways scrolling.
            context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ru-RU")
            page = context.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


def test_a_clerk_takes_the_incident_into_work_and_answers_it_in_the_browser(
    project_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, browser_page: Page
) -> None:
    app = answer_page_app(project_id, tmp_path, monkeypatch)
    incident = app.store(routed_incident("9100"))
    server = make_server("127.0.0.1", 0, app.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page = browser_page
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        url = f"http://127.0.0.1:{server.server_port}{app.path(incident)}"
        response = page.goto(url)
        assert response is not None and response.status == 200
        assert response.headers["referrer-policy"] == "no-referrer"

        # The post's markup is shown as text, never run.
        expect(page.locator("#post-text")).to_have_text(HOSTILE_TEXT)
        assert page.locator("script, b").count() == 0 and dialogs == []
        expect(page.locator("#status")).to_have_text("направлено в ведомство, ждёт ответа")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

        page.get_by_role("button", name="Взять в работу").click()
        expect(page.locator("#done")).to_have_text("Готово: обращение взято в работу.")
        expect(page.locator("#status")).to_have_text("взято в работу")
        assert page.url.endswith("?done=acknowledge")
        assert page.get_by_role("button", name="Взять в работу").count() == 0

        page.get_by_label("Текст ответа").fill("Здравствуйте! Яму заделаем до пятницы.")
        page.get_by_role("button", name="Ответить", exact=True).click()
        expect(page.locator("#done")).to_have_text("Готово: ответ сохранён.")
        expect(page.locator("#status")).to_have_text("дан ответ")
        expect(page.locator("#answers")).to_contain_text("Здравствуйте! Яму заделаем до пятницы.")
        assert page.url.endswith("?done=answer")

        # Reloading shows the page without the confirmation and changes nothing.
        page.reload()
        expect(page.locator("#status")).to_have_text("дан ответ")
        assert page.locator("#done").count() == 0
    finally:
        server.shutdown()
        thread.join(timeout=10)

    stored = app.incident(incident.id)
    assert stored.status is IncidentStatus.ANSWERED
    assert [a.text for a in stored.answers] == ["Здравствуйте! Яму заделаем до пятницы."]
    assert [(h.status, h.actor) for h in stored.status_history] == [
        (IncidentStatus.ROUTED, "test"),
        (IncidentStatus.ACKNOWLEDGED, f"{DEPARTMENT} (answer-page)"),
        (IncidentStatus.ANSWERED, f"{DEPARTMENT} (answer-page)"),
    ]
    assert stored.acknowledged_at is not None and stored.first_reply_at is not None
