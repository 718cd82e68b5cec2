"""The open311 read against the Firestore emulator: FirestoreIncidents.created_in_range_page and the function."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from functions_framework import create_app
from google.cloud import firestore

from otklik import REPO_ROOT
from shared.adapters.firestore import FirestoreIncidents
from shared.domain.models import IncidentStatus
from shared.services.open311 import CLOSED_STATUSES, PUBLISHED_STATUSES
from tests.builders import T0, make_incident

S = IncidentStatus


@pytest.fixture
def incidents(project_id: str) -> FirestoreIncidents:
    return FirestoreIncidents(firestore.Client(project=project_id))


def test_created_in_range_page_filters_by_status_and_window_oldest_first(incidents: FirestoreIncidents) -> None:
    statuses = [S.ROUTED, S.IRRELEVANT, S.CLOSED, S.ANSWERED, S.REJECTED, S.NEW]
    made = [make_incident(str(n), s, created_at=T0 + timedelta(minutes=n)) for n, s in enumerate(statuses)]
    for incident in reversed(made):
        assert incidents.create(incident)
    ids = [i.id for i in made]
    end = T0 + timedelta(hours=1)
    found = incidents.created_in_range_page(PUBLISHED_STATUSES, T0, end, 10)
    assert [i.id for i in found] == [ids[0], ids[2], ids[3], ids[4], ids[5]]
    assert [i.id for i in incidents.created_in_range_page(PUBLISHED_STATUSES, T0, end, 2)] == [ids[0], ids[2]]
    # start is inclusive, end exclusive: the caller pages by moving start to the last one read
    window = incidents.created_in_range_page(PUBLISHED_STATUSES, made[2].created_at, made[5].created_at, 10)
    assert [i.id for i in window] == [ids[2], ids[3], ids[4]]
    assert [i.id for i in incidents.created_in_range_page(CLOSED_STATUSES, T0, end, 10)] == [ids[2], ids[4]]


def test_the_function_pages_through_firestore(
    project_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, incidents: FirestoreIncidents
) -> None:
    made = [make_incident(str(n), S.ROUTED, created_at=T0 + timedelta(minutes=n // 3)) for n in range(7)]
    for incident in made:
        incidents.create(incident)
    config = tmp_path / "config"
    config.mkdir()
    (config / "departments.yaml").write_text((REPO_ROOT / "config" / "departments.yaml").read_text("utf-8"), "utf-8")
    (config / "sources.yaml").write_text("sources: []\n", encoding="utf-8")
    monkeypatch.setenv("OTKLIK_CONFIG_DIR", str(config))
    app = create_app(target="open311", source=str(REPO_ROOT / "functions" / "open311" / "main.py"))
    client = app.test_client()
    window = "start_date=2026-11-23T08:00:00Z&end_date=2026-11-24T00:00:00Z"
    pages = [client.get(f"/requests.json?{window}&page={p}&page_size=3").get_json() for p in (1, 2, 3, 4)]
    assert [len(p) for p in pages] == [3, 3, 1, 0]
    assert sorted(r["service_request_id"] for p in pages for r in p) == sorted(i.id for i in made)
    one = client.get(f"/requests/{made[0].id}.json")
    assert one.status_code == 200 and one.get_json()[0]["address"] == "Шахты"
