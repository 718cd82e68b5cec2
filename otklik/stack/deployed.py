"""Functions run as they are deployed: each from the folder `otklik build` makes (its main.py, a copy of shared/
and config/), in a virtualenv of its own that holds only its requirements.txt. A function that imports a package
it does not declare fails here, on the local stack and in the tests, not after a deploy.

The virtualenvs are kept under .otklik/venvs/, one per function and requirements file (a new pin makes a new
one); uv installs them from its cache, so after the first run a stack starts about as fast as from .venv.
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from otklik import REPO_ROOT
from otklik.build import build

VENVS = REPO_ROOT / ".otklik" / "venvs"
UV = Path(sys.executable).with_name("uv")


@dataclass(frozen=True)
class Deployment:
    name: str
    folder: Path  # the built folder: what Cloud Functions receives
    python: Path  # the interpreter of the function's own virtualenv


def prepare(out: Path, venvs: Path = VENVS) -> dict[str, Deployment]:
    """Builds every function into ``out`` and gives each its virtualenv."""
    deployments = {}
    for folder in build(out):
        deployments[folder.name] = Deployment(folder.name, folder, venv_for(folder, venvs))
    return deployments


def venv_for(folder: Path, venvs: Path = VENVS) -> Path:
    requirements = folder / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes() + sys.version.encode()).hexdigest()[:12]
    home = venvs / f"{folder.name}-{digest}"
    python = home / "bin" / "python"
    venvs.mkdir(parents=True, exist_ok=True)
    # Tests start stacks side by side: one of them creates a virtualenv, the others wait for it.
    with (venvs / f"{folder.name}-{digest}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / ".complete").exists():
            subprocess.run([str(UV), "venv", "--quiet", "--clear", "--python", sys.executable, str(home)], check=True)
            subprocess.run(
                [str(UV), "pip", "install", "--quiet", "--python", str(python), "-r", str(requirements)], check=True
            )
            (home / ".complete").touch()
    return python
