"""``otklik seed`` validates the operators' files and loads departments and rules into Firestore."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.cloud import firestore

from otklik.cli import main
from shared.adapters.firestore import FirestoreRouting
from shared.config import load_routing

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_seed_loads_every_department_and_rule(project_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed", "--config-dir", str(ROOT / "config")]) == 0
    routing = load_routing(ROOT / "config" / "departments.yaml")
    db = firestore.Client(project=project_id)
    departments = {d.id: d.to_dict() for d in db.collection("departments").stream()}
    assert set(departments) == {d.id for d in routing.departments}
    assert departments["shakhty-roads"]["categories"] == ["roads"]
    # What route reads back is exactly what the file says (working hours, supervisors, rules and all).
    loaded = FirestoreRouting(db).load()
    assert loaded is not None
    assert sorted(loaded.departments, key=lambda d: d.id) == sorted(routing.departments, key=lambda d: d.id)
    assert (loaded.rules, loaded.fallback) == (routing.rules, routing.fallback)
    assert "valid" in capsys.readouterr().out


def test_seeding_a_smaller_directory_removes_departments_no_longer_in_the_file(project_id: str, tmp_path: Path) -> None:
    (tmp_path / "sources.yaml").write_text("sources: []\n")
    (tmp_path / "departments.yaml").write_text(
        "fallback: a\ndepartments:\n"
        "  - {id: a, name: A, email: a@x.example}\n"
        "  - {id: b, name: B, email: b@x.example}\n"
    )
    assert main(["seed", "--config-dir", str(tmp_path)]) == 0
    (tmp_path / "departments.yaml").write_text("fallback: a\ndepartments:\n  - {id: a, name: A, email: a@x.example}\n")
    assert main(["seed", "--config-dir", str(tmp_path)]) == 0
    loaded = FirestoreRouting(firestore.Client(project=project_id)).load()
    assert loaded is not None
    assert [d.id for d in loaded.departments] == ["a"]


def test_seed_check_refuses_a_bad_file_and_writes_nothing(
    project_id: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sources.yaml").write_text("sources: []\n")
    (tmp_path / "departments.yaml").write_text("fallback: nobody\ndepartments:\n  - {id: a, name: A}\n")
    assert main(["seed", "--config-dir", str(tmp_path)]) == 2
    assert "fallback department 'nobody'" in capsys.readouterr().err
    assert list(firestore.Client(project=project_id).collection("departments").stream()) == []
