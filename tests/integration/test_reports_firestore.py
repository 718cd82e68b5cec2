"""Reports against the Firestore emulator: the range read page by page, and `otklik report` end to end."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from google.cloud import firestore

from otklik.cli import main
from shared.adapters.firestore import FirestoreIncidents
from tests.builders import T0, make_incident

pytestmark = pytest.mark.integration


@pytest.fixture
def db(project_id: str) -> firestore.Client:
    return firestore.Client(project=project_id)


def test_created_between_reads_every_page_and_keeps_equal_timestamps_across_a_boundary(db: firestore.Client) -> None:
    incidents = FirestoreIncidents(db)
    # 0..6 a minute apart, then four at one instant (they straddle the page boundary), then 11 at the end.
    times = [T0 + timedelta(minutes=n) for n in range(7)] + [T0 + timedelta(minutes=7)] * 4 + [T0 + timedelta(hours=1)]
    made = [make_incident(str(n), created_at=at) for n, at in enumerate(times)]
    for incident in made:
        incidents.create(incident)
    outside = make_incident("before", created_at=T0 - timedelta(seconds=1))
    incidents.create(outside)

    found = incidents.created_between(T0, T0 + timedelta(hours=1), page=3)
    assert sorted(i.id for i in found) == sorted(i.id for i in made[:11])  # the end itself is excluded
    assert len(found) == 11  # nothing read twice
    assert [i.created_at for i in found] == sorted(i.created_at for i in found)
    assert [i.id for i in incidents.created_between(T0, T0 + timedelta(hours=2), page=4)][-1] == made[-1].id
    assert incidents.created_between(T0 + timedelta(hours=2), T0 + timedelta(hours=3)) == []


def test_otklik_report_reads_firestore_and_writes_json(db: firestore.Client, tmp_path: Path) -> None:
    incidents = FirestoreIncidents(db)
    for n, category in enumerate(["roads", "roads", "landscaping"]):
        incidents.create(make_incident(str(n), category=category, created_at=T0 + timedelta(minutes=n)))
    incidents.create(make_incident("old", category="roads", created_at=T0 - timedelta(days=3)))
    out = tmp_path / "report.json"
    day = T0.date()
    argv = ["report", "--from", str(day), "--to", str(day + timedelta(days=1)), "--format", "json"]
    assert main([*argv, "--municipality", "shakhty", "--output", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["municipality_name"] == "Шахты"
    assert [(c["key"], c["current"], c["previous"]) for c in report["by_category"]] == [
        ("roads", 2, 0),
        ("landscaping", 1, 0),
    ]
    assert main([*argv, "--to", str(day)]) == 2  # an empty period is refused
