"""``otklik build``: one deployable folder per function: its main.py and requirements.txt, a copy of shared/
and of the operators' config/. Cloud Functions installs requirements.txt and imports main.py from there."""

from __future__ import annotations

import shutil
from pathlib import Path

from otklik import REPO_ROOT
from otklik.stack.functions import NAMES

IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache")


def build(out: Path, source_root: Path = REPO_ROOT) -> list[Path]:
    built = []
    for name in NAMES:
        target = out / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source_root / "functions" / name, target, ignore=IGNORE)
        shutil.copytree(source_root / "shared", target / "shared", ignore=IGNORE)
        shutil.copytree(source_root / "config", target / "config", ignore=IGNORE)
        built.append(target)
    return built
