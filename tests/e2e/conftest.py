from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from otklik.stack.emulators import Emulators
from otklik.stack.local import LocalStack

pytestmark = pytest.mark.e2e


@pytest.fixture
def make_stack(emulators: Emulators, project_id: str, tmp_path: Path) -> Iterator[object]:
    """Start a local stack on the shared emulators, in this test's own project. Its functions run as deployed
    (each from its built folder, in a virtualenv of its own requirements) unless the test meters them."""
    started: list[LocalStack] = []

    def start(**options: object) -> LocalStack:
        options.setdefault("deployed", options.get("meter_dir") is None)
        stack = LocalStack(tmp_path / f"stack{len(started)}", project_id=project_id, emulators=emulators, **options)  # type: ignore[arg-type]
        started.append(stack.start())
        return stack

    yield start
    for stack in started:
        stack.stop()
