"""Each function served by functions-framework in its own process, as Cloud Run would run it."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from otklik import REPO_ROOT
from otklik.stack import topology
from otklik.stack.processes import ManagedProcess, free_port, wait_for_port

FUNCTIONS_DIR = REPO_ROOT / "functions"
NAMES = tuple(topology.load().functions)


@dataclass
class FunctionServer:
    name: str
    url: str
    process: ManagedProcess

    def stop(self) -> None:
        self.process.stop()


def start(
    name: str,
    env: dict[str, str],
    log_dir: Path,
    source_dir: Path = FUNCTIONS_DIR,
    port: int | None = None,
    metered: bool = False,
    python: Path | None = None,
) -> FunctionServer:
    """``metered``: count the function's Firestore operations into $OTKLIK_METER_DIR (otklik.stack.metered);
    ``python``: the interpreter of the function's own virtualenv (otklik.stack.deployed), which then runs from
    its built folder and sees nothing of the repository."""
    port = port or free_port()
    launcher = ["otklik.stack.metered", name] if metered else ["functions_framework"]
    argv = [
        str(python or sys.executable),
        "-m",
        *launcher,
        "--source",
        str(source_dir / name / "main.py"),
        "--target",
        name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    full_env = dict(os.environ, **env, PYTHONUNBUFFERED="1")
    cwd = REPO_ROOT
    if python is not None:
        full_env.pop("PYTHONPATH", None)
        cwd = source_dir / name
    proc = ManagedProcess(f"function-{name}", argv, log_dir / f"{name}.log", env=full_env, cwd=cwd)
    try:
        wait_for_port("127.0.0.1", port, 60, lambda: proc.alive)
    except Exception as exc:
        proc.stop()
        raise RuntimeError(f"function {name} did not start:\n{proc.log_tail()}") from exc
    return FunctionServer(name, f"http://127.0.0.1:{port}", proc)
