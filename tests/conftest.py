"""Shared fixtures. Unit tests need nothing running; integration and e2e tests share one pair of emulators per
test session (started on first use) and isolate themselves with a fresh Google Cloud project id each."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import bootstrap


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`make test-standalone` runs again only what meets an emulator: a connector test against a loopback VK
    server says nothing new on the other emulators and would only double CI's time."""
    if os.environ.get("OTKLIK_EMULATORS") != "standalone":
        return
    keep, drop = [], []
    for item in items:
        names = getattr(item, "fixturenames", ())
        uses = "emulators" in names or item.get_closest_marker("emulator_kind") is not None
        (keep if uses else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from otklik.stack import emulators as emulators_mod

    running = emulators_mod.start(tmp_path_factory.mktemp("emulators"))
    saved = {k: os.environ.get(k) for k in running.env()}
    os.environ.update(running.env())
    yield running
    running.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def project_id(emulators: object, monkeypatch: pytest.MonkeyPatch) -> str:
    """A project of its own on the shared emulators: nothing another test wrote is visible."""
    project = f"test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("OTKLIK_PROJECT_ID", project)
    return project


@pytest.fixture(autouse=True)
def _fresh_bootstrap() -> Iterator[None]:
    """The composition root caches clients per process; every test starts from its own environment."""
    bootstrap.reset()
    yield
    bootstrap.reset()


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
