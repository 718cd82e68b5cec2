"""The repository stays consistent with itself: pins, topology, generated docs, the README's promises."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from otklik.stack import topology
from otklik.stack.functions import NAMES
from shared.config import Settings
from shared.contracts import json_schemas

ROOT = Path(__file__).resolve().parents[2]


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        if match:
            found[re.sub(r"\[.*\]", "", match.group(1)).lower().replace("_", "-")] = match.group(2)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_function_requirements_are_pinned_to_the_locked_versions(name: str) -> None:
    locked = pins(ROOT / "requirements.lock")
    requirements = ROOT / "functions" / name / "requirements.txt"
    lines = [ln for ln in requirements.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    wanted = pins(requirements)
    assert len(wanted) == len(lines), "every requirement is pinned with =="
    assert "functions-framework" in wanted
    for package, version in wanted.items():
        assert locked.get(package) == version, f"{name}: {package}=={version}, lock has {locked.get(package)}"


@pytest.mark.parametrize("name", NAMES)
def test_entry_point_file_declares_the_target_topology_names(name: str) -> None:
    source = (ROOT / "functions" / name / "main.py").read_text()
    entry = topology.load().functions[name]["entry_point"]
    kind = "http" if topology.load().functions[name]["trigger"] == "http" else "cloud_event"
    assert re.search(rf"@functions_framework\.{kind}\s+def {entry}\(", source)


def test_settings_topic_defaults_are_the_topology_topics() -> None:
    topo = topology.load()
    settings = Settings()
    for variable, topic in topo.settings_variables.items():
        field = variable.removeprefix("OTKLIK_").lower()
        assert getattr(settings, field) == topic


def test_every_subscription_pushes_to_a_known_function_with_a_dead_letter_topic() -> None:
    topo = topology.load()
    for sub in topo.subscriptions:
        assert sub.push_to in NAMES
        assert sub.ack_deadline_seconds >= 10 and sub.max_delivery_attempts >= 5
        assert sub.dead_letter_topic in topo.dead_letter_topics


def test_docs_schemas_are_generated_from_the_contracts() -> None:
    generated = json_schemas()
    on_disk = {p.name: json.loads(p.read_text()) for p in (ROOT / "docs" / "schemas").glob("*.json")}
    assert on_disk == generated, "run `make schemas` and commit docs/schemas/"


def test_readme_documents_every_environment_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        aliases = getattr(field.validation_alias, "choices", None) or [f"OTKLIK_{name.upper()}"]
        assert any(f"`{a}`" in readme for a in aliases), f"{aliases} missing from the README's configuration table"
    for variable in ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "OTKLIK_EMULATORS"):
        assert f"`{variable}`" in readme


def test_readme_names_only_make_targets_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    for target in set(re.findall(r"`make ([a-z-]+)`", readme)):
        assert target in targets, f"README mentions `make {target}`, which the Makefile lacks"
