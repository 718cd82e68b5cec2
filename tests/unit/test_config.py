"""Configuration files: operators get a clear error naming the file and the entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from otklik.stack.local import DEMO_CONFIG, render_config
from shared.config import Settings, load_routing, load_sources
from shared.domain.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["production example", "demo"])
def test_shipped_configuration_is_valid(kind: str, tmp_path: Path) -> None:
    folder = ROOT / "config"
    if kind == "demo":
        folder = render_config(
            DEMO_CONFIG, tmp_path, {"WEBHOOK_SINK": "http://127.0.0.1:8080", "FEEDS": "http://127.0.0.1:8081"}
        )
    assert load_sources(folder / "sources.yaml")
    routing = load_routing(folder / "departments.yaml")
    assert routing.fallback in {d.id for d in routing.departments}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sources:\n  - id: a\n    kind: vk_wall\n    owner_id: 5\n", "owner_id is negative"),
        ("sources:\n  - id: a\n    kind: telegraph\n    owner_id: -5\n", "sources.0.kind"),
        ("sources:\n  - id: a\n    kind: vk_wall\n", "exactly one of owner_id and domain"),
        ("sources:\n  - {id: a, kind: vk_wall, owner_id: -1}\n  - {id: b-2, kind: rss}\n", "sources.1.url (id b-2)"),
        ("sources:\n  - {id: a, kind: vk_wall, owner_id: -1}\n  - {id: a, kind: vk_wall, owner_id: -2}\n", "unique"),
        ("sources:\n  - id: A B\n    kind: vk_wall\n    owner_id: -1\n", "sources.0.id"),
        ("sources:\n  - id: a\n    kind: vk_wall\n    owner_id: -1\n    typo: 1\n", "sources.0.typo"),
        ("sources: [\n", "not valid YAML"),
    ],
)
def test_bad_sources_are_rejected_with_the_file_and_the_entry(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "sources.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_sources(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_disabled_sources_are_not_fetched(tmp_path: Path) -> None:
    path = write(tmp_path, "sources.yaml", "sources:\n  - {id: a, kind: vk_wall, owner_id: -1, enabled: false}\n")
    assert load_sources(path) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fallback: x\ndepartments:\n  - {id: a, name: A}\n", "fallback department 'x'"),
        (
            "fallback: a\ndepartments:\n  - {id: a, name: A}\nrules:\n  - {category: roads, departments: [b]}\n",
            "line 5: rules.0.departments.0: unknown department 'b'",
        ),
        ("fallback: a\ndepartments:\n  - {id: a, name: A}\n  - {id: a, name: B}\n", "appears twice"),
        (
            "fallback: a\ndepartments:\n  - {id: a, name: A, email: not-an-address}\n",
            "line 3: departments.0.email (id a)",
        ),
        (
            "fallback: a\ndepartments:\n  - {id: a, name: A}\nrules:\n  - {category: roads, departments: [a]}\n"
            "  - {municipality: kirov, priority: urgent, departments: [a]}\n",
            "line 6: rules.1.priority",
        ),
        (
            "fallback: a\ndepartments:\n  - id: a\n    name: A\n    working_hours: {start: '18:00', end: '09:00'}\n",
            "departments.0.working_hours",
        ),
        ("fallback: a\ndepartments:\n  - {id: a, name: A, timezone: Mars/Olympus}\n", "unknown time zone"),
        ("fallback: a\ndepartments:\n  - {id: a, name: A, webhook_url: 'ftp://x'}\n", "departments.0.webhook_url"),
        (
            "fallback: a\ndepartments:\n  - {id: a, name: A}\nrules:\n  - {category: roads, departments: []}\n",
            "rules.0.departments",
        ),
    ],
)
def test_bad_departments_are_rejected_with_a_clear_message(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "departments.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_routing(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_a_missing_file_says_which_variable_to_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="OTKLIK_CONFIG_DIR"):
        load_sources(tmp_path / "sources.yaml")


def test_settings_read_the_environment_and_hide_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "kirov-prod")
    monkeypatch.setenv("OTKLIK_VK_TOKEN", "vk1.a.secret-value")
    monkeypatch.setenv("OTKLIK_REMIND_BATCH_SIZE", "12")
    settings = Settings()
    assert settings.project_id == "kirov-prod" and settings.remind_batch_size == 12
    assert "secret-value" not in repr(settings) and "secret-value" not in str(settings.model_dump())
    monkeypatch.setenv("OTKLIK_PROJECT_ID", "explicit")
    assert Settings().project_id == "explicit"
