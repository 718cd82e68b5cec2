"""YAML data files (gazetteers, the taxonomy, names) read with libyaml when PyYAML was built with it: the same
safe loader, five to ten times faster — the gazetteers are most of the classify function's cold start."""

from __future__ import annotations

from typing import Any

import yaml

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader, C or Python
