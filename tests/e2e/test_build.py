"""``make build``'s folders are what Cloud Functions receives: each must import and serve under
functions-framework from a clean directory, in a fresh virtual environment holding only its own
requirements.txt (so a missing requirement or a stray import of the dev tooling fails here, not in deploy)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from otklik.build import build
from otklik.stack import topology
from otklik.stack.emulators import Emulators
from otklik.stack.processes import ManagedProcess, free_port, wait_for_port

pytestmark = pytest.mark.e2e
UV = Path(sys.executable).with_name("uv")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("build") / "functions")[0].parent


def test_each_folder_holds_main_requirements_shared_and_config(built: Path) -> None:
    for name in ("ingest", "classify", "route", "remind"):
        folder = built / name
        assert (folder / "main.py").is_file() and (folder / "requirements.txt").is_file()
        assert (folder / "shared" / "bootstrap.py").is_file()
        assert (folder / "config" / "departments.yaml").is_file()
        assert not (folder / "otklik").exists() and not list(folder.rglob("__pycache__"))


def fresh_venv(folder: Path, at: Path) -> Path:
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(at)], check=True)
    subprocess.run(
        [
            str(UV),
            "pip",
            "install",
            "--quiet",
            "--python",
            str(at / "bin" / "python"),
            "-r",
            str(folder / "requirements.txt"),
        ],
        check=True,
    )
    return at / "bin" / "python"


@pytest.mark.parametrize("name", ["ingest", "classify", "route", "remind"])
def test_folder_serves_from_a_clean_directory_with_only_its_requirements(
    name: str, built: Path, tmp_path: Path, emulators: Emulators, project_id: str
) -> None:
    folder = shutil.copytree(built / name, tmp_path / "deploy" / name)
    python = fresh_venv(folder, tmp_path / "venv")
    clean_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        **emulators.env(),
        "OTKLIK_PROJECT_ID": project_id,
        "OTKLIK_LOCAL_MODE": "true",
        "OTKLIK_VK_API_BASE": "http://127.0.0.1:9",  # nothing there: ingest must report, not crash
    }
    # The copy of shared/ in the folder is what gets imported, not the repository's.
    probe = subprocess.run(
        [str(python), "-c", "import main, shared; print(shared.__file__)"],
        cwd=folder,
        env=clean_env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(probe.stdout.strip()).is_relative_to(folder)

    topology.create_on_emulator(topology.load(), project_id)
    port = free_port()
    server = ManagedProcess(
        name,
        [
            str(python),
            "-m",
            "functions_framework",
            "--target",
            name,
            "--source",
            "main.py",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        tmp_path / f"{name}.log",
        env=clean_env,
        cwd=folder,
    )
    try:
        wait_for_port("127.0.0.1", port, 60, lambda: server.alive)
        url = f"http://127.0.0.1:{port}/"
        if name in ("ingest", "remind"):
            response = httpx.post(url, timeout=60)
            assert response.status_code == 200, server.log_tail()
            body = response.json()
            if name == "ingest":
                assert body["published"] == 0 and all(s["error"] for s in body["sources"])
            else:
                assert body["flagged"] == []
        else:
            event = CloudEvent(
                {
                    "type": "google.cloud.pubsub.topic.v1.messagePublished",
                    "source": "//pubsub.googleapis.com/projects/p/topics/t",
                    "id": "b-1",
                },
                {"message": {"data": base64.b64encode(b"{}").decode(), "messageId": "b-1"}},
            )
            headers, data = to_binary(event)
            response = httpx.post(url, headers=headers, content=data, timeout=60)
            assert response.status_code == 200, server.log_tail()
            from google.cloud import firestore

            [doc] = [d.to_dict() for d in firestore.Client(project=project_id).collection("quarantine").stream()]
            assert json.dumps(doc["reason"]).find("unexpected message schema") > 0
    finally:
        server.stop()


# The functions whose paths read a post's text: classify decides, route folds a twin into an incident that already
# has reports (its problem key from the text), department_api's triage splits a report off an incident.
READS_TEXT = ["classify", "route", "department_api"]


@pytest.mark.parametrize("name", READS_TEXT)
def test_functions_that_read_text_can_in_their_own_virtualenv(name: str, built: Path) -> None:
    from otklik.stack.deployed import venv_for

    probe = (
        "from datetime import UTC, datetime\n"
        "from shared.services.grouping import problem_key\n"
        "key = problem_key('Открытый люк у дома по улице Ленина, 5', 'housing_utilities', 'kirov',\n"
        "                  datetime(2026, 11, 30, tzinfo=UTC))\n"
        "print(key)\n"
    )
    done = subprocess.run(
        [str(venv_for(built / name)), "-c", probe],
        cwd=built / name,
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "ленин" in done.stdout.lower()
