"""``python -m otklik.stack.metered NAME ARGS...``: functions-framework with ARGS, its Firestore operations counted
(otklik.stack.metering) into ``$OTKLIK_METER_DIR/NAME-<pid>.json``. The local stack starts the functions this way
when a benchmark asks it to count."""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

from otklik.stack import metering


def main() -> None:
    name, *args = sys.argv[1:]
    metering.install(metering.Meter(Path(os.environ["OTKLIK_METER_DIR"]) / f"{name}.json"))
    sys.argv = ["functions_framework", *args]
    runpy.run_module("functions_framework", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
