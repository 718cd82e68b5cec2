"""``otklik seed`` validates the operators' files and loads departments and rules into Firestore."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.cloud import firestore

from otklik.cli import main
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
    rules = {d.id: d.to_dict() for d in db.collection("routing_rules").stream()}
    assert rules.pop("_fallback") == {"department": routing.fallback}
    assert len(rules) == len(routing.rules)
    assert "valid" in capsys.readouterr().out


def test_seed_check_refuses_a_bad_file_and_writes_nothing(
    project_id: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sources.yaml").write_text("sources: []\n")
    (tmp_path / "departments.yaml").write_text("fallback: nobody\ndepartments:\n  - {id: a, name: A}\n")
    assert main(["seed", "--config-dir", str(tmp_path)]) == 2
    assert "fallback department 'nobody'" in capsys.readouterr().err
    assert list(firestore.Client(project=project_id).collection("departments").stream()) == []
