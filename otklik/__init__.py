"""Developer and operator tooling: the ``otklik`` command, the local stack (emulators, function servers,
Pub/Sub delivery, sinks) and stand-ins for external APIs. Never deployed: functions ship ``shared/`` only."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
