"""Firestore and Pub/Sub emulators on free loopback ports.

Two kinds, chosen by ``OTKLIK_EMULATORS`` (``auto``, ``gcloud`` or ``standalone``):
- ``gcloud``: Google's official emulators (``gcloud beta emulators firestore|pubsub start``), where gcloud and its
  emulator components are installed; ``auto`` prefers them.
- ``standalone``: the npm package ``@firestore-emulator/server`` and Google's ``pstest`` Pub/Sub fake, both
  installed into ``.otklik/tools`` by ``scripts/setup.sh``.
Clients reach either through ``FIRESTORE_EMULATOR_HOST`` and ``PUBSUB_EMULATOR_HOST``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from otklik import REPO_ROOT
from otklik.stack.processes import ManagedProcess, free_port, wait_for_port

TOOLS_DIR = Path(os.environ.get("OTKLIK_TOOLS_DIR", REPO_ROOT / ".otklik" / "tools"))
STANDALONE_FIRESTORE_JS = Path(__file__).with_name("firestore_emulator.js")
PSTEST_BINARY = TOOLS_DIR / "bin" / "pstest-server"
START_TIMEOUT = 60.0


@dataclass
class Emulators:
    kind: str
    firestore_host: str
    pubsub_host: str
    processes: list[ManagedProcess]

    def env(self) -> dict[str, str]:
        return {"FIRESTORE_EMULATOR_HOST": self.firestore_host, "PUBSUB_EMULATOR_HOST": self.pubsub_host}

    def stop(self) -> None:
        for p in self.processes:
            p.stop()


def gcloud_available() -> bool:
    gcloud = shutil.which("gcloud")
    if not gcloud:
        return False
    platform = Path(os.path.realpath(gcloud)).parent.parent / "platform"
    return (platform / "cloud-firestore-emulator").is_dir() and (platform / "pubsub-emulator").is_dir()


def standalone_available() -> bool:
    return PSTEST_BINARY.exists() and (TOOLS_DIR / "node_modules" / "@firestore-emulator" / "server").is_dir()


def choose_kind(requested: str | None = None) -> str:
    kind = requested or os.environ.get("OTKLIK_EMULATORS", "auto")
    if kind == "auto":
        return "gcloud" if gcloud_available() else "standalone"
    if kind not in {"gcloud", "standalone"}:
        raise ValueError(f"OTKLIK_EMULATORS={kind!r}: use auto, gcloud or standalone")
    return kind


def start(log_dir: Path, kind: str | None = None) -> Emulators:
    kind = choose_kind(kind)
    if kind == "gcloud":
        if not gcloud_available():
            raise RuntimeError(
                "gcloud emulators are not installed (gcloud components install "
                "cloud-firestore-emulator pubsub-emulator), or use OTKLIK_EMULATORS=standalone"
            )
        return _start_gcloud(log_dir)
    if not standalone_available():
        raise RuntimeError(f"standalone emulators are not in {TOOLS_DIR}: run `make setup` (scripts/setup.sh)")
    return _start_standalone(log_dir)


def _start_gcloud(log_dir: Path) -> Emulators:
    fs_port, ps_port = free_port(), free_port()
    firestore = ManagedProcess(
        "firestore-emulator",
        ["gcloud", "beta", "emulators", "firestore", "start", f"--host-port=127.0.0.1:{fs_port}", "--quiet"],
        log_dir / "firestore-emulator.log",
    )
    pubsub = ManagedProcess(
        "pubsub-emulator",
        ["gcloud", "beta", "emulators", "pubsub", "start", f"--host-port=127.0.0.1:{ps_port}", "--quiet"],
        log_dir / "pubsub-emulator.log",
    )
    emulators = Emulators("gcloud", f"127.0.0.1:{fs_port}", f"127.0.0.1:{ps_port}", [firestore, pubsub])
    try:
        for proc, port in ((firestore, fs_port), (pubsub, ps_port)):
            wait_for_port("127.0.0.1", port, START_TIMEOUT, lambda p=proc: p.alive)  # type: ignore[misc]
    except Exception:
        emulators.stop()
        raise
    return emulators


def _start_standalone(log_dir: Path) -> Emulators:
    node_env = dict(os.environ, NODE_PATH=str(TOOLS_DIR / "node_modules"))
    firestore = ManagedProcess(
        "firestore-emulator",
        ["node", str(STANDALONE_FIRESTORE_JS), "0"],
        log_dir / "firestore-emulator.log",
        env=node_env,
    )
    pubsub = ManagedProcess("pubsub-emulator", [str(PSTEST_BINARY)], log_dir / "pubsub-emulator.log")
    emulators = Emulators("standalone", "", "", [firestore, pubsub])
    try:
        emulators.firestore_host = _first_line_address(firestore)
        emulators.pubsub_host = _first_line_address(pubsub)
    except Exception:
        emulators.stop()
        raise
    return emulators


def _first_line_address(proc: ManagedProcess) -> str:
    """Both standalone emulators print host:port on their first line once they listen."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for line in proc.log_path.read_text(errors="replace").splitlines():
            host, sep, port = line.strip().rpartition(":")
            if sep and port.isdigit() and host.replace("[", "").replace("]", ""):
                wildcard = host in {"[::]", "::", "0.0.0.0"}  # noqa: S104 - recognising it, not binding to it
                address = f"127.0.0.1:{port}" if wildcard else f"{host}:{port}"
                wait_for_port(address.rsplit(":", 1)[0], int(port), 10, lambda: proc.alive)
                return address
        if not proc.alive:
            raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
        time.sleep(0.05)
    raise TimeoutError(f"{proc.name} printed no address in {START_TIMEOUT:.0f}s:\n{proc.log_tail()}")


def version_of(kind: str) -> str:
    if kind == "gcloud":
        out = subprocess.run(["gcloud", "--version"], capture_output=True, text=True, check=False).stdout
        return next((ln for ln in out.splitlines() if "emulator" in ln), "gcloud").strip()
    return "standalone (@firestore-emulator/server, pstest)"
