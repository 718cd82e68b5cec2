"""``make run`` is ``otklik run``: the demo through the whole stack, a summary, exit 0, nothing left running."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


STACK_PROCESSES = re.compile(
    r"functions_framework|cloud_firestore_emulator|cloud-pubsub-emulator|CloudFirestore|pubsub-emulator|"
    r"pstest-server|firestore_emulator\.js"
)


def stack_processes() -> set[str]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return {line.strip() for line in out.splitlines() if STACK_PROCESSES.search(line)}


@pytest.mark.emulator_kind
def test_otklik_run_accounts_for_every_demo_post_and_cleans_up(tmp_path: Path) -> None:
    otklik = Path(sys.executable).with_name("otklik")
    before = stack_processes()
    result = subprocess.run(
        [str(otklik), "run", "--work-dir", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    published = re.search(r"Published to Pub/Sub:\s+(\d+)", out)
    stored = re.search(r"Incidents stored:\s+(\d+)", out)
    assert published and stored and int(stored.group(1)) > 0
    # every source of the demo fetched something, none failed
    rows = re.findall(r"^  (\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)  (\w+)$", out, flags=re.M)
    assert len(rows) >= 8 and all(status == "ok" and int(fetched) > 0 for _, fetched, *_, status in rows)
    # fetched = new + dupes + skipped + quarantined, for every source
    assert all(int(f) == int(n) + int(d) + int(s) + int(b) for _, f, n, d, s, b, _ in rows)
    assert "every item accounted for (fetched = new + dupes + skip + bad): yes" in out
    # the shapes that used to be lost at the door became incidents
    shapes = re.search(r"real shapes: +(.+)$", out, flags=re.M)
    assert shapes, out
    counts = dict(re.findall(r"([a-z0-9 ]+?) (\d+)(?:, |$)", shapes.group(1)))
    assert set(counts) == {
        "reposts",
        "comments under posts with over 10",
        "posts with several photos",
        "with a location",
        "written to the city directly",
    }, counts
    assert all(int(n) > 0 for n in counts.values()), counts
    assert re.search(r"Edits kept on their incidents: +[1-9]", out)
    assert "Source errors" not in out
    assert re.search(r"Ingest, second run: 0 new, 2 already published", out)
    assert re.search(r"webhook sink received\s+[1-9]", out)
    assert re.search(r"SMTP sink received\s+[1-9]", out)
    assert "Every post is accounted for" in out
    # No emulator, function server or sink outlives the command.
    assert stack_processes() - before == set()
